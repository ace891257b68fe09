-- ARGV: prefix, staging id, chunk count. Applies a staged import (see
-- redis_import.cc) whole: the list P..'import:'..id holds `chunk count`
-- msgpack arrays of 8 x n strings (run, phase, index, priority, last_error,
-- labels, metadata, rank). Deletes the list. Returns {inserted, updated,
-- unchanged}. A list shorter than announced (expired, or never staged) is
-- refused before any write.
local sk = P .. 'import:' .. ARGV[2]
local chunks = tonumber(ARGV[3])
if redis.call('LLEN', sk) ~= chunks then
  return redis.error_reply('FAILED_PRECONDITION staged import ' .. ARGV[2] ..
                           ' is incomplete (expired?): import again')
end
local inserted, updated, unchanged = 0, 0, 0
local new_in_run = {}  -- run -> phases inserted into it
local run_known = {}   -- runs whose hash exists (made here or before)
-- run -> ZADD arguments for its pending set and their count, for this chunk's runs
local batch, batch_n = {}, {}
local function flush(run)
  if batch_n[run] and batch_n[run] > 0 then
    redis.call('ZADD', k_pending(run), unpack(batch[run]))
    batch[run], batch_n[run] = {}, 0
  end
end
for c = 0, chunks - 1 do
  local f = cmsgpack.unpack(redis.call('LINDEX', sk, c))
  batch, batch_n = {}, {}
  for b = 1, #f, 8 do
    local run, phase, idx, prio = f[b], f[b + 1], f[b + 2], f[b + 3]
    local lerr, labels, meta, rank = f[b + 4], f[b + 5], f[b + 6], f[b + 7]
    local pk = k_phase(run, phase)
    local old = redis.call('HMGET', pk, 'phase_index', 'priority', 'last_error', 'labels',
                           'metadata', 'state', 'rank')
    if not old[1] then
      redis.call('HSET', pk, 'run_id', run, 'phase_id', phase, 'phase_index', idx,
                 'priority', prio, 'last_error', lerr, 'labels', labels, 'metadata', meta,
                 'state', 'pending', 'attempts', '0', 'requeues', '0', 'current_lease_id', '',
                 'final_outcome', '', 'telemetry_events', '0', 'updated_at', '0', 'rank', rank)
      if not batch[run] then batch[run], batch_n[run] = {}, 0 end
      local t, n = batch[run], batch_n[run]
      t[n + 1], t[n + 2] = 0, rank
      batch_n[run] = n + 2
      if batch_n[run] >= 1000 then flush(run) end
      if labels ~= '' then redis.call('ZADD', K_LABELLED, 0, labelled_member(run, rank)) end
      if not run_known[run] then
        local rk = k_run(run)
        if redis.call('EXISTS', rk) == 0 then
          redis.call('HSET', rk, 'pending', 0, 'leased', 0, 'succeeded', 0, 'failed', 0,
                     'attempts', 0, 'successes', 0, 'timeouts', 0, 'telemetry_events', 0,
                     'run_ms', 0, 'unknown_telemetry_ms', 0)
          redis.call('ZADD', K_RUNS, 0, run)
        end
        run_known[run] = true
      end
      new_in_run[run] = (new_in_run[run] or 0) + 1
      inserted = inserted + 1
    elseif old[1] == idx and old[2] == prio and old[3] == lerr and old[4] == labels and
           old[5] == meta then
      unchanged = unchanged + 1
    else
      redis.call('HSET', pk, 'phase_index', idx, 'priority', prio, 'last_error', lerr,
                 'labels', labels, 'metadata', meta, 'rank', rank)
      if old[6] == 'pending' and old[7] ~= rank then
        flush(run)  -- the phase may still sit in this run's unsent batch
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
  for run, _ in pairs(batch) do flush(run) end  -- the runs of this chunk only
end
for run, n in pairs(new_in_run) do redis.call('HINCRBY', k_run(run), 'pending', n) end
if inserted > 0 then redis.call('HINCRBY', K_COUNTS, 'pending', inserted) end
redis.call('DEL', sk)
return {inserted, updated, unchanged}
