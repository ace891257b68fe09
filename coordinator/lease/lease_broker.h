// Grants leases: the long-poll, the per-request memory that makes a retried
// Lease idempotent, the labels each registered worker offers, and the wake-up
// of waiting polls when leasable work may have appeared.
//
// Locks. `mu_` guards the small in-memory state (generation, recent grants,
// labels, shutdown) and the condition variable; it is never held across a
// store call, so Report and Heartbeat (which only Notify) never wait behind a
// grant's store round trips. `grant_mu_` serialises the granting itself (the
// batch-size room is read, then phases are leased, one grant at a time, as
// before the split) and is taken before mu_, never after.
//
// Thread-safety: every method may be called from many threads.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/model.h"
#include "coordinator/insight/telemetry_watch.h"
#include "coordinator/lease/ready_index.h"
#include "coordinator/policy/drain_policy.h"
#include "coordinator/store/state_store.h"

namespace sluice {

struct LeaseBrokerOptions {
  int64_t lease_ttl_ms = 30'000;       // a granted lease's TTL
  int64_t max_lease_wait_ms = 30'000;  // upper bound of a long-poll
  // Retried requests remembered (oldest dropped first).
  size_t recent_grants_kept = 4096;
};

struct LeaseResult {
  std::vector<LeaseGrant> leases;
  bool session_active = false;
};

class LeaseBroker {
 public:
  // `still_leader` answers the not-leader error once this process no longer
  // leads (checked before every grant attempt of a poll); null: always
  // leads. The references must outlive the broker.
  LeaseBroker(StateStore& store, const Clock& clock, DrainPolicy& policy, TelemetryWatch& watch,
              LeaseBrokerOptions options, std::function<absl::Status()> still_leader = nullptr,
              ReadyIndexOptions ready_options = {});

  // A registered worker's labels; Lease refuses workers it has none for.
  void SetWorkerLabels(const std::string& worker_id, std::vector<std::string> labels)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Grants up to `max_phases` from the active session's best-ranked runs,
  // long-polling up to min(wait_ms, max_lease_wait_ms) (real time) while
  // nothing is ready. A retried request (same worker_id and request_id) gets
  // the grants of the first. FailedPrecondition for an unregistered worker;
  // store errors as the store returns them, except that grants already made
  // are handed out rather than stranded. Nothing is granted while a lease
  // in `after_lease_ids` is still active: those are the worker's phases
  // whose reports are on their way, and a report lands (or the lease
  // expires) with a Notify, which wakes this poll. Arguments are not
  // validated here.
  absl::StatusOr<LeaseResult> Lease(const std::string& worker_id, const std::string& request_id,
                                    int32_t max_phases, int64_t wait_ms,
                                    const std::vector<std::string>& after_lease_ids = {})
      ABSL_LOCKS_EXCLUDED(mu_, grant_mu_);

  // Leasable work may have appeared (report, expiry, import, session start,
  // unblock, resume) or leadership changed: waiting polls look again.
  void Notify() ABSL_LOCKS_EXCLUDED(mu_);
  // How many times Notify (or BeginShutdown) has run: a report, an expiry,
  // an import, a session's start or stop... For watchers of the drain that
  // wait for the next change rather than poll (WaitForChange).
  uint64_t ChangeCount() ABSL_LOCKS_EXCLUDED(mu_);
  // Waits until ChangeCount() differs from `seen`, or `timeout` (real time)
  // passes; returns ChangeCount() then.
  uint64_t WaitForChange(uint64_t seen, absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_);
  // Ends every waiting poll now and makes later ones return at once.
  void BeginShutdown() ABSL_LOCKS_EXCLUDED(mu_);
  // A run's statistics changed in the store (an accepted report, an
  // expiry): the ready index reads that run again, not every run, or takes
  // `stats` when the store answered them with that write.
  void RunChanged(const std::string& run_id, std::optional<RunStats> stats = std::nullopt) {
    ready_.Touch(run_id, std::move(stats));
  }
  // Every run's statistics from the ready index, up to date for every write
  // through this process (ReadyIndex::Snapshot): for status and the policy's
  // readers, so they do not read every run from the store.
  absl::StatusOr<std::vector<RunStats>> RunStatsSnapshot() { return ready_.Snapshot(); }
  // Phases or runs may have appeared anywhere, or the policy's exclusions
  // changed (an import, an unblock): the ready index reloads and ranks again.
  void BacklogChanged() { ready_.Invalidate(); }

  // A new leadership term: recent grants and worker labels are forgotten
  // (workers register again) and waiting polls wake.
  void ResetForNewTerm() ABSL_LOCKS_EXCLUDED(mu_);

  // A process-unique id "PREFIX-<ms>-<random>-<counter>" (lease and session ids).
  std::string NewId(std::string_view prefix);

 private:
  using RequestKey = std::pair<std::string, std::string>;  // worker_id, request_id

  absl::StatusOr<std::vector<LeaseGrant>> TryLease(const std::string& worker_id,
                                                   const std::vector<std::string>& labels,
                                                   const SessionRecord& session, int32_t max_phases)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(grant_mu_);
  // Counts a change and wakes every waiting poll and change watcher: what
  // Notify, BeginShutdown and ResetForNewTerm share.
  void WakeEveryoneLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Grants made for `key` earlier, if any.
  bool FindRecent(const RequestKey& key, LeaseResult* out) ABSL_LOCKS_EXCLUDED(mu_);

  StateStore& store_;
  const Clock& clock_;
  DrainPolicy& policy_;
  TelemetryWatch& watch_;
  const LeaseBrokerOptions options_;
  const std::function<absl::Status()> still_leader_;
  std::atomic<uint64_t> id_counter_{0};
  ReadyIndex ready_;  // which run a grant comes from, without ranking every run per grant

  absl::Mutex grant_mu_ ABSL_ACQUIRED_BEFORE(mu_);

  absl::Mutex mu_;
  absl::CondVar work_changed_;
  // Its own condition, so a watcher never takes a Signal meant for a poll.
  absl::CondVar watchers_;
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;  // bumped when leasable work may appear
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  std::map<RequestKey, std::vector<LeaseGrant>> recent_grants_ ABSL_GUARDED_BY(mu_);
  std::deque<RequestKey> recent_order_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::vector<std::string>> worker_labels_ ABSL_GUARDED_BY(mu_);
  // A waiting poll holds the timed-recheck role (see Lease).
  bool recheck_taken_ ABSL_GUARDED_BY(mu_) = false;
  static constexpr absl::Duration kRecheckInterval = absl::Seconds(1);
};

}  // namespace sluice
