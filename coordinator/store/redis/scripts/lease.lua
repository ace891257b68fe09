-- ARGV: prefix, run, worker, session, lease_id, timeout_seconds, now,
-- expires_at, retries_last (0|1, or 2: untried phases only), n_labels,
-- labels... Returns {session generation} when nothing fits, else
-- {session generation, phase_id, attempt, epoch, retry_tier (1|0)} and the
-- run's statistics after the grant (bump_run's columns and the best pending
-- rank member).
local run, lease_id, now = ARGV[2], ARGV[5], ARGV[7]
local retries_last = ARGV[9] ~= '0'
local untried_only = ARGV[9] == '2'
local have = {}
for i = 11, 10 + tonumber(ARGV[10]) do have[ARGV[i]] = true end
local pend = k_pending(run)
local chosen, chosen_member, chosen_labels, chosen_v
-- retries_last: the best fitting retry (or phase whose backlog row says it
-- timed out), taken when no untried phase of its priority (the first 16
-- characters of the rank) fits.
local retry, retry_member, retry_labels, retry_v
local first  -- the first members read: the run's best pending ones
local done = false
-- Small first read: the first phase usually fits; grow when labels filter.
local start, chunk = 0, 8
while not done do
  local members = redis.call('ZRANGE', pend, start, start + chunk - 1)
  if #members == 0 then break end
  first = first or members
  for _, m in ipairs(members) do
    if retry and string.sub(m, 1, 16) ~= string.sub(retry_member, 1, 16) then done = true; break end
    local phase = string.sub(m, 33)
    local v = redis.call('HMGET', k_phase(run, phase), 'labels', 'attempts', 'timed_out_before',
                         'requeues')
    local labels = v[1]
    if not labels then
      return redis.error_reply('INTERNAL pending set of run ' .. run .. ' names missing phase ' .. phase)
    end
    local fits = true
    for _, l in ipairs(split_labels(labels)) do
      if not have[l] then fits = false; break end
    end
    if fits then
      -- A phase whose backlog row says it timed out waits like a retry.
      if retries_last and (tonumber(v[2]) > 0 or v[3] == '1') then
        if not retry then retry, retry_member, retry_labels, retry_v = phase, m, labels, v end
      else
        chosen, chosen_member, chosen_labels, chosen_v = phase, m, labels, v
        done = true
        break
      end
    end
  end
  start = start + chunk
  chunk = math.min(chunk * 2, 256)
end
local retry_tier = 0
if not chosen and retry and not untried_only then
  chosen, chosen_member, chosen_labels, chosen_v = retry, retry_member, retry_labels, retry_v
  retry_tier = 1
end
if not chosen then return {session_gen()} end
local lk = k_lease(lease_id)
if redis.call('EXISTS', lk) == 1 then
  return redis.error_reply('INTERNAL lease id ' .. lease_id .. ' is already in use')
end
local pk = k_phase(run, chosen)
local attempt = tonumber(chosen_v[2]) + tonumber(chosen_v[4]) + 1
local epoch = redis.call('INCR', K_EPOCH)
redis.call('HSET', lk, 'lease_id', lease_id, 'run_id', run, 'phase_id', chosen,
           'attempt', istr(attempt), 'epoch', istr(epoch), 'worker_id', ARGV[3],
           'session_id', ARGV[4], 'timeout_seconds', ARGV[6], 'leased_at', now,
           'expires_at', ARGV[8])
redis.call('ZADD', K_LEASES, ARGV[8], lease_id)
redis.call('ZREM', pend, chosen_member)
if chosen_labels ~= '' then redis.call('ZREM', K_LABELLED, labelled_member(run, chosen_member)) end
redis.call('HSET', pk, 'state', 'leased', 'current_lease_id', lease_id, 'updated_at', now)
local reply = bump_run(run, 'pending', 'leased', 0, 0, 0, '0', '0', '0',
                       {session_gen(), chosen, istr(attempt), istr(epoch), retry_tier})
-- The best pending member now, without a read: the first chunk holds the
-- second member whenever the set had one.
local top = first[1]
if top == chosen_member then top = first[2] or '' end
reply[#reply + 1] = top
return reply
