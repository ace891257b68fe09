-- ARGV: prefix, run. Returns {} when the run is unknown, else the run id,
-- the 10 RUN_FIELDS and the best pending rank member ('' if none), as one row
-- of list_run_stats.
local run = ARGV[2]
local rk = k_run(run)
if redis.call('EXISTS', rk) == 0 then return {} end
local v = redis.call('HMGET', rk, unpack(RUN_FIELDS))
local out = {run}
for j = 1, #RUN_FIELDS do out[j + 1] = v[j] or '0' end
local top = redis.call('ZRANGE', k_pending(run), 0, 0)
out[#out + 1] = top[1] or ''
return out
