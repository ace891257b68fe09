#include "worker/retrying_coordinator_client.h"

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"
#include "worker/backoff.h"

namespace sluice {
namespace {

// A worker that is refused for its configuration (a bad id, a bad token)
// will be refused again: retrying only hides the problem.
bool IsConfigurationError(absl::StatusCode code) {
  return code == absl::StatusCode::kInvalidArgument || code == absl::StatusCode::kUnauthenticated ||
         code == absl::StatusCode::kPermissionDenied;
}

// Registration refused for good: bad configuration, or a cluster id that is
// not the coordinator's (FailedPrecondition; retrying cannot change the store).
bool IsRefusedRegistration(absl::StatusCode code) {
  return IsConfigurationError(code) || code == absl::StatusCode::kFailedPrecondition;
}

// The coordinator forgot this worker (it restarted): only registering again helps.
bool IsUnknownWorker(absl::StatusCode code) {
  return code == absl::StatusCode::kFailedPrecondition;
}

}  // namespace

RetryingCoordinatorClient::RetryingCoordinatorClient(CoordinatorClient& inner, const Clock& clock,
                                                     Wakeup& stop, Options options)
    : inner_(inner), clock_(clock), stop_(stop), options_(options) {}

template <typename T>
absl::StatusOr<T> RetryingCoordinatorClient::Retry(const char* what,
                                                   bool (*permanent)(absl::StatusCode),
                                                   const std::function<absl::StatusOr<T>()>& call) {
  for (int attempt = 0;; ++attempt) {
    absl::StatusOr<T> result = call();
    if (result.ok() || permanent(result.status().code())) return result;
    if (!stop_.notified()) {
      const int64_t wait = BackoffMs(attempt, options_.base_ms, options_.cap_ms);
      spdlog::warn("{} failed ({}); retrying in {} ms", what, result.status().ToString(), wait);
      if (!clock_.WaitFor(stop_, wait)) continue;
    }
    return absl::CancelledError(
        absl::StrCat(what, " not retried: stopping (", result.status().ToString(), ")"));
  }
}

absl::StatusOr<WorkerRegistration> RetryingCoordinatorClient::Register(const WorkerInfo& worker) {
  int64_t sent_ms = 0;
  return Register(worker, &sent_ms);
}

absl::StatusOr<WorkerRegistration> RetryingCoordinatorClient::Register(const WorkerInfo& worker,
                                                                       int64_t* sent_ms) {
  return Retry<WorkerRegistration>("register", IsRefusedRegistration, [&] {
    *sent_ms = clock_.NowMs();
    return inner_.Register(worker);
  });
}

absl::StatusOr<LeaseBatch> RetryingCoordinatorClient::Lease(
    const std::string& worker_id, const std::string& request_id, int32_t max_phases,
    int64_t wait_ms, const std::vector<std::string>& after_lease_ids) {
  return Retry<LeaseBatch>("lease", IsUnknownWorker, [&] {
    return inner_.Lease(worker_id, request_id, max_phases, wait_ms, after_lease_ids);
  });
}

absl::StatusOr<std::vector<std::string>> RetryingCoordinatorClient::Heartbeat(
    const std::string& worker_id, const std::vector<std::string>& lease_ids, int64_t timeout_ms) {
  return inner_.Heartbeat(worker_id, lease_ids, timeout_ms);
}

absl::StatusOr<ReportDisposition> RetryingCoordinatorClient::Report(const AttemptReport& report) {
  return inner_.Report(report);
}

absl::StatusOr<std::vector<absl::StatusOr<ReportDisposition>>>
RetryingCoordinatorClient::ReportBatch(const std::vector<AttemptReport>& reports) {
  return inner_.ReportBatch(reports);
}

void RetryingCoordinatorClient::CancelPendingLease() { inner_.CancelPendingLease(); }

}  // namespace sluice
