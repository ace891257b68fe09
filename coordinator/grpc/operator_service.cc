#include "coordinator/grpc/services.h"
#include "coordinator/grpc/status_util.h"
#include "coordinator/session_report.h"
#include "proto/convert.h"

namespace sluice {

void StatusToProto(const CoordinatorStatus& status, v1::GetStatusResponse* out) {
  out->mutable_phases()->set_pending(status.phases.pending);
  out->mutable_phases()->set_leased(status.phases.leased);
  out->mutable_phases()->set_succeeded(status.phases.succeeded);
  out->mutable_phases()->set_failed(status.phases.failed);
  for (const WorkerInfo& w : status.workers) {
    v1::WorkerStatus* ws = out->add_workers();
    ws->set_worker_id(w.worker_id);
    ws->set_host(w.host);
    ws->set_slots(w.slots);
    for (const std::string& l : w.labels) ws->add_labels(l);
    ws->set_version(w.version);
    ws->set_last_seen_ms(w.last_seen_ms);
    auto it = status.active_leases_by_worker.find(w.worker_id);
    ws->set_active_leases(it == status.active_leases_by_worker.end() ? 0 : it->second);
  }
  for (const LeaseGrant& l : status.active_leases) ToProto(l, out->add_active_leases());
  if (status.session) ToProto(*status.session, out->mutable_session());
  out->set_session_finished(status.session_finished);
  out->set_session_done(status.session_done);
}

grpc::Status OperatorServiceImpl::ImportBacklog(grpc::ServerContext*,
                                                const v1::ImportBacklogRequest* req,
                                                v1::ImportBacklogResponse* resp) {
  std::vector<PhaseSpec> phases;
  phases.reserve(static_cast<size_t>(req->phases_size()));
  for (const v1::PhaseSpec& p : req->phases()) phases.push_back(FromProto(p));
  auto result = coordinator_.ImportBacklog(phases);
  if (!result.ok()) return ToGrpcStatus(result.status());
  resp->set_inserted(result->inserted);
  resp->set_updated(result->updated);
  resp->set_unchanged(result->unchanged);
  return grpc::Status::OK;
}

grpc::Status OperatorServiceImpl::StartSession(grpc::ServerContext*,
                                               const v1::StartSessionRequest* req,
                                               v1::StartSessionResponse* resp) {
  auto session = coordinator_.StartSession(FromProto(req->settings()), req->session_id());
  if (!session.ok()) return ToGrpcStatus(session.status());
  ToProto(*session, resp->mutable_session());
  return grpc::Status::OK;
}

grpc::Status OperatorServiceImpl::StopSession(grpc::ServerContext*,
                                              const v1::StopSessionRequest* req,
                                              v1::StopSessionResponse* resp) {
  auto session = coordinator_.StopSession(req->session_id(), req->reason());
  if (!session.ok()) return ToGrpcStatus(session.status());
  ToProto(*session, resp->mutable_session());
  return grpc::Status::OK;
}

grpc::Status OperatorServiceImpl::GetStatus(grpc::ServerContext*, const v1::GetStatusRequest*,
                                            v1::GetStatusResponse* resp) {
  auto status = coordinator_.Status();
  if (!status.ok()) return ToGrpcStatus(status.status());
  StatusToProto(*status, resp);
  return grpc::Status::OK;
}

grpc::Status OperatorServiceImpl::GetReport(grpc::ServerContext*, const v1::GetReportRequest* req,
                                            v1::GetReportResponse* resp) {
  std::string session_id = req->session_id();
  if (session_id.empty()) {
    auto latest = coordinator_.store().LatestSession();
    if (!latest.ok()) return ToGrpcStatus(latest.status());
    if (!*latest) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no session yet");
    session_id = (*latest)->session_id;
  }
  auto report = BuildSessionReport(coordinator_.store(), session_id);
  if (!report.ok()) return ToGrpcStatus(report.status());
  resp->set_report_json(SessionReportJson(*report));
  return grpc::Status::OK;
}

}  // namespace sluice
