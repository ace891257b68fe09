-- Returns the 10 LEASE_FIELDS of every active lease.
local out = {}
for _, id in ipairs(redis.call('ZRANGE', K_LEASES, 0, -1)) do
  local L = redis.call('HMGET', k_lease(id), unpack(LEASE_FIELDS))
  for j = 1, #LEASE_FIELDS do out[#out + 1] = L[j] end
end
return out
