#include "coordinator/store/redis/redis_state_store.h"

#include <hiredis/hiredis.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <tuple>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "coordinator/leadership/not_leader.h"
#include "coordinator/store/store_codec.h"
#include "nlohmann/json.hpp"

namespace sluice {

struct RedisStateStore::Reply {
  enum class Type { kNil, kInteger, kString, kStatus, kArray, kError };
  Type type = Type::kNil;
  int64_t integer = 0;
  std::string str;  // kString, kStatus, kError
  std::vector<Reply> elements;

  bool nil() const { return type == Type::kNil; }
  // Strings and integers as text; nil as "".
  std::string Text() const { return type == Type::kInteger ? std::to_string(integer) : str; }
  // Integers, and strings holding an integer; anything else is 0.
  int64_t Int() const {
    if (type == Type::kInteger) return integer;
    int64_t v = 0;
    return absl::SimpleAtoi(str, &v) ? v : 0;
  }
  int32_t Int32() const { return static_cast<int32_t>(Int()); }
};

namespace {

using Reply = RedisStateStore::Reply;

constexpr int kSchemaVersion = 1;

// ---------------------------------------------------------------------------
// Lua scripts. Each runs with ARGV[1] = key prefix ("<namespace>:") and no
// KEYS (the keys derive from ids, see docs/redis.md). Rules every mutating
// script follows so that a transition never half-applies:
//  1. read and validate everything first; every error_reply comes before the
//     first write;
//  2. the shebang makes Redis refuse the whole script when out of memory
//     instead of failing at its first write.
// Integers that may exceed 2^53 (priority, phase_index, telemetry, durations)
// are never converted to Lua numbers: they travel as decimal strings and are
// added with HINCRBY.

constexpr const char* kWriteShebang = "#!lua flags=no-cluster\n";
constexpr const char* kReadShebang = "#!lua flags=no-writes,no-cluster\n";

constexpr const char* kPrelude = R"lua(
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
local K_RUNS = P .. 'runs'
local K_LEASES = P .. 'leases'
local K_ATTEMPTS = P .. 'attempts'
local K_EPOCH = P .. 'epoch'
local K_WORKERS = P .. 'workers'
local K_SESSIONS = P .. 'sessions'
local K_ACTIVE = P .. 'active_session'
local K_SESSION_SEQ = P .. 'session_seq'
local RUN_FIELDS = {'pending', 'leased', 'succeeded', 'failed', 'attempts', 'successes',
                    'timeouts', 'telemetry_events', 'run_ms'}
local LEASE_FIELDS = {'lease_id', 'run_id', 'phase_id', 'attempt', 'epoch', 'worker_id',
                      'session_id', 'timeout_seconds', 'leased_at', 'expires_at'}
local ATTEMPT_FIELDS = {'lease_id', 'run_id', 'phase_id', 'attempt', 'epoch', 'worker_id',
                        'session_id', 'outcome', 'exit_code', 'signal', 'duration_ms', 'error_text',
                        'fingerprint', 'telemetry_events', 'telemetry_by_type', 'stdout_tail',
                        'stderr_tail', 'started_at', 'ended_at'}
local SESSION_FIELDS = {'session_id', 'settings', 'state', 'started_at', 'ended_at', 'end_reason'}
local WORKER_FIELDS = {'worker_id', 'host', 'slots', 'labels', 'version', 'last_seen'}
local function istr(n) return string.format('%d', n) end
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
-- Moves one phase of `run` from state `from` to `to` and adds the deltas
-- (events and run_ms are decimal strings).
local function bump_run(run, from, to, attempts, successes, timeouts, events, run_ms)
  local k = k_run(run)
  if from ~= to then
    redis.call('HINCRBY', k, from, -1)
    redis.call('HINCRBY', k, to, 1)
  end
  if attempts ~= 0 then redis.call('HINCRBY', k, 'attempts', attempts) end
  if successes ~= 0 then redis.call('HINCRBY', k, 'successes', successes) end
  if timeouts ~= 0 then redis.call('HINCRBY', k, 'timeouts', timeouts) end
  if events ~= '0' then redis.call('HINCRBY', k, 'telemetry_events', events) end
  if run_ms ~= '0' then redis.call('HINCRBY', k, 'run_ms', run_ms) end
end
-- Appends an ended attempt to the global and the session's end-order lists.
local function index_attempt(id, session, outcome)
  redis.call('RPUSH', K_ATTEMPTS, id)
  redis.call('RPUSH', k_sattempts(session), id)
  if outcome ~= 'lost' and outcome ~= 'cancelled' then redis.call('INCR', k_scount(session)) end
end
)lua";

// Leader fencing, prepended to every mutating script except the election's
// own. The caller passes its leader epoch as ARGV[2] ('' = unfenced: a
// single coordinator on SQLite-like terms, tests, tools); a write whose epoch
// is not the current `leader_epoch` is refused before anything is touched,
// so a stale leader (paused, partitioned) can never write after a takeover.
// Then ARGV[2] is dropped from a local copy of ARGV, so the script bodies see
// the same ARGV layout as without fencing. Cost: one GET per call.
constexpr const char* kFencePrelude = R"lua(
local FENCE = ARGV[2]
if FENCE ~= '' then
  local current = redis.call('GET', P .. 'leader_epoch') or '0'
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
)lua";

// ARGV: prefix, n, then n x (run, phase, index, priority, last_error, labels,
// metadata, rank). Returns {inserted, updated, unchanged}.
constexpr const char* kImport = R"lua(
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
    updated = updated + 1
  end
end
return {inserted, updated, unchanged}
)lua";

// Returns per run: run_id, the 9 RUN_FIELDS, best pending rank member ('' if none).
constexpr const char* kListRunStats = R"lua(
local out = {}
for _, run in ipairs(redis.call('ZRANGE', K_RUNS, 0, -1)) do
  local v = redis.call('HMGET', k_run(run), unpack(RUN_FIELDS))
  out[#out + 1] = run
  for j = 1, #RUN_FIELDS do out[#out + 1] = v[j] or '0' end
  local top = redis.call('ZRANGE', k_pending(run), 0, 0)
  out[#out + 1] = top[1] or ''
end
return out
)lua";

// Returns {pending, leased, succeeded, failed} summed over runs.
constexpr const char* kCountPhases = R"lua(
local c = {0, 0, 0, 0}
for _, run in ipairs(redis.call('ZRANGE', K_RUNS, 0, -1)) do
  local v = redis.call('HMGET', k_run(run), 'pending', 'leased', 'succeeded', 'failed')
  for j = 1, 4 do c[j] = c[j] + (tonumber(v[j]) or 0) end
end
return c
)lua";

// ARGV: prefix, run, worker, session, lease_id, timeout_seconds, now,
// expires_at, n_labels, labels... Returns nil, or {phase_id, attempt, epoch}.
constexpr const char* kLease = R"lua(
local run, lease_id, now = ARGV[2], ARGV[5], ARGV[7]
local have = {}
for i = 10, 9 + tonumber(ARGV[9]) do have[ARGV[i]] = true end
local pend = k_pending(run)
local chosen, chosen_member
-- Small first read: the first phase usually fits; grow when labels filter.
local start, chunk = 0, 8
while not chosen do
  local members = redis.call('ZRANGE', pend, start, start + chunk - 1)
  if #members == 0 then break end
  for _, m in ipairs(members) do
    local phase = string.sub(m, 33)
    local labels = redis.call('HGET', k_phase(run, phase), 'labels')
    if not labels then
      return redis.error_reply('INTERNAL pending set of run ' .. run .. ' names missing phase ' .. phase)
    end
    local fits = true
    for _, l in ipairs(split_labels(labels)) do
      if not have[l] then fits = false; break end
    end
    if fits then chosen, chosen_member = phase, m; break end
  end
  start = start + chunk
  chunk = math.min(chunk * 2, 256)
end
if not chosen then return false end
local lk = k_lease(lease_id)
if redis.call('EXISTS', lk) == 1 then
  return redis.error_reply('INTERNAL lease id ' .. lease_id .. ' is already in use')
end
local pk = k_phase(run, chosen)
local ph = redis.call('HMGET', pk, 'attempts', 'requeues')
local attempt = tonumber(ph[1]) + tonumber(ph[2]) + 1
local epoch = redis.call('INCR', K_EPOCH)
redis.call('HSET', lk, 'lease_id', lease_id, 'run_id', run, 'phase_id', chosen,
           'attempt', istr(attempt), 'epoch', istr(epoch), 'worker_id', ARGV[3],
           'session_id', ARGV[4], 'timeout_seconds', ARGV[6], 'leased_at', now,
           'expires_at', ARGV[8])
redis.call('ZADD', K_LEASES, ARGV[8], lease_id)
redis.call('ZREM', pend, chosen_member)
redis.call('HSET', pk, 'state', 'leased', 'current_lease_id', lease_id, 'updated_at', now)
bump_run(run, 'pending', 'leased', 0, 0, 0, '0', '0')
return {chosen, istr(attempt), istr(epoch)}
)lua";

// ARGV: prefix, worker, now, new_expires_at, lease ids... Returns the ids
// that are no longer this worker's.
constexpr const char* kRenew = R"lua(
local worker, now, until_ms = ARGV[2], tonumber(ARGV[3]), ARGV[4]
local gone = {}
for i = 5, #ARGV do
  local id = ARGV[i]
  local lk = k_lease(id)
  local v = redis.call('HMGET', lk, 'worker_id', 'expires_at')
  if v[1] == worker and tonumber(v[2]) > now then
    redis.call('HSET', lk, 'expires_at', until_ms)
    redis.call('ZADD', K_LEASES, until_ms, id)
  else
    gone[#gone + 1] = id
  end
end
return gone
)lua";

// ARGV: prefix, lease_id, epoch, worker, outcome, exit_code, signal,
// duration_ms, error_text, fingerprint, telemetry_events, telemetry_by_type,
// stdout_tail, stderr_tail, now, max_attempts, counts_as_attempt ('1'/'0'),
// max_requeues. Returns {disposition, phase_state}.
constexpr const char* kReport = R"lua(
local id, epoch, worker, outcome, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[15]
local lk = k_lease(id)
local L = redis.call('HMGET', lk, 'run_id', 'phase_id', 'attempt', 'epoch', 'worker_id',
                     'session_id', 'leased_at')
local have_lease = L[1] ~= false
if not have_lease or L[4] ~= epoch or L[5] ~= worker then
  -- Not the current holder: a duplicate of an applied report, a late one
  -- (expired or someone else's lease), or a lease never granted.
  local A = redis.call('HMGET', k_attempt(id), 'outcome', 'worker_id', 'epoch', 'run_id',
                       'phase_id')
  local have_attempt = A[1] ~= false
  if not have_attempt and not have_lease then return {'unknown_lease', ''} end
  local disposition
  if have_attempt and A[1] ~= 'lost' and A[2] == worker and A[3] == epoch then
    disposition = 'duplicate'
  else
    disposition = 'late'
    local lt = k_late(id)
    if redis.call('EXISTS', lt) == 0 then
      redis.call('HSET', lt, 'lease_id', id, 'worker_id', worker, 'outcome', outcome,
                 'telemetry_events', ARGV[11], 'error_text', ARGV[9], 'received_at', now)
      redis.call('ZADD', K_LATES, now, id)
    end
  end
  local run, phase = L[1], L[2]
  if have_attempt then run, phase = A[4], A[5] end
  local st = redis.call('HGET', k_phase(run, phase), 'state')
  return {disposition, st or ''}
end

local run, phase, session = L[1], L[2], L[6]
local pk = k_phase(run, phase)
local ph = redis.call('HMGET', pk, 'state', 'attempts', 'requeues', 'rank')
if not ph[1] then return redis.error_reply('INTERNAL lease ' .. id .. ' has no phase') end
local ak = k_attempt(id)
if redis.call('EXISTS', ak) == 1 then
  return redis.error_reply('INTERNAL an attempt for lease ' .. id .. ' is already recorded')
end

redis.call('HSET', ak, 'lease_id', id, 'run_id', run, 'phase_id', phase, 'attempt', L[3],
           'epoch', L[4], 'worker_id', L[5], 'session_id', session, 'outcome', outcome,
           'exit_code', ARGV[6], 'signal', ARGV[7], 'duration_ms', ARGV[8],
           'error_text', ARGV[9], 'fingerprint', ARGV[10], 'telemetry_events', ARGV[11],
           'telemetry_by_type', ARGV[12], 'stdout_tail', ARGV[13], 'stderr_tail', ARGV[14],
           'started_at', L[7], 'ended_at', now)
index_attempt(id, session, outcome)
redis.call('DEL', lk)
redis.call('ZREM', K_LEASES, id)

-- Cancelled attempts were stopped by us (deadline, drain), not by the phase:
-- they use the requeue budget, not the attempt budget.
local from = ph[1]
local attempts, requeues = tonumber(ph[2]), tonumber(ph[3])
local to, final
if outcome == 'succeeded' then
  attempts = attempts + 1
  to, final = 'succeeded', 'succeeded'
elseif outcome == 'cancelled' or ARGV[17] == '0' then
  requeues = requeues + 1
  if requeues > tonumber(ARGV[18]) then to, final = 'failed', outcome else to = 'pending' end
else
  attempts = attempts + 1
  if attempts >= tonumber(ARGV[16]) then to, final = 'failed', outcome else to = 'pending' end
end
redis.call('HSET', pk, 'state', to, 'attempts', istr(attempts), 'requeues', istr(requeues),
           'current_lease_id', '', 'updated_at', now)
if final then redis.call('HSET', pk, 'final_outcome', final) end
if ARGV[11] ~= '0' then redis.call('HINCRBY', pk, 'telemetry_events', ARGV[11]) end
if to == 'pending' then redis.call('ZADD', k_pending(run), 0, ph[4]) end
bump_run(run, from, to, 1, outcome == 'succeeded' and 1 or 0, outcome == 'timed_out' and 1 or 0,
         ARGV[11], ARGV[8])
return {'accepted', to, run, phase}
)lua";

// ARGV: prefix, now, max_requeues. Returns per expired lease, in expiry
// order: the 10 LEASE_FIELDS and the phase's new state.
constexpr const char* kExpire = R"lua(
local now, max_requeues = ARGV[2], tonumber(ARGV[3])
local items = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', K_LEASES, '-inf', now)) do
  local L = redis.call('HMGET', k_lease(id), unpack(LEASE_FIELDS))
  if not L[1] then return redis.error_reply('INTERNAL lease index names missing lease ' .. id) end
  if redis.call('EXISTS', k_phase(L[2], L[3])) == 0 then
    return redis.error_reply('INTERNAL lease ' .. id .. ' has no phase')
  end
  if redis.call('EXISTS', k_attempt(id)) == 1 then
    return redis.error_reply('INTERNAL an attempt for lease ' .. id .. ' is already recorded')
  end
  items[#items + 1] = L
end
-- Expiry order; equal expiries in grant (epoch) order.
table.sort(items, function(a, b)
  local ea, eb = tonumber(a[10]), tonumber(b[10])
  if ea ~= eb then return ea < eb end
  return tonumber(a[5]) < tonumber(b[5])
end)
local out = {}
for _, L in ipairs(items) do
  local id, run, phase, session = L[1], L[2], L[3], L[7]
  redis.call('HSET', k_attempt(id), 'lease_id', id, 'run_id', run, 'phase_id', phase,
             'attempt', L[4], 'epoch', L[5], 'worker_id', L[6], 'session_id', session,
             'outcome', 'lost', 'exit_code', '-1', 'signal', '0', 'duration_ms', '0',
             'error_text', 'lease expired: no report or heartbeat from the worker within the lease TTL',
             'fingerprint', 'lost|lost|lease expired', 'telemetry_events', '0',
             'telemetry_by_type', '{}', 'stdout_tail', '', 'stderr_tail', '',
             'started_at', L[9], 'ended_at', now)
  index_attempt(id, session, 'lost')
  redis.call('DEL', k_lease(id))
  redis.call('ZREM', K_LEASES, id)
  local pk = k_phase(run, phase)
  local ph = redis.call('HMGET', pk, 'state', 'requeues', 'rank')
  local requeues = tonumber(ph[2]) + 1
  local to = 'pending'
  if requeues > max_requeues then
    to = 'failed'
    redis.call('HSET', pk, 'final_outcome', 'lost')
  end
  redis.call('HSET', pk, 'state', to, 'requeues', istr(requeues), 'current_lease_id', '',
             'updated_at', now)
  if to == 'pending' then redis.call('ZADD', k_pending(run), 0, ph[3]) end
  bump_run(run, ph[1], to, 1, 0, 0, '0', '0')
  for j = 1, #LEASE_FIELDS do out[#out + 1] = L[j] end
  out[#out + 1] = to
end
return out
)lua";

// Returns the 10 LEASE_FIELDS of every active lease.
constexpr const char* kListLeases = R"lua(
local out = {}
for _, id in ipairs(redis.call('ZRANGE', K_LEASES, 0, -1)) do
  local L = redis.call('HMGET', k_lease(id), unpack(LEASE_FIELDS))
  for j = 1, #LEASE_FIELDS do out[#out + 1] = L[j] end
end
return out
)lua";

// ARGV: prefix, then the 6 WORKER_FIELDS.
constexpr const char* kUpsertWorker = R"lua(
local wk = k_worker(ARGV[2])
for j = 1, #WORKER_FIELDS do redis.call('HSET', wk, WORKER_FIELDS[j], ARGV[j + 1]) end
redis.call('ZADD', K_WORKERS, 0, ARGV[2])
return redis.status_reply('OK')
)lua";

constexpr const char* kListWorkers = R"lua(
local out = {}
for _, id in ipairs(redis.call('ZRANGE', K_WORKERS, 0, -1)) do
  local v = redis.call('HMGET', k_worker(id), unpack(WORKER_FIELDS))
  for j = 1, #WORKER_FIELDS do out[#out + 1] = v[j] end
end
return out
)lua";

// ARGV: prefix, then the 6 SESSION_FIELDS.
constexpr const char* kCreateSession = R"lua(
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
if state == 'active' then redis.call('SET', K_ACTIVE, id) end
return redis.status_reply('OK')
)lua";

// ARGV: prefix, session_id, state, ended_at, reason.
constexpr const char* kEndSession = R"lua(
local id, state = ARGV[2], ARGV[3]
local sk = k_session(id)
if redis.call('HGET', sk, 'state') ~= 'active' then
  return redis.error_reply('FAILED_PRECONDITION session ' .. id .. ' is not active')
end
redis.call('HSET', sk, 'state', state, 'ended_at', ARGV[4], 'end_reason', ARGV[5])
if state ~= 'active' and redis.call('GET', K_ACTIVE) == id then redis.call('DEL', K_ACTIVE) end
return redis.status_reply('OK')
)lua";

// The active session, else the latest started (ties: the later created).
// Returns the 6 SESSION_FIELDS or nil.
constexpr const char* kLatestSession = R"lua(
local active = redis.call('GET', K_ACTIVE)
if active then
  local v = redis.call('HMGET', k_session(active), unpack(SESSION_FIELDS))
  if v[3] == 'active' then return v end
end
local top = redis.call('ZREVRANGE', K_SESSIONS, 0, 0, 'WITHSCORES')
if #top == 0 then return false end
local best, best_seq = nil, -1
for _, id in ipairs(redis.call('ZRANGEBYSCORE', K_SESSIONS, top[2], top[2])) do
  local seq = tonumber(redis.call('HGET', k_session(id), 'seq')) or 0
  if seq > best_seq then best, best_seq = id, seq end
end
return redis.call('HMGET', k_session(best), unpack(SESSION_FIELDS))
)lua";

// ARGV: prefix, session_id ('' = every attempt). Returns the 19
// ATTEMPT_FIELDS of each attempt in end order.
constexpr const char* kListAttempts = R"lua(
local list = K_ATTEMPTS
if ARGV[2] ~= '' then list = k_sattempts(ARGV[2]) end
local out = {}
for _, id in ipairs(redis.call('LRANGE', list, 0, -1)) do
  local v = redis.call('HMGET', k_attempt(id), unpack(ATTEMPT_FIELDS))
  for j = 1, #ATTEMPT_FIELDS do out[#out + 1] = v[j] end
end
return out
)lua";

// ARGV: prefix, kind, key, value.
constexpr const char* kPutPolicy = R"lua(
redis.call('HSET', P .. 'policy:' .. ARGV[2], ARGV[3], ARGV[4])
return redis.status_reply('OK')
)lua";

// Leadership (not fenced: these scripts are the election). The leader key
// holds {id, epoch, address} with a PX TTL; leader_epoch is durable and only
// grows, one INCR per takeover.
// ARGV: prefix, id, address, lease_ms. Takes the key when it is free or
// already this id's (a leader that stepped down rejoins with a new epoch).
// Returns {won (1/0), id, epoch, address} of the holder after the call.
constexpr const char* kCampaign = R"lua(
local lk = P .. 'leader'
local cur = redis.call('HMGET', lk, 'id', 'epoch', 'address')
if cur[1] and cur[1] ~= ARGV[2] then return {0, cur[1], cur[2] or '0', cur[3] or ''} end
local epoch = istr(redis.call('INCR', P .. 'leader_epoch'))
redis.call('DEL', lk)
redis.call('HSET', lk, 'id', ARGV[2], 'epoch', epoch, 'address', ARGV[3])
redis.call('PEXPIRE', lk, ARGV[4])
return {1, ARGV[2], epoch, ARGV[3]}
)lua";

// ARGV: prefix, id, epoch, lease_ms. Compare-and-extend: 1 when the key is
// still (id, epoch) and epoch is still current, else 0 (leadership lost).
constexpr const char* kRenewLeader = R"lua(
local lk = P .. 'leader'
local cur = redis.call('HMGET', lk, 'id', 'epoch')
if cur[1] ~= ARGV[2] or cur[2] ~= ARGV[3] or redis.call('GET', P .. 'leader_epoch') ~= ARGV[3] then
  return 0
end
redis.call('PEXPIRE', lk, ARGV[4])
return 1
)lua";

// ARGV: prefix, id, epoch. Deletes the key when it is still (id, epoch).
constexpr const char* kResign = R"lua(
local lk = P .. 'leader'
local cur = redis.call('HMGET', lk, 'id', 'epoch')
if cur[1] == ARGV[2] and cur[2] == ARGV[3] then redis.call('DEL', lk) end
return redis.status_reply('OK')
)lua";

// Returns {id, epoch, address} of the current holder, or nil.
constexpr const char* kGetLeader = R"lua(
local cur = redis.call('HMGET', P .. 'leader', 'id', 'epoch', 'address')
if not cur[1] then return false end
return cur
)lua";

enum ScriptIndex : size_t {
  kImportScript,
  kListRunStatsScript,
  kCountPhasesScript,
  kLeaseScript,
  kRenewScript,
  kReportScript,
  kExpireScript,
  kListLeasesScript,
  kUpsertWorkerScript,
  kListWorkersScript,
  kCreateSessionScript,
  kEndSessionScript,
  kLatestSessionScript,
  kListAttemptsScript,
  kPutPolicyScript,
  kCampaignScript,
  kRenewLeaderScript,
  kResignScript,
  kGetLeaderScript,
  kScriptCount,
};

struct ScriptDef {
  bool writes;
  bool fenced;  // takes the leader epoch as ARGV[2] (kFencePrelude)
  const char* body;
};

constexpr ScriptDef kScripts[kScriptCount] = {
    {true, true, kImport},          {false, false, kListRunStats}, {false, false, kCountPhases},
    {true, true, kLease},           {true, true, kRenew},          {true, true, kReport},
    {true, true, kExpire},          {false, false, kListLeases},   {true, true, kUpsertWorker},
    {false, false, kListWorkers},   {true, true, kCreateSession},  {true, true, kEndSession},
    {false, false, kLatestSession}, {false, false, kListAttempts}, {true, true, kPutPolicy},
    {true, false, kCampaign},       {true, false, kRenewLeader},   {true, false, kResign},
    {false, false, kGetLeader},
};

std::string ScriptSource(size_t index) {
  const ScriptDef& def = kScripts[index];
  return absl::StrCat(std::string(def.writes ? kWriteShebang : kReadShebang), std::string(kPrelude),
                      std::string(def.fenced ? kFencePrelude : ""), std::string(def.body));
}

// Field lists mirrored from the Lua prelude (HMGET order).
constexpr int kLeaseFieldCount = 10;
constexpr int kAttemptFieldCount = 19;
constexpr int kWorkerFieldCount = 6;
const std::vector<std::string> kPhaseFields = {
    "run_id",           "phase_id",  "phase_index", "priority", "last_error",       "labels",
    "metadata",         "state",     "attempts",    "requeues", "current_lease_id", "final_outcome",
    "telemetry_events", "updated_at"};
const std::vector<std::string> kSessionFields = {"session_id", "settings", "state",
                                                 "started_at", "ended_at", "end_reason"};

// --- Rank members of the per-run pending sets ------------------------------
// All members score 0, so Redis orders them bytewise: 16 hex digits of the
// negated priority, 16 of the phase index, then the phase id. That is exactly
// SQLite's ORDER BY priority DESC, phase_index, phase_id (BINARY collation)
// over the whole int64 range, which a double score could not be.

uint64_t Biased(int64_t v) { return static_cast<uint64_t>(v) ^ (uint64_t{1} << 63); }

std::string Hex16(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(v));
  return std::string(buf, 16);
}

std::string RankMember(const PhaseSpec& spec) {
  return absl::StrCat(Hex16(~Biased(spec.priority)), Hex16(Biased(spec.phase_index)),
                      spec.phase_id);
}

int64_t PriorityOfRank(const std::string& member) {
  if (member.size() < 16) return 0;
  uint64_t u = 0;
  for (size_t i = 0; i < 16; ++i) {
    const char c = member[i];
    const uint64_t digit =
        c >= 'a' ? static_cast<uint64_t>(c - 'a' + 10) : static_cast<uint64_t>(c - '0');
    u = (u << 4) | digit;
  }
  return static_cast<int64_t>(~u ^ (uint64_t{1} << 63));
}

// --- Encodings shared with the SQLite store ---------------------------------

std::string PhaseKeyName(const std::string& prefix, const std::string& run_id,
                         const std::string& phase_id) {
  // The run id's length makes the key unambiguous: ids may contain ':'.
  return absl::StrCat(prefix, "phase:", run_id.size(), ":", run_id, ":", phase_id);
}

// Reads `count` fields starting at elements[at] as a LeaseGrant.
LeaseGrant LeaseAt(const std::vector<Reply>& e, size_t at) {
  LeaseGrant g;
  g.lease_id = e[at].Text();
  g.run_id = e[at + 1].Text();
  g.phase_id = e[at + 2].Text();
  g.attempt = e[at + 3].Int32();
  g.epoch = e[at + 4].Int();
  g.worker_id = e[at + 5].Text();
  g.session_id = e[at + 6].Text();
  g.timeout_seconds = e[at + 7].Int32();
  g.leased_at_ms = e[at + 8].Int();
  g.expires_at_ms = e[at + 9].Int();
  return g;
}

SessionRecord SessionFrom(const std::vector<Reply>& e) {
  SessionRecord r;
  r.session_id = e[0].Text();
  r.settings = SettingsFromJson(e[1].Text());
  r.state = ParseSessionState(e[2].Text()).value_or(SessionState::kStopped);
  r.started_at_ms = e[3].Int();
  r.ended_at_ms = e[4].Int();
  r.end_reason = e[5].Text();
  return r;
}

absl::Status ExpectArray(const Reply& r, size_t multiple_of, const char* what) {
  if (r.type != Reply::Type::kArray || (multiple_of != 0 && r.elements.size() % multiple_of != 0)) {
    return absl::InternalError(absl::StrCat("redis: unexpected reply to ", what));
  }
  return absl::OkStatus();
}

// --- Connection helpers -----------------------------------------------------

Reply Convert(const redisReply* r) {
  Reply out;
  switch (r->type) {
    case REDIS_REPLY_INTEGER:
      out.type = Reply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_STRING:
      out.type = Reply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = Reply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = Reply::Type::kError;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::kArray;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(Convert(r->element[i]));
      break;
    default:
      out.type = Reply::Type::kNil;
  }
  return out;
}

// Blocks SIGPIPE in this thread while hiredis writes to a socket the server
// may have closed (hiredis 0.14 uses write(), which raises SIGPIPE), and
// swallows a SIGPIPE raised meanwhile; the write then fails with EPIPE.
class ScopedSigpipeBlock {
 public:
  ScopedSigpipeBlock() {
    sigset_t pipe_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old_);
  }
  ~ScopedSigpipeBlock() {
    if (!was_pending_) {
      sigset_t pending;
      sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        sigset_t pipe_set;
        sigemptyset(&pipe_set);
        sigaddset(&pipe_set, SIGPIPE);
        const timespec zero{0, 0};
        while (sigtimedwait(&pipe_set, nullptr, &zero) < 0 && errno == EINTR) {
        }
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  ScopedSigpipeBlock(const ScopedSigpipeBlock&) = delete;
  ScopedSigpipeBlock& operator=(const ScopedSigpipeBlock&) = delete;

 private:
  sigset_t old_;
  bool was_pending_ = false;
};

// True when the server closed an idle connection (or sent something we did
// not ask for): it must be replaced before anything is sent on it.
bool IdleConnectionBroken(int fd) {
  pollfd p{fd, POLLIN, 0};
  const int n = poll(&p, 1, 0);
  if (n == 0) return false;
  if (n < 0) return errno != EINTR;
  char c;
  const ssize_t got = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (got < 0) return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
  return true;  // EOF, or unsolicited bytes
}

// Maps an error reply. Script errors carry a status code as their first word.
absl::Status ErrorReplyToStatus(const std::string& message, const std::string& where) {
  const std::string code = message.substr(0, message.find(' '));
  const std::string rest = message.size() > code.size() ? message.substr(code.size() + 1) : "";
  if (code == "FAILED_PRECONDITION") return absl::FailedPreconditionError(rest);
  if (code == "ALREADY_EXISTS") return absl::AlreadyExistsError(rest);
  if (code == "INTERNAL") return absl::InternalError(absl::StrCat("redis store: ", rest));
  if (code == "NOT_LEADER") return NotLeaderError(rest);
  static const char* const kTransient[] = {"LOADING",     "BUSY",       "MASTERDOWN", "READONLY",
                                           "OOM",         "NOAUTH",     "WRONGPASS",  "TRYAGAIN",
                                           "CLUSTERDOWN", "NOREPLICAS", "NOPERM"};
  for (const char* t : kTransient) {
    if (code == t) return absl::UnavailableError(absl::StrCat("redis ", where, ": ", message));
  }
  return absl::InternalError(absl::StrCat("redis ", where, ": ", message));
}

bool IsValidNamespace(const std::string& ns) {
  if (ns.empty() || ns.size() > 64) return false;
  return std::all_of(ns.begin(), ns.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
}

std::string PercentDecode(const std::string& in) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size() &&
        absl::ascii_isxdigit(static_cast<unsigned char>(in[i + 1])) &&
        absl::ascii_isxdigit(static_cast<unsigned char>(in[i + 2]))) {
      auto val = [](char c) {
        return c <= '9' ? c - '0' : (absl::ascii_tolower(static_cast<unsigned char>(c)) - 'a' + 10);
      };
      out.push_back(static_cast<char>(val(in[i + 1]) * 16 + val(in[i + 2])));
      i += 2;
    } else {
      out.push_back(in[i]);
    }
  }
  return out;
}

constexpr const char* kUrlForms =
    "expected redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?namespace=NAME] or "
    "redis+unix:///PATH[?db=N&password=P&namespace=NAME]";

}  // namespace

// ---------------------------------------------------------------------------

absl::StatusOr<RedisOptions> ParseRedisUrl(const std::string& url) {
  RedisOptions o;
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(
        absl::StrCat("--store ", url, ": ", why, " (", kUrlForms, ")"));
  };
  std::string rest;
  bool unix_form = false;
  if (absl::StartsWith(url, "redis://")) {
    rest = url.substr(8);
  } else if (absl::StartsWith(url, "redis+unix://")) {
    rest = url.substr(13);
    unix_form = true;
  } else {
    return bad("not a redis URL");
  }
  std::string query;
  if (const size_t q = rest.find('?'); q != std::string::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  bool db_set = false;
  bool password_set = false;
  if (unix_form) {
    if (rest.empty() || rest[0] != '/') return bad("the socket path must be absolute");
    o.unix_socket = PercentDecode(rest);
  } else {
    if (const size_t at = rest.rfind('@'); at != std::string::npos) {
      const std::string userinfo = rest.substr(0, at);
      rest = rest.substr(at + 1);
      const size_t colon = userinfo.find(':');
      if (colon == std::string::npos) {
        // redis://PASSWORD@host is a common shorthand.
        o.password = PercentDecode(userinfo);
      } else {
        o.username = PercentDecode(userinfo.substr(0, colon));
        o.password = PercentDecode(userinfo.substr(colon + 1));
      }
      password_set = !o.password.empty();
    }
    std::string hostport = rest;
    if (const size_t slash = rest.find('/'); slash != std::string::npos) {
      hostport = rest.substr(0, slash);
      const std::string db = rest.substr(slash + 1);
      if (!db.empty()) {
        if (!absl::SimpleAtoi(db, &o.db) || o.db < 0) return bad("DB must be a number");
        db_set = true;
      }
    }
    if (hostport.empty()) return bad("missing HOST");
    std::string port;
    if (hostport[0] == '[') {
      const size_t close = hostport.find(']');
      if (close == std::string::npos) return bad("unclosed [ in IPv6 host");
      o.host = hostport.substr(1, close - 1);
      if (close + 1 < hostport.size()) {
        if (hostport[close + 1] != ':') return bad("junk after ]");
        port = hostport.substr(close + 2);
      }
    } else if (const size_t colon = hostport.rfind(':'); colon != std::string::npos) {
      o.host = hostport.substr(0, colon);
      port = hostport.substr(colon + 1);
    } else {
      o.host = hostport;
    }
    if (o.host.empty()) return bad("missing HOST");
    if (!port.empty() && (!absl::SimpleAtoi(port, &o.port) || o.port <= 0 || o.port > 65535)) {
      return bad("PORT must be 1..65535");
    }
  }
  if (!query.empty()) {
    for (absl::string_view kv : absl::StrSplit(query, '&')) {
      const std::string pair(kv);
      const size_t eq = pair.find('=');
      if (eq == std::string::npos) return bad(absl::StrCat("query parameter ", pair, " has no ="));
      const std::string key = pair.substr(0, eq);
      const std::string value = PercentDecode(pair.substr(eq + 1));
      if (key == "namespace") {
        o.key_namespace = value;
      } else if (key == "db") {
        if (db_set) return bad("DB given twice");
        if (!absl::SimpleAtoi(value, &o.db) || o.db < 0) return bad("db must be a number");
        db_set = true;
      } else if (key == "password") {
        if (password_set) return bad("password given twice");
        o.password = value;
        password_set = true;
      } else if (key == "user") {
        o.username = value;
      } else {
        return bad(absl::StrCat("unknown query parameter ", key));
      }
    }
  }
  if (!IsValidNamespace(o.key_namespace)) {
    return bad(absl::StrCat("namespace ", o.key_namespace, " must be 1..64 of [A-Za-z0-9_-]"));
  }
  return o;
}

RedisStateStore::RedisStateStore(RedisOptions options)
    : options_(std::move(options)), prefix_(absl::StrCat(options_.key_namespace, ":")) {}

RedisStateStore::~RedisStateStore() {
  absl::MutexLock lock(&mu_);
  DropLocked();
}

absl::StatusOr<std::unique_ptr<RedisStateStore>> RedisStateStore::Open(
    const RedisOptions& options) {
  if (!IsValidNamespace(options.key_namespace)) {
    return absl::InvalidArgumentError(
        absl::StrCat("redis namespace ", options.key_namespace, " must be 1..64 of [A-Za-z0-9_-]"));
  }
  if (options.db < 0) return absl::InvalidArgumentError("redis db must be >= 0");
  std::unique_ptr<RedisStateStore> store(new RedisStateStore(options));
  const std::string meta = absl::StrCat(store->prefix_, "meta");
  SLUICE_RETURN_IF_ERROR(
      store->Command({"HSETNX", meta, "schema_version", std::to_string(kSchemaVersion)}).status());
  SLUICE_ASSIGN_OR_RETURN(Reply version, store->Command({"HGET", meta, "schema_version"}));
  if (version.Int() != kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat("redis namespace ", options.key_namespace,
                                                      " holds schema version ", version.Text(),
                                                      ", this build knows ", kSchemaVersion));
  }
  return store;
}

std::string RedisStateStore::Where() const {
  return options_.unix_socket.empty() ? absl::StrCat(options_.host, ":", options_.port)
                                      : options_.unix_socket;
}

void RedisStateStore::DropLocked() {
  if (ctx_ != nullptr) redisFree(ctx_);
  ctx_ = nullptr;
}

absl::Status RedisStateStore::ConnectLocked() {
  const timeval connect_tv = absl::ToTimeval(options_.connect_timeout);
  redisContext* c = options_.unix_socket.empty()
                        ? redisConnectWithTimeout(options_.host.c_str(), options_.port, connect_tv)
                        : redisConnectUnixWithTimeout(options_.unix_socket.c_str(), connect_tv);
  if (c == nullptr) return absl::UnavailableError("redis: cannot allocate a connection");
  if (c->err != 0) {
    absl::Status s =
        absl::UnavailableError(absl::StrCat("redis ", Where(), ": cannot connect: ", c->errstr));
    redisFree(c);
    return s;
  }
  redisSetTimeout(c, absl::ToTimeval(options_.command_timeout));
  if (options_.unix_socket.empty()) redisEnableKeepAlive(c);
  ctx_ = c;

  if (!options_.password.empty()) {
    std::vector<std::string> auth = {"AUTH"};
    if (!options_.username.empty()) auth.push_back(options_.username);
    auth.push_back(options_.password);
    absl::Status s = SetupCommandLocked(auth, "AUTH failed");
    if (!s.ok()) return absl::UnavailableError(s.message());
  }
  if (options_.db != 0) {
    SLUICE_RETURN_IF_ERROR(
        SetupCommandLocked({"SELECT", std::to_string(options_.db)}, "SELECT failed"));
  }
  // Load every script now, so a restarted Redis never answers NOSCRIPT in
  // the middle of a drain. SHA1s are deterministic: the same on every server.
  std::vector<std::string> shas;
  for (size_t i = 0; i < kScriptCount; ++i) {
    absl::StatusOr<Reply> r = RawLocked({"SCRIPT", "LOAD", ScriptSource(i)});
    if (!r.ok()) return r.status();
    if (r->type != Reply::Type::kString) {
      DropLocked();
      return ErrorReplyToStatus(r->str, Where());
    }
    shas.push_back(r->str);
  }
  shas_ = std::move(shas);
  return absl::OkStatus();
}

absl::Status RedisStateStore::SetupCommandLocked(const std::vector<std::string>& argv,
                                                 const char* what) {
  SLUICE_ASSIGN_OR_RETURN(Reply r, RawLocked(argv));
  if (r.type != Reply::Type::kError) return absl::OkStatus();
  DropLocked();
  // The reply names the problem (NOAUTH, WRONGPASS, ...); the argv, which may
  // hold the password, is never part of the message.
  const absl::Status mapped = ErrorReplyToStatus(r.str, Where());
  return absl::Status(mapped.code(), absl::StrCat("redis ", Where(), ": ", what, ": ", r.str));
}

absl::Status RedisStateStore::EnsureConnectedLocked() {
  if (ctx_ != nullptr) {
    if (!IdleConnectionBroken(ctx_->fd)) return absl::OkStatus();
    DropLocked();  // closed while idle (e.g. Redis restarted): nothing was sent yet
  }
  const absl::Time now = absl::Now();
  if (now < next_connect_at_) {
    return absl::UnavailableError(absl::StrCat(last_error_, " (next reconnect attempt in ",
                                               absl::FormatDuration(next_connect_at_ - now), ")"));
  }
  absl::Status s = ConnectLocked();
  if (!s.ok()) {
    backoff_ = backoff_ == absl::ZeroDuration()
                   ? options_.reconnect_backoff_initial
                   : std::min(backoff_ * 2, options_.reconnect_backoff_max);
    next_connect_at_ = absl::Now() + backoff_;
    last_error_ = std::string(s.message());
    return s;
  }
  backoff_ = absl::ZeroDuration();
  next_connect_at_ = absl::InfinitePast();
  return absl::OkStatus();
}

absl::StatusOr<Reply> RedisStateStore::RawLocked(const std::vector<std::string>& argv) {
  std::vector<const char*> args;
  std::vector<size_t> lens;
  args.reserve(argv.size());
  lens.reserve(argv.size());
  for (const std::string& a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  redisReply* raw = nullptr;
  {
    ScopedSigpipeBlock no_sigpipe;
    raw = static_cast<redisReply*>(
        redisCommandArgv(ctx_, static_cast<int>(argv.size()), args.data(), lens.data()));
  }
  if (raw == nullptr) {
    std::string err = ctx_->errstr;
    if (err.empty()) err = "connection lost";
    DropLocked();
    // The next call reconnects at once; only failed connects back off.
    next_connect_at_ = absl::InfinitePast();
    return absl::UnavailableError(
        absl::StrCat("redis ", Where(), ": ", err, " (during ", argv.empty() ? "" : argv[0],
                     "; a command already sent may or may not have been applied)"));
  }
  Reply reply = Convert(raw);
  freeReplyObject(raw);
  return reply;
}

absl::StatusOr<Reply> RedisStateStore::SendLocked(const std::vector<std::string>& argv,
                                                  absl::Duration timeout) {
  SLUICE_RETURN_IF_ERROR(EnsureConnectedLocked());
  const bool custom = timeout != options_.command_timeout;
  if (custom) redisSetTimeout(ctx_, absl::ToTimeval(timeout));
  absl::StatusOr<Reply> r = RawLocked(argv);
  if (custom && ctx_ != nullptr) redisSetTimeout(ctx_, absl::ToTimeval(options_.command_timeout));
  return r;
}

absl::StatusOr<Reply> RedisStateStore::Command(const std::vector<std::string>& argv) {
  absl::MutexLock lock(&mu_);
  SLUICE_ASSIGN_OR_RETURN(Reply r, SendLocked(argv, options_.command_timeout));
  if (r.type == Reply::Type::kError) return ErrorReplyToStatus(r.str, Where());
  return r;
}

absl::StatusOr<Reply> RedisStateStore::RunScript(size_t index, const std::vector<std::string>& args,
                                                 absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  for (int round = 0; round < 2; ++round) {
    SLUICE_RETURN_IF_ERROR(EnsureConnectedLocked());
    std::vector<std::string> argv;
    argv.reserve(args.size() + 4);
    argv.push_back("EVALSHA");
    argv.push_back(shas_[index]);
    argv.push_back("0");
    argv.push_back(prefix_);
    if (kScripts[index].fenced) {
      const int64_t fence = fencing_epoch_.load();
      argv.push_back(fence == kUnfenced ? std::string() : std::to_string(fence));
    }
    argv.insert(argv.end(), args.begin(), args.end());
    SLUICE_ASSIGN_OR_RETURN(Reply r, SendLocked(argv, timeout));
    if (r.type != Reply::Type::kError) return r;
    if (!absl::StartsWith(r.str, "NOSCRIPT")) return ErrorReplyToStatus(r.str, Where());
    // Someone ran SCRIPT FLUSH: nothing ran; load it again and retry once.
    SLUICE_ASSIGN_OR_RETURN(Reply loaded,
                            SendLocked({"SCRIPT", "LOAD", ScriptSource(index)}, timeout));
    if (loaded.type == Reply::Type::kError) return ErrorReplyToStatus(loaded.str, Where());
    shas_[index] = loaded.Text();
  }
  return absl::UnavailableError(absl::StrCat("redis ", Where(), ": script keeps disappearing"));
}

// ---------------------------------------------------------------------------

absl::StatusOr<ImportResult> RedisStateStore::ImportPhases(const std::vector<PhaseSpec>& phases) {
  std::vector<std::string> args;
  args.reserve(1 + phases.size() * 8);
  args.push_back(std::to_string(phases.size()));
  for (const PhaseSpec& p : phases) {
    args.push_back(p.run_id);
    args.push_back(p.phase_id);
    args.push_back(std::to_string(p.phase_index));
    args.push_back(std::to_string(p.priority));
    args.push_back(p.last_error);
    args.push_back(JoinLabels(p.labels));
    args.push_back(p.metadata_json);
    args.push_back(RankMember(p));
  }
  SLUICE_ASSIGN_OR_RETURN(
      Reply r,
      RunScript(kImportScript, args, std::max(options_.import_timeout, options_.command_timeout)));
  SLUICE_RETURN_IF_ERROR(ExpectArray(r, 3, "import"));
  if (r.elements.size() != 3) return absl::InternalError("redis: unexpected reply to import");
  return ImportResult{r.elements[0].Int(), r.elements[1].Int(), r.elements[2].Int()};
}

absl::StatusOr<std::optional<PhaseRecord>> RedisStateStore::GetPhase(const PhaseKey& key) {
  std::vector<std::string> argv = {"HMGET", PhaseKeyName(prefix_, key.run_id, key.phase_id)};
  argv.insert(argv.end(), kPhaseFields.begin(), kPhaseFields.end());
  SLUICE_ASSIGN_OR_RETURN(Reply r, Command(argv));
  SLUICE_RETURN_IF_ERROR(ExpectArray(r, kPhaseFields.size(), "HMGET phase"));
  const std::vector<Reply>& e = r.elements;
  if (e[0].nil()) return std::optional<PhaseRecord>();
  PhaseRecord p;
  p.spec.run_id = e[0].Text();
  p.spec.phase_id = e[1].Text();
  p.spec.phase_index = e[2].Int();
  p.spec.priority = e[3].Int();
  p.spec.last_error = e[4].Text();
  p.spec.labels = SplitLabels(e[5].Text());
  p.spec.metadata_json = e[6].Text();
  p.state = ParsePhaseState(e[7].Text()).value_or(PhaseState::kPending);
  p.attempts = e[8].Int32();
  p.requeues = e[9].Int32();
  p.current_lease_id = e[10].Text();
  if (!e[11].Text().empty()) p.final_outcome = ParseOutcome(e[11].Text());
  p.telemetry_events = e[12].Int();
  p.updated_at_ms = e[13].Int();
  return std::optional<PhaseRecord>(std::move(p));
}

absl::StatusOr<std::vector<RunStats>> RedisStateStore::ListRunStats() {
  SLUICE_ASSIGN_OR_RETURN(Reply r, RunScript(kListRunStatsScript, {}, options_.command_timeout));
  constexpr size_t kStride = 11;
  SLUICE_RETURN_IF_ERROR(ExpectArray(r, kStride, "run stats"));
  std::vector<RunStats> out;
  for (size_t i = 0; i < r.elements.size(); i += kStride) {
    const std::vector<Reply>& e = r.elements;
    RunStats s;
    s.run_id = e[i].Text();
    s.pending = e[i + 1].Int();
    s.leased = e[i + 2].Int();
    s.succeeded = e[i + 3].Int();
    s.failed = e[i + 4].Int();
    s.attempts = e[i + 5].Int();
    s.successes = e[i + 6].Int();
    s.timeouts = e[i + 7].Int();
    s.telemetry_events = e[i + 8].Int();
    s.run_ms = e[i + 9].Int();
    s.best_pending_priority = PriorityOfRank(e[i + 10].Text());
    out.push_back(std::move(s));
  }
  return out;
}

absl::StatusOr<PhaseCounts> RedisStateStore::CountPhases() {
  SLUICE_ASSIGN_OR_RETURN(Reply r, RunScript(kCountPhasesScript, {}, options_.command_timeout));
  SLUICE_RETURN_IF_ERROR(ExpectArray(r, 4, "count phases"));
  if (r.elements.size() != 4) return absl::InternalError("redis: unexpected reply to count");
  return PhaseCounts{r.elements[0].Int(), r.elements[1].Int(), r.elements[2].Int(),
                     r.elements[3].Int()};
}

absl::StatusOr<std::optional<LeaseGrant>> RedisStateStore::LeaseNextInRun(
    const LeaseParams& params) {
  std::vector<std::string> args = {params.run_id,
                                   params.worker_id,
                                   params.session_id,
                                   params.lease_id,
                                   std::to_string(params.timeout_seconds),
                                   std::to_string(params.now_ms),
                                   std::to_string(params.now_ms + params.ttl_ms),
                                   std::to_string(params.worker_labels.size())};
  args.insert(args.end(), params.worker_labels.begin(), params.worker_labels.end());
  SLUICE_ASSIGN_OR_RETURN(Reply r, RunScript(kLeaseScript, args, options_.command_timeout));
  if (r.nil()) return std::optional<LeaseGrant>();
  SLUICE_RETURN_IF_ERROR(ExpectArray(r, 3, "lease"));
  if (r.elements.size() != 3) return absl::InternalError("redis: unexpected reply to lease");
  LeaseGrant g;
  g.lease_id = params.lease_id;
  g.run_id = params.run_id;
  g.phase_id = r.elements[0].Text();
  g.attempt = r.elements[1].Int32();
  g.epoch = r.elements[2].Int();
  g.worker_id = params.worker_id;
  g.session_id = params.session_id;
  g.timeout_seconds = params.timeout_seconds;
  g.leased_at_ms = params.now_ms;
  g.expires_at_ms = params.now_ms + params.ttl_ms;
  return std::optional<LeaseGrant>(std::move(g));
}

absl::StatusOr<std::vector<std::string>> RedisStateStore::RenewLeases(
    const std::string& worker_id, const std::vector<std::string>& lease_ids, int64_t now_ms,
    int64_t ttl_ms) {
  std::vector<std::string> args = {worker_id, std::to_string(now_ms),
                                   std::to_string(now_ms + ttl_ms)};
  args.insert(args.end(), lease_ids.begin(), lease_ids.end());
  SLUICE_ASSIGN_OR_RETURN(Reply r, RunScript(kRenewScript, args, options_.command_timeout));
  SLUICE_RETURN_IF_ERROR(ExpectArray(r, 0, "renew"));
  std::vector<std::string> gone;
  for (const Reply& e : r.elements) gone.push_back(e.Text());
  return gone;
}

absl::StatusOr<ReportResult> RedisStateStore::RecordReport(const ReportParams& params) {
  const AttemptReport& rep = params.report;
  const std::vector<std::string> args = {rep.lease_id,
                                         std::to_string(rep.epoch),
                                         rep.worker_id,
                                         std::string(OutcomeName(rep.outcome)),
                                         std::to_string(rep.exit_code),
                                         std::to_string(rep.signal),
                                         std::to_string(rep.duration_ms),
                                         rep.error_text,
                                         params.fingerprint,
                                         std::to_string(rep.telemetry_events),
                                         TypesToJson(rep.telemetry_by_type),
                                         rep.stdout_tail,
                                         rep.stderr_tail,
                                         std::to_string(params.now_ms),
                                         std::to_string(params.max_attempts_per_phase),
                                         params.counts_as_attempt ? "1" : "0",
                                         std::to_string(params.max_requeues_per_phase)};
  SLUICE_ASSIGN_OR_RETURN(Reply r, RunScript(kReportScript, args, options_.command_timeout));
  SLUICE_RETURN_IF_ERROR(ExpectArray(r, 2, "report"));
  if (r.elements.size() != 2 && r.elements.size() != 4) {
    return absl::InternalError("redis: unexpected reply to report");
  }
  ReportResult result;
  if (r.elements.size() == 4) {
    result.run_id = r.elements[2].Text();
    result.phase_id = r.elements[3].Text();
  }
  const std::string disposition = r.elements[0].Text();
  if (disposition == "accepted") {
    result.disposition = ReportDisposition::kAccepted;
  } else if (disposition == "duplicate") {
    result.disposition = ReportDisposition::kDuplicate;
  } else if (disposition == "late") {
    result.disposition = ReportDisposition::kLate;
  } else {
    result.disposition = ReportDisposition::kUnknownLease;
  }
  result.phase_state = ParsePhaseState(r.elements[1].Text()).value_or(PhaseState::kPending);
  return result;
}

absl::StatusOr<std::vector<ExpiredLease>> RedisStateStore::ExpireLeases(
    int64_t now_ms, int32_t max_requeues_per_phase) {
  SLUICE_ASSIGN_OR_RETURN(
      Reply r,
      RunScript(kExpireScript, {std::to_string(now_ms), std::to_string(max_requeues_per_phase)},
                options_.command_timeout));
  constexpr size_t kStride = kLeaseFieldCount + 1;
  SLUICE_RETURN_IF_ERROR(ExpectArray(r, kStride, "expire"));
  std::vector<ExpiredLease> out;
  for (size_t i = 0; i < r.elements.size(); i += kStride) {
    out.push_back(ExpiredLease{
        LeaseAt(r.elements, i),
        ParsePhaseState(r.elements[i + kLeaseFieldCount].Text()).value_or(PhaseState::kPending)});
  }
  return out;
}

absl::StatusOr<std::vector<LeaseGrant>> RedisStateStore::ListActiveLeases() {
  SLUICE_ASSIGN_OR_RETURN(Reply r, RunScript(kListLeasesScript, {}, options_.command_timeout));
  SLUICE_RETURN_IF_ERROR(ExpectArray(r, kLeaseFieldCount, "list leases"));
  std::vector<LeaseGrant> out;
  for (size_t i = 0; i < r.elements.size(); i += kLeaseFieldCount) {
    out.push_back(LeaseAt(r.elements, i));
  }
  // Grant order (the SQLite store lists by leased_at, then insertion).
  std::stable_sort(out.begin(), out.end(), [](const LeaseGrant& a, const LeaseGrant& b) {
    return std::tie(a.leased_at_ms, a.epoch) < std::tie(b.leased_at_ms, b.epoch);
  });
  return out;
}

absl::Status RedisStateStore::UpsertWorker(const WorkerInfo& w) {
  return RunScript(kUpsertWorkerScript,
                   {w.worker_id, w.host, std::to_string(w.slots), JoinLabels(w.labels), w.version,
                    std::to_string(w.last_seen_ms)},
                   options_.command_timeout)
      .status();
}

absl::StatusOr<std::vector<WorkerInfo>> RedisStateStore::ListWorkers() {
  SLUICE_ASSIGN_OR_RETURN(Reply r, RunScript(kListWorkersScript, {}, options_.command_timeout));
  SLUICE_RETURN_IF_ERROR(ExpectArray(r, kWorkerFieldCount, "list workers"));
  std::vector<WorkerInfo> out;
  for (size_t i = 0; i < r.elements.size(); i += kWorkerFieldCount) {
    const std::vector<Reply>& e = r.elements;
    WorkerInfo w;
    w.worker_id = e[i].Text();
    w.host = e[i + 1].Text();
    w.slots = e[i + 2].Int32();
    w.labels = SplitLabels(e[i + 3].Text());
    w.version = e[i + 4].Text();
    w.last_seen_ms = e[i + 5].Int();
    out.push_back(std::move(w));
  }
  return out;
}

absl::Status RedisStateStore::CreateSession(const SessionRecord& session) {
  return RunScript(
             kCreateSessionScript,
             {session.session_id, SettingsToJson(session.settings),
              std::string(SessionStateName(session.state)), std::to_string(session.started_at_ms),
              std::to_string(session.ended_at_ms), session.end_reason},
             options_.command_timeout)
      .status();
}

absl::Status RedisStateStore::EndSession(const std::string& session_id, SessionState state,
                                         int64_t ended_at_ms, const std::string& reason) {
  return RunScript(kEndSessionScript,
                   {session_id, std::string(SessionStateName(state)), std::to_string(ended_at_ms),
                    reason},
                   options_.command_timeout)
      .status();
}

absl::StatusOr<std::optional<SessionRecord>> RedisStateStore::GetSession(
    const std::string& session_id) {
  std::vector<std::string> argv = {"HMGET", absl::StrCat(prefix_, "session:", session_id)};
  argv.insert(argv.end(), kSessionFields.begin(), kSessionFields.end());
  SLUICE_ASSIGN_OR_RETURN(Reply r, Command(argv));
  SLUICE_RETURN_IF_ERROR(ExpectArray(r, kSessionFields.size(), "HMGET session"));
  if (r.elements[0].nil()) return std::optional<SessionRecord>();
  return std::optional<SessionRecord>(SessionFrom(r.elements));
}

absl::StatusOr<std::optional<SessionRecord>> RedisStateStore::LatestSession() {
  SLUICE_ASSIGN_OR_RETURN(Reply r, RunScript(kLatestSessionScript, {}, options_.command_timeout));
  if (r.nil()) return std::optional<SessionRecord>();
  SLUICE_RETURN_IF_ERROR(ExpectArray(r, kSessionFields.size(), "latest session"));
  if (r.elements.size() != kSessionFields.size() || r.elements[0].nil()) {
    return std::optional<SessionRecord>();
  }
  return std::optional<SessionRecord>(SessionFrom(r.elements));
}

absl::StatusOr<std::vector<AttemptRecord>> RedisStateStore::ListAttempts(
    const std::string& session_id) {
  SLUICE_ASSIGN_OR_RETURN(Reply r,
                          RunScript(kListAttemptsScript, {session_id}, options_.command_timeout));
  SLUICE_RETURN_IF_ERROR(ExpectArray(r, kAttemptFieldCount, "list attempts"));
  std::vector<AttemptRecord> out;
  for (size_t i = 0; i < r.elements.size(); i += kAttemptFieldCount) {
    const std::vector<Reply>& e = r.elements;
    AttemptRecord a;
    a.lease_id = e[i].Text();
    a.run_id = e[i + 1].Text();
    a.phase_id = e[i + 2].Text();
    a.attempt = e[i + 3].Int32();
    a.epoch = e[i + 4].Int();
    a.worker_id = e[i + 5].Text();
    a.session_id = e[i + 6].Text();
    a.outcome = ParseOutcome(e[i + 7].Text()).value_or(Outcome::kFailed);
    a.exit_code = e[i + 8].Int32();
    a.signal = e[i + 9].Int32();
    a.duration_ms = e[i + 10].Int();
    a.error_text = e[i + 11].Text();
    a.fingerprint = e[i + 12].Text();
    a.telemetry_events = e[i + 13].Int();
    a.telemetry_by_type = TypesFromJson(e[i + 14].Text());
    a.stdout_tail = e[i + 15].Text();
    a.stderr_tail = e[i + 16].Text();
    a.started_at_ms = e[i + 17].Int();
    a.ended_at_ms = e[i + 18].Int();
    out.push_back(std::move(a));
  }
  return out;
}

absl::StatusOr<int64_t> RedisStateStore::CountSessionAttempts(const std::string& session_id) {
  SLUICE_ASSIGN_OR_RETURN(Reply r,
                          Command({"GET", absl::StrCat(prefix_, "session_count:", session_id)}));
  return r.Int();
}

absl::StatusOr<std::vector<LateReportRecord>> RedisStateStore::ListLateReports() {
  // The index orders by received_at, then by lease id (ZRANGE on equal scores).
  SLUICE_ASSIGN_OR_RETURN(Reply ids,
                          Command({"ZRANGE", absl::StrCat(prefix_, "late_reports"), "0", "-1"}));
  SLUICE_RETURN_IF_ERROR(ExpectArray(ids, 0, "ZRANGE late_reports"));
  std::vector<LateReportRecord> out;
  for (const Reply& id : ids.elements) {
    SLUICE_ASSIGN_OR_RETURN(
        Reply h, Command({"HMGET", absl::StrCat(prefix_, "late:", id.Text()), "worker_id",
                          "outcome", "telemetry_events", "error_text", "received_at"}));
    SLUICE_RETURN_IF_ERROR(ExpectArray(h, 5, "HMGET late"));
    LateReportRecord r;
    r.lease_id = id.Text();
    r.worker_id = h.elements[0].Text();
    const std::optional<Outcome> outcome = ParseOutcome(h.elements[1].Text());
    if (!outcome) {
      return absl::InternalError(absl::StrCat("redis: late report ", r.lease_id, " has outcome '",
                                              h.elements[1].Text(), "'"));
    }
    r.outcome = *outcome;
    r.telemetry_events = h.elements[2].Int();
    r.error_text = h.elements[3].Text();
    r.received_at_ms = h.elements[4].Int();
    out.push_back(std::move(r));
  }
  return out;
}

absl::StatusOr<int64_t> RedisStateStore::CountLateReports() {
  SLUICE_ASSIGN_OR_RETURN(Reply r, Command({"ZCARD", absl::StrCat(prefix_, "late_reports")}));
  return r.Int();
}

absl::StatusOr<std::vector<PhaseRecord>> RedisStateStore::ListPendingPhases(
    const std::string& run_id, int64_t limit) {
  std::vector<PhaseRecord> out;
  if (limit <= 0) return out;
  // Members are 32 hex digits of rank followed by the phase id (see docs/redis.md).
  SLUICE_ASSIGN_OR_RETURN(Reply r, Command({"ZRANGE", absl::StrCat(prefix_, "pending:", run_id),
                                            "0", std::to_string(limit - 1)}));
  SLUICE_RETURN_IF_ERROR(ExpectArray(r, 0, "ZRANGE pending"));
  for (const Reply& member : r.elements) {
    const std::string m = member.Text();
    if (m.size() <= 32) return absl::InternalError("redis: malformed pending member " + m);
    SLUICE_ASSIGN_OR_RETURN(std::optional<PhaseRecord> phase,
                            GetPhase(PhaseKey{run_id, m.substr(32)}));
    if (phase) out.push_back(std::move(*phase));
  }
  return out;
}

absl::Status RedisStateStore::PutPolicyRecord(const std::string& kind, const std::string& key,
                                              const std::string& value) {
  return RunScript(kPutPolicyScript, {kind, key, value}, options_.command_timeout).status();
}

absl::StatusOr<std::map<std::string, std::string>> RedisStateStore::ListPolicyRecords(
    const std::string& kind) {
  SLUICE_ASSIGN_OR_RETURN(Reply r, Command({"HGETALL", absl::StrCat(prefix_, "policy:", kind)}));
  SLUICE_RETURN_IF_ERROR(ExpectArray(r, 2, "HGETALL policy"));
  std::map<std::string, std::string> out;
  for (size_t i = 0; i + 1 < r.elements.size(); i += 2) {
    out[r.elements[i].Text()] = r.elements[i + 1].Text();
  }
  return out;
}

// --- Leadership ------------------------------------------------------------

void RedisStateStore::SetFencingEpoch(int64_t epoch) { fencing_epoch_.store(epoch); }

absl::StatusOr<CampaignOutcome> RedisStateStore::Campaign(const std::string& coordinator_id,
                                                          const std::string& address,
                                                          int64_t lease_ms) {
  SLUICE_ASSIGN_OR_RETURN(
      Reply r, RunScript(kCampaignScript, {coordinator_id, address, std::to_string(lease_ms)},
                         options_.command_timeout));
  if (r.type != Reply::Type::kArray || r.elements.size() != 4) {
    return absl::InternalError("redis: unexpected reply to campaign");
  }
  CampaignOutcome out;
  out.won = r.elements[0].Int() == 1;
  out.leader = LeaderRecord{r.elements[1].Text(), r.elements[2].Int(), r.elements[3].Text()};
  return out;
}

absl::StatusOr<bool> RedisStateStore::RenewLeadership(const std::string& coordinator_id,
                                                      int64_t epoch, int64_t lease_ms) {
  SLUICE_ASSIGN_OR_RETURN(
      Reply r, RunScript(kRenewLeaderScript,
                         {coordinator_id, std::to_string(epoch), std::to_string(lease_ms)},
                         options_.command_timeout));
  return r.Int() == 1;
}

absl::Status RedisStateStore::Resign(const std::string& coordinator_id, int64_t epoch) {
  return RunScript(kResignScript, {coordinator_id, std::to_string(epoch)}, options_.command_timeout)
      .status();
}

absl::StatusOr<std::optional<LeaderRecord>> RedisStateStore::CurrentLeader() {
  SLUICE_ASSIGN_OR_RETURN(Reply r, RunScript(kGetLeaderScript, {}, options_.command_timeout));
  if (r.nil()) return std::optional<LeaderRecord>();
  if (r.type != Reply::Type::kArray || r.elements.size() != 3) {
    return absl::InternalError("redis: unexpected reply to get leader");
  }
  return std::optional<LeaderRecord>(
      LeaderRecord{r.elements[0].Text(), r.elements[1].Int(), r.elements[2].Text()});
}

}  // namespace sluice
