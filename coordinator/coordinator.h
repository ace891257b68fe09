// The coordinator's facade, free of gRPC: the RPC adapters in grpc/ validate
// nothing themselves; they convert messages and call these methods, which
// validate arguments (InvalidArgument with a reason), check leadership and
// delegate to the parts:
//   LeaseBroker     (lease/lease_broker.h)       granting leases, long-polls
//   DrainPolicy     (policy/drain_policy.h)      every retry/exclude/defer/end rule
//   TelemetryWatch  (insight/telemetry_watch.h)  the telemetry-loss alarm and pause
//   Planner         (policy/planner.h)           plan, skips, the session report
// Store failures come back as the store returns them (Unavailable).
//
// Thread-safety: every public method may be called from many threads. Each
// part has its own lock; the facade's only lock guards the leadership term.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/model.h"
#include "coordinator/insight/session_report.h"
#include "coordinator/insight/telemetry_alarm.h"
#include "coordinator/insight/telemetry_watch.h"
#include "coordinator/leadership/leader_election.h"
#include "coordinator/lease/lease_broker.h"
#include "coordinator/lease/worker_contacts.h"
#include "coordinator/policy/drain_policy.h"
#include "coordinator/policy/failure_policy.h"
#include "coordinator/policy/leasing_pause.h"
#include "coordinator/policy/planner.h"
#include "coordinator/policy/scheduler.h"
#include "coordinator/request_checks.h"
#include "coordinator/store/state_store.h"

namespace sluice {

struct CoordinatorConfig {
  // A lease not renewed within this is expired and its phase re-leased.
  int64_t lease_ttl_ms = 30'000;
  // Workers heartbeat this often; well inside the TTL so one lost heartbeat
  // does not expire a lease.
  int64_t heartbeat_interval_ms = 10'000;
  // Upper bound for a lease long-poll.
  int64_t max_lease_wait_ms = 30'000;
  // Bounds on what a worker may send.
  size_t max_tail_bytes = 64 * 1024;
  size_t max_error_text_bytes = 8 * 1024;
  int32_t max_phases_per_lease = 64;
  // One heartbeat renews at most this many leases (a worker holds one per
  // slot); more is InvalidArgument naming the limit (issue #14 item 8).
  size_t max_heartbeat_lease_ids = 4096;
  // A worker neither heard from nor holding a lease for this long is
  // forgotten: dropped from the store's worker list and from WorkerContacts.
  int64_t forget_workers_after_ms = kForgetWorkersAfterMs;
  // The scheduler's run-family rule (RunFamilyRule): "" = strip a trailing
  // date, letter or version; else an RE2 whose first group is the family.
  std::string family_pattern;

  absl::Status Validate() const;
};

struct RegisterResult {
  int64_t lease_ttl_ms = 0;
  int64_t heartbeat_interval_ms = 0;
  int64_t max_lease_wait_ms = 0;
  std::string cluster_id;               // the store's (empty: the store has none)
  bool lease_waits_for_reports = true;  // Lease honours after_lease_ids
};

struct ReportAnswer {
  ReportResult result;
  std::string fingerprint;
};

struct CoordinatorStatus {
  PhaseCounts phases;
  std::vector<WorkerInfo> workers;
  std::map<std::string, int32_t> active_leases_by_worker;
  std::vector<LeaseGrant> active_leases;
  std::optional<SessionRecord> session;
  int64_t session_finished = 0;
  bool session_done = false;
  std::vector<SkipRow> skipped;  // Status(true): ExplainSkips under the latest session's settings
  // Set while leasing is paused for the latest session (read from the store).
  std::optional<LeasingPause> pause;
  // The telemetry-loss alarm's findings at the last Tick of this coordinator
  // (empty on a coordinator that does not tick, e.g. `sluice status --store`).
  std::vector<TelemetryWarning> telemetry_warnings;
  // Reports the store kept as late (all sessions): workers that came back
  // after their lease expired.
  int64_t late_reports = 0;
  // The store's cluster id (StateStore::ClusterId).
  std::string cluster_id;
  // Workers with no lease poll, heartbeat or report within GoneAfterMs():
  // exited or cut off; listed with their last contact, never as connected.
  std::set<std::string> gone_workers;
};

class Coordinator {
 public:
  Coordinator(StateStore& store, const Clock& clock, CoordinatorConfig config = {});

  // Several coordinators on one store (Redis): every worker and operator
  // call, and Tick, first asks `leadership` and answers its not-leader error
  // (Unavailable, naming the leader) while this process stands by. When the
  // term changes, the in-memory caches (failure policy, backoffs, worker
  // labels, recent grants) are dropped and rebuilt from the store, never
  // carried over from an earlier term. Null (the default): always the leader
  // (the embedded SQLite store has one coordinator per file). Set before
  // serving; must outlive the Coordinator.
  void SetLeadership(Leadership* leadership) { leadership_.store(leadership); }

  // OK while this process leads (see SetLeadership), else the not-leader
  // error; resets the caches when the term changed since the last call.
  // Every method below checks it; adapters that read the store directly
  // (reports) call it first.
  absl::Status CheckLeader() ABSL_LOCKS_EXCLUDED(term_mu_);

  // Worker-facing.
  // worker.cluster_id (the worker's --cluster-id; empty: unchecked) must
  // equal the store's cluster id, else FailedPrecondition naming both ids and
  // nothing is written: a worker never joins a cluster it was not pointed at.
  absl::StatusOr<RegisterResult> Register(const WorkerInfo& worker);
  // Long-polls up to min(wait_ms, max_lease_wait_ms) when nothing is ready.
  // A retried request (same worker_id and request_id) gets the same grants.
  // Grants nothing while a lease in `after_lease_ids` (the worker's reports
  // on their way) is still active, so the grant sees those outcomes.
  absl::StatusOr<LeaseResult> Lease(const std::string& worker_id, const std::string& request_id,
                                    int32_t max_phases, int64_t wait_ms,
                                    const std::vector<std::string>& after_lease_ids = {});
  // Renews the worker's leases; returns those it must stop.
  absl::StatusOr<std::vector<std::string>> Heartbeat(const std::string& worker_id,
                                                     const std::vector<std::string>& lease_ids);
  absl::StatusOr<ReportAnswer> Report(const AttemptReport& report);
  // Report for each of `reports`, one answer each, in order, recorded in
  // one store batch (StateStore::RecordReports: one SQLite transaction). A
  // bad report gets its own INVALID_ARGUMENT; the others are recorded. The
  // policy sees the batch as reports that arrived at the same moment: each
  // is prepared before any of them is observed. At most kMaxReportBatch
  // (CheckReportBatchSize).
  static constexpr size_t kMaxReportBatch = kMaxReportsPerBatch;
  absl::StatusOr<std::vector<absl::StatusOr<ReportAnswer>>> ReportBatch(
      const std::vector<AttemptReport>& reports);

  // Operator-facing.
  absl::StatusOr<ImportResult> ImportBacklog(const std::vector<PhaseSpec>& phases);
  // ImportBacklog for a backlog too big to hold at once: `next` replaces
  // *chunk with the next phases, and an empty chunk ends the backlog. Still
  // one import, all or nothing (StateStore::BeginImport): an error from
  // `next`, a bad phase or a store error writes nothing and is returned.
  // Phases are numbered from the start of the backlog in messages.
  absl::StatusOr<ImportResult> ImportBacklogChunks(
      const std::function<absl::Status(std::vector<PhaseSpec>*)>& next);
  // FailedPrecondition when the store holds no phases, unless `allow_empty`:
  // a coordinator on a mistyped store path must not report an empty drain as
  // finished.
  absl::StatusOr<SessionRecord> StartSession(const SessionSettings& settings,
                                             std::string session_id, bool allow_empty = false);
  absl::StatusOr<SessionRecord> StopSession(const std::string& session_id,
                                            const std::string& reason);
  // explain_skips: also fill `skipped` (ExplainSkips; reads every pending
  // phase's labels, so loops that poll status leave it off).
  absl::StatusOr<CoordinatorStatus> Status(bool explain_skips = false);
  // A worker silent this long is gone: past its lease TTL and the longest
  // long-poll it may be parked in, plus one heartbeat interval of slack.
  // Silence counts from its last contact, or from this process's start when
  // that is later (Status: CoordinatorStatus::gone_workers).
  int64_t GoneAfterMs() const {
    return std::max(config_.lease_ttl_ms, config_.max_lease_wait_ms) +
           config_.heartbeat_interval_ms;
  }
  // Attempts recorded in the store by outcome (every outcome present, zeros
  // included): the history read once at start plus what this coordinator
  // recorded since. For sluice_attempts_total{outcome}.
  absl::StatusOr<std::map<Outcome, int64_t>> OutcomeTotals() { return policy_.OutcomeTotals(); }
  // Session-end verdicts decided over every run, not reused (tests).
  uint64_t SessionEndDecisions() const { return policy_.end_decisions(); }
  // Telemetry events and run time over every attempt in the store, kept as
  // counters (DrainPolicy::Effort): what /metrics and the web view's history
  // read instead of every run's aggregates.
  absl::StatusOr<DrainPolicy::EffortTotals> Effort() { return policy_.Effort(); }
  // When each worker last called (for "connected" in /metrics and status).
  const WorkerContacts& contacts() const { return contacts_; }
  // Ends the pause of leasing of `session_id` (empty: the active session);
  // returns the pause that ended. FailedPrecondition when it is not paused.
  absl::StatusOr<LeasingPause> ResumeLeasing(const std::string& session_id);

  // The repeat rule's memory: every failure fingerprint, most frequent first.
  absl::StatusOr<std::vector<FingerprintInfo>> ListFingerprints();
  // Forgets a fingerprint's occurrences so its runs are leased again (after
  // its cause was fixed). Accepts the key or the short id; returns the key.
  absl::StatusOr<std::string> UnblockFingerprint(const std::string& key_or_id);
  // What a session with `settings` would lease now, in order, and why the
  // other runs would not be leased. Changes nothing.
  absl::StatusOr<LeasePlan> Plan(const SessionSettings& settings, int64_t limit);
  // Why pending work is not leased now under `settings`: excluded and
  // deferred runs, phases waiting for a worker with their labels, runs with
  // phases that failed for good. Reads every pending labelled phase, so it
  // is for status and reports, never for leasing.
  absl::StatusOr<std::vector<SkipRow>> ExplainSkips(const SessionSettings& settings) {
    return planner_.ExplainSkips(settings);
  }
  // The run-level part of ExplainSkips (excluded, deferred) for `runs` only:
  // what the web view's page of runs shows, without reading every run.
  absl::StatusOr<std::vector<SkipRow>> ExplainRunSkips(const std::vector<RunStats>& runs,
                                                       const SessionSettings& settings) {
    return planner_.ExplainRunSkips(runs, settings);
  }
  // The session report (session_id "" = the latest); for the latest session
  // it carries ExplainSkips under that session's settings.
  absl::StatusOr<SessionReport> SessionReportFor(const std::string& session_id) {
    return planner_.ReportFor(session_id);
  }

  // Periodic work: expires leases, ends a session whose batch is done, whose
  // deadline passed or that has nothing left, runs the telemetry-loss alarm
  // on the session's attempts (and pauses leasing when the session says so).
  // The server calls it about once a second; tests call it after advancing a
  // FakeClock.
  absl::Status Tick();
  // Reads the drain policy's attempt history if this term has not yet
  // (DrainPolicy::EnsureLoaded; cheap once read). The server's tick thread
  // calls it before each tick, so start-up and a new term read the history
  // in the background: an RPC or page load that needs it meanwhile waits for
  // that read instead of making a second one.
  absl::Status LoadPolicy();

  // Ends every waiting long-poll now and makes later ones return at once
  // (used at shutdown).
  void BeginShutdown() { broker_.BeginShutdown(); }
  // Wakes every waiting Lease long-poll to re-check leadership: after a
  // step-down (LeaderElectionOptions::on_stepped_down) they answer the
  // not-leader error at once instead of when their wait ends.
  void WakeLeasePolls() { broker_.Notify(); }
  // For a watcher of the session (sluice drain) that looks again when
  // something changed (a report, an expiry, a stop...) rather than on a
  // timer: LeaseBroker::ChangeCount and WaitForChange.
  uint64_t ChangeCount() { return broker_.ChangeCount(); }
  uint64_t WaitForChange(uint64_t seen, absl::Duration timeout) {
    return broker_.WaitForChange(seen, timeout);
  }

  StateStore& store() { return store_; }
  const CoordinatorConfig& config() const { return config_; }

 private:
  absl::Status TickAsLeader();
  // What follows a recorded report: the broker, the watch and the policy
  // learn of an accepted one; every one is logged.
  void AfterRecorded(const ReportParams& params, const ReportResult& result,
                     const std::optional<SessionRecord>& session);
  // At most once a minute: forgets workers gone for forget_workers_after_ms.
  absl::Status ForgetGoneWorkers();

  StateStore& store_;
  const Clock& clock_;
  const CoordinatorConfig config_;
  // Atomic: set once the server has bound its port (the advertised address
  // needs it); until then a Redis store refuses every write (kNeverLeader).
  std::atomic<Leadership*> leadership_{nullptr};

  absl::Mutex term_mu_;
  int64_t cached_term_ ABSL_GUARDED_BY(term_mu_) = 0;  // term the parts' caches belong to

  // Declared in dependency order: the broker uses the policy and the watch.
  DrainPolicy policy_;
  TelemetryWatch watch_;
  LeaseBroker broker_;
  WorkerContacts contacts_;  // last lease poll, heartbeat or report per worker
  // When this process started: a worker is judged gone only on silence this
  // process could have heard (a restarted coordinator, or `status --store`,
  // knows just the stored registration time).
  const int64_t started_ms_;
  std::atomic<int64_t> next_forget_ms_{0};
  Planner planner_;
};

}  // namespace sluice
