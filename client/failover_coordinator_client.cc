#include "client/failover_coordinator_client.h"

#include <string_view>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "spdlog/spdlog.h"

namespace sluice {

FailoverCoordinatorClient::FailoverCoordinatorClient(std::vector<std::string> addresses,
                                                     Factory factory)
    : factory_(std::move(factory)) {
  for (std::string& a : addresses) {
    std::unique_ptr<CoordinatorClient> client = factory_(a);
    endpoints_.push_back(Endpoint{std::move(a), std::move(client)});
  }
}

std::pair<size_t, CoordinatorClient*> FailoverCoordinatorClient::Current() const {
  absl::MutexLock lock(&mu_);
  return {current_, endpoints_[current_].client.get()};
}

std::string FailoverCoordinatorClient::current_address() const {
  absl::MutexLock lock(&mu_);
  return endpoints_[current_].address;
}

void FailoverCoordinatorClient::Failed(size_t used, const absl::Status& status) {
  absl::MutexLock lock(&mu_);
  if (used != current_) return;  // another call already moved on
  const std::string hint = LeaderAddressHint(status);
  size_t next = (current_ + 1) % endpoints_.size();
  if (!hint.empty()) {
    next = endpoints_.size();
    for (size_t i = 0; i < endpoints_.size(); ++i) {
      if (endpoints_[i].address == hint) next = i;
    }
    if (next == endpoints_.size()) {
      // A leader outside the list (e.g. --advertise of a pod): remember it.
      endpoints_.push_back(Endpoint{hint, factory_(hint)});
      if (cancel_requested_) endpoints_.back().client->CancelPendingLease();
    }
  }
  if (next == current_) return;
  spdlog::warn("coordinator {} failed ({}); switching to {}", endpoints_[current_].address,
               status.ToString(), endpoints_[next].address);
  current_ = next;
}

absl::StatusOr<WorkerRegistration> FailoverCoordinatorClient::Register(const WorkerInfo& worker) {
  auto [used, client] = Current();
  return Track(used, client->Register(worker));
}

absl::StatusOr<LeaseBatch> FailoverCoordinatorClient::Lease(
    const std::string& worker_id, const std::string& request_id, int32_t max_phases,
    int64_t wait_ms, const std::vector<std::string>& after_lease_ids) {
  auto [used, client] = Current();
  return Track(used, client->Lease(worker_id, request_id, max_phases, wait_ms, after_lease_ids));
}

absl::StatusOr<std::vector<std::string>> FailoverCoordinatorClient::Heartbeat(
    const std::string& worker_id, const std::vector<std::string>& lease_ids, int64_t timeout_ms) {
  auto [used, client] = Current();
  return Track(used, client->Heartbeat(worker_id, lease_ids, timeout_ms));
}

absl::StatusOr<ReportDisposition> FailoverCoordinatorClient::Report(const AttemptReport& report) {
  auto [used, client] = Current();
  return Track(used, client->Report(report));
}

absl::StatusOr<std::vector<absl::StatusOr<ReportDisposition>>>
FailoverCoordinatorClient::ReportBatch(const std::vector<AttemptReport>& reports) {
  auto [used, client] = Current();
  absl::StatusOr<std::vector<absl::StatusOr<ReportDisposition>>> answers =
      Track(used, client->ReportBatch(reports));
  if (answers.ok()) {
    for (const absl::StatusOr<ReportDisposition>& a : *answers) {
      if (MovesOn(a.status())) {
        Failed(used, a.status());  // once: the endpoint failed, not each report
        break;
      }
    }
  }
  return answers;
}

void FailoverCoordinatorClient::CancelPendingLease() {
  absl::MutexLock lock(&mu_);
  cancel_requested_ = true;
  for (Endpoint& e : endpoints_) e.client->CancelPendingLease();
}

}  // namespace sluice
