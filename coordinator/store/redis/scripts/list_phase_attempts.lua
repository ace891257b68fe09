-- ARGV: prefix, run_id, phase_id, offset, limit. Returns the phase's attempt
-- count, then the 20 ATTEMPT_FIELDS (tails included) of up to `limit` of its
-- attempts, newest first, skipping the `offset` newest. Reads only those.
local list = k_pattempts(ARGV[2], ARGV[3])
local total = redis.call('LLEN', list)
local offset, limit = tonumber(ARGV[4]), tonumber(ARGV[5])
local out = {total}
if limit <= 0 or offset >= total then return out end
-- Newest last in the list: the page is [total-offset-limit, total-offset-1].
local last = total - offset - 1
local first = math.max(0, last - limit + 1)
local ids = redis.call('LRANGE', list, first, last)
for i = #ids, 1, -1 do
  local v = redis.call('HMGET', k_attempt(ids[i]), unpack(ATTEMPT_FIELDS))
  for j = 1, #ATTEMPT_FIELDS do out[#out + 1] = v[j] or '' end
end
return out
