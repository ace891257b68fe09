-- ARGV: prefix, id, epoch. Deletes the key when it is still (id, epoch).
local lk = P .. 'leader'
local cur = redis.call('HMGET', lk, 'id', 'epoch')
if cur[1] == ARGV[2] and cur[2] == ARGV[3] then redis.call('DEL', lk) end
return redis.status_reply('OK')
