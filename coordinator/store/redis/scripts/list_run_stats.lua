-- Returns per run: run_id, the 10 RUN_FIELDS, best pending rank member ('' if none).
local out = {}
for _, run in ipairs(redis.call('ZRANGE', K_RUNS, 0, -1)) do
  local v = redis.call('HMGET', k_run(run), unpack(RUN_FIELDS))
  out[#out + 1] = run
  for j = 1, #RUN_FIELDS do out[#out + 1] = v[j] or '0' end
  local top = redis.call('ZRANGE', k_pending(run), 0, 0)
  out[#out + 1] = top[1] or ''
end
return out
