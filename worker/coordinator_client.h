// The worker's view of the coordinator. The gRPC implementation lives in
// client/; tests can substitute a fake. Every call is safe to retry:
// Lease with the same request_id returns the same grants, and Report is
// idempotent by lease id.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model.h"

namespace sluice {

struct WorkerRegistration {
  int64_t lease_ttl_ms = 30'000;
  int64_t heartbeat_interval_ms = 10'000;
  int64_t max_lease_wait_ms = 30'000;
  std::string cluster_id;  // the coordinator's store's cluster id
  // The coordinator holds a lease request until the reports it names have
  // landed (LeaseRequest.after_lease_ids); false for an older coordinator.
  bool lease_waits_for_reports = false;
};

struct LeaseBatch {
  std::vector<LeaseGrant> leases;
  bool session_active = false;
};

class CoordinatorClient {
 public:
  virtual ~CoordinatorClient() = default;
  virtual absl::StatusOr<WorkerRegistration> Register(const WorkerInfo& worker) = 0;
  // `after_lease_ids`: this worker's leases whose reports are on their way;
  // a coordinator that says lease_waits_for_reports grants nothing before
  // they have landed (LeaseRequest.after_lease_ids).
  virtual absl::StatusOr<LeaseBatch> Lease(const std::string& worker_id,
                                           const std::string& request_id, int32_t max_phases,
                                           int64_t wait_ms,
                                           const std::vector<std::string>& after_lease_ids) = 0;
  // Returns the lease ids the worker must stop. `timeout_ms` bounds the call
  // (DeadlineExceeded after it): the agent keeps it inside the lease TTL, so
  // a coordinator that silently stops answering cannot hold the agent's
  // self-fencing past the point where the leases expire.
  virtual absl::StatusOr<std::vector<std::string>> Heartbeat(
      const std::string& worker_id, const std::vector<std::string>& lease_ids,
      int64_t timeout_ms) = 0;
  virtual absl::StatusOr<ReportDisposition> Report(const AttemptReport& report) = 0;
  // Several reports of this worker in one call: one answer per report, in
  // order. The outer status is the call's own failure (transport, auth, a
  // batch over the limit, Unimplemented from a coordinator without the
  // call), which stands for every report. At most kMaxReportsPerBatch
  // (common/model.h).
  // By default one Report per report, so a client (or a fake) without a
  // batch call still works; its outer status is then always OK.
  virtual absl::StatusOr<std::vector<absl::StatusOr<ReportDisposition>>> ReportBatch(
      const std::vector<AttemptReport>& reports) {
    std::vector<absl::StatusOr<ReportDisposition>> answers;
    answers.reserve(reports.size());
    for (const AttemptReport& report : reports) answers.push_back(Report(report));
    return answers;
  }
  // Ends a Lease long-poll in flight (it returns Cancelled), so a draining
  // worker does not wait out the poll. Thread-safe; a no-op by default.
  virtual void CancelPendingLease() {}
};

}  // namespace sluice
