-- ARGV: prefix, worker_id (fenced: the epoch is dropped before this body).
-- Forgets a registered worker; an unknown id is not an error.
redis.call('DEL', k_worker(ARGV[2]))
redis.call('ZREM', K_WORKERS, ARGV[2])
return redis.status_reply('OK')
