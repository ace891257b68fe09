-- Shared by every script (prepended after the shebang). Each script runs
-- with ARGV[1] = key prefix ("<namespace>:") and no KEYS (the keys derive
-- from ids, see docs/redis.md). Rules every mutating script follows so that a
-- transition never half-applies:
--  1. read and validate everything first; every error_reply comes before the
--     first write;
--  2. the shebang makes Redis refuse the whole script when out of memory
--     instead of failing at its first write.
-- Integers that may exceed 2^53 (priority, phase_index, telemetry, durations)
-- are never converted to Lua numbers: they travel as decimal strings and are
-- added with add_dec (exact) or HINCRBY.
local P = ARGV[1]
local function k_phase(run, phase) return P .. 'phase:' .. #run .. ':' .. run .. ':' .. phase end
local function k_run(run) return P .. 'run:' .. run end
local function k_pending(run) return P .. 'pending:' .. run end
local function k_lease(id) return P .. 'lease:' .. id end
local function k_attempt(id) return P .. 'attempt:' .. id end
local function k_late(id) return P .. 'late:' .. id end
local K_LATES = P .. 'late_reports'
local function k_worker(id) return P .. 'worker:' .. id end
local function k_session(id) return P .. 'session:' .. id end
local function k_sattempts(id) return P .. 'session_attempts:' .. id end
local function k_scount(id) return P .. 'session_count:' .. id end
-- One phase's attempt ids in end order (the web view's Phase page reads a
-- page of it instead of a session's whole list).
local function k_pattempts(run, phase)
  return P .. 'phase_attempts:' .. #run .. ':' .. run .. ':' .. phase
end
local K_RUNS = P .. 'runs'
-- Phases by state (fields pending, leased, succeeded, failed), moved by
-- bump_run and import inside the same script as the phase itself.
local K_COUNTS = P .. 'phase_counts'
-- Pending phases that require labels, members run .. NUL .. rank member
-- (score 0: by run id, then lease order); status reads it, never the backlog.
local K_LABELLED = P .. 'pending_labelled'
local function labelled_member(run, rank) return run .. '\0' .. rank end
local K_LEASES = P .. 'leases'
local K_ATTEMPTS = P .. 'attempts'
local K_EPOCH = P .. 'epoch'
local K_WORKERS = P .. 'workers'
local K_SESSIONS = P .. 'sessions'
local K_ACTIVE = P .. 'active_session'
local K_SESSION_SEQ = P .. 'session_seq'
-- Session generation: INCR by every script that writes a session. The lease
-- and report scripts answer it, so a store that caches the latest session
-- notices a session written by another process at its next lease or report
-- without a read of its own (RedisStateStore::LatestSession).
local K_SESSION_GEN = P .. 'session_gen'
-- The generation as fence_prelude.lua read it with the leader epoch (one
-- command for both), or nil (unfenced, or written since): then it is read.
local session_gen_read
local function session_gen() return session_gen_read or redis.call('GET', K_SESSION_GEN) or '0' end
local function bump_session_gen()
  session_gen_read = nil
  redis.call('INCR', K_SESSION_GEN)
end
local RUN_FIELDS = {'pending', 'leased', 'succeeded', 'failed', 'attempts', 'successes',
                    'timeouts', 'telemetry_events', 'run_ms', 'unknown_telemetry_ms'}
local LEASE_FIELDS = {'lease_id', 'run_id', 'phase_id', 'attempt', 'epoch', 'worker_id',
                      'session_id', 'timeout_seconds', 'leased_at', 'expires_at'}
local ATTEMPT_FIELDS = {'lease_id', 'run_id', 'phase_id', 'attempt', 'epoch', 'worker_id',
                        'session_id', 'outcome', 'exit_code', 'signal', 'duration_ms', 'error_text',
                        'fingerprint', 'telemetry_events', 'telemetry_by_type', 'stdout_tail',
                        'stderr_tail', 'started_at', 'ended_at', 'telemetry_unknown'}
local SESSION_FIELDS = {'session_id', 'settings', 'state', 'started_at', 'ended_at', 'end_reason'}
local WORKER_FIELDS = {'worker_id', 'host', 'slots', 'labels', 'version', 'last_seen'}
local function istr(n) return string.format('%d', n) end
-- a + b for non-negative decimal strings, exactly: Lua numbers (doubles)
-- while both are below 10^15 (the sum stays below 2^53), digit by digit
-- beyond. The sums (telemetry, durations) are added here rather than with
-- HINCRBY so that each costs no command of its own.
local function add_dec(a, b)
  if #a < 16 and #b < 16 then return istr(tonumber(a) + tonumber(b)) end
  local out, carry, i, j = {}, 0, #a, #b
  while i > 0 or j > 0 or carry > 0 do
    local d = carry + (i > 0 and string.byte(a, i) - 48 or 0)
    d = d + (j > 0 and string.byte(b, j) - 48 or 0)
    out[#out + 1] = string.char(48 + d % 10)
    carry = (d >= 10) and 1 or 0
    i, j = i - 1, j - 1
  end
  return string.reverse(table.concat(out))
end
-- Same as absl::StrSplit(s, ',') on a non-empty string; '' has no labels.
local function split_labels(s)
  local out = {}
  if s == '' then return out end
  local pos = 1
  while true do
    local c = string.find(s, ',', pos, true)
    if not c then out[#out + 1] = string.sub(s, pos); return out end
    out[#out + 1] = string.sub(s, pos, c - 1)
    pos = c + 1
  end
end
-- RUN_FIELDS[1..RUN_COUNTS] count phases or attempts: far below 2^53, so
-- they may be Lua numbers. The rest are sums that may not be: add_dec only.
local RUN_COUNTS = 7
-- Moves one phase of `run` from state `from` to `to` and adds the deltas
-- (events, run_ms and unknown_ms are decimal strings). Appends the run's
-- statistics after the move to `out` (when given) as the first 11 columns of
-- a list_run_stats row: the run id and the 10 RUN_FIELDS; the caller adds
-- the best pending rank member. The lease and report scripts answer them so
-- the lease broker does not read the run again after each grant and report;
-- reading the run once and writing the changed fields with one HSET costs
-- two commands, counts and sums alike.
local function bump_run(run, from, to, attempts, successes, timeouts, events, run_ms, unknown_ms,
                        out)
  local k = k_run(run)
  local v = redis.call('HMGET', k, unpack(RUN_FIELDS))
  local n, changed = {}, {}
  for j = 1, RUN_COUNTS do n[RUN_FIELDS[j]] = tonumber(v[j]) or 0 end
  local function add(field, d)
    if d ~= 0 then n[field] = n[field] + d; changed[#changed + 1] = field end
  end
  if from ~= to then
    add(from, -1)
    add(to, 1)
    redis.call('HINCRBY', K_COUNTS, from, -1)
    redis.call('HINCRBY', K_COUNTS, to, 1)
  end
  add('attempts', attempts)
  add('successes', successes)
  add('timeouts', timeouts)
  local set = {}
  for _, f in ipairs(changed) do set[#set + 1] = f; set[#set + 1] = istr(n[f]) end
  -- The sums, as decimal strings (v[RUN_COUNTS + 1..]: telemetry_events,
  -- run_ms, unknown_telemetry_ms).
  local sums = {events, run_ms, unknown_ms}
  for j = RUN_COUNTS + 1, #RUN_FIELDS do
    local add_by = sums[j - RUN_COUNTS]
    v[j] = v[j] or '0'
    if add_by ~= '0' then
      v[j] = add_dec(v[j], add_by)
      set[#set + 1] = RUN_FIELDS[j]; set[#set + 1] = v[j]
    end
  end
  if #set > 0 then redis.call('HSET', k, unpack(set)) end
  if out then
    out[#out + 1] = run
    for j = 1, RUN_COUNTS do out[#out + 1] = istr(n[RUN_FIELDS[j]]) end
    for j = RUN_COUNTS + 1, #RUN_FIELDS do out[#out + 1] = v[j] end
  end
  return out
end
-- Appends an ended attempt to the global and the session's end-order lists.
local function index_attempt(id, session, outcome, run, phase)
  redis.call('RPUSH', K_ATTEMPTS, id)
  redis.call('RPUSH', k_pattempts(run, phase), id)
  redis.call('RPUSH', k_sattempts(session), id)
  if outcome ~= 'lost' and outcome ~= 'cancelled' and outcome ~= 'start_failed' then
    redis.call('INCR', k_scount(session))
  end
end
-- Applies a phase transition decided in C++ (coordinator/policy/phase_budget.h,
-- the one home of the budget rule): the script only counts and compares.
-- counter: 'attempts' or 'requeues', the field the outcome spends; succeeds:
-- '1' when the phase succeeded; fail_at: failed for good once the spent field
-- reaches it; final: the outcome recorded when the phase ends. Returns the new
-- state, attempts, requeues and final outcome (nil while pending).
local function apply_transition(attempts, requeues, counter, succeeds, fail_at, final)
  local spent
  if counter == 'attempts' then
    attempts = attempts + 1
    spent = attempts
  else
    requeues = requeues + 1
    spent = requeues
  end
  if succeeds == '1' then return 'succeeded', attempts, requeues, final end
  if spent >= tonumber(fail_at) then return 'failed', attempts, requeues, final end
  return 'pending', attempts, requeues, nil
end
