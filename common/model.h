// The plain data model shared by the coordinator, the stores, the worker and
// the operator CLI. No gRPC, no hiredis, no SQLite here: the gRPC adapters
// convert between these structs and the generated protobuf messages.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice {

// How one attempt of a phase ended.
enum class Outcome {
  kSucceeded,  // exit code 0
  kFailed,     // non-zero exit code, or a signal the worker did not send
  kTimedOut,   // the worker stopped it because the phase timeout elapsed
  kKilled,     // killed from outside the worker (SIGKILL/SIGTERM it did not send, OOM killer)
  kCancelled,  // stopped on purpose: session deadline, operator stop, worker drain
  kLost,       // the lease expired without a report (worker vanished); recorded by the coordinator
  // The worker could not start the phase (log file, workdir, posix_spawn:
  // ENOENT, EAGAIN): the worker's fault, never the phase's. Uses the requeue
  // budget and never feeds the repeat rule.
  kStartFailed,
};

std::string_view OutcomeName(Outcome outcome);  // "succeeded", "failed", ...
std::optional<Outcome> ParseOutcome(std::string_view name);

// Whether an attempt with this outcome counts toward its session's progress
// (the batch size): it ended with the phase's own outcome. Lost, cancelled
// and start_failed attempts do not. The Redis scripts keep the same rule
// (index_attempt in coordinator/store/redis/scripts/prelude.lua).
bool CountsTowardSessionProgress(Outcome outcome);

// Where a phase stands in the backlog.
enum class PhaseState {
  kPending,    // waiting to be leased
  kLeased,     // a worker holds a lease on it
  kSucceeded,  // final: an attempt succeeded
  kFailed,     // final: out of attempts (or out of requeues after lost leases)
};

std::string_view PhaseStateName(PhaseState state);
std::optional<PhaseState> ParsePhaseState(std::string_view name);
inline bool IsFinal(PhaseState s) {
  return s == PhaseState::kSucceeded || s == PhaseState::kFailed;
}

// One row of an imported backlog.
struct PhaseSpec {
  std::string run_id;
  std::string phase_id;
  int64_t phase_index = 0;
  int64_t priority = 0;  // higher runs first among otherwise equal phases
  std::string last_error;
  std::vector<std::string> labels;   // worker labels this phase requires
  std::string metadata_json = "{}";  // every other field of the backlog row
};

struct PhaseKey {
  std::string run_id;
  std::string phase_id;
  auto operator<=>(const PhaseKey&) const = default;
};

// A phase as the store sees it.
struct PhaseRecord {
  PhaseSpec spec;
  PhaseState state = PhaseState::kPending;
  int32_t attempts = 0;  // attempts that ended with the phase's own outcome (lost ones excluded)
  int32_t requeues = 0;  // attempts lost to infrastructure (lease expired)
  std::string current_lease_id;  // set while kLeased
  std::optional<Outcome> final_outcome;
  int64_t telemetry_events = 0;
  int64_t updated_at_ms = 0;
};

struct WorkerInfo {
  std::string worker_id;
  std::string host;
  int32_t slots = 1;
  std::vector<std::string> labels;
  std::string version;
  int64_t last_seen_ms = 0;
  // The cluster id the worker was pointed at (--cluster-id), checked by the
  // coordinator at registration; empty: not checked. Never stored.
  std::string cluster_id;
};

// Aggregates of one run, kept by the store so scheduling never scans phases.
struct RunStats {
  std::string run_id;
  int64_t pending = 0;
  int64_t leased = 0;
  int64_t succeeded = 0;
  int64_t failed = 0;
  int64_t attempts = 0;   // every recorded attempt, lost ones included
  int64_t successes = 0;  // attempts that succeeded
  int64_t timeouts = 0;   // attempts that timed out (not outside kills)
  int64_t telemetry_events = 0;
  int64_t run_ms = 0;  // summed attempt durations
  // The part of run_ms spent by attempts whose telemetry is unknown: yield
  // divides telemetry_events by run_ms - unknown_telemetry_ms.
  int64_t unknown_telemetry_ms = 0;
  int64_t best_pending_priority = 0;
};

// A lease handed to a worker. The (lease_id, epoch) pair fences reports: the
// store accepts a report only while this lease is the phase's current one.
struct LeaseGrant {
  std::string lease_id;
  std::string run_id;
  std::string phase_id;
  int32_t attempt = 0;  // 1-based attempt number of this phase (lost attempts included)
  int64_t epoch = 0;    // strictly increasing per store; the fencing token
  std::string worker_id;
  std::string session_id;
  int32_t timeout_seconds = 0;
  int64_t leased_at_ms = 0;
  int64_t expires_at_ms = 0;
  // timeout_seconds was cut to the session deadline: stopping the phase at
  // it is a cancellation, not a timeout. Not persisted.
  bool timeout_is_session_deadline = false;
  // Stop the phase once it has written nothing to its logs for this long
  // (the idle limit, IdleLimit): it is hanging. 0 = no limit. Not persisted.
  int32_t idle_timeout_seconds = 0;
  // The store took this phase from its run's retry tier (LeaseParams::
  // retries_last): a retry, or a phase whose backlog row says it timed out,
  // so no untried phase of the run fitted. Coordinator-internal: not
  // persisted, not sent to workers.
  bool retry_tier = false;
  // The run's statistics right after this grant, when the store answers them
  // with the grant (Redis: the lease script's reply), so the lease broker need
  // not read them again. Coordinator-internal, like retry_tier.
  std::optional<RunStats> run_stats;
};

// What a worker reports when an attempt ends.
struct AttemptReport {
  std::string lease_id;
  int64_t epoch = 0;
  std::string worker_id;
  Outcome outcome = Outcome::kFailed;
  int32_t exit_code = -1;  // -1 when the process died of a signal
  int32_t signal = 0;      // 0 when it exited
  int64_t duration_ms = 0;
  std::string stdout_tail;
  std::string stderr_tail;
  std::string error_text;
  int64_t telemetry_events = 0;
  std::map<std::string, int64_t> telemetry_by_type;
  // The worker could not count the events (its telemetry probe failed or
  // hung, or the telemetry file could not be read): telemetry_events is 0
  // and means nothing. Such an attempt is no evidence of zero yield.
  bool telemetry_unknown = false;
  // The longest stretch the phase wrote nothing to its logs (from its start
  // to its first output counts too); -1 when the worker did not measure it.
  // What the idle limit is learnt from.
  int64_t longest_silence_ms = -1;
};

// The most reports one WorkerService.ReportBatch call may carry: the
// coordinator refuses more (CheckReportBatchSize), the worker never sends more.
inline constexpr size_t kMaxReportsPerBatch = 256;

// One attempt as recorded in the store.
struct AttemptRecord {
  std::string lease_id;
  std::string run_id;
  std::string phase_id;
  int32_t attempt = 0;
  int64_t epoch = 0;
  std::string worker_id;
  std::string session_id;
  Outcome outcome = Outcome::kFailed;
  int32_t exit_code = -1;
  int32_t signal = 0;
  int64_t duration_ms = 0;
  std::string error_text;
  std::string fingerprint;
  int64_t telemetry_events = 0;
  std::map<std::string, int64_t> telemetry_by_type;
  bool telemetry_unknown = false;  // AttemptReport::telemetry_unknown
  std::string stdout_tail;
  std::string stderr_tail;
  int64_t started_at_ms = 0;
  int64_t ended_at_ms = 0;
};

// The run time of `a` that telemetry yield leaves out: its duration when its
// telemetry is unknown (no evidence either way, never zero yield), else 0.
inline int64_t UnknownTelemetryMs(const AttemptRecord& a) {
  return a.telemetry_unknown ? a.duration_ms : 0;
}

// How the store treated a report.
enum class ReportDisposition {
  kAccepted,      // recorded; the phase moved on
  kDuplicate,     // this lease was already reported; the first answer stands
  kLate,          // the lease expired or belongs to someone else; kept for the record only
  kUnknownLease,  // no such lease was ever granted
};
std::string_view ReportDispositionName(ReportDisposition d);

struct ReportResult {
  ReportDisposition disposition = ReportDisposition::kAccepted;
  PhaseState phase_state = PhaseState::kPending;  // state of the phase after the report
  std::string run_id;                             // the lease's phase; set when accepted
  std::string phase_id;
  // The run's statistics right after an accepted report, when the store
  // answers them with it (Redis); nullopt: whoever needs them reads them.
  std::optional<RunStats> run_stats;
};

// A report answered kLate (its lease had expired or moved on), kept for the
// record only: the first one per lease, as the worker sent it. Operators see
// from these which workers came back after their lease expired.
struct LateReportRecord {
  std::string lease_id;
  std::string worker_id;
  Outcome outcome = Outcome::kSucceeded;
  int64_t telemetry_events = 0;
  std::string error_text;
  int64_t received_at_ms = 0;
};

// A lease the coordinator found expired; its attempt is recorded as kLost.
struct ExpiredLease {
  LeaseGrant lease;
  PhaseState phase_state = PhaseState::kPending;  // kPending, or kFailed when out of requeues
};

// What the coordinator does when the telemetry-loss alarm fires during a
// session (coordinator/insight/telemetry_alarm.h): always warn (logs, status,
// metrics); kPause also stops granting leases until an operator resumes.
enum class TelemetryLossAction { kWarn, kPause };
std::string_view TelemetryLossActionName(TelemetryLossAction a);  // "warn", "pause"
std::optional<TelemetryLossAction> ParseTelemetryLossAction(std::string_view name);

// Settings of a drain session. Defaults follow the controller sluice replaces.
// The entry of SessionSettings::retry_on that switches the built-in set of
// transient errors off (`--no-default-transient`; on the wire it is
// SessionSettings.no_default_transient). Never compiled as a pattern.
inline constexpr const char* kNoDefaultTransient = "!no-default-transient";

struct SessionSettings {
  int32_t batch_size = 0;               // phases to finish in this session; 0 = all
  int32_t phase_timeout_seconds = 900;  // per-attempt timeout the worker enforces
  int32_t max_total_minutes = 0;        // session deadline; 0 = none
  int32_t max_attempts_per_phase = 2;   // phase's own outcomes, across sessions
  int32_t max_requeues_per_phase = 5;   // lost leases before a phase is failed
  std::vector<std::string> run_ids;     // only these runs (empty = all)
  std::vector<std::string> skip_run_prefixes;
  // Once a failure fingerprint occurred this often across the cluster, the
  // runs it occurred in are blocked until an operator unblocks it.
  int32_t max_fingerprint_repeats = 3;
  int32_t max_timeouts_per_run = 2;  // real timeouts (not outside kills); 0 = no limit
  int32_t max_consecutive_zero_yield =
      0;  // end the session after N attempts with no events; 0 = off
  // RE2 patterns (case-insensitive) matched against a failure's fingerprint
  // and error text: such failures are transient, retried with backoff, and
  // count toward neither the repeat rule nor the attempt budget.
  std::vector<std::string> retry_on;
  TelemetryLossAction on_telemetry_loss = TelemetryLossAction::kWarn;
  // The stop rule (--min-expected-yield): runs whose expected yield (the
  // scheduler's posterior, telemetry events per worker-minute) is below this
  // are not leased, and the session ends once nothing left beats it. 0 = off.
  double min_expected_yield = 0;
  // The idle limit (--idle-timeout): a phase that writes nothing to its logs
  // for this long is stopped as timed out. 0 = auto (learnt from the
  // silences of attempts that ended on their own, IdleLimit), -1 = off,
  // > 0 = this many seconds.
  int32_t idle_timeout_seconds = 0;

  bool operator==(const SessionSettings&) const = default;
};

enum class SessionState { kActive, kStopped, kFinished };
std::string_view SessionStateName(SessionState s);
std::optional<SessionState> ParseSessionState(std::string_view name);

struct SessionRecord {
  std::string session_id;
  SessionSettings settings;
  SessionState state = SessionState::kActive;
  int64_t started_at_ms = 0;
  int64_t ended_at_ms = 0;  // 0 while active
  std::string end_reason;
};

struct PhaseCounts {
  int64_t pending = 0;
  int64_t leased = 0;
  int64_t succeeded = 0;
  int64_t failed = 0;
  int64_t total() const { return pending + leased + succeeded + failed; }
  bool operator==(const PhaseCounts&) const = default;
};

// The `{run_id}`-style values a worker may substitute into its own template.
struct PhaseIdentity {
  std::string run_id;
  std::string phase_id;
  int32_t attempt = 0;
  std::string lease_id;
  std::string session_id;
};

}  // namespace sluice
