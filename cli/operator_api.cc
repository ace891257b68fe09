#include "cli/operator_api.h"

#include <grpcpp/grpcpp.h>

#include "cli/failover_operator_api.h"
#include "common/coordinator_addresses.h"
#include "coordinator/grpc/services.h"
#include "coordinator/grpc/status_util.h"
#include "coordinator/insight/session_report.h"
#include "coordinator/store/store_factory.h"
#include "proto/convert.h"
#include "sluice/v1/sluice.grpc.pb.h"

namespace sluice {

namespace {

class DirectOperator final : public OperatorApi {
 public:
  // `config` configures the owned coordinator (coordinator == nullptr).
  DirectOperator(std::unique_ptr<StateStore> owned, Coordinator* coordinator,
                 CoordinatorConfig config = {})
      : owned_store_(std::move(owned)),
        owned_coordinator_(coordinator == nullptr
                               ? std::make_unique<Coordinator>(
                                     *owned_store_, SystemClock::Default(), std::move(config))
                               : nullptr),
        coordinator_(coordinator == nullptr ? *owned_coordinator_ : *coordinator) {}

  absl::StatusOr<ImportResult> Import(const std::vector<PhaseSpec>& phases) override {
    return coordinator_.ImportBacklog(phases);
  }
  absl::StatusOr<ImportResult> ImportChunks(
      const std::function<absl::Status(std::vector<PhaseSpec>*)>& next) override {
    return coordinator_.ImportBacklogChunks(next);
  }
  absl::StatusOr<SessionRecord> StartSession(const SessionSettings& settings,
                                             const std::string& session_id,
                                             bool allow_empty) override {
    return coordinator_.StartSession(settings, session_id, allow_empty);
  }
  absl::StatusOr<SessionRecord> StopSession(const std::string& session_id,
                                            const std::string& reason) override {
    return coordinator_.StopSession(session_id, reason);
  }
  absl::StatusOr<CoordinatorStatus> Status(bool explain_skips) override {
    return coordinator_.Status(explain_skips);
  }
  absl::StatusOr<LeasingPause> Resume(const std::string& session_id) override {
    return coordinator_.ResumeLeasing(session_id);
  }
  absl::StatusOr<std::string> ReportJson(const std::string& session_id) override {
    auto report = coordinator_.SessionReportFor(session_id);
    if (!report.ok()) return report.status();
    return SessionReportJson(*report);
  }
  absl::StatusOr<std::pair<std::vector<FingerprintInfo>, int32_t>> Fingerprints() override {
    auto list = coordinator_.ListFingerprints();
    if (!list.ok()) return list.status();
    auto latest = coordinator_.store().LatestSession();
    if (!latest.ok()) return latest.status();
    return std::make_pair(*list, *latest ? (*latest)->settings.max_fingerprint_repeats
                                         : SessionSettings{}.max_fingerprint_repeats);
  }
  absl::StatusOr<std::string> Unblock(const std::string& fingerprint) override {
    return coordinator_.UnblockFingerprint(fingerprint);
  }
  absl::StatusOr<LeasePlan> Plan(const SessionSettings& settings, int64_t limit) override {
    return coordinator_.Plan(settings, limit);
  }

 private:
  std::unique_ptr<StateStore> owned_store_;
  std::unique_ptr<Coordinator> owned_coordinator_;
  Coordinator& coordinator_;
};

class GrpcOperator final : public OperatorApi {
 public:
  GrpcOperator(std::shared_ptr<grpc::Channel> channel, const std::string& token)
      : stub_(v1::OperatorService::NewStub(channel)),
        authorization_(token.empty() ? std::string() : BearerHeader(token)) {}

  absl::StatusOr<ImportResult> Import(const std::vector<PhaseSpec>& phases) override {
    v1::ImportBacklogRequest req;
    for (const PhaseSpec& p : phases) ToProto(p, req.add_phases());
    v1::ImportBacklogResponse resp;
    grpc::ClientContext ctx;
    Deadline(&ctx);
    if (auto st = stub_->ImportBacklog(&ctx, req, &resp); !st.ok()) return FromGrpcStatus(st);
    return ImportResult{resp.inserted(), resp.updated(), resp.unchanged()};
  }
  // One ImportBacklogStream: a message per chunk, the last one marked. On an
  // error from `next` (a bad line) the call is cancelled unmarked, so the
  // coordinator imports nothing.
  absl::StatusOr<ImportResult> ImportChunks(
      const std::function<absl::Status(std::vector<PhaseSpec>*)>& next) override {
    grpc::ClientContext ctx;
    // A big backlog streams for longer than one unary call may take.
    Deadline(&ctx, std::chrono::minutes(10));
    v1::ImportBacklogResponse resp;
    std::unique_ptr<grpc::ClientWriter<v1::ImportBacklogRequest>> writer =
        stub_->ImportBacklogStream(&ctx, &resp);
    std::vector<PhaseSpec> chunk;
    while (true) {
      if (absl::Status s = next(&chunk); !s.ok()) {
        ctx.TryCancel();
        (void)writer->Finish();
        return s;
      }
      v1::ImportBacklogRequest req;
      for (const PhaseSpec& p : chunk) ToProto(p, req.add_phases());
      req.set_last(chunk.empty());
      // A failed write means the coordinator ended the call: Finish says why.
      if (!writer->Write(req) || chunk.empty()) break;
    }
    writer->WritesDone();
    if (grpc::Status st = writer->Finish(); !st.ok()) return FromGrpcStatus(st);
    return ImportResult{resp.inserted(), resp.updated(), resp.unchanged()};
  }
  absl::StatusOr<SessionRecord> StartSession(const SessionSettings& settings,
                                             const std::string& session_id,
                                             bool allow_empty) override {
    v1::StartSessionRequest req;
    ToProto(settings, req.mutable_settings());
    req.set_session_id(session_id);
    req.set_allow_empty(allow_empty);
    v1::StartSessionResponse resp;
    grpc::ClientContext ctx;
    Deadline(&ctx);
    if (auto st = stub_->StartSession(&ctx, req, &resp); !st.ok()) return FromGrpcStatus(st);
    return FromProto(resp.session());
  }
  absl::StatusOr<SessionRecord> StopSession(const std::string& session_id,
                                            const std::string& reason) override {
    v1::StopSessionRequest req;
    req.set_session_id(session_id);
    req.set_reason(reason);
    v1::StopSessionResponse resp;
    grpc::ClientContext ctx;
    Deadline(&ctx);
    if (auto st = stub_->StopSession(&ctx, req, &resp); !st.ok()) return FromGrpcStatus(st);
    return FromProto(resp.session());
  }
  absl::StatusOr<CoordinatorStatus> Status(bool explain_skips) override {
    v1::GetStatusRequest req;
    req.set_explain_skips(explain_skips);
    v1::GetStatusResponse resp;
    grpc::ClientContext ctx;
    Deadline(&ctx);
    if (auto st = stub_->GetStatus(&ctx, req, &resp); !st.ok()) {
      return FromGrpcStatus(st);
    }
    CoordinatorStatus s;
    s.phases = PhaseCounts{resp.phases().pending(), resp.phases().leased(),
                           resp.phases().succeeded(), resp.phases().failed()};
    for (const v1::WorkerStatus& w : resp.workers()) {
      WorkerInfo info;
      info.worker_id = w.worker_id();
      info.host = w.host();
      info.slots = w.slots();
      info.labels.assign(w.labels().begin(), w.labels().end());
      info.version = w.version();
      info.last_seen_ms = w.last_seen_ms();
      if (w.gone()) s.gone_workers.insert(w.worker_id());
      s.active_leases_by_worker[w.worker_id()] = w.active_leases();
      s.workers.push_back(std::move(info));
    }
    for (const v1::Lease& l : resp.active_leases()) s.active_leases.push_back(FromProto(l));
    if (resp.has_session()) s.session = FromProto(resp.session());
    s.session_finished = resp.session_finished();
    s.session_done = resp.session_done();
    for (const v1::SkipRow& k : resp.skipped()) {
      s.skipped.push_back({k.kind(), k.run_id(), k.phase_id(), k.phases(), k.reason()});
    }
    if (resp.has_pause()) s.pause = FromProto(resp.pause());
    for (const v1::TelemetryWarning& w : resp.telemetry_warnings()) {
      s.telemetry_warnings.push_back(FromProto(w));
    }
    s.late_reports = resp.late_reports();
    s.cluster_id = resp.cluster_id();
    return s;
  }
  absl::StatusOr<LeasingPause> Resume(const std::string& session_id) override {
    v1::ResumeLeasingRequest req;
    req.set_session_id(session_id);
    v1::ResumeLeasingResponse resp;
    grpc::ClientContext ctx;
    Deadline(&ctx);
    if (auto st = stub_->ResumeLeasing(&ctx, req, &resp); !st.ok()) return FromGrpcStatus(st);
    return FromProto(resp.resumed());
  }
  absl::StatusOr<std::string> ReportJson(const std::string& session_id) override {
    v1::GetReportRequest req;
    req.set_session_id(session_id);
    v1::GetReportResponse resp;
    grpc::ClientContext ctx;
    Deadline(&ctx);
    if (auto st = stub_->GetReport(&ctx, req, &resp); !st.ok()) return FromGrpcStatus(st);
    return resp.report_json();
  }
  absl::StatusOr<std::pair<std::vector<FingerprintInfo>, int32_t>> Fingerprints() override {
    v1::ListFingerprintsResponse resp;
    grpc::ClientContext ctx;
    Deadline(&ctx);
    if (auto st = stub_->ListFingerprints(&ctx, v1::ListFingerprintsRequest(), &resp); !st.ok()) {
      return FromGrpcStatus(st);
    }
    std::vector<FingerprintInfo> out;
    for (const v1::Fingerprint& f : resp.fingerprints()) {
      FingerprintInfo info;
      info.fingerprint = f.fingerprint();
      info.id = f.id();
      info.count = f.count();
      info.runs.insert(f.runs().begin(), f.runs().end());
      info.example_error = f.example_error();
      info.last_seen_ms = f.last_seen_ms();
      out.push_back(std::move(info));
    }
    return std::make_pair(std::move(out), resp.max_fingerprint_repeats());
  }
  absl::StatusOr<std::string> Unblock(const std::string& fingerprint) override {
    v1::UnblockFingerprintRequest req;
    req.set_fingerprint(fingerprint);
    v1::UnblockFingerprintResponse resp;
    grpc::ClientContext ctx;
    Deadline(&ctx);
    if (auto st = stub_->UnblockFingerprint(&ctx, req, &resp); !st.ok()) return FromGrpcStatus(st);
    return resp.fingerprint();
  }
  absl::StatusOr<LeasePlan> Plan(const SessionSettings& settings, int64_t limit) override {
    v1::PlanSessionRequest req;
    ToProto(settings, req.mutable_settings());
    req.set_limit(limit);
    v1::PlanSessionResponse resp;
    grpc::ClientContext ctx;
    Deadline(&ctx);
    if (auto st = stub_->PlanSession(&ctx, req, &resp); !st.ok()) return FromGrpcStatus(st);
    LeasePlan plan;
    for (const v1::PlannedLease& l : resp.leases()) {
      plan.leases.push_back({l.run_id(), l.phase_id(), l.attempt(), l.why(), l.expected_yield()});
    }
    for (const v1::RunExclusion& e : resp.excluded()) {
      RunDecision d;
      d.ranking.run_id = e.run_id();
      d.excluded_reason = e.reason();
      d.pending = e.pending();
      plan.excluded.push_back(std::move(d));
    }
    for (const v1::PhaseSpec& p : resp.needs_labels()) plan.needs_labels.push_back(FromProto(p));
    const v1::ExpectedCurve& curve = resp.expected_curve();
    for (const v1::ExpectedCurvePoint& p : curve.points()) {
      plan.curve.points.push_back({p.worker_minutes(), p.events(), p.phases(), p.slice_yield()});
    }
    plan.curve.runs = curve.runs();
    plan.curve.marginal_yield = curve.marginal_yield();
    plan.curve.left_off_runs = curve.left_off_runs();
    plan.curve.left_off_phases = curve.left_off_phases();
    return plan;
  }

 private:
  // Every call's deadline and credentials.
  void Deadline(grpc::ClientContext* ctx,
                std::chrono::seconds timeout = std::chrono::seconds(30)) const {
    ctx->set_deadline(std::chrono::system_clock::now() + timeout);
    if (!authorization_.empty()) ctx->AddMetadata("authorization", authorization_);
  }
  std::unique_ptr<v1::OperatorService::Stub> stub_;
  std::string authorization_;  // "Bearer <token>", or empty
};

}  // namespace

absl::StatusOr<std::unique_ptr<OperatorApi>> OpenDirectOperator(const std::string& store_url,
                                                                const std::string& family_pattern) {
  CoordinatorConfig config;
  config.family_pattern = family_pattern;
  if (absl::Status st = config.Validate(); !st.ok()) return st;
  auto store = OpenStateStore(store_url);
  if (!store.ok()) return store.status();
  return std::unique_ptr<OperatorApi>(
      new DirectOperator(std::move(*store), nullptr, std::move(config)));
}

std::unique_ptr<OperatorApi> WrapCoordinator(Coordinator& coordinator) {
  return std::make_unique<DirectOperator>(nullptr, &coordinator);
}

namespace {

absl::StatusOr<std::unique_ptr<OperatorApi>> ConnectOne(const ChannelOptions& options) {
  auto channel = MakeChannel(options);
  if (!channel.ok()) return channel.status();
  auto token = LoadClientToken(options);
  if (!token.ok()) return token.status();
  return std::unique_ptr<OperatorApi>(new GrpcOperator(*channel, *token));
}

}  // namespace

absl::StatusOr<std::unique_ptr<OperatorApi>> ConnectOperator(const ChannelOptions& options) {
  // One address goes to gRPC as given (any target syntax gRPC accepts).
  if (options.address.find(',') == std::string::npos) return ConnectOne(options);
  absl::StatusOr<std::vector<std::string>> addresses = ParseCoordinatorAddresses(options.address);
  if (!addresses.ok()) return addresses.status();
  // Bad TLS or token options fail here, before any call, with the flag named.
  ChannelOptions first = options;
  first.address = addresses->front();
  absl::StatusOr<std::unique_ptr<OperatorApi>> checked = ConnectOne(first);
  if (!checked.ok()) return checked;
  auto failover = std::make_unique<FailoverOperatorApi>(*std::move(addresses),
                                                        [options](const std::string& address) {
                                                          ChannelOptions one = options;
                                                          one.address = address;
                                                          return ConnectOne(one);
                                                        });
  return std::unique_ptr<OperatorApi>(std::move(failover));
}

}  // namespace sluice
