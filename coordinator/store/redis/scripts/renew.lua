-- ARGV: prefix, worker, now, new_expires_at, lease ids... Returns the ids
-- that are no longer this worker's.
local worker, now, until_ms = ARGV[2], tonumber(ARGV[3]), ARGV[4]
local gone = {}
for i = 5, #ARGV do
  local id = ARGV[i]
  local lk = k_lease(id)
  local v = redis.call('HMGET', lk, 'worker_id', 'expires_at')
  if v[1] == worker and tonumber(v[2]) > now then
    redis.call('HSET', lk, 'expires_at', until_ms)
    redis.call('ZADD', K_LEASES, until_ms, id)
  else
    gone[#gone + 1] = id
  end
end
return gone
