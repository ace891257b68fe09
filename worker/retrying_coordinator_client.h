// A CoordinatorClient decorator that retries transient failures with capped,
// jittered exponential backoff, waiting on the Clock seam. It stacks with
// FailoverCoordinatorClient (which chooses where each attempt goes):
// Retrying(Failover(Grpc...)). Retrying is safe because every call is
// idempotent (see coordinator_client.h): a Lease retried with the same
// request id is answered with the same grants.
//
// What is retried:
//  - Register: every error except a configuration problem (InvalidArgument,
//    Unauthenticated, PermissionDenied), which is returned at once.
//  - Lease: every error except FailedPrecondition (the coordinator does not
//    know this worker: the caller registers again), returned at once.
//  - Heartbeat, Report and ReportBatch pass through unretried: the heartbeat loop has
//    its own cadence and self-fencing, and ReportDelivery its own give-up
//    rule and spool.
// Once `stop` is notified nothing is retried any more: a call failing then,
// or waiting out a backoff, returns Cancelled naming the last error.
//
// Thread-safe if `inner` is; `inner`, `clock` and `stop` must outlive this.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "worker/coordinator_client.h"

namespace sluice {

class RetryingCoordinatorClient final : public CoordinatorClient {
 public:
  struct Options {
    int64_t base_ms = 200;  // first backoff (jittered from base_ms/2)
    int64_t cap_ms = 5'000;
  };

  RetryingCoordinatorClient(CoordinatorClient& inner, const Clock& clock, Wakeup& stop,
                            Options options);
  RetryingCoordinatorClient(CoordinatorClient& inner, const Clock& clock, Wakeup& stop)
      : RetryingCoordinatorClient(inner, clock, stop, Options()) {}

  absl::StatusOr<WorkerRegistration> Register(const WorkerInfo& worker) override;
  // The same, also telling when the attempt that succeeded was sent
  // (clock_): the coordinator counts the worker's lease TTL from no earlier.
  absl::StatusOr<WorkerRegistration> Register(const WorkerInfo& worker, int64_t* sent_ms);
  absl::StatusOr<LeaseBatch> Lease(const std::string& worker_id, const std::string& request_id,
                                   int32_t max_phases, int64_t wait_ms,
                                   const std::vector<std::string>& after_lease_ids) override;
  absl::StatusOr<std::vector<std::string>> Heartbeat(const std::string& worker_id,
                                                     const std::vector<std::string>& lease_ids,
                                                     int64_t timeout_ms) override;
  absl::StatusOr<ReportDisposition> Report(const AttemptReport& report) override;
  absl::StatusOr<std::vector<absl::StatusOr<ReportDisposition>>> ReportBatch(
      const std::vector<AttemptReport>& reports) override;
  void CancelPendingLease() override;

 private:
  template <typename T>
  absl::StatusOr<T> Retry(const char* what, bool (*permanent)(absl::StatusCode),
                          const std::function<absl::StatusOr<T>()>& call);

  CoordinatorClient& inner_;
  const Clock& clock_;
  Wakeup& stop_;
  const Options options_;
};

}  // namespace sluice
