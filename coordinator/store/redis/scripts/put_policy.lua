-- ARGV: prefix, kind, key, value.
redis.call('HSET', P .. 'policy:' .. ARGV[2], ARGV[3], ARGV[4])
return redis.status_reply('OK')
