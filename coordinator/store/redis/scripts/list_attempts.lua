-- ARGV: prefix, session_id ('' = every attempt), with_output ('0': stdout and
-- stderr tails left empty, so start-up reads no output), first, last (list
-- indexes, inclusive: the caller reads a long history in chunks so that no
-- one script blocks Redis for long). Returns the 20 ATTEMPT_FIELDS of each
-- attempt in that range, in end order.
local list = K_ATTEMPTS
if ARGV[2] ~= '' then list = k_sattempts(ARGV[2]) end
local fields = ATTEMPT_FIELDS
if ARGV[3] == '0' then
  fields = {}
  for j, f in ipairs(ATTEMPT_FIELDS) do
    fields[j] = (f == 'stdout_tail' or f == 'stderr_tail') and 'no-such-field' or f
  end
end
local out = {}
for _, id in ipairs(redis.call('LRANGE', list, ARGV[4], ARGV[5])) do
  local v = redis.call('HMGET', k_attempt(id), unpack(fields))
  for j = 1, #fields do out[#out + 1] = v[j] or '' end
end
return out
