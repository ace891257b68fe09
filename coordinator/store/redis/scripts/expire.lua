-- ARGV: prefix, now, lost error text, lost fingerprint (the history of a lost
-- attempt: kLostAttempt* in store_codec.h), then the transition the
-- coordinator decided for a lost lease (counter, succeeds, fail_at, final: see
-- apply_transition). Returns per expired lease, in expiry order: the 10
-- LEASE_FIELDS and the phase's new state.
local now, lost_error, lost_fingerprint = ARGV[2], ARGV[3], ARGV[4]
local items = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', K_LEASES, '-inf', now)) do
  local L = redis.call('HMGET', k_lease(id), unpack(LEASE_FIELDS))
  if not L[1] then return redis.error_reply('INTERNAL lease index names missing lease ' .. id) end
  if redis.call('EXISTS', k_phase(L[2], L[3])) == 0 then
    return redis.error_reply('INTERNAL lease ' .. id .. ' has no phase')
  end
  if redis.call('EXISTS', k_attempt(id)) == 1 then
    return redis.error_reply('INTERNAL an attempt for lease ' .. id .. ' is already recorded')
  end
  items[#items + 1] = L
end
-- Expiry order; equal expiries in grant (epoch) order.
table.sort(items, function(a, b)
  local ea, eb = tonumber(a[10]), tonumber(b[10])
  if ea ~= eb then return ea < eb end
  return tonumber(a[5]) < tonumber(b[5])
end)
local out = {}
for _, L in ipairs(items) do
  local id, run, phase, session = L[1], L[2], L[3], L[7]
  redis.call('HSET', k_attempt(id), 'lease_id', id, 'run_id', run, 'phase_id', phase,
             'attempt', L[4], 'epoch', L[5], 'worker_id', L[6], 'session_id', session,
             'outcome', 'lost', 'exit_code', '-1', 'signal', '0', 'duration_ms', '0',
             'error_text', lost_error, 'fingerprint', lost_fingerprint, 'telemetry_events', '0',
             'telemetry_by_type', '{}', 'stdout_tail', '', 'stderr_tail', '',
             'started_at', L[9], 'ended_at', now, 'telemetry_unknown', '0')
  index_attempt(id, session, 'lost', run, phase)
  redis.call('DEL', k_lease(id))
  redis.call('ZREM', K_LEASES, id)
  local pk = k_phase(run, phase)
  local ph = redis.call('HMGET', pk, 'state', 'attempts', 'requeues', 'rank', 'labels')
  local to, attempts, requeues, final = apply_transition(tonumber(ph[2]), tonumber(ph[3]), ARGV[5],
                                                          ARGV[6], ARGV[7], ARGV[8])
  redis.call('HSET', pk, 'state', to, 'attempts', istr(attempts), 'requeues', istr(requeues),
             'current_lease_id', '', 'updated_at', now)
  if final then redis.call('HSET', pk, 'final_outcome', final) end
  if to == 'pending' then
    redis.call('ZADD', k_pending(run), 0, ph[4])
    if ph[5] ~= '' then redis.call('ZADD', K_LABELLED, 0, labelled_member(run, ph[4])) end
  end
  bump_run(run, ph[1], to, 1, 0, 0, '0', '0', '0')
  for j = 1, #LEASE_FIELDS do out[#out + 1] = L[j] end
  out[#out + 1] = to
end
return out
