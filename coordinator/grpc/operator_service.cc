#include "coordinator/grpc/services.h"
#include "coordinator/grpc/status_util.h"
#include "coordinator/session_report.h"
#include "proto/convert.h"

namespace sluice {

grpc::Status OperatorServiceImpl::Check(const grpc::ServerContext* ctx) const {
  if (auth_ == nullptr) return grpc::Status::OK;
  return ToGrpcStatus(auth_->Authorize(*ctx, CallKind::kOperator, ""));
}

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
  out->set_late_reports(status.late_reports);
}

grpc::Status OperatorServiceImpl::ImportBacklog(grpc::ServerContext* ctx,
                                                const v1::ImportBacklogRequest* req,
                                                v1::ImportBacklogResponse* resp) {
  if (grpc::Status st = Check(ctx); !st.ok()) return st;
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

grpc::Status OperatorServiceImpl::StartSession(grpc::ServerContext* ctx,
                                               const v1::StartSessionRequest* req,
                                               v1::StartSessionResponse* resp) {
  if (grpc::Status st = Check(ctx); !st.ok()) return st;
  auto session = coordinator_.StartSession(FromProto(req->settings()), req->session_id());
  if (!session.ok()) return ToGrpcStatus(session.status());
  ToProto(*session, resp->mutable_session());
  return grpc::Status::OK;
}

grpc::Status OperatorServiceImpl::StopSession(grpc::ServerContext* ctx,
                                              const v1::StopSessionRequest* req,
                                              v1::StopSessionResponse* resp) {
  if (grpc::Status st = Check(ctx); !st.ok()) return st;
  auto session = coordinator_.StopSession(req->session_id(), req->reason());
  if (!session.ok()) return ToGrpcStatus(session.status());
  ToProto(*session, resp->mutable_session());
  return grpc::Status::OK;
}

grpc::Status OperatorServiceImpl::GetStatus(grpc::ServerContext* ctx, const v1::GetStatusRequest*,
                                            v1::GetStatusResponse* resp) {
  if (grpc::Status st = Check(ctx); !st.ok()) return st;
  auto status = coordinator_.Status();
  if (!status.ok()) return ToGrpcStatus(status.status());
  StatusToProto(*status, resp);
  return grpc::Status::OK;
}

grpc::Status OperatorServiceImpl::GetReport(grpc::ServerContext* ctx,
                                            const v1::GetReportRequest* req,
                                            v1::GetReportResponse* resp) {
  if (grpc::Status st = Check(ctx); !st.ok()) return st;
  if (absl::Status st = coordinator_.CheckLeader(); !st.ok()) return ToGrpcStatus(st);
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

grpc::Status OperatorServiceImpl::ListFingerprints(grpc::ServerContext* ctx,
                                                   const v1::ListFingerprintsRequest*,
                                                   v1::ListFingerprintsResponse* resp) {
  if (grpc::Status st = Check(ctx); !st.ok()) return st;
  auto fingerprints = coordinator_.ListFingerprints();
  if (!fingerprints.ok()) return ToGrpcStatus(fingerprints.status());
  for (const FingerprintInfo& f : *fingerprints) {
    v1::Fingerprint* out = resp->add_fingerprints();
    out->set_fingerprint(f.fingerprint);
    out->set_id(f.id);
    out->set_count(f.count);
    for (const std::string& run : f.runs) out->add_runs(run);
    out->set_example_error(f.example_error);
    out->set_last_seen_ms(f.last_seen_ms);
  }
  auto latest = coordinator_.store().LatestSession();
  if (!latest.ok()) return ToGrpcStatus(latest.status());
  resp->set_max_fingerprint_repeats(*latest ? (*latest)->settings.max_fingerprint_repeats
                                            : SessionSettings{}.max_fingerprint_repeats);
  return grpc::Status::OK;
}

grpc::Status OperatorServiceImpl::UnblockFingerprint(grpc::ServerContext* ctx,
                                                     const v1::UnblockFingerprintRequest* req,
                                                     v1::UnblockFingerprintResponse* resp) {
  if (grpc::Status st = Check(ctx); !st.ok()) return st;
  auto fp = coordinator_.UnblockFingerprint(req->fingerprint());
  if (!fp.ok()) return ToGrpcStatus(fp.status());
  resp->set_fingerprint(*fp);
  return grpc::Status::OK;
}

grpc::Status OperatorServiceImpl::PlanSession(grpc::ServerContext* ctx,
                                              const v1::PlanSessionRequest* req,
                                              v1::PlanSessionResponse* resp) {
  if (grpc::Status st = Check(ctx); !st.ok()) return st;
  const int64_t limit = req->limit() <= 0 ? 1'000'000 : req->limit();
  auto plan = coordinator_.Plan(FromProto(req->settings()), limit);
  if (!plan.ok()) return ToGrpcStatus(plan.status());
  PlanToProto(*plan, resp);
  return grpc::Status::OK;
}

void PlanToProto(const LeasePlan& plan, v1::PlanSessionResponse* out) {
  for (const PlannedLease& l : plan.leases) {
    v1::PlannedLease* p = out->add_leases();
    p->set_run_id(l.run_id);
    p->set_phase_id(l.phase_id);
    p->set_attempt(l.attempt);
    p->set_why(l.why);
    p->set_expected_yield(l.expected_yield);
  }
  for (const RunDecision& d : plan.excluded) {
    v1::RunExclusion* e = out->add_excluded();
    e->set_run_id(d.ranking.run_id);
    e->set_reason(d.excluded_reason);
    e->set_pending(d.pending);
  }
  for (const PhaseSpec& p : plan.needs_labels) ToProto(p, out->add_needs_labels());
}

}  // namespace sluice
