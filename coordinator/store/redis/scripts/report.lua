-- ARGV: prefix, lease_id, epoch, worker, outcome, exit_code, signal,
-- duration_ms, error_text, fingerprint, telemetry_events, telemetry_by_type,
-- stdout_tail, stderr_tail, now, then the transition the coordinator decided
-- (counter, succeeds, fail_at, final: see apply_transition), then
-- telemetry_unknown ('1' or '0'; the caller checked that telemetry_events is
-- '0' with '1'). Returns
-- {session generation, disposition, phase_state}, plus when accepted run,
-- phase and the run's statistics after the report (bump_run's columns and
-- the best pending rank member).
local id, epoch, worker, outcome, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[15]
-- The counters this script adds are checked before its first write, as when
-- it added them with HINCRBY, which failing on overflow after earlier writes
-- would have left the phase half-updated. Bounds:
-- coordinator/store/report_limits.h (2^40).
for _, f in ipairs({{8, 'duration_ms'}, {11, 'telemetry_events'}}) do
  local v = ARGV[f[1]]
  if not string.match(v, '^%d+$') or #v > 13 or tonumber(v) > 1099511627776 then
    return redis.error_reply('INVALID_ARGUMENT ' .. f[2] .. ' ' .. string.sub(v, 1, 24) ..
                             ': must be between 0 and 1099511627776')
  end
end
local lk = k_lease(id)
local L = redis.call('HMGET', lk, 'run_id', 'phase_id', 'attempt', 'epoch', 'worker_id',
                     'session_id', 'leased_at')
local have_lease = L[1] ~= false
if not have_lease or L[4] ~= epoch or L[5] ~= worker then
  -- Not the current holder: a duplicate of an applied report, a late one
  -- (expired or someone else's lease), or a lease never granted.
  local A = redis.call('HMGET', k_attempt(id), 'outcome', 'worker_id', 'epoch', 'run_id',
                       'phase_id')
  local have_attempt = A[1] ~= false
  if not have_attempt and not have_lease then return {session_gen(), 'unknown_lease', ''} end
  local disposition
  if have_attempt and A[1] ~= 'lost' and A[2] == worker and A[3] == epoch then
    disposition = 'duplicate'
  else
    disposition = 'late'
    local lt = k_late(id)
    if redis.call('EXISTS', lt) == 0 then
      redis.call('HSET', lt, 'lease_id', id, 'worker_id', worker, 'outcome', outcome,
                 'telemetry_events', ARGV[11], 'error_text', ARGV[9], 'received_at', now)
      redis.call('ZADD', K_LATES, now, id)
    end
  end
  local run, phase = L[1], L[2]
  if have_attempt then run, phase = A[4], A[5] end
  local st = redis.call('HGET', k_phase(run, phase), 'state')
  return {session_gen(), disposition, st or ''}
end

local run, phase, session = L[1], L[2], L[6]
local pk = k_phase(run, phase)
local ph = redis.call('HMGET', pk, 'state', 'attempts', 'requeues', 'rank', 'labels',
                      'telemetry_events')
if not ph[1] then return redis.error_reply('INTERNAL lease ' .. id .. ' has no phase') end
local ak = k_attempt(id)
if redis.call('EXISTS', ak) == 1 then
  return redis.error_reply('INTERNAL an attempt for lease ' .. id .. ' is already recorded')
end

redis.call('HSET', ak, 'lease_id', id, 'run_id', run, 'phase_id', phase, 'attempt', L[3],
           'epoch', L[4], 'worker_id', L[5], 'session_id', session, 'outcome', outcome,
           'exit_code', ARGV[6], 'signal', ARGV[7], 'duration_ms', ARGV[8],
           'error_text', ARGV[9], 'fingerprint', ARGV[10], 'telemetry_events', ARGV[11],
           'telemetry_by_type', ARGV[12], 'stdout_tail', ARGV[13], 'stderr_tail', ARGV[14],
           'started_at', L[7], 'ended_at', now, 'telemetry_unknown', ARGV[20])
index_attempt(id, session, outcome, run, phase)
redis.call('DEL', lk)
redis.call('ZREM', K_LEASES, id)

local from = ph[1]
local to, attempts, requeues, final = apply_transition(tonumber(ph[2]), tonumber(ph[3]), ARGV[16],
                                                        ARGV[17], ARGV[18], ARGV[19])
local set = {'state', to, 'attempts', istr(attempts), 'requeues', istr(requeues),
             'current_lease_id', '', 'updated_at', now}
if final then set[#set + 1] = 'final_outcome'; set[#set + 1] = final end
if ARGV[11] ~= '0' then
  set[#set + 1] = 'telemetry_events'; set[#set + 1] = add_dec(ph[6] or '0', ARGV[11])
end
redis.call('HSET', pk, unpack(set))
if to == 'pending' then
    redis.call('ZADD', k_pending(run), 0, ph[4])
    if ph[5] ~= '' then redis.call('ZADD', K_LABELLED, 0, labelled_member(run, ph[4])) end
  end
local reply = bump_run(run, from, to, 1, outcome == 'succeeded' and 1 or 0,
                       outcome == 'timed_out' and 1 or 0, ARGV[11], ARGV[8],
                       ARGV[20] == '1' and ARGV[8] or '0',
                       {session_gen(), 'accepted', to, run, phase})
reply[#reply + 1] = redis.call('ZRANGE', k_pending(run), 0, 0)[1] or ''
return reply
