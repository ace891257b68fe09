-- ARGV: prefix, run, worker, session, lease_id, timeout_seconds, now,
-- expires_at, n_labels, labels... Returns nil, or {phase_id, attempt, epoch}.
local run, lease_id, now = ARGV[2], ARGV[5], ARGV[7]
local have = {}
for i = 10, 9 + tonumber(ARGV[9]) do have[ARGV[i]] = true end
local pend = k_pending(run)
local chosen, chosen_member, chosen_labels
-- Small first read: the first phase usually fits; grow when labels filter.
local start, chunk = 0, 8
while not chosen do
  local members = redis.call('ZRANGE', pend, start, start + chunk - 1)
  if #members == 0 then break end
  for _, m in ipairs(members) do
    local phase = string.sub(m, 33)
    local labels = redis.call('HGET', k_phase(run, phase), 'labels')
    if not labels then
      return redis.error_reply('INTERNAL pending set of run ' .. run .. ' names missing phase ' .. phase)
    end
    local fits = true
    for _, l in ipairs(split_labels(labels)) do
      if not have[l] then fits = false; break end
    end
    if fits then chosen, chosen_member, chosen_labels = phase, m, labels; break end
  end
  start = start + chunk
  chunk = math.min(chunk * 2, 256)
end
if not chosen then return false end
local lk = k_lease(lease_id)
if redis.call('EXISTS', lk) == 1 then
  return redis.error_reply('INTERNAL lease id ' .. lease_id .. ' is already in use')
end
local pk = k_phase(run, chosen)
local ph = redis.call('HMGET', pk, 'attempts', 'requeues')
local attempt = tonumber(ph[1]) + tonumber(ph[2]) + 1
local epoch = redis.call('INCR', K_EPOCH)
redis.call('HSET', lk, 'lease_id', lease_id, 'run_id', run, 'phase_id', chosen,
           'attempt', istr(attempt), 'epoch', istr(epoch), 'worker_id', ARGV[3],
           'session_id', ARGV[4], 'timeout_seconds', ARGV[6], 'leased_at', now,
           'expires_at', ARGV[8])
redis.call('ZADD', K_LEASES, ARGV[8], lease_id)
redis.call('ZREM', pend, chosen_member)
if chosen_labels ~= '' then redis.call('ZREM', K_LABELLED, labelled_member(run, chosen_member)) end
redis.call('HSET', pk, 'state', 'leased', 'current_lease_id', lease_id, 'updated_at', now)
bump_run(run, 'pending', 'leased', 0, 0, 0, '0', '0')
return {chosen, istr(attempt), istr(epoch)}
