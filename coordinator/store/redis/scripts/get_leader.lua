-- Returns {id, epoch, address} of the current holder, or nil.
local cur = redis.call('HMGET', P .. 'leader', 'id', 'epoch', 'address')
if not cur[1] then return false end
return cur
