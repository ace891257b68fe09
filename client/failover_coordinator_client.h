// A CoordinatorClient over several coordinator addresses, one active and
// the others standing by (issue #3): calls go to the current address; when
// one fails with Unavailable or DeadlineExceeded (the coordinator is down,
// paused, or a standby answering "not the leader"), the next call goes to the
// leader that error names ("leader_address=HOST:PORT"), else to the next
// address in the list. The agent's own retries and backoff do the rest, so
// a report the old leader could not write is retried at the new one (and
// the spool keeps it meanwhile). With one address (e.g. a Kubernetes Service
// in front of the coordinators) it only passes calls through.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/coordinator_addresses.h"
#include "worker/coordinator_client.h"

namespace sluice {

class FailoverCoordinatorClient final : public CoordinatorClient {
 public:
  using Factory = std::function<std::unique_ptr<CoordinatorClient>(const std::string& address)>;

  // `addresses` must not be empty; `factory` makes the client of one address
  // (also for a leader address outside the list).
  FailoverCoordinatorClient(std::vector<std::string> addresses, Factory factory);

  absl::StatusOr<WorkerRegistration> Register(const WorkerInfo& worker) override;
  absl::StatusOr<LeaseBatch> Lease(const std::string& worker_id, const std::string& request_id,
                                   int32_t max_phases, int64_t wait_ms,
                                   const std::vector<std::string>& after_lease_ids) override;
  absl::StatusOr<std::vector<std::string>> Heartbeat(const std::string& worker_id,
                                                     const std::vector<std::string>& lease_ids,
                                                     int64_t timeout_ms) override;
  absl::StatusOr<ReportDisposition> Report(const AttemptReport& report) override;
  // Moves on after the call failed, or after a report of it failed, with
  // Unavailable or DeadlineExceeded (as a unary Report failing so would).
  absl::StatusOr<std::vector<absl::StatusOr<ReportDisposition>>> ReportBatch(
      const std::vector<AttemptReport>& reports) override;
  void CancelPendingLease() override;

  std::string current_address() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Endpoint {
    std::string address;
    std::unique_ptr<CoordinatorClient> client;
  };
  // The current endpoint's index and client (clients live as long as this).
  std::pair<size_t, CoordinatorClient*> Current() const ABSL_LOCKS_EXCLUDED(mu_);
  // After a failed call on endpoint `used`: moves on unless another thread did.
  void Failed(size_t used, const absl::Status& status) ABSL_LOCKS_EXCLUDED(mu_);
  static bool MovesOn(const absl::Status& st) {
    return st.code() == absl::StatusCode::kUnavailable ||
           st.code() == absl::StatusCode::kDeadlineExceeded;
  }
  template <typename T>
  T Track(size_t used, T result) {
    const absl::Status& st = StatusOf(result);
    if (MovesOn(st)) Failed(used, st);
    return result;
  }
  template <typename V>
  static const absl::Status& StatusOf(const absl::StatusOr<V>& r) {
    return r.status();
  }

  const Factory factory_;
  mutable absl::Mutex mu_;
  std::vector<Endpoint> endpoints_ ABSL_GUARDED_BY(mu_);  // only grows
  size_t current_ ABSL_GUARDED_BY(mu_) = 0;
  bool cancel_requested_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace sluice
