-- Leader fencing, prepended to every mutating script except the election's
-- own. The caller passes its leader epoch as ARGV[2] ('' = unfenced: a
-- single coordinator on SQLite-like terms, tests, tools); a write whose epoch
-- is not the current `leader_epoch` is refused before anything is touched,
-- so a stale leader (paused, partitioned) can never write after a takeover.
-- Then ARGV[2] is dropped from a local copy of ARGV, so the script bodies see
-- the same ARGV layout as without fencing. Cost: one MGET per call, which
-- also reads the session generation (session_gen, prelude.lua) that the
-- lease and report scripts answer.
local FENCE = ARGV[2]
if FENCE ~= '' then
  local read = redis.call('MGET', P .. 'leader_epoch', K_SESSION_GEN)
  local current = read[1] or '0'
  session_gen_read = read[2] or '0'
  if current ~= FENCE then
    return redis.error_reply('NOT_LEADER not the leader (epoch ' .. FENCE .. ', current ' ..
                             current .. ')')
  end
end
local ARGV = (function()
  local a = {ARGV[1]}
  for i = 3, #ARGV do a[i - 1] = ARGV[i] end
  return a
end)()
