-- ARGV: prefix, limit. Returns up to limit pending phases that require
-- labels (by run id, then lease order): the phase fields of each, in the
-- order of the C++ kPhaseFields.
local out = {}
local fields = {'run_id', 'phase_id', 'phase_index', 'priority', 'last_error', 'labels',
                'metadata', 'state', 'attempts', 'requeues', 'current_lease_id', 'final_outcome',
                'telemetry_events', 'updated_at'}
for _, m in ipairs(redis.call('ZRANGE', K_LABELLED, 0, tonumber(ARGV[2]) - 1)) do
  local nul = string.find(m, '\0', 1, true)
  local run, rank = string.sub(m, 1, nul - 1), string.sub(m, nul + 1)
  local v = redis.call('HMGET', k_phase(run, string.sub(rank, 33)), unpack(fields))
  if not v[1] then
    return redis.error_reply('INTERNAL labelled set names missing phase ' .. m)
  end
  for j = 1, #fields do out[#out + 1] = v[j] end
end
return out
