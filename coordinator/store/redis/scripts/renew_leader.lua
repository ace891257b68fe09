-- ARGV: prefix, id, epoch, lease_ms. Compare-and-extend: 1 when the key is
-- still (id, epoch) and epoch is still current, else 0 (leadership lost).
local lk = P .. 'leader'
local cur = redis.call('HMGET', lk, 'id', 'epoch')
if cur[1] ~= ARGV[2] or cur[2] ~= ARGV[3] or redis.call('GET', P .. 'leader_epoch') ~= ARGV[3] then
  return 0
end
redis.call('PEXPIRE', lk, ARGV[4])
return 1
