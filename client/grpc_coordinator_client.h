// CoordinatorClient over gRPC: the only code of the worker's connection that
// touches generated stubs. Each call has a deadline; transport failures come
// back as Unavailable/DeadlineExceeded for the agent to retry.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "client/channel.h"
#include "worker/coordinator_client.h"

namespace grpc {
class Channel;
}

namespace sluice {

class GrpcCoordinatorClient final : public CoordinatorClient {
 public:
  // `token`, if not empty, is sent with every call as "authorization: Bearer
  // <token>" metadata (see channel.h LoadClientToken).
  explicit GrpcCoordinatorClient(std::shared_ptr<grpc::Channel> channel, std::string token = "");
  ~GrpcCoordinatorClient() override;

  absl::StatusOr<WorkerRegistration> Register(const WorkerInfo& worker) override;
  absl::StatusOr<LeaseBatch> Lease(const std::string& worker_id, const std::string& request_id,
                                   int32_t max_phases, int64_t wait_ms,
                                   const std::vector<std::string>& after_lease_ids) override;
  absl::StatusOr<std::vector<std::string>> Heartbeat(const std::string& worker_id,
                                                     const std::vector<std::string>& lease_ids,
                                                     int64_t timeout_ms) override;
  absl::StatusOr<ReportDisposition> Report(const AttemptReport& report) override;
  // WorkerService.ReportBatch; a coordinator older than the call answers
  // Unimplemented (the outer status).
  absl::StatusOr<std::vector<absl::StatusOr<ReportDisposition>>> ReportBatch(
      const std::vector<AttemptReport>& reports) override;
  void CancelPendingLease() override;

 private:
  struct Stub;
  std::unique_ptr<Stub> stub_;
};

}  // namespace sluice
