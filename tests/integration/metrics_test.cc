// The coordinator's Prometheus endpoint for real: a CoordinatorServer with
// the metrics interceptor over loopback gRPC, the /metrics HTTP endpoint on a
// free port, fetched with httplib::Client. Every line of the exposition must
// parse as text format 0.0.4 (checked by the strict parser below).
#include "coordinator/insight/metrics.h"

#include <grpcpp/grpcpp.h>
#include <httplib.h>

#include <cmath>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "common/clock.h"
#include "coordinator/coordinator.h"
#include "coordinator/grpc/server.h"
#include "coordinator/sqlite_state_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sluice/v1/sluice.grpc.pb.h"

namespace sluice {
namespace {

using ::testing::HasSubstr;

// ---- A strict parser of the text exposition format 0.0.4 -----------------

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct Exposition {
  std::map<std::string, std::string> types;  // family -> counter|gauge|histogram|...
  std::map<std::string, std::string> help;
  std::vector<Sample> samples;
  std::vector<std::string> errors;  // "line N: why"
};

const std::regex kMetricName("[a-zA-Z_:][a-zA-Z0-9_:]*");
const std::regex kLabelName("[a-zA-Z_][a-zA-Z0-9_]*");

bool ParseValue(const std::string& text, double* out) {
  if (text == "+Inf" || text == "Inf") {
    *out = INFINITY;
    return true;
  }
  if (text == "-Inf") {
    *out = -INFINITY;
    return true;
  }
  if (text == "NaN") {
    *out = NAN;
    return true;
  }
  static const std::regex kFloat(R"([-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?)");
  if (!std::regex_match(text, kFloat)) return false;
  *out = std::stod(text);
  return true;
}

// Parses `{a="x",b="y\"z"}` starting at line[pos] == '{'; advances pos past '}'.
bool ParseLabels(const std::string& line, size_t& pos, std::map<std::string, std::string>* labels,
                 std::string* why) {
  ++pos;  // '{'
  while (pos < line.size() && line[pos] != '}') {
    size_t eq = line.find('=', pos);
    if (eq == std::string::npos) return *why = "label without '='", false;
    const std::string name = line.substr(pos, eq - pos);
    if (!std::regex_match(name, kLabelName)) return *why = "bad label name '" + name + "'", false;
    if (labels->contains(name)) return *why = "duplicate label " + name, false;
    pos = eq + 1;
    if (pos >= line.size() || line[pos] != '"') return *why = "label value not quoted", false;
    ++pos;
    std::string value;
    while (true) {
      if (pos >= line.size()) return *why = "unterminated label value", false;
      const char c = line[pos++];
      if (c == '"') break;
      if (c == '\\') {
        if (pos >= line.size()) return *why = "dangling escape", false;
        const char e = line[pos++];
        if (e == 'n') {
          value += '\n';
        } else if (e == '\\' || e == '"') {
          value += e;
        } else {
          return *why = std::string("bad escape \\") + e, false;
        }
      } else {
        value += c;
      }
    }
    (*labels)[name] = value;
    if (pos < line.size() && line[pos] == ',') ++pos;
  }
  if (pos >= line.size()) return *why = "unterminated label set", false;
  ++pos;  // '}'
  return true;
}

Exposition Parse(const std::string& text) {
  Exposition e;
  if (!text.empty() && text.back() != '\n') e.errors.push_back("missing final newline");
  int n = 0;
  for (absl::string_view sv : absl::StrSplit(text, '\n')) {
    ++n;
    const std::string line(sv);
    auto fail = [&](const std::string& why) {
      e.errors.push_back("line " + std::to_string(n) + ": " + why + ": " + line);
    };
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::vector<std::string> parts = absl::StrSplit(line, absl::MaxSplits(' ', 3));
      if (parts.size() >= 2 && (parts[1] == "HELP" || parts[1] == "TYPE")) {
        if (parts.size() < 3 || !std::regex_match(parts[2], kMetricName)) {
          fail("bad metric name in " + parts[1]);
          continue;
        }
        if (parts[1] == "TYPE") {
          static const std::set<std::string> kTypes = {"counter", "gauge", "histogram", "summary",
                                                       "untyped"};
          if (parts.size() != 4 || !kTypes.contains(parts[3])) {
            fail("bad TYPE");
          } else if (e.types.contains(parts[2])) {
            fail("second TYPE for " + parts[2]);
          } else {
            bool seen = false;
            for (const Sample& s : e.samples) seen |= s.name.starts_with(parts[2]);
            if (seen) fail("TYPE after samples of " + parts[2]);
            e.types[parts[2]] = parts[3];
          }
        } else {
          e.help[parts[2]] = parts.size() == 4 ? parts[3] : "";
        }
      }
      continue;  // other comments are allowed
    }
    Sample s;
    size_t pos = 0;
    while (pos < line.size() && line[pos] != '{' && line[pos] != ' ') ++pos;
    s.name = line.substr(0, pos);
    if (!std::regex_match(s.name, kMetricName)) {
      fail("bad metric name");
      continue;
    }
    std::string why;
    if (pos < line.size() && line[pos] == '{' && !ParseLabels(line, pos, &s.labels, &why)) {
      fail(why);
      continue;
    }
    if (pos >= line.size() || line[pos] != ' ') {
      fail("no space before the value");
      continue;
    }
    std::vector<std::string> rest = absl::StrSplit(line.substr(pos + 1), ' ');
    if (rest.empty() || rest.size() > 2 || !ParseValue(rest[0], &s.value)) {
      fail("bad value");
      continue;
    }
    if (rest.size() == 2 && !std::regex_match(rest[1], std::regex("-?[0-9]+"))) {
      fail("bad timestamp");
      continue;
    }
    e.samples.push_back(std::move(s));
  }
  return e;
}

// The family a sample belongs to (histogram samples carry suffixes).
std::string FamilyOf(const Exposition& e, const std::string& sample) {
  if (e.types.contains(sample)) return sample;
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string s(suffix);
    if (sample.size() > s.size() && sample.ends_with(s)) {
      const std::string base = sample.substr(0, sample.size() - s.size());
      if (e.types.contains(base) && e.types.at(base) == "histogram") return base;
    }
  }
  return "";
}

const Sample* Find(const Exposition& e, const std::string& name,
                   const std::map<std::string, std::string>& labels = {}) {
  for (const Sample& s : e.samples) {
    if (s.name == name && s.labels == labels) return &s;
  }
  return nullptr;
}

TEST(MetricsParserTest, RejectsMalformedLines) {
  EXPECT_TRUE(Parse("# TYPE a counter\na 1\n").errors.empty());
  EXPECT_FALSE(Parse("a{b=\"1\"} x\n").errors.empty());
  EXPECT_FALSE(Parse("9a 1\n").errors.empty());
  EXPECT_FALSE(Parse("a{b=1} 1\n").errors.empty());
  EXPECT_FALSE(Parse("a{b=\"1\" 1\n").errors.empty());
  EXPECT_FALSE(Parse("# TYPE a countr\n").errors.empty());
  EXPECT_FALSE(Parse("a 1").errors.empty());
}

// ---- The registry alone ----------------------------------------------------

TEST(MetricsRegistryTest, RendersCountersGaugesAndCumulativeHistograms) {
  MetricsRegistry r;
  r.Declare("t_total", MetricType::kCounter, "A counter with \\ and\nnewline");
  r.Declare("t_gauge", MetricType::kGauge, "A gauge");
  r.Declare("t_seconds", MetricType::kHistogram, "A histogram", {0.1, 1});
  r.Add("t_total", {{"k", "a\"b"}}, 2);
  r.Add("t_total", {{"k", "a\"b"}}, 3);
  r.Set("t_gauge", {}, 0.25);
  r.Observe("t_seconds", {{"m", "x"}}, 0.05);
  r.Observe("t_seconds", {{"m", "x"}}, 0.5);
  r.Observe("t_seconds", {{"m", "x"}}, 7);
  r.Add("undeclared", {}, 1);  // ignored
  const std::string text = r.Render();
  Exposition e = Parse(text);
  EXPECT_TRUE(e.errors.empty()) << ::testing::PrintToString(e.errors) << text;
  EXPECT_EQ(Find(e, "t_total", {{"k", "a\"b"}})->value, 5);
  EXPECT_EQ(Find(e, "t_gauge")->value, 0.25);
  EXPECT_EQ(Find(e, "t_seconds_bucket", {{"m", "x"}, {"le", "0.1"}})->value, 1);
  EXPECT_EQ(Find(e, "t_seconds_bucket", {{"m", "x"}, {"le", "1"}})->value, 2);
  EXPECT_EQ(Find(e, "t_seconds_bucket", {{"m", "x"}, {"le", "+Inf"}})->value, 3);
  EXPECT_EQ(Find(e, "t_seconds_count", {{"m", "x"}})->value, 3);
  EXPECT_DOUBLE_EQ(Find(e, "t_seconds_sum", {{"m", "x"}})->value, 7.55);
  EXPECT_EQ(Find(e, "undeclared"), nullptr);
  EXPECT_THAT(text, HasSubstr("# HELP t_total A counter with \\\\ and\\nnewline\n"));
}

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
  Exposition e = Parse(body);
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
  const Outcome outcomes[] = {Outcome::kSucceeded, Outcome::kSucceeded, Outcome::kSucceeded,
                              Outcome::kFailed};
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
  Exposition e = Parse(body);
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
  EXPECT_EQ(Find(Parse(Fetch("/metrics")), "sluice_leasing_paused")->value, 0);
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
