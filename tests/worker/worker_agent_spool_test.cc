// WorkerAgent with its outcome spool: a fake coordinator client decides what
// each call answers, a fake runner "runs" phases at once. Conditions are
// polled with a deadline (the agent runs its own threads).
#include <atomic>
#include <chrono>
#include <deque>
#include <filesystem>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_env.h"
#include "worker/outcome_spool.h"
#include "worker/worker_agent.h"

namespace sluice {
namespace {

using ::sluice::testing::ScratchDir;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::SizeIs;

bool WaitFor(const std::function<bool()>& condition) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

class FakeClient : public CoordinatorClient {
 public:
  absl::StatusOr<WorkerRegistration> Register(const WorkerInfo&) override {
    WorkerRegistration r;
    r.heartbeat_interval_ms = 60'000;
    r.lease_ttl_ms = 600'000;
    return r;
  }
  absl::StatusOr<LeaseBatch> Lease(const std::string& worker_id, const std::string& request_id,
                                   int32_t, int64_t) override {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    LeaseBatch batch;
    batch.session_active = true;
    std::lock_guard<std::mutex> lock(mu_);
    request_ids_.push_back(request_id);
    if (!grants_.empty()) {
      batch.leases.push_back(grants_.front());
      batch.leases.back().worker_id = worker_id;
      grants_.pop_front();
    }
    return batch;
  }
  absl::StatusOr<std::vector<std::string>> Heartbeat(const std::string&,
                                                     const std::vector<std::string>&,
                                                     int64_t) override {
    return std::vector<std::string>();
  }
  absl::StatusOr<ReportDisposition> Report(const AttemptReport& report) override {
    std::lock_guard<std::mutex> lock(mu_);
    attempts_.push_back(report);
    return answer_;
  }

  void Grant(const std::string& lease_id) {
    LeaseGrant g;
    g.lease_id = lease_id;
    g.run_id = "r1";
    g.phase_id = "p1";
    g.attempt = 1;
    g.epoch = 7;
    g.session_id = "s1";
    g.timeout_seconds = 60;
    std::lock_guard<std::mutex> lock(mu_);
    grants_.push_back(g);
  }
  void Answer(absl::StatusOr<ReportDisposition> answer) {
    std::lock_guard<std::mutex> lock(mu_);
    answer_ = std::move(answer);
  }
  std::vector<std::string> request_ids() {
    std::lock_guard<std::mutex> lock(mu_);
    return request_ids_;
  }
  std::vector<AttemptReport> attempts() {
    std::lock_guard<std::mutex> lock(mu_);
    return attempts_;
  }

 private:
  std::mutex mu_;
  std::deque<LeaseGrant> grants_;
  std::vector<AttemptReport> attempts_;  // every Report call, failed ones included
  std::vector<std::string> request_ids_;
  absl::StatusOr<ReportDisposition> answer_ = ReportDisposition::kAccepted;
};

class InstantRunner : public ProcessRunner {
 public:
  absl::StatusOr<ProcessResult> Run(const ProcessSpec&, const CancelToken&) override {
    ProcessResult r;
    r.exit_code = 0;
    r.duration_ms = 1;
    return r;
  }
};

class WorkerAgentSpoolTest : public ::testing::Test {
 protected:
  WorkerConfig Config() const {
    WorkerConfig c;
    c.worker_id = "w1";
    c.command = *CommandTemplate::Parse("/bin/true {run_id}");
    c.log_dir = dir_.File("logs");
    c.drain_timeout_ms = 1'000;
    return c;
  }
  std::string SpoolDir() const { return dir_.File("logs") + "/spool"; }

  std::vector<AttemptReport> Spooled() const {
    auto listed = OutcomeSpool(SpoolDir()).List();
    EXPECT_TRUE(listed.ok()) << listed.status();
    return listed.ok() ? *listed : std::vector<AttemptReport>();
  }

  // Runs an agent until `done` holds, then drains it.
  absl::Status RunUntil(WorkerConfig config, FakeClient& client,
                        const std::function<bool()>& done) {
    WorkerAgent agent(std::move(config), client, runner_, SystemClock::Default());
    absl::Status result;
    std::thread run([&] { result = agent.Run(); });
    EXPECT_TRUE(WaitFor(done));
    agent.RequestDrain();
    run.join();
    return result;
  }

  ScratchDir dir_;
  InstantRunner runner_;
};

TEST_F(WorkerAgentSpoolTest, AnsweredOutcomeLeavesNothingInTheSpool) {
  FakeClient client;
  client.Grant("L-1");
  ASSERT_TRUE(RunUntil(Config(), client, [&] { return !client.attempts().empty(); }).ok());
  ASSERT_THAT(client.attempts(), SizeIs(1));
  EXPECT_EQ(client.attempts()[0].outcome, Outcome::kSucceeded);
  EXPECT_THAT(Spooled(), IsEmpty());
}

TEST_F(WorkerAgentSpoolTest, LateOrDuplicateAnswerAlsoRemovesTheSpoolFile) {
  FakeClient client;
  client.Answer(ReportDisposition::kLate);
  client.Grant("L-1");
  ASSERT_TRUE(RunUntil(Config(), client, [&] { return !client.attempts().empty(); }).ok());
  EXPECT_THAT(Spooled(), IsEmpty());
}

TEST_F(WorkerAgentSpoolTest, UndeliveredOutcomeSurvivesDrainAndTheNextStartDeliversIt) {
  WorkerConfig config = Config();
  config.report_give_up_ms = 0;
  {
    FakeClient down;
    down.Answer(absl::UnavailableError("coordinator down"));
    down.Grant("L-1");
    ASSERT_TRUE(RunUntil(config, down, [&] { return !down.attempts().empty(); }).ok());
    // Given up at drain, but the spool still holds it.
    const std::vector<AttemptReport> left = Spooled();
    ASSERT_THAT(left, SizeIs(1));
    EXPECT_EQ(left[0].lease_id, "L-1");
    EXPECT_EQ(left[0].epoch, 7);
    EXPECT_EQ(left[0].outcome, Outcome::kSucceeded);
  }
  // The next start re-delivers it without any new lease.
  FakeClient up;
  ASSERT_TRUE(RunUntil(config, up, [&] { return !up.attempts().empty(); }).ok());
  ASSERT_THAT(up.attempts(), SizeIs(1));
  EXPECT_EQ(up.attempts()[0].lease_id, "L-1");
  EXPECT_EQ(up.attempts()[0].worker_id, "w1");
  EXPECT_THAT(Spooled(), IsEmpty());
}

TEST_F(WorkerAgentSpoolTest, RejectedOutcomeIsSetAsideNotRetried) {
  FakeClient client;
  client.Answer(absl::InvalidArgumentError("stdout_tail too long"));
  client.Grant("L-1");
  ASSERT_TRUE(RunUntil(Config(), client, [&] { return !client.attempts().empty(); }).ok());
  EXPECT_THAT(client.attempts(), SizeIs(1));
  EXPECT_THAT(Spooled(), IsEmpty());
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(SpoolDir())) {
    names.push_back(e.path().filename().string());
  }
  EXPECT_THAT(names, ElementsAre("L-1.json.rejected"));
}

TEST_F(WorkerAgentSpoolTest, SpoolDirFlagOverridesTheDefault) {
  WorkerConfig config = Config();
  config.spool_dir = dir_.File("elsewhere");
  OutcomeSpool elsewhere(config.spool_dir);
  ASSERT_TRUE(elsewhere.Init().ok());
  AttemptReport old;
  old.lease_id = "L-old";
  old.epoch = 3;
  old.worker_id = "w1";
  old.outcome = Outcome::kFailed;
  ASSERT_TRUE(elsewhere.Put(old).ok());
  FakeClient client;
  ASSERT_TRUE(RunUntil(config, client, [&] { return !client.attempts().empty(); }).ok());
  ASSERT_THAT(client.attempts(), SizeIs(1));
  EXPECT_EQ(client.attempts()[0].lease_id, "L-old");
  auto left = elsewhere.List();
  ASSERT_TRUE(left.ok());
  EXPECT_THAT(*left, IsEmpty());
}

TEST_F(WorkerAgentSpoolTest, RestartedWorkerNeverReusesALeaseRequestId) {
  // Bug: request ids were WORKER-r1, -r2, ... in every process, and the
  // coordinator answers a known (worker, request id) with the grants it made
  // for it, so a worker restarted under the same id was handed its previous
  // process's leases again and ran those phases a second time (found by
  // RedisE2ETest.RedisKilledMidDrainAndRestartedWithAofLosesAndDoublesNothing).
  FakeClient first;
  ASSERT_TRUE(RunUntil(Config(), first, [&] { return first.request_ids().size() >= 3; }).ok());
  FakeClient second;
  ASSERT_TRUE(RunUntil(Config(), second, [&] { return second.request_ids().size() >= 3; }).ok());
  const std::vector<std::string> a = first.request_ids();
  const std::set<std::string> before(a.begin(), a.end());
  for (const std::string& id : second.request_ids()) {
    EXPECT_FALSE(before.contains(id)) << id << " reused after a restart";
    EXPECT_LE(id.size(), 128u);
  }
}

// The --service gate: while `ready` is false the agent asks for no lease at
// all; once it turns true leasing resumes.
TEST_F(WorkerAgentSpoolTest, NoLeaseIsRequestedWhileTheServiceIsUnhealthy) {
  FakeClient client;
  client.Grant("L-1");
  std::atomic<bool> healthy{false};
  WorkerConfig config = Config();
  config.ready = [&healthy] { return healthy.load(); };
  WorkerAgent agent(std::move(config), client, runner_, SystemClock::Default());
  absl::Status result;
  std::thread run([&] { result = agent.Run(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  EXPECT_THAT(client.request_ids(), IsEmpty());
  healthy.store(true);
  EXPECT_TRUE(WaitFor([&] { return !client.attempts().empty(); }));
  agent.RequestDrain();
  run.join();
  EXPECT_TRUE(result.ok()) << result;
}

// The heartbeat RPC deadline: half the TTL up to 10 s, never past the fence,
// never below the floor.
TEST(HeartbeatTimeoutTest, IsBoundedByTheLeaseTtlAndTheTimeLeftBeforeTheFence) {
  EXPECT_EQ(HeartbeatTimeoutMs(30'000, 30'000), 10'000);  // the old fixed deadline as the cap
  EXPECT_EQ(HeartbeatTimeoutMs(120'000, 120'000), 10'000);
  EXPECT_EQ(HeartbeatTimeoutMs(4'000, 4'000), 2'000);  // TTL/2
  EXPECT_EQ(HeartbeatTimeoutMs(4'000, 700), 700);      // the fence is due sooner
  EXPECT_EQ(HeartbeatTimeoutMs(4'000, 50), kMinHeartbeatTimeoutMs);
  EXPECT_EQ(HeartbeatTimeoutMs(4'000, -500), kMinHeartbeatTimeoutMs);  // overdue
  EXPECT_EQ(HeartbeatTimeoutMs(100, 100), kMinHeartbeatTimeoutMs);     // a tiny TTL
}

}  // namespace
}  // namespace sluice
