-- Returns {pending, leased, succeeded, failed}: the counters the writes keep.
local v = redis.call('HMGET', K_COUNTS, 'pending', 'leased', 'succeeded', 'failed')
local c = {}
for j = 1, 4 do c[j] = tonumber(v[j]) or 0 end
return c
