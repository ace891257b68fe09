#include "coordinator/grpc/services.h"
#include "coordinator/grpc/status_util.h"
#include "coordinator/request_checks.h"
#include "proto/convert.h"

namespace sluice {

grpc::Status WorkerServiceImpl::Check(const grpc::ServerContext* ctx,
                                      const std::string& worker_id) const {
  if (auth_ == nullptr) return grpc::Status::OK;
  return ToGrpcStatus(auth_->Authorize(*ctx, CallKind::kWorker, worker_id));
}

grpc::Status WorkerServiceImpl::Register(grpc::ServerContext* ctx, const v1::RegisterRequest* req,
                                         v1::RegisterResponse* resp) {
  if (grpc::Status st = Check(ctx, req->worker_id()); !st.ok()) return st;
  WorkerInfo w;
  w.worker_id = req->worker_id();
  w.host = req->host();
  w.slots = req->slots();
  w.labels.assign(req->labels().begin(), req->labels().end());
  w.version = req->version();
  w.cluster_id = req->cluster_id();
  auto result = coordinator_.Register(w);
  if (!result.ok()) return ToGrpcStatus(result.status());
  resp->set_lease_ttl_ms(result->lease_ttl_ms);
  resp->set_heartbeat_interval_ms(result->heartbeat_interval_ms);
  resp->set_max_lease_wait_ms(result->max_lease_wait_ms);
  resp->set_cluster_id(result->cluster_id);
  resp->set_lease_waits_for_reports(result->lease_waits_for_reports);
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::Lease(grpc::ServerContext* ctx, const v1::LeaseRequest* req,
                                      v1::LeaseResponse* resp) {
  if (grpc::Status st = Check(ctx, req->worker_id()); !st.ok()) return st;
  const std::vector<std::string> after(req->after_lease_ids().begin(),
                                       req->after_lease_ids().end());
  auto result = coordinator_.Lease(req->worker_id(), req->request_id(), req->max_phases(),
                                   req->wait_ms(), after);
  if (!result.ok()) return ToGrpcStatus(result.status());
  for (const LeaseGrant& g : result->leases) ToProto(g, resp->add_leases());
  resp->set_session_active(result->session_active);
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::Heartbeat(grpc::ServerContext* ctx, const v1::HeartbeatRequest* req,
                                          v1::HeartbeatResponse* resp) {
  if (grpc::Status st = Check(ctx, req->worker_id()); !st.ok()) return st;
  std::vector<std::string> ids(req->lease_ids().begin(), req->lease_ids().end());
  auto cancel = coordinator_.Heartbeat(req->worker_id(), ids);
  if (!cancel.ok()) return ToGrpcStatus(cancel.status());
  for (const std::string& id : *cancel) resp->add_cancel_lease_ids(id);
  resp->set_lease_ttl_ms(coordinator_.config().lease_ttl_ms);
  return grpc::Status::OK;
}

namespace {

void AnswerToProto(const ReportAnswer& answer, v1::ReportResponse* resp) {
  switch (answer.result.disposition) {
    case ReportDisposition::kAccepted:
      resp->set_disposition(v1::ReportResponse::ACCEPTED);
      break;
    case ReportDisposition::kDuplicate:
      resp->set_disposition(v1::ReportResponse::DUPLICATE);
      break;
    case ReportDisposition::kLate:
      resp->set_disposition(v1::ReportResponse::LATE);
      break;
    case ReportDisposition::kUnknownLease:
      resp->set_disposition(v1::ReportResponse::UNKNOWN_LEASE);
      break;
  }
  resp->set_phase_state(ToProto(answer.result.phase_state));
  resp->set_fingerprint(answer.fingerprint);
}

}  // namespace

grpc::Status WorkerServiceImpl::Report(grpc::ServerContext* ctx, const v1::ReportRequest* req,
                                       v1::ReportResponse* resp) {
  if (grpc::Status st = Check(ctx, req->worker_id()); !st.ok()) return st;
  auto report = FromProto(*req);
  if (!report.ok()) return ToGrpcStatus(report.status());
  auto answer = coordinator_.Report(*report);
  if (!answer.ok()) return ToGrpcStatus(answer.status());
  AnswerToProto(*answer, resp);
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::ReportBatch(grpc::ServerContext* ctx,
                                            const v1::ReportBatchRequest* req,
                                            v1::ReportBatchResponse* resp) {
  // Here as well as in Coordinator::ReportBatch: reports that do not
  // translate never reach it, and reports(0) needs one.
  if (absl::Status st = CheckReportBatchSize(static_cast<size_t>(req->reports_size())); !st.ok()) {
    return ToGrpcStatus(st);
  }
  const std::string& worker_id = req->reports(0).worker_id();
  for (const v1::ReportRequest& r : req->reports()) {
    if (r.worker_id() != worker_id) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "every report of a batch must name the same worker_id");
    }
  }
  if (grpc::Status st = Check(ctx, worker_id); !st.ok()) return st;
  // Reports that do not translate are answered in place; the rest go on.
  std::vector<absl::Status> untranslated(static_cast<size_t>(req->reports_size()));
  std::vector<AttemptReport> reports;
  for (int i = 0; i < req->reports_size(); ++i) {
    auto report = FromProto(req->reports(i));
    if (!report.ok()) {
      untranslated[static_cast<size_t>(i)] = report.status();
      continue;
    }
    reports.push_back(*std::move(report));
  }
  std::vector<absl::StatusOr<ReportAnswer>> answers;
  if (!reports.empty()) {
    auto recorded = coordinator_.ReportBatch(reports);
    if (!recorded.ok()) return ToGrpcStatus(recorded.status());
    answers = *std::move(recorded);
  }
  size_t next = 0;
  for (int i = 0; i < req->reports_size(); ++i) {
    v1::ReportBatchResponse::Result* out = resp->add_results();
    absl::Status status = untranslated[static_cast<size_t>(i)];
    if (status.ok()) {
      const absl::StatusOr<ReportAnswer>& answer = answers[next++];
      if (answer.ok()) {
        AnswerToProto(*answer, out->mutable_response());
        continue;
      }
      status = answer.status();
    }
    const grpc::Status wire = ToGrpcStatus(status);
    out->set_status_code(static_cast<int32_t>(wire.error_code()));
    out->set_status_message(wire.error_message());
  }
  return grpc::Status::OK;
}

}  // namespace sluice
