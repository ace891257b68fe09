// The coordinator's durable state, behind one interface so the embedded
// SQLite store and the Redis store are interchangeable and pass one contract
// suite (tests/contract/state_store_contract_test.cc).
//
// Contract for every implementation:
// - Each mutating call is one atomic transition: it applies whole or not at
//   all (on error nothing changed), even if the process dies mid-call.
// - Lease and report never scan the backlog: they touch a bounded number of
//   rows through indexes.
// - Thread-safe: calls may come from many RPC threads at once.
// - Errors: Unavailable when the backing store cannot be reached, Internal for
//   corruption; argument errors are the caller's job (the Coordinator
//   validates before calling).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/model.h"
#include "coordinator/policy/phase_budget.h"

namespace sluice {

struct ImportResult {
  int64_t inserted = 0;
  int64_t updated = 0;  // spec fields changed; history (attempts, state) kept
  int64_t unchanged = 0;
};

struct LeaseParams {
  std::string run_id;  // lease the next pending phase of this run
  std::string worker_id;
  std::string session_id;
  std::string lease_id;  // chosen by the caller (unique)
  int32_t timeout_seconds = 0;
  int64_t now_ms = 0;
  int64_t ttl_ms = 0;
  std::vector<std::string> worker_labels;  // phases requiring other labels are passed over
  // Retries behind untried work (issue #13): among the pending phases of the
  // best priority that fit, one with no own outcome yet (attempts == 0) goes
  // before one that already failed or timed out, whatever their phase_index.
  // A phase whose backlog row says it timed out (LastErrorIsPhaseTimeout)
  // counts as a retry here: it is one, of a phase that hung before.
  bool retries_last = false;
  // With retries_last: untried phases only; nullopt when only retries (or
  // nothing) fit. The broker asks so before it lets a run's retry tier go.
  bool untried_only = false;
};

struct ReportParams {
  AttemptReport report;
  std::string fingerprint;
  int64_t now_ms = 0;
  // What the outcome does to the phase, decided by the budget rule
  // (coordinator/policy/phase_budget.h) before the call; the store applies it
  // to the counters it reads inside its atomic write and decides nothing.
  PhaseTransition transition;
};

// A new random cluster id: "cl-" and 16 hex digits (64 bits from the OS).
std::string NewClusterId();
// A page of per-run aggregates (the web view's Runs page), filtered, sorted
// and cut inside the store. Reads the run aggregates (one row per run),
// never the phases; `sum` adds up every matching run, not just the page.
struct RunStatsQuery {
  std::string run_id_prefix;  // only runs whose id starts with this
  std::string contains;       // only runs whose id contains this
  // "" (any), "active" (pending or leased phases), "done" (nothing pending
  // or leased), "failed" (some phase failed for good).
  std::string state;
  // run_id, attempts, successes, events, yield (events per minute of run
  // time, 0 without run time), pending, failed, run_ms. Ties: by run id.
  std::string sort = "run_id";
  bool descending = false;
  int64_t offset = 0;
  int64_t limit = 50;
};

struct RunStatsPage {
  std::vector<RunStats> rows;  // best_pending_priority is left 0
  int64_t total = 0;           // matching runs
  RunStats sum;                // every matching run added up (run_id empty)
};

// One phase's attempts, newest first, with their stdout/stderr tails.
struct AttemptPage {
  std::vector<AttemptRecord> rows;
  int64_t total = 0;  // the phase's attempts in the store
};

// Attempts read on from a cursor (StateStore::ListAttemptsFrom).
struct AttemptBatch {
  std::vector<AttemptRecord> rows;  // fewer than the limit: none more for now
  int64_t next_cursor = 0;          // where to read on; the cursor given when rows is empty
};

// Shared by the stores' ListAttemptsFrom: InvalidArgument for a negative
// cursor or a limit below 1.
absl::Status CheckAttemptsFromQuery(int64_t cursor, int64_t limit);

// Shared by the stores' ListRunStatsPage: InvalidArgument for an unknown
// sort key or state, or a negative offset or limit.
absl::Status CheckRunStatsQuery(const RunStatsQuery& query);
// The value `sort` orders by (not for "run_id").
double RunStatsSortKey(const RunStats& run, const std::string& sort);
// Adds every counter of `s` to `into` (run_id and priority untouched).
void AddRunStats(RunStats& into, const RunStats& s);

// An import in progress (StateStore::BeginImport). The phases given to Add
// become visible together at Commit, or never (Redis: per slice of the commit only, see
// RedisStateStore::BeginImport): an import destroyed without a successful Commit has written
// nothing, and so has one whose Add or Commit failed. Not thread-safe. While it is open the store
// may make its other callers wait (SQLite does: one transaction), so an import is opened only
// once its first phases are at hand and committed as soon as the last are.
class PhaseImport {
 public:
  virtual ~PhaseImport() = default;
  // Phases checked by the caller, as for ImportPhases.
  virtual absl::Status Add(const std::vector<PhaseSpec>& phases) = 0;
  // What ImportPhases would have answered for all the added phases at once.
  virtual absl::StatusOr<ImportResult> Commit() = 0;
};

class StateStore {
 public:
  virtual ~StateStore() = default;

  // Inserts new phases and updates the spec of known ones, keeping their
  // state and history. All or nothing (Redis: per slice, see PhaseImport).
  virtual absl::StatusOr<ImportResult> ImportPhases(const std::vector<PhaseSpec>& phases) = 0;

  // ImportPhases in chunks (see PhaseImport), so a caller streaming a big
  // backlog never holds all of it. The default keeps the added phases and
  // calls ImportPhases at Commit: correct, not lean.
  virtual absl::StatusOr<std::unique_ptr<PhaseImport>> BeginImport();

  virtual absl::StatusOr<std::optional<PhaseRecord>> GetPhase(const PhaseKey& key) = 0;

  // Per-run aggregates for runs that have anything pending, leased or done.
  // Cost grows with the number of runs, not phases.
  virtual absl::StatusOr<std::vector<RunStats>> ListRunStats() = 0;

  // Phases by state. Reads counters the store keeps inside its atomic writes:
  // the cost does not grow with phases or runs.
  virtual absl::StatusOr<PhaseCounts> CountPhases() = 0;

  // One run's aggregates, as ListRunStats gives them; nullopt when the store
  // has no such run. Touches that run only (the lease broker's cache of run
  // statistics refreshes the runs a grant, report or expiry changed). The
  // default filters ListRunStats: correct, not cheap.
  virtual absl::StatusOr<std::optional<RunStats>> GetRunStats(const std::string& run_id);

  // Leases the best pending phase of params.run_id (highest priority, then
  // lowest phase_index, then phase_id) whose required labels the worker has;
  // with params.retries_last, untried phases of that priority first.
  // nullopt when that run has none.
  virtual absl::StatusOr<std::optional<LeaseGrant>> LeaseNextInRun(const LeaseParams& params) = 0;

  // Extends the given leases held by worker_id to now+ttl. Returns the ids
  // among them that are no longer this worker's (expired, reported, unknown).
  virtual absl::StatusOr<std::vector<std::string>> RenewLeases(
      const std::string& worker_id, const std::vector<std::string>& lease_ids, int64_t now_ms,
      int64_t ttl_ms) = 0;

  // Records the outcome of an attempt, fenced by (lease_id, epoch): accepted
  // only while that lease is the phase's current one. Idempotent by lease id
  // (duplicate, late and unknown leases are the store's to tell apart); an
  // accepted report applies params.transition.
  virtual absl::StatusOr<ReportResult> RecordReport(const ReportParams& params) = 0;

  // RecordReport for each of `batch`, in order, with one answer each: what
  // RecordReport would answer had they arrived one after another. A report
  // that fails changes nothing and does not fail the others. A store may
  // commit the batch at once (SQLite: one transaction); an answer is given
  // only once what it says is durable. The default records them one by one.
  virtual std::vector<absl::StatusOr<ReportResult>> RecordReports(
      const std::vector<ReportParams>& batch);

  // Expires every lease with expires_at <= now: the attempt is recorded as
  // kLost and `lost` (LostLeaseTransition: pending again, or failed when out
  // of requeues) is applied to its phase.
  virtual absl::StatusOr<std::vector<ExpiredLease>> ExpireLeases(int64_t now_ms,
                                                                 const PhaseTransition& lost) = 0;

  virtual absl::StatusOr<std::vector<LeaseGrant>> ListActiveLeases() = 0;
  // Whether `lease_id` is an active lease (granted, not yet reported,
  // expired or revoked). Asked on the lease path, so stores answer it by
  // the id alone; the default lists the active leases: correct, not lean.
  virtual absl::StatusOr<bool> IsLeaseActive(const std::string& lease_id);

  virtual absl::Status UpsertWorker(const WorkerInfo& worker) = 0;
  virtual absl::StatusOr<std::vector<WorkerInfo>> ListWorkers() = 0;
  // Forgets a registered worker (gone for longer than the coordinator keeps
  // workers, see WorkerContacts). Unknown ids are not an error. Its attempts
  // and leases are not touched. The default is Unimplemented.
  virtual absl::Status RemoveWorker(const std::string& worker_id);

  // Sessions. At most one is active; starting one while another is active is
  // FailedPrecondition.
  virtual absl::Status CreateSession(const SessionRecord& session) = 0;
  virtual absl::Status EndSession(const std::string& session_id, SessionState state,
                                  int64_t ended_at_ms, const std::string& reason) = 0;
  virtual absl::StatusOr<std::optional<SessionRecord>> GetSession(
      const std::string& session_id) = 0;
  // The active session, else the most recently started one.
  virtual absl::StatusOr<std::optional<SessionRecord>> LatestSession() = 0;

  // Attempts recorded for a session (every attempt when session_id is empty),
  // in the order they ended.
  virtual absl::StatusOr<std::vector<AttemptRecord>> ListAttempts(
      const std::string& session_id) = 0;
  // As ListAttempts, with stdout_tail and stderr_tail left empty: what
  // start-up, a takeover and the telemetry checks read, so their memory does
  // not grow with up to 64 KiB of output per attempt. The default reads
  // ListAttempts and clears the tails: correct, not lean.
  virtual absl::StatusOr<std::vector<AttemptRecord>> ListAttemptsWithoutOutput(
      const std::string& session_id);
  // A session's attempts (every attempt when session_id is empty) in the
  // order they ended, without their output tails, from `cursor` (0: the
  // first), at most `limit` (> 0) of them, and the cursor to continue from.
  // Attempts are only ever appended, so reading on from the returned cursor
  // sees each attempt once, those recorded meanwhile included: the telemetry
  // watch reads only what is new. The cursor means something only to the
  // store that returned it. The default reads ListAttemptsWithoutOutput and
  // skips: correct, not cheap.
  virtual absl::StatusOr<AttemptBatch> ListAttemptsFrom(const std::string& session_id,
                                                        int64_t cursor, int64_t limit);
  // Attempts of a session that ended with the phase's own outcome (lost,
  // cancelled and start_failed ones excluded): the session's progress toward
  // its batch size.
  virtual absl::StatusOr<int64_t> CountSessionAttempts(const std::string& session_id) = 0;

  // Late reports (see LateReportRecord), in the order they were received
  // (ties: by lease id). Cost grows with their number, which stays small:
  // one per lease at most, and only for workers cut off past their TTL.
  virtual absl::StatusOr<std::vector<LateReportRecord>> ListLateReports() = 0;
  virtual absl::StatusOr<int64_t> CountLateReports() = 0;

  // Up to `limit` pending phases of a run in lease order (for --dry-run).
  virtual absl::StatusOr<std::vector<PhaseRecord>> ListPendingPhases(const std::string& run_id,
                                                                     int64_t limit) = 0;

  // Up to `limit` pending phases that require labels, over every run (by
  // run id, then lease order). Cost grows with `limit`, not with the backlog
  // (status checks whether some registered worker can take them). The default
  // walks ListRunStats and ListPendingPhases: correct, not cheap.
  virtual absl::StatusOr<std::vector<PhaseRecord>> ListPendingLabelledPhases(int64_t limit);

  // A page of runs, as RunStatsQuery says; InvalidArgument for an unknown
  // sort key or state. Cost grows with the number of runs (their aggregate
  // rows), never with phases or attempts. The default sorts ListRunStats.
  virtual absl::StatusOr<RunStatsPage> ListRunStatsPage(const RunStatsQuery& query);

  // Attempts of one phase, newest first, from `offset`, at most `limit`, with
  // their output tails (the web view's Phase page). Cost grows with `limit`
  // through an index by phase, not with the store's attempts. The default
  // filters ListAttempts(""): correct, not cheap.
  virtual absl::StatusOr<AttemptPage> ListPhaseAttempts(const PhaseKey& key, int64_t offset,
                                                        int64_t limit);

  // Small durable key-value records for scheduling policy (e.g. kind
  // "fingerprint_unblock": fingerprint -> JSON). Put replaces.
  virtual absl::Status PutPolicyRecord(const std::string& kind, const std::string& key,
                                       const std::string& value) = 0;
  virtual absl::StatusOr<std::map<std::string, std::string>> ListPolicyRecords(
      const std::string& kind) = 0;

  // The cluster id: created with the store, or on the first open of a store
  // made before ids existed, in one atomic write (an id once written never
  // changes). Read at open; empty for stores without one (test doubles).
  virtual std::string ClusterId() const { return {}; }
};

// Reads a session's attempts (every attempt for "") from `*cursor` to their
// end through ListAttemptsFrom, `chunk` at a time, calling `visit` for each
// in end order, and moves `*cursor` past each chunk once it is visited (a
// failed read leaves it after the last chunk visited). What is held is one
// chunk, however long the history.
absl::Status ReadAttemptsOn(StateStore& store, const std::string& session_id, int64_t* cursor,
                            absl::FunctionRef<void(const AttemptRecord&)> visit,
                            int64_t chunk = 10'000);

}  // namespace sluice
