#include "coordinator/grpc/services.h"
#include "coordinator/grpc/status_util.h"
#include "coordinator/insight/session_report.h"
#include "proto/convert.h"

namespace sluice {

grpc::Status OperatorServiceImpl::Check(const grpc::ServerContext* ctx) const {
  if (auth_ == nullptr) return grpc::Status::OK;
  return ToGrpcStatus(auth_->Authorize(*ctx, CallKind::kOperator, ""));
}

void ToProto(const LeasingPause& p, v1::LeasingPause* out) {
  out->set_session_id(p.session_id);
  out->set_reason(p.reason);
  out->set_paused_at_ms(p.paused_at_ms);
}

LeasingPause FromProto(const v1::LeasingPause& in) {
  LeasingPause p;
  p.session_id = in.session_id();
  p.paused = true;
  p.reason = in.reason();
  p.paused_at_ms = in.paused_at_ms();
  return p;
}

TelemetryWarning FromProto(const v1::TelemetryWarning& in) {
  TelemetryWarning w;
  w.kind = ParseTelemetryWarningKind(in.kind());
  w.worker_id = in.worker_id();
  w.attempts = in.attempts();
  w.zero_event_attempts = in.zero_event_attempts();
  w.message = in.message();
  return w;
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
    ws->set_gone(status.gone_workers.contains(w.worker_id));
    auto it = status.active_leases_by_worker.find(w.worker_id);
    ws->set_active_leases(it == status.active_leases_by_worker.end() ? 0 : it->second);
  }
  for (const LeaseGrant& l : status.active_leases) ToProto(l, out->add_active_leases());
  if (status.session) ToProto(*status.session, out->mutable_session());
  out->set_session_finished(status.session_finished);
  out->set_session_done(status.session_done);
  for (const SkipRow& k : status.skipped) {
    v1::SkipRow* row = out->add_skipped();
    row->set_kind(k.kind);
    row->set_run_id(k.run_id);
    row->set_phase_id(k.phase_id);
    row->set_phases(k.phases);
    row->set_reason(k.reason);
  }
  if (status.pause) ToProto(*status.pause, out->mutable_pause());
  for (const TelemetryWarning& w : status.telemetry_warnings) {
    v1::TelemetryWarning* tw = out->add_telemetry_warnings();
    tw->set_kind(std::string(TelemetryWarningKindName(w.kind)));
    tw->set_worker_id(w.worker_id);
    tw->set_attempts(w.attempts);
    tw->set_zero_event_attempts(w.zero_event_attempts);
    tw->set_message(w.message);
  }
  out->set_late_reports(status.late_reports);
  out->set_cluster_id(status.cluster_id);
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

grpc::Status OperatorServiceImpl::ImportBacklogStream(
    grpc::ServerContext* ctx, grpc::ServerReader<v1::ImportBacklogRequest>* reader,
    v1::ImportBacklogResponse* resp) {
  if (grpc::Status st = Check(ctx); !st.ok()) return st;
  bool last_seen = false;
  auto result = coordinator_.ImportBacklogChunks([&](std::vector<PhaseSpec>* chunk) {
    chunk->clear();
    v1::ImportBacklogRequest req;
    while (chunk->empty()) {
      if (!reader->Read(&req)) {
        // The client closed the stream: a commit only after its last message.
        if (last_seen) return absl::OkStatus();
        return absl::CancelledError(
            "import stream ended before its last message: nothing imported");
      }
      if (last_seen)
        return absl::InvalidArgumentError("import stream continued after its last message");
      last_seen = req.last();
      for (const v1::PhaseSpec& p : req.phases()) chunk->push_back(FromProto(p));
      if (last_seen && chunk->empty()) break;
    }
    return absl::OkStatus();
  });
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
  auto session =
      coordinator_.StartSession(FromProto(req->settings()), req->session_id(), req->allow_empty());
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

grpc::Status OperatorServiceImpl::GetStatus(grpc::ServerContext* ctx,
                                            const v1::GetStatusRequest* req,
                                            v1::GetStatusResponse* resp) {
  if (grpc::Status st = Check(ctx); !st.ok()) return st;
  auto status = coordinator_.Status(req->explain_skips());
  if (!status.ok()) return ToGrpcStatus(status.status());
  StatusToProto(*status, resp);
  return grpc::Status::OK;
}

grpc::Status OperatorServiceImpl::ResumeLeasing(grpc::ServerContext* ctx,
                                                const v1::ResumeLeasingRequest* req,
                                                v1::ResumeLeasingResponse* resp) {
  if (grpc::Status st = Check(ctx); !st.ok()) return st;
  auto resumed = coordinator_.ResumeLeasing(req->session_id());
  if (!resumed.ok()) return ToGrpcStatus(resumed.status());
  ToProto(*resumed, resp->mutable_resumed());
  return grpc::Status::OK;
}

grpc::Status OperatorServiceImpl::GetReport(grpc::ServerContext* ctx,
                                            const v1::GetReportRequest* req,
                                            v1::GetReportResponse* resp) {
  if (grpc::Status st = Check(ctx); !st.ok()) return st;
  if (absl::Status st = coordinator_.CheckLeader(); !st.ok()) return ToGrpcStatus(st);
  auto report = coordinator_.SessionReportFor(req->session_id());
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
  v1::ExpectedCurve* curve = out->mutable_expected_curve();
  for (const ExpectedCurvePoint& p : plan.curve.points) {
    v1::ExpectedCurvePoint* point = curve->add_points();
    point->set_worker_minutes(p.worker_minutes);
    point->set_events(p.events);
    point->set_phases(p.phases);
    point->set_slice_yield(p.slice_yield);
  }
  curve->set_runs(plan.curve.runs);
  curve->set_marginal_yield(plan.curve.marginal_yield);
  curve->set_left_off_runs(plan.curve.left_off_runs);
  curve->set_left_off_phases(plan.curve.left_off_phases);
}

}  // namespace sluice
