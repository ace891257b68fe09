-- Returns {pending, leased, succeeded, failed} summed over runs.
local c = {0, 0, 0, 0}
for _, run in ipairs(redis.call('ZRANGE', K_RUNS, 0, -1)) do
  local v = redis.call('HMGET', k_run(run), 'pending', 'leased', 'succeeded', 'failed')
  for j = 1, 4 do c[j] = c[j] + (tonumber(v[j]) or 0) end
end
return c
