// The coordinator and the worker agent wired together over real gRPC on
// loopback, with real subprocesses: an in-process Coordinator on a SQLite
// store in a scratch directory, a CoordinatorServer on 127.0.0.1:0, a
// GrpcCoordinatorClient and a WorkerAgent with a PosixProcessRunner. Phases
// are /bin/sh scripts (in tests only) so each test picks how its phase
// misbehaves. Nothing is mocked; conditions are polled with deadlines.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "bench/succeeded_report.h"
#include "client/grpc_coordinator_client.h"
#include "common/clock.h"
#include "coordinator/coordinator.h"
#include "coordinator/grpc/server.h"
#include "coordinator/grpc/services.h"
#include "coordinator/store/sqlite/sqlite_state_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sluice/v1/sluice.grpc.pb.h"
#include "tests/testing/loopback_coordinator.h"
#include "tests/testing/process.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_env.h"
#include "tests/testing/wait.h"
#include "worker/command_template.h"
#include "worker/process_runner.h"
#include "worker/report_delivery.h"
#include "worker/worker_agent.h"

namespace sluice {
namespace {

using ::sluice::testing::IsOkAndHolds;
using ::sluice::testing::LoopbackCoordinatorConfig;
using ::sluice::testing::ProcessGone;
using ::sluice::testing::ReadFile;
using ::sluice::testing::ReadPidFile;
using ::sluice::testing::ScratchDir;
using ::sluice::testing::StatusIs;
using ::sluice::testing::WaitUntil;
using ::sluice::testing::WriteFile;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::SizeIs;
using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// One script for every test; the phase id picks the behaviour. Arguments come
// from the worker's template: run id, phase id, attempt. $OUT_DIR and
// $GREETING come from WorkerConfig.env.
constexpr char kPhaseScript[] = R"SH(
run="$1"; phase="$2"; attempt="$3"
publish() {  # publish FILE: write stdin to FILE atomically
  cat > "$1.tmp" && mv "$1.tmp" "$1"
}
case "$phase" in
  hang*)
    # Everything here ignores SIGTERM (inherited across exec), so only the
    # runner's SIGKILL after the grace period ends the group.
    trap '' TERM
    sh -c 'trap "" TERM; echo $$ > "$0.tmp" && mv "$0.tmp" "$0"; while :; do sleep 1; done' \
      "$OUT_DIR/$phase.grandchild.pid" &
    echo $$ | publish "$OUT_DIR/$phase.phase.pid"
    while :; do sleep 1; done
    ;;
  telemetry-a)
    sleep 0.3
    for i in 1 2 3; do echo '{"type":"llm_call","n":'$i'}' >> "$SLUICE_TELEMETRY_FILE"; done
    echo '{"type":"patch_applied","files_changed":2}' >> "$SLUICE_TELEMETRY_FILE"
    echo '{"note":"no type field"}' >> "$SLUICE_TELEMETRY_FILE"
    echo '' >> "$SLUICE_TELEMETRY_FILE"
    echo 'this line is not json' >> "$SLUICE_TELEMETRY_FILE"
    exit 0
    ;;
  telemetry-b)
    sleep 0.3
    for i in 1 2 3 4; do
      echo '{"type":"token_estimation","estimated_tokens":'$i'000}' >> "$SLUICE_TELEMETRY_FILE"
    done
    exit 0
    ;;
  exit7*)
    echo "boom: exit seven" >&2
    exit 7
    ;;
  segv*)
    ulimit -c 0
    kill -SEGV $$
    ;;
  sigkill*)
    kill -KILL $$
    ;;
  env*)
    printf '%s\n' "$run $phase $attempt" "$SLUICE_RUN_ID" "$SLUICE_PHASE_ID" "$SLUICE_ATTEMPT" \
      "$SLUICE_LEASE_ID" "$SLUICE_SESSION_ID" "$GREETING" | publish "$OUT_DIR/$phase.env"
    exit 0
    ;;
esac
exit 0
)SH";

// A WorkerAgent running on its own thread; drained and joined on destruction
// so a failing assertion never leaves it behind.
class RunningAgent {
 public:
  RunningAgent(WorkerConfig config, CoordinatorClient& client)
      : agent_(std::move(config), client, runner_, SystemClock::Default()),
        thread_([this] { status_ = agent_.Run(); }) {}
  ~RunningAgent() { (void)Drain(); }
  RunningAgent(const RunningAgent&) = delete;
  RunningAgent& operator=(const RunningAgent&) = delete;

  absl::Status Drain() {
    agent_.RequestDrain();
    if (thread_.joinable()) thread_.join();
    return status_;
  }
  int64_t reported() const { return agent_.reported(); }

 private:
  PosixProcessRunner runner_;
  WorkerAgent agent_;
  absl::Status status_;
  std::thread thread_;  // last: starts once everything above exists
};

class GrpcIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = SqliteStateStore::Open(dir_.File("state.db"));
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    coordinator_ =
        std::make_unique<Coordinator>(*store_, SystemClock::Default(), LoopbackCoordinatorConfig());
    server_ = std::make_unique<CoordinatorServer>(*coordinator_);
    ServerOptions options;
    options.listen_address = "127.0.0.1:0";
    options.tick_interval_ms = 100;
    absl::StatusOr<int> port = server_->Start(options);
    ASSERT_TRUE(port.ok()) << port.status();
    address_ = absl::StrCat("127.0.0.1:", *port);
    client_ = std::make_unique<GrpcCoordinatorClient>(MakeChannel(address_));
    script_ = dir_.File("phase.sh");
    WriteFile(script_, kPhaseScript);
  }

  void TearDown() override {
    if (server_) server_->Shutdown();
  }

  WorkerConfig MakeWorkerConfig(int32_t slots) {
    WorkerConfig config;
    config.worker_id = "it-worker-1";
    config.host = "localhost";
    config.slots = slots;
    config.version = "test";
    auto command =
        CommandTemplate::Parse(absl::StrCat("/bin/sh ", script_, " {run_id} {phase_id} {attempt}"));
    EXPECT_TRUE(command.ok()) << command.status();
    if (command.ok()) config.command = *command;
    config.env = {{"OUT_DIR", dir_.path().string()}, {"GREETING", "hello world; $HOME `id`"}};
    config.log_dir = dir_.File("logs");
    config.grace_ms = 500;
    config.drain_timeout_ms = 5'000;
    config.lease_wait_ms = 500;
    return config;
  }

  void ImportAndStart(const std::vector<PhaseKey>& keys, SessionSettings settings) {
    std::vector<PhaseSpec> specs;
    for (size_t i = 0; i < keys.size(); ++i) {
      PhaseSpec spec;
      spec.run_id = keys[i].run_id;
      spec.phase_id = keys[i].phase_id;
      spec.phase_index = static_cast<int64_t>(i);
      specs.push_back(spec);
    }
    auto imported = coordinator_->ImportBacklog(specs);
    ASSERT_TRUE(imported.ok()) << imported.status();
    ASSERT_EQ(imported->inserted, static_cast<int64_t>(keys.size()));
    auto session = coordinator_->StartSession(settings, "");
    ASSERT_TRUE(session.ok()) << session.status();
    session_id_ = session->session_id;
  }

  // Registers `worker_id` with `slots` slots, then leases up to that many
  // phases with request id "req-1".
  LeaseBatch RegisterAndLease(const std::string& worker_id, int32_t slots) {
    WorkerInfo worker;
    worker.worker_id = worker_id;
    worker.slots = slots;
    EXPECT_TRUE(client_->Register(worker).ok());
    absl::StatusOr<LeaseBatch> batch = client_->Lease(worker_id, "req-1", slots, 1'000, {});
    EXPECT_TRUE(batch.ok()) << batch.status();
    EXPECT_THAT(batch.ok() ? batch->leases : std::vector<LeaseGrant>(), SizeIs(slots));
    return batch.ok() ? *batch : LeaseBatch();
  }

  // True once no phase is pending or leased.
  bool AllFinal() {
    absl::StatusOr<PhaseCounts> counts = store_->CountPhases();
    return counts.ok() && counts->total() > 0 && counts->pending == 0 && counts->leased == 0;
  }

  PhaseRecord Phase(const std::string& run_id, const std::string& phase_id) {
    auto phase = store_->GetPhase(PhaseKey{run_id, phase_id});
    EXPECT_TRUE(phase.ok()) << phase.status();
    EXPECT_TRUE(phase.ok() && phase->has_value()) << run_id << "/" << phase_id;
    return phase.ok() && phase->has_value() ? **phase : PhaseRecord();
  }

  std::vector<AttemptRecord> AttemptsOf(const std::string& run_id, const std::string& phase_id) {
    auto all = store_->ListAttempts("");
    EXPECT_TRUE(all.ok()) << all.status();
    std::vector<AttemptRecord> out;
    if (!all.ok()) return out;
    for (const AttemptRecord& a : *all) {
      if (a.run_id == run_id && a.phase_id == phase_id) out.push_back(a);
    }
    return out;
  }

  ScratchDir dir_;
  std::unique_ptr<SqliteStateStore> store_;
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<CoordinatorServer> server_;
  std::unique_ptr<GrpcCoordinatorClient> client_;
  std::string address_;
  std::string script_;
  std::string session_id_;
};

SessionSettings OneAttempt(int32_t timeout_seconds) {
  SessionSettings settings;
  settings.phase_timeout_seconds = timeout_seconds;
  settings.max_attempts_per_phase = 1;
  return settings;
}

TEST_F(GrpcIntegrationTest, HangingPhaseAndItsGrandchildAreKilledAfterTimeoutAndGrace) {
  ImportAndStart({{"r-hang", "hang-1"}}, OneAttempt(/*timeout_seconds=*/1));
  RunningAgent agent(MakeWorkerConfig(1), *client_);

  const std::string phase_pid_file = dir_.File("hang-1.phase.pid");
  const std::string grandchild_pid_file = dir_.File("hang-1.grandchild.pid");
  ASSERT_TRUE(WaitUntil(
      [&] { return ReadPidFile(phase_pid_file) > 0 && ReadPidFile(grandchild_pid_file) > 0; },
      milliseconds(10'000)))
      << "the hanging phase never started";
  const SteadyClock::time_point started = SteadyClock::now();
  const pid_t phase_pid = ReadPidFile(phase_pid_file);
  const pid_t grandchild_pid = ReadPidFile(grandchild_pid_file);
  EXPECT_FALSE(ProcessGone(phase_pid));
  EXPECT_FALSE(ProcessGone(grandchild_pid));

  // timeout 1 s + grace 0.5 s + 2 s slack for reporting over gRPC.
  ASSERT_TRUE(WaitUntil([&] { return AllFinal(); }, milliseconds(1'000 + 500 + 2'000)))
      << "no outcome within timeout + grace + slack";
  const auto elapsed =
      std::chrono::duration_cast<milliseconds>(SteadyClock::now() - started).count();
  EXPECT_LT(elapsed, 1'000 + 500 + 2'000);
  EXPECT_TRUE(WaitUntil([&] { return ProcessGone(phase_pid) && ProcessGone(grandchild_pid); },
                        milliseconds(500)))
      << "phase " << phase_pid << " or its grandchild " << grandchild_pid << " survived";

  const std::vector<AttemptRecord> attempts = AttemptsOf("r-hang", "hang-1");
  ASSERT_THAT(attempts, SizeIs(1));
  EXPECT_EQ(attempts[0].outcome, Outcome::kTimedOut);
  EXPECT_EQ(attempts[0].worker_id, "it-worker-1");
  EXPECT_THAT(attempts[0].error_text, HasSubstr("timed out"));
  // TERM is ignored by the whole tree, so it lived until the SIGKILL.
  EXPECT_GE(attempts[0].duration_ms, 1'400);
  EXPECT_LT(attempts[0].duration_ms, 1'000 + 500 + 1'500);
  const PhaseRecord phase = Phase("r-hang", "hang-1");
  EXPECT_EQ(phase.state, PhaseState::kFailed);
  EXPECT_EQ(phase.final_outcome, Outcome::kTimedOut);
  EXPECT_TRUE(agent.Drain().ok());
}

TEST_F(GrpcIntegrationTest, TelemetryLinesAreCountedExactlyPerAttempt) {
  ImportAndStart({{"r-tele", "telemetry-a"}, {"r-tele", "telemetry-b"}}, OneAttempt(30));
  {
    // Two slots: both phases run at once, each with its own telemetry file.
    RunningAgent agent(MakeWorkerConfig(2), *client_);
    ASSERT_TRUE(WaitUntil([&] { return AllFinal(); }, milliseconds(10'000)));
    EXPECT_TRUE(agent.Drain().ok());
    EXPECT_EQ(agent.reported(), 2);
  }
  const std::vector<AttemptRecord> a = AttemptsOf("r-tele", "telemetry-a");
  ASSERT_THAT(a, SizeIs(1));
  EXPECT_EQ(a[0].outcome, Outcome::kSucceeded);
  // 5 JSON objects; the blank line and the non-JSON line are not events.
  EXPECT_EQ(a[0].telemetry_events, 5);
  EXPECT_THAT(a[0].telemetry_by_type,
              ElementsAre(Pair("llm_call", 3), Pair("patch_applied", 1), Pair("untyped", 1)));
  EXPECT_EQ(Phase("r-tele", "telemetry-a").telemetry_events, 5);

  const std::vector<AttemptRecord> b = AttemptsOf("r-tele", "telemetry-b");
  ASSERT_THAT(b, SizeIs(1));
  EXPECT_EQ(b[0].telemetry_events, 4);
  EXPECT_THAT(b[0].telemetry_by_type, ElementsAre(Pair("token_estimation", 4)));
  EXPECT_EQ(Phase("r-tele", "telemetry-b").telemetry_events, 4);
}

TEST_F(GrpcIntegrationTest, ExitCodesAndSignalsAreRecordedAsSuch) {
  ImportAndStart({{"r-exit", "exit7"}, {"r-exit", "segv"}, {"r-exit", "sigkill"}, {"r-exit", "ok"}},
                 OneAttempt(30));
  {
    RunningAgent agent(MakeWorkerConfig(2), *client_);
    ASSERT_TRUE(WaitUntil([&] { return AllFinal(); }, milliseconds(10'000)));
    EXPECT_TRUE(agent.Drain().ok());
  }
  struct Expected {
    std::string phase_id;
    Outcome outcome;
    int32_t exit_code;
    int32_t signal;
    PhaseState state;
  };
  for (const Expected& e : std::vector<Expected>{
           {"exit7", Outcome::kFailed, 7, 0, PhaseState::kFailed},
           {"segv", Outcome::kFailed, -1, SIGSEGV, PhaseState::kFailed},
           {"sigkill", Outcome::kKilled, -1, SIGKILL, PhaseState::kFailed},
           {"ok", Outcome::kSucceeded, 0, 0, PhaseState::kSucceeded},
       }) {
    SCOPED_TRACE(e.phase_id);
    const std::vector<AttemptRecord> attempts = AttemptsOf("r-exit", e.phase_id);
    ASSERT_THAT(attempts, SizeIs(1));
    EXPECT_EQ(attempts[0].outcome, e.outcome) << OutcomeName(attempts[0].outcome);
    EXPECT_EQ(attempts[0].exit_code, e.exit_code);
    EXPECT_EQ(attempts[0].signal, e.signal);
    const PhaseRecord phase = Phase("r-exit", e.phase_id);
    EXPECT_EQ(phase.state, e.state);
    EXPECT_EQ(phase.final_outcome, e.outcome);
  }
  EXPECT_THAT(AttemptsOf("r-exit", "exit7")[0].error_text, HasSubstr("boom: exit seven"));
}

TEST_F(GrpcIntegrationTest, WorkerEnvAndPhaseIdentityReachThePhase) {
  ImportAndStart({{"r-env.1", "env-1"}}, OneAttempt(30));
  {
    RunningAgent agent(MakeWorkerConfig(1), *client_);
    ASSERT_TRUE(WaitUntil([&] { return AllFinal(); }, milliseconds(10'000)));
    EXPECT_TRUE(agent.Drain().ok());
  }
  const std::vector<AttemptRecord> attempts = AttemptsOf("r-env.1", "env-1");
  ASSERT_THAT(attempts, SizeIs(1));
  ASSERT_EQ(attempts[0].outcome, Outcome::kSucceeded) << attempts[0].stderr_tail;
  const std::vector<std::string> lines =
      absl::StrSplit(ReadFile(dir_.File("env-1.env")), '\n', absl::SkipEmpty());
  // The template's argv, the identity variables, and a --env value passed
  // through untouched (no shell ever sees it).
  EXPECT_THAT(lines, ElementsAre("r-env.1 env-1 1", "r-env.1", "env-1", "1", attempts[0].lease_id,
                                 session_id_, "hello world; $HOME `id`"));
}

TEST_F(GrpcIntegrationTest, InvalidArgumentsAreRejectedWithAReason) {
  WorkerInfo bad;
  bad.worker_id = "a;b";
  bad.slots = 1;
  EXPECT_THAT(client_->Register(bad),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("worker_id")));

  WorkerInfo no_slots;
  no_slots.worker_id = "w-valid";
  no_slots.slots = 0;
  EXPECT_THAT(client_->Register(no_slots),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("slots")));

  AttemptReport report;
  report.worker_id = "w-valid";
  report.lease_id = "L 1";
  report.outcome = Outcome::kSucceeded;
  report.exit_code = 0;
  EXPECT_THAT(client_->Report(report),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("lease_id")));

  // The generated stub, for what the client would never send.
  std::unique_ptr<v1::WorkerService::Stub> stub = v1::WorkerService::NewStub(MakeChannel(address_));
  auto call = [](auto method) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return method(&ctx);
  };
  v1::ReportRequest unspecified;
  unspecified.set_worker_id("w-valid");
  unspecified.set_lease_id("L-1");
  v1::ReportResponse report_resp;
  grpc::Status st =
      call([&](grpc::ClientContext* ctx) { return stub->Report(ctx, unspecified, &report_resp); });
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
  EXPECT_FALSE(st.error_message().empty());

  v1::ReportRequest lost = unspecified;
  lost.set_outcome(v1::OUTCOME_LOST);
  st = call([&](grpc::ClientContext* ctx) { return stub->Report(ctx, lost, &report_resp); });
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
  EXPECT_THAT(st.error_message(), HasSubstr("lost"));

  v1::LeaseRequest lease;
  lease.set_worker_id("w-valid");
  lease.set_request_id("r-1");
  lease.set_max_phases(0);
  v1::LeaseResponse lease_resp;
  st = call([&](grpc::ClientContext* ctx) { return stub->Lease(ctx, lease, &lease_resp); });
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
  EXPECT_THAT(st.error_message(), HasSubstr("max_phases"));

  v1::HeartbeatRequest heartbeat;
  heartbeat.set_worker_id("w-valid");
  heartbeat.add_lease_ids("..");
  v1::HeartbeatResponse heartbeat_resp;
  st = call(
      [&](grpc::ClientContext* ctx) { return stub->Heartbeat(ctx, heartbeat, &heartbeat_resp); });
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
  EXPECT_THAT(st.error_message(), HasSubstr("lease_id"));

  // Nothing was registered along the way.
  auto workers = store_->ListWorkers();
  ASSERT_TRUE(workers.ok());
  EXPECT_THAT(*workers, SizeIs(0));
}

TEST_F(GrpcIntegrationTest, DuplicateAndUnknownLeaseReportsOverGrpc) {
  ImportAndStart({{"r-dup", "p1"}}, OneAttempt(30));
  const LeaseBatch batch = RegisterAndLease("w-dup", 1);
  ASSERT_THAT(batch.leases, SizeIs(1));
  const LeaseGrant grant = batch.leases[0];
  // A retried lease request gets the same grant, not a second phase.
  absl::StatusOr<LeaseBatch> retried = client_->Lease("w-dup", "req-1", 1, 1'000, {});
  ASSERT_TRUE(retried.ok()) << retried.status();
  ASSERT_THAT(retried->leases, SizeIs(1));
  EXPECT_EQ(retried->leases[0].lease_id, grant.lease_id);

  AttemptReport report = bench::SucceededReport(grant, "w-dup");
  report.telemetry_events = 2;
  report.telemetry_by_type = {{"llm_call", 2}};
  EXPECT_THAT(client_->Report(report), IsOkAndHolds(ReportDisposition::kAccepted));
  EXPECT_THAT(client_->Report(report), IsOkAndHolds(ReportDisposition::kDuplicate));

  AttemptReport unknown = report;
  unknown.lease_id = "L-never-granted";
  EXPECT_THAT(client_->Report(unknown), IsOkAndHolds(ReportDisposition::kUnknownLease));

  // The duplicate changed nothing: one attempt, counted once.
  const std::vector<AttemptRecord> attempts = AttemptsOf("r-dup", "p1");
  ASSERT_THAT(attempts, SizeIs(1));
  EXPECT_EQ(attempts[0].telemetry_events, 2);
  const PhaseRecord phase = Phase("r-dup", "p1");
  EXPECT_EQ(phase.state, PhaseState::kSucceeded);
  EXPECT_EQ(phase.attempts, 1);
  EXPECT_EQ(phase.telemetry_events, 2);
}

TEST_F(GrpcIntegrationTest, AReportBatchOverGrpcAnswersEachReportInOrder) {
  ImportAndStart({{"r-batch", "p1"}, {"r-batch", "p2"}, {"r-batch", "p3"}}, OneAttempt(30));
  const LeaseBatch batch = RegisterAndLease("w-batch", 3);
  ASSERT_THAT(batch.leases, SizeIs(3));
  std::vector<AttemptReport> reports;
  for (const LeaseGrant& grant : batch.leases)
    reports.push_back(bench::SucceededReport(grant, "w-batch"));
  reports[1].lease_id = "L 1";  // not an id: this one alone is refused
  AttemptReport again = reports[0];
  reports.push_back(again);

  auto answers = client_->ReportBatch(reports);
  ASSERT_TRUE(answers.ok()) << answers.status();
  ASSERT_THAT(*answers, SizeIs(4));
  EXPECT_THAT((*answers)[0], IsOkAndHolds(ReportDisposition::kAccepted));
  EXPECT_THAT((*answers)[1], StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("lease_id")));
  EXPECT_THAT((*answers)[2], IsOkAndHolds(ReportDisposition::kAccepted));
  EXPECT_THAT((*answers)[3], IsOkAndHolds(ReportDisposition::kDuplicate));
  EXPECT_EQ(Phase("r-batch", batch.leases[0].phase_id).state, PhaseState::kSucceeded);
  EXPECT_EQ(Phase("r-batch", batch.leases[1].phase_id).state, PhaseState::kLeased);
  EXPECT_EQ(Phase("r-batch", batch.leases[2].phase_id).state, PhaseState::kSucceeded);

  // A batch is one worker's: mixed worker ids, an empty batch and one over
  // the limit are refused whole, with a reason.
  std::vector<AttemptReport> mixed = {reports[0], reports[2]};
  mixed[1].worker_id = "w-other";
  EXPECT_THAT(client_->ReportBatch(mixed),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("same worker_id")));
  EXPECT_THAT(client_->ReportBatch({}), StatusIs(absl::StatusCode::kInvalidArgument));
  std::vector<AttemptReport> too_many(Coordinator::kMaxReportBatch + 1, reports[0]);
  EXPECT_THAT(client_->ReportBatch(too_many),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at most 256")));
}

// The coordinator's worker service, counting the report calls it serves,
// optionally holding the first ReportBatch calls in flight until Release(), or
// without ReportBatch at all (a coordinator older than the call).
class CountingWorkerService final : public v1::WorkerService::Service {
 public:
  CountingWorkerService(Coordinator& coordinator, bool has_report_batch)
      : impl_(coordinator), has_report_batch_(has_report_batch) {}

  grpc::Status Register(grpc::ServerContext* ctx, const v1::RegisterRequest* req,
                        v1::RegisterResponse* resp) override {
    return impl_.Register(ctx, req, resp);
  }
  grpc::Status Lease(grpc::ServerContext* ctx, const v1::LeaseRequest* req,
                     v1::LeaseResponse* resp) override {
    return impl_.Lease(ctx, req, resp);
  }
  grpc::Status Heartbeat(grpc::ServerContext* ctx, const v1::HeartbeatRequest* req,
                         v1::HeartbeatResponse* resp) override {
    return impl_.Heartbeat(ctx, req, resp);
  }
  grpc::Status Report(grpc::ServerContext* ctx, const v1::ReportRequest* req,
                      v1::ReportResponse* resp) override {
    ++unary_calls_;
    return impl_.Report(ctx, req, resp);
  }
  grpc::Status ReportBatch(grpc::ServerContext* ctx, const v1::ReportBatchRequest* req,
                           v1::ReportBatchResponse* resp) override {
    if (!has_report_batch_) return v1::WorkerService::Service::ReportBatch(ctx, req, resp);
    {
      absl::MutexLock lock(&mu_);
      batch_sizes_.push_back(req->reports_size());
      if (batch_sizes_.size() <= held_calls_) {
        mu_.AwaitWithTimeout(absl::Condition(&released_), absl::Seconds(30));
      }
    }
    return impl_.ReportBatch(ctx, req, resp);
  }

  void HoldFirstBatches(size_t n) {
    absl::MutexLock lock(&mu_);
    held_calls_ = n;
    released_ = false;
  }
  void Release() {
    absl::MutexLock lock(&mu_);
    released_ = true;
  }
  std::vector<int> batch_sizes() const {
    absl::MutexLock lock(&mu_);
    return batch_sizes_;
  }
  int unary_calls() const { return unary_calls_.load(); }

 private:
  WorkerServiceImpl impl_;
  const bool has_report_batch_;
  mutable absl::Mutex mu_;
  std::vector<int> batch_sizes_ ABSL_GUARDED_BY(mu_);
  size_t held_calls_ ABSL_GUARDED_BY(mu_) = 0;
  bool released_ ABSL_GUARDED_BY(mu_) = true;
  std::atomic<int> unary_calls_{0};
};

class ReportBatchingIntegrationTest : public GrpcIntegrationTest {
 protected:
  // Serves the fixture's coordinator through `service` on loopback and
  // returns a client of it.
  std::unique_ptr<GrpcCoordinatorClient> Serve(CountingWorkerService& service) {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service);
    counting_server_ = builder.BuildAndStart();
    EXPECT_NE(counting_server_, nullptr);
    EXPECT_GT(port, 0);
    return std::make_unique<GrpcCoordinatorClient>(MakeChannel(absl::StrCat("127.0.0.1:", port)));
  }
  void TearDown() override {
    if (counting_server_) counting_server_->Shutdown();
    GrpcIntegrationTest::TearDown();
  }
  size_t SpoolFiles(const WorkerConfig& config) const {
    size_t n = 0;
    std::error_code ec;
    for (const auto& e :
         std::filesystem::directory_iterator(std::filesystem::path(config.log_dir) / "spool", ec)) {
      if (e.path().extension() == ".json") ++n;
    }
    return n;
  }
  // Every phase of `run` succeeded with exactly one attempt recorded.
  void ExpectEachRecordedOnce(const std::string& run, int phases) {
    for (int i = 0; i < phases; ++i) {
      const std::string phase = absl::StrCat("ok-", i);
      EXPECT_THAT(AttemptsOf(run, phase), SizeIs(1)) << phase;
      EXPECT_EQ(Phase(run, phase).state, PhaseState::kSucceeded) << phase;
      EXPECT_EQ(Phase(run, phase).attempts, 1) << phase;
    }
  }
  static std::vector<PhaseKey> Phases(const std::string& run, int n) {
    std::vector<PhaseKey> keys;
    for (int i = 0; i < n; ++i) keys.push_back({run, absl::StrCat("ok-", i)});
    return keys;
  }

  std::unique_ptr<grpc::Server> counting_server_;
};

TEST_F(ReportBatchingIntegrationTest, AMultiSlotWorkersReportsReachTheCoordinatorBatched) {
  constexpr int kPhases = 8;
  ImportAndStart(Phases("r-many", kPhases), OneAttempt(30));
  CountingWorkerService service(*coordinator_, /*has_report_batch=*/true);
  std::unique_ptr<GrpcCoordinatorClient> client = Serve(service);
  // As many calls as the worker sends at once.
  service.HoldFirstBatches(static_cast<size_t>(ReportDelivery::Options{}.max_calls_in_flight));
  const WorkerConfig config = MakeWorkerConfig(kPhases);
  {
    RunningAgent agent(config, *client);
    // The first reports' calls are held in flight until every outcome is
    // spooled: the others finish meanwhile and must wait for a call.
    ASSERT_TRUE(WaitUntil([&] { return SpoolFiles(config) == kPhases; }, milliseconds(10'000)));
    service.Release();
    ASSERT_TRUE(WaitUntil([&] { return AllFinal(); }, milliseconds(10'000)));
    EXPECT_TRUE(agent.Drain().ok());
    EXPECT_EQ(agent.reported(), kPhases);
  }
  const std::vector<int> sizes = service.batch_sizes();
  int reports = 0;
  for (int n : sizes) reports += n;
  EXPECT_EQ(reports, kPhases);
  EXPECT_LT(sizes.size(), static_cast<size_t>(kPhases));
  EXPECT_GE(*std::max_element(sizes.begin(), sizes.end()), 2);
  EXPECT_EQ(service.unary_calls(), 0);
  EXPECT_EQ(SpoolFiles(config), 0u);
  ExpectEachRecordedOnce("r-many", kPhases);
}

TEST_F(ReportBatchingIntegrationTest, ANewWorkerReportsToACoordinatorWithoutReportBatch) {
  constexpr int kPhases = 4;
  ImportAndStart(Phases("r-old", kPhases), OneAttempt(30));
  CountingWorkerService old_service(*coordinator_, /*has_report_batch=*/false);
  std::unique_ptr<GrpcCoordinatorClient> client = Serve(old_service);
  const WorkerConfig config = MakeWorkerConfig(2);
  {
    RunningAgent agent(config, *client);
    ASSERT_TRUE(WaitUntil([&] { return AllFinal(); }, milliseconds(10'000)));
    EXPECT_TRUE(agent.Drain().ok());
    EXPECT_EQ(agent.reported(), kPhases);
  }
  EXPECT_EQ(old_service.unary_calls(), kPhases);
  EXPECT_EQ(SpoolFiles(config), 0u);
  ExpectEachRecordedOnce("r-old", kPhases);
}

}  // namespace
}  // namespace sluice
