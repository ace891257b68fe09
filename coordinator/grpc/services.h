// Thin gRPC adapters: convert messages, delegate to Coordinator, map status.
// No logic lives here; Coordinator is tested without a network. Every handler
// first asks the Authenticator (auth.h) whether the caller may make the call.
#pragma once

#include <memory>

#include "coordinator/coordinator.h"
#include "coordinator/grpc/auth.h"
#include "sluice/v1/sluice.grpc.pb.h"

namespace sluice {

class WorkerServiceImpl final : public v1::WorkerService::Service {
 public:
  explicit WorkerServiceImpl(Coordinator& coordinator) : coordinator_(coordinator) {}
  // Set before the server starts; null: no authentication.
  void SetAuthenticator(std::shared_ptr<const Authenticator> auth) { auth_ = std::move(auth); }
  grpc::Status Register(grpc::ServerContext* ctx, const v1::RegisterRequest* req,
                        v1::RegisterResponse* resp) override;
  grpc::Status Lease(grpc::ServerContext* ctx, const v1::LeaseRequest* req,
                     v1::LeaseResponse* resp) override;
  grpc::Status Heartbeat(grpc::ServerContext* ctx, const v1::HeartbeatRequest* req,
                         v1::HeartbeatResponse* resp) override;
  grpc::Status Report(grpc::ServerContext* ctx, const v1::ReportRequest* req,
                      v1::ReportResponse* resp) override;
  // One worker's outcomes: every report names the same worker_id, the one
  // authenticated.
  grpc::Status ReportBatch(grpc::ServerContext* ctx, const v1::ReportBatchRequest* req,
                           v1::ReportBatchResponse* resp) override;

 private:
  grpc::Status Check(const grpc::ServerContext* ctx, const std::string& worker_id) const;
  Coordinator& coordinator_;
  std::shared_ptr<const Authenticator> auth_;
};

class OperatorServiceImpl final : public v1::OperatorService::Service {
 public:
  explicit OperatorServiceImpl(Coordinator& coordinator) : coordinator_(coordinator) {}
  // Set before the server starts; null: no authentication.
  void SetAuthenticator(std::shared_ptr<const Authenticator> auth) { auth_ = std::move(auth); }
  grpc::Status ImportBacklog(grpc::ServerContext* ctx, const v1::ImportBacklogRequest* req,
                             v1::ImportBacklogResponse* resp) override;
  grpc::Status ImportBacklogStream(grpc::ServerContext* ctx,
                                   grpc::ServerReader<v1::ImportBacklogRequest>* reader,
                                   v1::ImportBacklogResponse* resp) override;
  grpc::Status StartSession(grpc::ServerContext* ctx, const v1::StartSessionRequest* req,
                            v1::StartSessionResponse* resp) override;
  grpc::Status StopSession(grpc::ServerContext* ctx, const v1::StopSessionRequest* req,
                           v1::StopSessionResponse* resp) override;
  grpc::Status GetStatus(grpc::ServerContext* ctx, const v1::GetStatusRequest* req,
                         v1::GetStatusResponse* resp) override;
  grpc::Status ResumeLeasing(grpc::ServerContext* ctx, const v1::ResumeLeasingRequest* req,
                             v1::ResumeLeasingResponse* resp) override;
  grpc::Status GetReport(grpc::ServerContext* ctx, const v1::GetReportRequest* req,
                         v1::GetReportResponse* resp) override;
  grpc::Status ListFingerprints(grpc::ServerContext* ctx, const v1::ListFingerprintsRequest* req,
                                v1::ListFingerprintsResponse* resp) override;
  grpc::Status UnblockFingerprint(grpc::ServerContext* ctx,
                                  const v1::UnblockFingerprintRequest* req,
                                  v1::UnblockFingerprintResponse* resp) override;
  grpc::Status PlanSession(grpc::ServerContext* ctx, const v1::PlanSessionRequest* req,
                           v1::PlanSessionResponse* resp) override;

 private:
  grpc::Status Check(const grpc::ServerContext* ctx) const;
  Coordinator& coordinator_;
  std::shared_ptr<const Authenticator> auth_;
};

void ToProto(const LeasingPause& pause, v1::LeasingPause* out);
LeasingPause FromProto(const v1::LeasingPause& pause);
TelemetryWarning FromProto(const v1::TelemetryWarning& warning);

// Fills a GetStatusResponse (shared by the service and the CLI's direct mode).
void StatusToProto(const CoordinatorStatus& status, v1::GetStatusResponse* out);
void PlanToProto(const LeasePlan& plan, v1::PlanSessionResponse* out);

}  // namespace sluice
