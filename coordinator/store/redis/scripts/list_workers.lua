local out = {}
for _, id in ipairs(redis.call('ZRANGE', K_WORKERS, 0, -1)) do
  local v = redis.call('HMGET', k_worker(id), unpack(WORKER_FIELDS))
  for j = 1, #WORKER_FIELDS do out[#out + 1] = v[j] end
end
return out
