-- ARGV: prefix, session_id ('' = every attempt). Returns the 19
-- ATTEMPT_FIELDS of each attempt in end order.
local list = K_ATTEMPTS
if ARGV[2] ~= '' then list = k_sattempts(ARGV[2]) end
local out = {}
for _, id in ipairs(redis.call('LRANGE', list, 0, -1)) do
  local v = redis.call('HMGET', k_attempt(id), unpack(ATTEMPT_FIELDS))
  for j = 1, #ATTEMPT_FIELDS do out[#out + 1] = v[j] end
end
return out
