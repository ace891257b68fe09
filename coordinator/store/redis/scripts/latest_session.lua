-- The active session, else the latest started (ties: the later created).
-- Returns {session generation, the 6 SESSION_FIELDS}, or {generation} when
-- there is no session.
local gen = session_gen()
local function answer(v)
  local out = {gen}
  for j = 1, #SESSION_FIELDS do out[j + 1] = v[j] end
  return out
end
local active = redis.call('GET', K_ACTIVE)
if active then
  local v = redis.call('HMGET', k_session(active), unpack(SESSION_FIELDS))
  if v[3] == 'active' then return answer(v) end
end
local top = redis.call('ZREVRANGE', K_SESSIONS, 0, 0, 'WITHSCORES')
if #top == 0 then return {gen} end
local best, best_seq = nil, -1
for _, id in ipairs(redis.call('ZRANGEBYSCORE', K_SESSIONS, top[2], top[2])) do
  local seq = tonumber(redis.call('HGET', k_session(id), 'seq')) or 0
  if seq > best_seq then best, best_seq = id, seq end
end
return answer(redis.call('HMGET', k_session(best), unpack(SESSION_FIELDS)))
