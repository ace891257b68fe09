// The coordinator's Prometheus endpoint for real: a CoordinatorServer with
// the metrics interceptor over loopback gRPC, the /metrics HTTP endpoint on a
// free port, fetched with httplib::Client. Every line of the exposition must
// parse as text format 0.0.4 (tests/testing/prometheus_text.h). The registry
// alone is tested in tests/coordinator/insight/metrics_registry_test.cc.
#include "coordinator/insight/metrics.h"

#include <grpcpp/grpcpp.h>
#include <httplib.h>

#include <map>
#include <string>
#include <vector>

#include "common/clock.h"
#include "coordinator/coordinator.h"
#include "coordinator/grpc/server.h"
#include "coordinator/store/sqlite/sqlite_state_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sluice/v1/sluice.grpc.pb.h"
#include "tests/testing/prometheus_text.h"

namespace sluice {
namespace {

using ::sluice::testing::Exposition;
using ::sluice::testing::FamilyOf;
using ::sluice::testing::Find;
using ::sluice::testing::ParseExposition;
using ::sluice::testing::Sample;
using ::testing::HasSubstr;

// ---- The coordinator's endpoint for real ------------------------------------

class MetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = *SqliteStateStore::Open(":memory:");
    coordinator_ = std::make_unique<Coordinator>(*store_, SystemClock::Default());
    std::vector<PhaseSpec> specs;
    for (const char* run : {"run-a", "run-b"}) {
      for (int i = 0; i < 3; ++i) {
        PhaseSpec s;
        s.run_id = run;
        s.phase_id = "p" + std::to_string(i);
        specs.push_back(s);
      }
    }
    ASSERT_TRUE(coordinator_->ImportBacklog(specs).ok());
    SessionSettings settings;
    ASSERT_TRUE(coordinator_->StartSession(settings, "s1").ok());

    RegisterCoordinatorMetrics(registry_, *coordinator_);
    server_ = std::make_unique<CoordinatorServer>(*coordinator_);
    ServerOptions options;
    options.listen_address = "127.0.0.1:0";
    options.metrics = &registry_;
    options.enable_reflection = false;
    auto port = server_->Start(options);
    ASSERT_TRUE(port.ok()) << port.status();
    grpc_port_ = *port;
    http_ = std::make_unique<MetricsHttpServer>(registry_, [this] { return server_->serving(); });
    auto http_port = http_->Start("127.0.0.1:0");
    ASSERT_TRUE(http_port.ok()) << http_port.status();
    http_port_ = *http_port;
  }

  void TearDown() override {
    if (http_) http_->Stop();
    if (server_) server_->Shutdown();
  }

  // A worker registers, leases two phases and reports one, over real gRPC.
  void DriveSomeRpcs() {
    auto stub = v1::WorkerService::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(grpc_port_), grpc::InsecureChannelCredentials()));
    {
      grpc::ClientContext ctx;
      v1::RegisterRequest req;
      req.set_worker_id("w1");
      req.set_host("h");
      req.set_slots(2);
      v1::RegisterResponse resp;
      ASSERT_TRUE(stub->Register(&ctx, req, &resp).ok());
    }
    grpc::ClientContext ctx;
    v1::LeaseRequest req;
    req.set_worker_id("w1");
    req.set_request_id("r1");
    req.set_max_phases(2);
    v1::LeaseResponse resp;
    ASSERT_TRUE(stub->Lease(&ctx, req, &resp).ok());
    ASSERT_EQ(resp.leases_size(), 2);
    // Report the first lease through the coordinator directly (the RPC
    // conversion is tested elsewhere); 12 events in 30 s.
    absl::StatusOr<CoordinatorStatus> status = coordinator_->Status();
    ASSERT_TRUE(status.ok());
    ASSERT_EQ(status->active_leases.size(), 2u);
    const LeaseGrant& g = status->active_leases[0];
    AttemptReport report;
    report.lease_id = g.lease_id;
    report.epoch = g.epoch;
    report.worker_id = "w1";
    report.outcome = Outcome::kSucceeded;
    report.exit_code = 0;
    report.duration_ms = 30'000;
    report.telemetry_events = 12;
    ASSERT_TRUE(coordinator_->Report(report).ok());
  }

  std::string Fetch(const std::string& path, int* status = nullptr) {
    httplib::Client client("127.0.0.1", http_port_);
    auto res = client.Get(path.c_str());
    EXPECT_TRUE(res) << "GET " << path << " failed";
    if (!res) return "";
    if (status != nullptr) *status = res->status;
    content_type_ = res->get_header_value("Content-Type");
    return res->body;
  }

  std::unique_ptr<StateStore> store_;
  std::unique_ptr<Coordinator> coordinator_;
  MetricsRegistry registry_;
  std::unique_ptr<CoordinatorServer> server_;
  std::unique_ptr<MetricsHttpServer> http_;
  int grpc_port_ = 0;
  int http_port_ = 0;
  std::string content_type_;
};

TEST_F(MetricsTest, EveryLineParsesAndTheExpectedFamiliesArePresent) {
  DriveSomeRpcs();
  int status = 0;
  const std::string body = Fetch("/metrics", &status);
  EXPECT_EQ(status, 200);
  EXPECT_THAT(content_type_, HasSubstr("text/plain; version=0.0.4"));
  Exposition e = ParseExposition(body);
  ASSERT_TRUE(e.errors.empty()) << ::testing::PrintToString(e.errors) << "\n" << body;
  ASSERT_FALSE(e.samples.empty());

  // Every sample belongs to a declared family with HELP; every family is sluice_.
  for (const Sample& s : e.samples) {
    const std::string family = FamilyOf(e, s.name);
    EXPECT_FALSE(family.empty()) << s.name << " has no TYPE";
    EXPECT_TRUE(e.help.contains(family)) << family << " has no HELP";
    EXPECT_TRUE(s.name.starts_with("sluice_")) << s.name;
  }
  for (const auto& [family, type] : e.types) {
    EXPECT_TRUE(family.starts_with("sluice_")) << family;
    if (type == "counter") {
      EXPECT_TRUE(family.ends_with("_total")) << family;
    }
    if (family.ends_with("_total")) {
      EXPECT_EQ(type, "counter") << family;
    }
  }
  for (const char* family :
       {"sluice_phases", "sluice_active_leases", "sluice_workers_connected", "sluice_ready_backlog",
        "sluice_attempts_total", "sluice_telemetry_events_total", "sluice_yield_events_per_minute",
        "sluice_rpc_duration_seconds", "sluice_rpcs_total"}) {
    EXPECT_TRUE(e.types.contains(family)) << family;
  }
  EXPECT_EQ(e.types["sluice_rpc_duration_seconds"], "histogram");

  // Values from the store.
  EXPECT_EQ(Find(e, "sluice_phases", {{"state", "pending"}})->value, 4);
  EXPECT_EQ(Find(e, "sluice_phases", {{"state", "leased"}})->value, 1);
  EXPECT_EQ(Find(e, "sluice_phases", {{"state", "succeeded"}})->value, 1);
  EXPECT_EQ(Find(e, "sluice_phases", {{"state", "failed"}})->value, 0);
  EXPECT_EQ(Find(e, "sluice_active_leases")->value, 1);
  EXPECT_EQ(Find(e, "sluice_workers_connected")->value, 1);
  EXPECT_EQ(Find(e, "sluice_ready_backlog")->value, 4);
  EXPECT_EQ(Find(e, "sluice_attempts_total", {{"outcome", "succeeded"}})->value, 1);
  for (const char* outcome : {"failed", "timed_out", "killed", "cancelled", "lost"}) {
    const Sample* zero = Find(e, "sluice_attempts_total", {{"outcome", outcome}});
    ASSERT_NE(zero, nullptr) << outcome << "\n" << body;
    EXPECT_EQ(zero->value, 0) << outcome;
  }
  EXPECT_EQ(Find(e, "sluice_leasing_paused")->value, 0);
  EXPECT_EQ(Find(e, "sluice_telemetry_loss_warnings")->value, 0);
  EXPECT_EQ(Find(e, "sluice_telemetry_events_total")->value, 12);
  EXPECT_DOUBLE_EQ(Find(e, "sluice_yield_events_per_minute")->value, 24.0);  // 12 in 30 s
  EXPECT_EQ(Find(e, "sluice_store_up")->value, 1);

  // Latencies recorded by the interceptor for the RPCs made above.
  const Sample* lease =
      Find(e, "sluice_rpc_duration_seconds_count", {{"method", "WorkerService/Lease"}});
  ASSERT_NE(lease, nullptr) << body;
  EXPECT_EQ(lease->value, 1);
  ASSERT_NE(Find(e, "sluice_rpc_duration_seconds_bucket",
                 {{"method", "WorkerService/Register"}, {"le", "+Inf"}}),
            nullptr);
  EXPECT_EQ(
      Find(e, "sluice_rpcs_total", {{"code", "OK"}, {"method", "WorkerService/Lease"}})->value, 1);
}

TEST_F(MetricsTest, TelemetryLossPauseShowsInTheGaugesAndOutcomesAreCounted) {
  ASSERT_TRUE(coordinator_->StopSession("s1", "test").ok());
  SessionSettings settings;
  settings.on_telemetry_loss = TelemetryLossAction::kPause;
  ASSERT_TRUE(coordinator_->StartSession(settings, "s2").ok());
  WorkerInfo w;
  w.worker_id = "w1";
  w.host = "h";
  w.slots = 1;
  ASSERT_TRUE(coordinator_->Register(w).ok());
  // The third silent success pauses leasing at the server's next background
  // tick (every 500 ms), so it comes last: no lease may be needed after it.
  // (With it third, a tick between its report and the fourth lease failed
  // the lease now and then on a loaded machine.)
  const Outcome outcomes[] = {Outcome::kSucceeded, Outcome::kSucceeded, Outcome::kFailed,
                              Outcome::kSucceeded};
  for (size_t i = 0; i < std::size(outcomes); ++i) {
    auto leased = coordinator_->Lease("w1", "q" + std::to_string(i), 1, 0);
    ASSERT_TRUE(leased.ok() && leased->leases.size() == 1) << leased.status();
    AttemptReport report;
    report.lease_id = leased->leases[0].lease_id;
    report.epoch = leased->leases[0].epoch;
    report.worker_id = "w1";
    report.outcome = outcomes[i];
    report.exit_code = outcomes[i] == Outcome::kSucceeded ? 0 : 1;
    report.duration_ms = 1'000;
    ASSERT_TRUE(coordinator_->Report(report).ok());  // no telemetry: lost
  }
  ASSERT_TRUE(coordinator_->Tick().ok());
  const std::string body = Fetch("/metrics");
  Exposition e = ParseExposition(body);
  ASSERT_TRUE(e.errors.empty()) << ::testing::PrintToString(e.errors) << "\n" << body;
  EXPECT_EQ(e.types["sluice_leasing_paused"], "gauge");
  EXPECT_EQ(Find(e, "sluice_leasing_paused")->value, 1);
  EXPECT_EQ(Find(e, "sluice_telemetry_loss_warnings")->value, 1);
  EXPECT_EQ(Find(e, "sluice_attempts_total", {{"outcome", "succeeded"}})->value, 3);
  EXPECT_EQ(Find(e, "sluice_attempts_total", {{"outcome", "failed"}})->value, 1);
  // The operator RPCs over real gRPC: status says why, resume ends the pause.
  auto stub = v1::OperatorService::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(grpc_port_), grpc::InsecureChannelCredentials()));
  {
    grpc::ClientContext ctx;
    v1::GetStatusResponse resp;
    ASSERT_TRUE(stub->GetStatus(&ctx, v1::GetStatusRequest(), &resp).ok());
    ASSERT_TRUE(resp.has_pause());
    EXPECT_EQ(resp.pause().session_id(), "s2");
    EXPECT_THAT(resp.pause().reason(), HasSubstr("telemetry loss: "));
    ASSERT_EQ(resp.telemetry_warnings_size(), 1);
    EXPECT_EQ(resp.telemetry_warnings(0).kind(), "zero_event_phases");
  }
  {
    grpc::ClientContext ctx;
    v1::ResumeLeasingResponse resp;
    ASSERT_TRUE(stub->ResumeLeasing(&ctx, v1::ResumeLeasingRequest(), &resp).ok());
    EXPECT_THAT(resp.resumed().reason(), HasSubstr("telemetry loss: "));
  }
  {
    grpc::ClientContext ctx;
    v1::ResumeLeasingResponse resp;
    EXPECT_EQ(stub->ResumeLeasing(&ctx, v1::ResumeLeasingRequest(), &resp).error_code(),
              grpc::StatusCode::FAILED_PRECONDITION);
  }
  EXPECT_EQ(Find(ParseExposition(Fetch("/metrics")), "sluice_leasing_paused")->value, 0);
}

TEST_F(MetricsTest, HealthzFollowsTheServer) {
  int status = 0;
  EXPECT_EQ(Fetch("/healthz", &status), "ok\n");
  EXPECT_EQ(status, 200);
  server_->Shutdown();
  Fetch("/healthz", &status);
  EXPECT_EQ(status, 503);
}

TEST(MetricsHttpServerTest, RejectsBadAddresses) {
  MetricsRegistry r;
  MetricsHttpServer s(r, nullptr);
  EXPECT_EQ(s.Start("nonsense").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.Start("127.0.0.1:99999").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sluice
