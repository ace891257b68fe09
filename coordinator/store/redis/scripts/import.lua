-- ARGV: prefix, n, then n x (run, phase, index, priority, last_error, labels,
-- metadata, rank). Returns {inserted, updated, unchanged}.
local n = tonumber(ARGV[2])
local inserted, updated, unchanged = 0, 0, 0
for i = 0, n - 1 do
  local b = 3 + i * 8
  local run, phase, idx, prio = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
  local lerr, labels, meta, rank = ARGV[b + 4], ARGV[b + 5], ARGV[b + 6], ARGV[b + 7]
  local pk = k_phase(run, phase)
  local old = redis.call('HMGET', pk, 'phase_index', 'priority', 'last_error', 'labels',
                         'metadata', 'state', 'rank')
  if not old[1] then
    redis.call('HSET', pk, 'run_id', run, 'phase_id', phase, 'phase_index', idx, 'priority', prio,
               'last_error', lerr, 'labels', labels, 'metadata', meta, 'state', 'pending',
               'attempts', '0', 'requeues', '0', 'current_lease_id', '', 'final_outcome', '',
               'telemetry_events', '0', 'updated_at', '0', 'rank', rank)
    redis.call('ZADD', k_pending(run), 0, rank)
    if labels ~= '' then redis.call('ZADD', K_LABELLED, 0, labelled_member(run, rank)) end
    local rk = k_run(run)
    if redis.call('EXISTS', rk) == 0 then
      redis.call('HSET', rk, 'pending', 0, 'leased', 0, 'succeeded', 0, 'failed', 0, 'attempts', 0,
                 'successes', 0, 'timeouts', 0, 'telemetry_events', 0, 'run_ms', 0)
      redis.call('ZADD', K_RUNS, 0, run)
    end
    redis.call('HINCRBY', rk, 'pending', 1)
    inserted = inserted + 1
  elseif old[1] == idx and old[2] == prio and old[3] == lerr and old[4] == labels and
         old[5] == meta then
    unchanged = unchanged + 1
  else
    redis.call('HSET', pk, 'phase_index', idx, 'priority', prio, 'last_error', lerr,
               'labels', labels, 'metadata', meta, 'rank', rank)
    if old[6] == 'pending' and old[7] ~= rank then
      redis.call('ZREM', k_pending(run), old[7])
      redis.call('ZADD', k_pending(run), 0, rank)
    end
    if old[6] == 'pending' then
      redis.call('ZREM', K_LABELLED, labelled_member(run, old[7]))
      if labels ~= '' then redis.call('ZADD', K_LABELLED, 0, labelled_member(run, rank)) end
    end
    updated = updated + 1
  end
end
if inserted > 0 then redis.call('HINCRBY', K_COUNTS, 'pending', inserted) end
return {inserted, updated, unchanged}
