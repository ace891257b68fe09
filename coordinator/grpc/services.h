// Thin gRPC adapters: convert messages, delegate to Coordinator, map status.
// No logic lives here; Coordinator is tested without a network.
#pragma once

#include "coordinator/coordinator.h"
#include "sluice/v1/sluice.grpc.pb.h"

namespace sluice {

class WorkerServiceImpl final : public v1::WorkerService::Service {
 public:
  explicit WorkerServiceImpl(Coordinator& coordinator) : coordinator_(coordinator) {}
  grpc::Status Register(grpc::ServerContext* ctx, const v1::RegisterRequest* req,
                        v1::RegisterResponse* resp) override;
  grpc::Status Lease(grpc::ServerContext* ctx, const v1::LeaseRequest* req,
                     v1::LeaseResponse* resp) override;
  grpc::Status Heartbeat(grpc::ServerContext* ctx, const v1::HeartbeatRequest* req,
                         v1::HeartbeatResponse* resp) override;
  grpc::Status Report(grpc::ServerContext* ctx, const v1::ReportRequest* req,
                      v1::ReportResponse* resp) override;

 private:
  Coordinator& coordinator_;
};

class OperatorServiceImpl final : public v1::OperatorService::Service {
 public:
  explicit OperatorServiceImpl(Coordinator& coordinator) : coordinator_(coordinator) {}
  grpc::Status ImportBacklog(grpc::ServerContext* ctx, const v1::ImportBacklogRequest* req,
                             v1::ImportBacklogResponse* resp) override;
  grpc::Status StartSession(grpc::ServerContext* ctx, const v1::StartSessionRequest* req,
                            v1::StartSessionResponse* resp) override;
  grpc::Status StopSession(grpc::ServerContext* ctx, const v1::StopSessionRequest* req,
                           v1::StopSessionResponse* resp) override;
  grpc::Status GetStatus(grpc::ServerContext* ctx, const v1::GetStatusRequest* req,
                         v1::GetStatusResponse* resp) override;
  grpc::Status GetReport(grpc::ServerContext* ctx, const v1::GetReportRequest* req,
                         v1::GetReportResponse* resp) override;

 private:
  Coordinator& coordinator_;
};

// Fills a GetStatusResponse (shared by the service and the CLI's direct mode).
void StatusToProto(const CoordinatorStatus& status, v1::GetStatusResponse* out);

}  // namespace sluice
