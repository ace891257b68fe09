-- ARGV: prefix, then the 6 WORKER_FIELDS.
local wk = k_worker(ARGV[2])
for j = 1, #WORKER_FIELDS do redis.call('HSET', wk, WORKER_FIELDS[j], ARGV[j + 1]) end
redis.call('ZADD', K_WORKERS, 0, ARGV[2])
return redis.status_reply('OK')
