// Delivers finished outcomes to the coordinator, durably: each report is
// written to the OutcomeSpool before the first attempt and removed once the
// coordinator answered it (with any disposition: it then has the outcome or
// never will). So neither a coordinator outage nor a worker restart loses
// one; the next start re-delivers what is left (DeliverSpooled).
//
// A delivery retries transient failures with backoff on the Clock seam until
//  - the coordinator answers (the spool file is removed),
//  - it rejects the report as invalid (InvalidArgument: the file is renamed
//    LEASE_ID.json.rejected for a person, and never retried),
//  - it refuses the worker's credentials (PermissionDenied,
//    Unauthenticated: the file stays for the next, fixed, start),
//  - after BeginShutdown(), the delivery has been failing for longer than
//    `give_up_ms` (the file stays), or
//  - Abandon() was called (the file stays).
//
// Concurrent deliveries share calls (group commit): a delivery that finds
// fewer than Options::max_calls_in_flight calls in flight sends at once, with
// no waiting for company; reports whose attempt comes while that many calls
// are in flight queue up and go together in one CoordinatorClient::ReportBatch
// as soon as one of those returns: the oldest first, those naming the same
// worker (an earlier run's spool may hold another id's), up to
// kMaxReportsPerBatch and about kMaxBatchBytes. Each delivery still waits for,
// and acts on, its own report's answer as above; a failure of the whole call
// is every report's. A coordinator without ReportBatch (Unimplemented: older
// than the worker) gets unary Report calls from then on.
//
// Thread-safe: any number of deliveries may run at once (one per lease id);
// `spool`, `client` and `clock` must outlive this.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/model.h"
#include "worker/coordinator_client.h"
#include "worker/outcome_spool.h"

namespace sluice {

class ReportDelivery {
 public:
  struct Options {
    int64_t give_up_ms = 300'000;  // see BeginShutdown()
    int64_t base_ms = 100;         // first backoff (jittered from base_ms/2)
    int64_t cap_ms = 5'000;
    // Calls that may be in flight at once; a report coming when that many
    // are waits for the next. One would serialise a worker's reports: with
    // few slots batches stay small and each report then waits for another's
    // round trip before its own. Two overlap one call's round trip with the
    // coordinator's work on the other. At least 1.
    int max_calls_in_flight = 2;
  };

  ReportDelivery(const OutcomeSpool& spool, CoordinatorClient& client, const Clock& clock,
                 Options options);

  // Spools `report`, then delivers it. Blocks until the delivery ends (see
  // above). A report that cannot be spooled is still delivered (logged: it
  // is then kept in memory only).
  void Deliver(const AttemptReport& report);
  // Delivers a report that is already in the spool (left by an earlier run).
  void DeliverSpooled(const AttemptReport& report);
  // The same for each of `reports`, up to kConcurrentRedeliveries at once so
  // that they share calls. Returns once every delivery ended.
  void DeliverSpooled(const std::vector<AttemptReport>& reports);
  static constexpr size_t kConcurrentRedeliveries = 32;
  // A call's reports stay about this small, well below the coordinator's
  // default message limit (16 MiB), even with large tails.
  static constexpr size_t kMaxBatchBytes = 4 << 20;

  // Shutdown: from now on a delivery failing for longer than give_up_ms
  // gives up. Running backoffs are not cut short.
  void BeginShutdown() { shutting_down_.store(true); }
  // A fatal error: every delivery gives up at once (a backoff in progress
  // ends now), leaving its outcome in the spool.
  void Abandon();

  // Reports the coordinator answered so far.
  int64_t delivered() const { return delivered_.load(); }
  // Attempts queued behind the call in flight, waiting for the next call.
  size_t queued() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // One attempt of one delivery, waiting for its answer; lives on the
  // delivering thread's stack.
  struct Attempt {
    const AttemptReport* report = nullptr;
    bool sent = false;                                        // taken out of the queue into a call
    std::optional<absl::StatusOr<ReportDisposition>> answer;  // set once answered
    bool unary = false;  // ReportBatch is unimplemented: send it alone
  };

  // One attempt: the coordinator's answer to `report` (or the failure).
  absl::StatusOr<ReportDisposition> Send(const AttemptReport& report) ABSL_LOCKS_EXCLUDED(mu_);
  // Sends the queue's oldest attempts in one call and answers them.
  void SendNextBatch() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Takes the attempts of the next call out of the queue (not empty).
  std::vector<Attempt*> TakeBatch() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const OutcomeSpool& spool_;
  CoordinatorClient& client_;
  const Clock& clock_;
  const Options options_;
  std::atomic<bool> shutting_down_{false};
  std::atomic<int64_t> delivered_{0};
  Wakeup abandoned_{Wakeup::Mode::kLatched};
  std::atomic<bool> unary_only_{false};  // the coordinator has no ReportBatch

  mutable absl::Mutex mu_;
  absl::CondVar answered_;  // a call returned: attempts were answered, a call may go
  std::deque<Attempt*> queue_ ABSL_GUARDED_BY(mu_);
  int calls_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace sluice
