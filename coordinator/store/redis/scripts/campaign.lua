-- Leadership (not fenced: these scripts are the election). The leader key
-- holds {id, epoch, address} with a PX TTL; leader_epoch is durable and only
-- grows, one INCR per takeover.
-- ARGV: prefix, id, address, lease_ms. Takes the key when it is free or
-- already this id's (a leader that stepped down rejoins with a new epoch).
-- Returns {won (1/0), id, epoch, address} of the holder after the call.
local lk = P .. 'leader'
local cur = redis.call('HMGET', lk, 'id', 'epoch', 'address')
if cur[1] and cur[1] ~= ARGV[2] then return {0, cur[1], cur[2] or '0', cur[3] or ''} end
local epoch = istr(redis.call('INCR', P .. 'leader_epoch'))
redis.call('DEL', lk)
redis.call('HSET', lk, 'id', ARGV[2], 'epoch', epoch, 'address', ARGV[3])
redis.call('PEXPIRE', lk, ARGV[4])
return {1, ARGV[2], epoch, ARGV[3]}
