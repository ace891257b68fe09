-- ARGV: prefix, session_id, state, ended_at, reason.
local id, state = ARGV[2], ARGV[3]
local sk = k_session(id)
if redis.call('HGET', sk, 'state') ~= 'active' then
  return redis.error_reply('FAILED_PRECONDITION session ' .. id .. ' is not active')
end
redis.call('HSET', sk, 'state', state, 'ended_at', ARGV[4], 'end_reason', ARGV[5])
bump_session_gen()
if state ~= 'active' and redis.call('GET', K_ACTIVE) == id then redis.call('DEL', K_ACTIVE) end
return redis.status_reply('OK')
