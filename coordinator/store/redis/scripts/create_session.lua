-- ARGV: prefix, then the 6 SESSION_FIELDS.
local id, state = ARGV[2], ARGV[4]
local active = redis.call('GET', K_ACTIVE)
if active and redis.call('HGET', k_session(active), 'state') == 'active' then
  return redis.error_reply('FAILED_PRECONDITION session ' .. active ..
                           ' is still active; stop it first')
end
local sk = k_session(id)
if redis.call('EXISTS', sk) == 1 then
  return redis.error_reply('ALREADY_EXISTS session ' .. id .. ' exists')
end
local seq = redis.call('INCR', K_SESSION_SEQ)
redis.call('HSET', sk, 'session_id', id, 'settings', ARGV[3], 'state', state,
           'started_at', ARGV[5], 'ended_at', ARGV[6], 'end_reason', ARGV[7], 'seq', istr(seq))
redis.call('ZADD', K_SESSIONS, ARGV[5], id)
bump_session_gen()
if state == 'active' then redis.call('SET', K_ACTIVE, id) end
return redis.status_reply('OK')
