#include "client/grpc_coordinator_client.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "proto/convert.h"
#include "sluice/v1/sluice.grpc.pb.h"

namespace sluice {
namespace {

absl::Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

void SetDeadline(grpc::ClientContext* ctx, int64_t ms) {
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(ms));
}

void Authorize(grpc::ClientContext* ctx, const std::string& authorization) {
  if (!authorization.empty()) ctx->AddMetadata("authorization", authorization);
}

}  // namespace

struct GrpcCoordinatorClient::Stub {
  std::unique_ptr<v1::WorkerService::Stub> stub;
  std::string authorization;  // "Bearer <token>", or empty
  std::mutex mu;
  grpc::ClientContext* pending_lease = nullptr;  // guarded by mu
  bool cancel_requested = false;                 // guarded by mu
};

void GrpcCoordinatorClient::CancelPendingLease() {
  std::lock_guard<std::mutex> lock(stub_->mu);
  stub_->cancel_requested = true;
  if (stub_->pending_lease != nullptr) stub_->pending_lease->TryCancel();
}

GrpcCoordinatorClient::GrpcCoordinatorClient(std::shared_ptr<grpc::Channel> channel,
                                             std::string token)
    : stub_(std::make_unique<Stub>()) {
  stub_->stub = v1::WorkerService::NewStub(channel);
  if (!token.empty()) stub_->authorization = BearerHeader(token);
}

GrpcCoordinatorClient::~GrpcCoordinatorClient() = default;

absl::StatusOr<WorkerRegistration> GrpcCoordinatorClient::Register(const WorkerInfo& worker) {
  v1::RegisterRequest req;
  req.set_worker_id(worker.worker_id);
  req.set_host(worker.host);
  req.set_slots(worker.slots);
  for (const std::string& l : worker.labels) req.add_labels(l);
  req.set_version(worker.version);
  req.set_cluster_id(worker.cluster_id);
  v1::RegisterResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, 10'000);
  Authorize(&ctx, stub_->authorization);
  grpc::Status st = stub_->stub->Register(&ctx, req, &resp);
  if (!st.ok()) return FromGrpc(st);
  return WorkerRegistration{resp.lease_ttl_ms(), resp.heartbeat_interval_ms(),
                            resp.max_lease_wait_ms(), resp.cluster_id(),
                            resp.lease_waits_for_reports()};
}

absl::StatusOr<LeaseBatch> GrpcCoordinatorClient::Lease(
    const std::string& worker_id, const std::string& request_id, int32_t max_phases,
    int64_t wait_ms, const std::vector<std::string>& after_lease_ids) {
  v1::LeaseRequest req;
  req.set_worker_id(worker_id);
  req.set_request_id(request_id);
  req.set_max_phases(max_phases);
  req.set_wait_ms(wait_ms);
  for (const std::string& id : after_lease_ids) req.add_after_lease_ids(id);
  v1::LeaseResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, wait_ms + 10'000);
  Authorize(&ctx, stub_->authorization);
  {
    std::lock_guard<std::mutex> lock(stub_->mu);
    if (stub_->cancel_requested) return absl::CancelledError("worker is draining");
    stub_->pending_lease = &ctx;
  }
  grpc::Status st = stub_->stub->Lease(&ctx, req, &resp);
  {
    std::lock_guard<std::mutex> lock(stub_->mu);
    stub_->pending_lease = nullptr;
  }
  if (!st.ok()) return FromGrpc(st);
  LeaseBatch batch;
  batch.session_active = resp.session_active();
  for (const v1::Lease& l : resp.leases()) {
    LeaseGrant g = FromProto(l);
    g.worker_id = worker_id;
    batch.leases.push_back(std::move(g));
  }
  return batch;
}

absl::StatusOr<std::vector<std::string>> GrpcCoordinatorClient::Heartbeat(
    const std::string& worker_id, const std::vector<std::string>& lease_ids, int64_t timeout_ms) {
  v1::HeartbeatRequest req;
  req.set_worker_id(worker_id);
  for (const std::string& id : lease_ids) req.add_lease_ids(id);
  v1::HeartbeatResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, timeout_ms);
  Authorize(&ctx, stub_->authorization);
  grpc::Status st = stub_->stub->Heartbeat(&ctx, req, &resp);
  if (!st.ok()) return FromGrpc(st);
  return std::vector<std::string>(resp.cancel_lease_ids().begin(), resp.cancel_lease_ids().end());
}

namespace {

absl::StatusOr<ReportDisposition> DispositionFromProto(const v1::ReportResponse& resp) {
  switch (resp.disposition()) {
    case v1::ReportResponse::ACCEPTED:
      return ReportDisposition::kAccepted;
    case v1::ReportResponse::DUPLICATE:
      return ReportDisposition::kDuplicate;
    case v1::ReportResponse::LATE:
      return ReportDisposition::kLate;
    case v1::ReportResponse::UNKNOWN_LEASE:
      return ReportDisposition::kUnknownLease;
    default:
      return absl::InternalError("coordinator sent no report disposition");
  }
}

}  // namespace

absl::StatusOr<ReportDisposition> GrpcCoordinatorClient::Report(const AttemptReport& report) {
  v1::ReportRequest req;
  ToProto(report, &req);
  v1::ReportResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, 30'000);
  Authorize(&ctx, stub_->authorization);
  grpc::Status st = stub_->stub->Report(&ctx, req, &resp);
  if (!st.ok()) return FromGrpc(st);
  return DispositionFromProto(resp);
}

absl::StatusOr<std::vector<absl::StatusOr<ReportDisposition>>> GrpcCoordinatorClient::ReportBatch(
    const std::vector<AttemptReport>& reports) {
  v1::ReportBatchRequest req;
  for (const AttemptReport& report : reports) ToProto(report, req.add_reports());
  v1::ReportBatchResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, 30'000);
  Authorize(&ctx, stub_->authorization);
  grpc::Status st = stub_->stub->ReportBatch(&ctx, req, &resp);
  if (!st.ok()) return FromGrpc(st);
  if (resp.results_size() != req.reports_size()) {
    return absl::InternalError(absl::StrCat("coordinator answered ", resp.results_size(), " of ",
                                            req.reports_size(), " reports"));
  }
  std::vector<absl::StatusOr<ReportDisposition>> answers;
  answers.reserve(reports.size());
  for (const v1::ReportBatchResponse::Result& r : resp.results()) {
    if (r.status_code() != 0) {
      answers.push_back(FromGrpc(
          grpc::Status(static_cast<grpc::StatusCode>(r.status_code()), r.status_message())));
    } else {
      answers.push_back(DispositionFromProto(r.response()));
    }
  }
  return answers;
}

}  // namespace sluice
