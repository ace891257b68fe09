-- ARGV: prefix, staging id, chunk count, phase budget, ttl (s). Applies the
-- next slice of a staged import (see redis_import.cc). The list
-- P..'import:'..id holds msgpack arrays of 9 x n strings (run, phase, index,
-- priority, last_error, labels, metadata, rank, timed_out_before), one per
-- chunk. timed_out_before ('1' or '0') is what the importer read in
-- last_error (LastErrorIsPhaseTimeout): lease.lua takes such a phase only
-- after its run's other untried phases. A slice takes
-- chunks off the head of the list, at least one and then more while the
-- slice stays within `budget` phases, and applies them: one slice is atomic
-- and leaves every counter exact, and no chunk is ever applied twice (it
-- leaves the list in the script that applies it). Redis serves nobody else
-- while a script runs, so the budget bounds how long one slice blocks it.
-- The running totals live in P..'import:'..id..':totals', so the reply of a slice
-- can be lost without losing its counts: a retry applies the next slice (or,
-- when none is left, answers the totals again).
-- Returns {chunks left, inserted, updated, unchanged}, the counts summed over
-- every slice so far. The first slice refuses, before any write, a list
-- shorter than announced (expired, or never staged).
local sk = P .. 'import:' .. ARGV[2]
local tk = sk .. ':totals'
local chunks, budget, ttl = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local left = redis.call('LLEN', sk)
local totals = redis.call('HMGET', tk, 'inserted', 'updated', 'unchanged')
if not totals[1] and left ~= chunks then
  return redis.error_reply('FAILED_PRECONDITION staged import ' .. ARGV[2] ..
                           ' is incomplete (expired?): import again')
end
local inserted, updated, unchanged = 0, 0, 0
local new_in_run = {}  -- run -> phases inserted into it
local run_known = {}   -- runs whose hash exists (made here or before)
-- run -> ZADD arguments for its pending set and their count
local batch, batch_n = {}, {}
-- Sent in reverse: a backlog lists a run's phases in rank order, and a
-- small sorted set (a listpack) takes a member smaller than all the others
-- without walking them; in rank order every insert walks the whole set
-- (measured: 500k members in sets of 100, 1.0 s against 1.7-2.0 s).
local function flush(run)
  local n = batch_n[run]
  if n and n > 0 then
    local t, reversed = batch[run], {}
    for i = n, 2, -2 do
      reversed[n - i + 1], reversed[n - i + 2] = 0, t[i]
    end
    redis.call('ZADD', k_pending(run), unpack(reversed))
    batch[run], batch_n[run] = {}, 0
  end
end
local labelled, labelled_n = {}, 0  -- ZADD arguments for K_LABELLED
local function flush_labelled()
  if labelled_n > 0 then
    redis.call('ZADD', K_LABELLED, unpack(labelled))
    labelled, labelled_n = {}, 0
  end
end

local applied = 0  -- phases in this slice
while left > 0 do
  local raw = redis.call('LINDEX', sk, 0)
  -- EncodeImportChunk writes an array 32 header (0xdd, 4-byte count of
  -- strings): the chunk's size without unpacking it.
  local b1, b2, b3, b4, b5 = string.byte(raw, 1, 5)
  if b1 ~= 0xdd then
    if applied > 0 then break end  -- refused first thing by the next slice
    return redis.error_reply('INTERNAL staged import ' .. ARGV[2] .. ' has a malformed chunk')
  end
  local n = (((b2 * 256 + b3) * 256 + b4) * 256 + b5) / 9
  if applied > 0 and applied + n > budget then break end
  redis.call('LTRIM', sk, 1, -1)
  left = left - 1
  applied = applied + n
  local f = cmsgpack.unpack(raw)
  raw = nil
  for b = 1, #f, 9 do
    local run, phase, idx, prio = f[b], f[b + 1], f[b + 2], f[b + 3]
    local lerr, labels, meta, rank, tob = f[b + 4], f[b + 5], f[b + 6], f[b + 7], f[b + 8]
    local pk = k_phase(run, phase)
    local old = redis.call('HMGET', pk, 'phase_index', 'priority', 'last_error', 'labels',
                           'metadata', 'state', 'rank')
    if not old[1] then
      redis.call('HSET', pk, 'run_id', run, 'phase_id', phase, 'phase_index', idx,
                 'priority', prio, 'last_error', lerr, 'labels', labels, 'metadata', meta,
                 'state', 'pending', 'attempts', '0', 'requeues', '0', 'current_lease_id', '',
                 'final_outcome', '', 'telemetry_events', '0', 'updated_at', '0', 'rank', rank,
                 'timed_out_before', tob)
      if not batch[run] then batch[run], batch_n[run] = {}, 0 end
      local t, m = batch[run], batch_n[run]
      t[m + 1], t[m + 2] = 0, rank
      batch_n[run] = m + 2
      if batch_n[run] >= 1000 then flush(run) end
      if labels ~= '' then
        labelled[labelled_n + 1], labelled[labelled_n + 2] = 0, labelled_member(run, rank)
        labelled_n = labelled_n + 2
        if labelled_n >= 1000 then flush_labelled() end
      end
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
                 'labels', labels, 'metadata', meta, 'rank', rank, 'timed_out_before', tob)
      if old[6] == 'pending' and old[7] ~= rank then
        flush(run)  -- the phase may still sit in this run's unsent batch
        redis.call('ZREM', k_pending(run), old[7])
        redis.call('ZADD', k_pending(run), 0, rank)
      end
      if old[6] == 'pending' then
        flush_labelled()  -- the same, for the labelled index
        redis.call('ZREM', K_LABELLED, labelled_member(run, old[7]))
        if labels ~= '' then redis.call('ZADD', K_LABELLED, 0, labelled_member(run, rank)) end
      end
      updated = updated + 1
    end
  end
end
for run, _ in pairs(batch) do flush(run) end
flush_labelled()
for run, n in pairs(new_in_run) do redis.call('HINCRBY', k_run(run), 'pending', n) end
if inserted > 0 then redis.call('HINCRBY', K_COUNTS, 'pending', inserted) end
-- The totals expire with the list (an importer that died mid-commit); the
-- client deletes them once it has read the last slice's reply.
inserted = redis.call('HINCRBY', tk, 'inserted', inserted)
updated = redis.call('HINCRBY', tk, 'updated', updated)
unchanged = redis.call('HINCRBY', tk, 'unchanged', unchanged)
redis.call('EXPIRE', tk, ttl)
if left > 0 then redis.call('EXPIRE', sk, ttl) end
return {left, inserted, updated, unchanged}
