// WorkerAgent with its outcome spool: a fake coordinator client decides what
// each call answers, a fake runner "runs" phases at once, and the agent's
// time is a FakeClock. The test waits on conditions (the agent runs its own
// threads), never on real time; time passes only when the test advances it.
#include <atomic>
#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_env.h"
#include "tests/testing/wait.h"
#include "tests/worker/fake_coordinator_client.h"
#include "worker/outcome_spool.h"
#include "worker/worker_agent.h"

namespace sluice {
namespace {

using ::sluice::testing::Counter;
using ::sluice::testing::FakeCoordinatorClient;
using ::sluice::testing::GatedRunner;
using ::sluice::testing::InstantRunner;
using ::sluice::testing::ScratchDir;
using ::sluice::testing::SucceededResult;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

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

  // Runs an agent until `until` returns (it waits for a condition, and may
  // advance the clock), then drains it.
  absl::Status RunUntil(WorkerConfig config, FakeCoordinatorClient& client,
                        const std::function<void()>& until) {
    WorkerAgent agent(std::move(config), client, runner_, clock_);
    absl::Status result;
    std::thread run([&] { result = agent.Run(); });
    until();
    agent.RequestDrain();
    run.join();
    return result;
  }
  // The agent leased `n` times: each long-poll is answered empty when the
  // test advances the clock past its wait.
  void AdvanceThroughLeasePolls(FakeCoordinatorClient& client, int n) {
    for (int i = 1; i <= n; ++i) {
      ASSERT_TRUE(client.leases_asked().AwaitAtLeast(i));
      ASSERT_TRUE(clock_.AwaitWaiters(2));  // the heartbeat loop and the long-poll
      if (i < n) clock_.AdvanceMs(10'000);  // lease_wait_ms
    }
  }

  ScratchDir dir_;
  FakeClock clock_;
  InstantRunner runner_;
};

TEST_F(WorkerAgentSpoolTest, AnsweredOutcomeLeavesNothingInTheSpool) {
  FakeCoordinatorClient client(clock_);
  client.Grant("L-1");
  ASSERT_TRUE(
      RunUntil(Config(), client, [&] { ASSERT_TRUE(client.reports().AwaitAtLeast(1)); }).ok());
  ASSERT_THAT(client.attempts(), SizeIs(1));
  EXPECT_EQ(client.attempts()[0].outcome, Outcome::kSucceeded);
  EXPECT_THAT(Spooled(), IsEmpty());
}

TEST_F(WorkerAgentSpoolTest, LateOrDuplicateAnswerAlsoRemovesTheSpoolFile) {
  FakeCoordinatorClient client(clock_);
  client.Answer(ReportDisposition::kLate);
  client.Grant("L-1");
  ASSERT_TRUE(
      RunUntil(Config(), client, [&] { ASSERT_TRUE(client.reports().AwaitAtLeast(1)); }).ok());
  EXPECT_THAT(Spooled(), IsEmpty());
}

TEST_F(WorkerAgentSpoolTest, UndeliveredOutcomeSurvivesDrainAndTheNextStartDeliversIt) {
  WorkerConfig config = Config();
  config.report_give_up_ms = 0;
  {
    FakeCoordinatorClient down(clock_);
    down.Answer(absl::UnavailableError("coordinator down"));
    down.Grant("L-1");
    WorkerAgent agent(config, down, runner_, clock_);
    absl::Status result;
    std::thread run([&] { result = agent.Run(); });
    ASSERT_TRUE(down.reports().AwaitAtLeast(1));
    agent.RequestDrain();
    // The heartbeat loop, the lease loop (long-poll or drain wait) and the
    // report's backoff: then time passes the backoff and the give-up time.
    ASSERT_TRUE(clock_.AwaitWaiters(3));
    clock_.AdvanceMs(10'000);
    run.join();
    ASSERT_TRUE(result.ok()) << result;
    // Given up at drain, but the spool still holds it.
    const std::vector<AttemptReport> left = Spooled();
    ASSERT_THAT(left, SizeIs(1));
    EXPECT_EQ(left[0].lease_id, "L-1");
    EXPECT_EQ(left[0].epoch, 7);
    EXPECT_EQ(left[0].outcome, Outcome::kSucceeded);
  }
  // The next start re-delivers it without any new lease.
  FakeCoordinatorClient up(clock_);
  ASSERT_TRUE(RunUntil(config, up, [&] { ASSERT_TRUE(up.reports().AwaitAtLeast(1)); }).ok());
  ASSERT_THAT(up.attempts(), SizeIs(1));
  EXPECT_EQ(up.attempts()[0].lease_id, "L-1");
  EXPECT_EQ(up.attempts()[0].worker_id, "w1");
  EXPECT_THAT(Spooled(), IsEmpty());
}

TEST_F(WorkerAgentSpoolTest, RejectedOutcomeIsSetAsideNotRetried) {
  FakeCoordinatorClient client(clock_);
  client.Answer(absl::InvalidArgumentError("stdout_tail too long"));
  client.Grant("L-1");
  ASSERT_TRUE(
      RunUntil(Config(), client, [&] { ASSERT_TRUE(client.reports().AwaitAtLeast(1)); }).ok());
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
  FakeCoordinatorClient client(clock_);
  ASSERT_TRUE(
      RunUntil(config, client, [&] { ASSERT_TRUE(client.reports().AwaitAtLeast(1)); }).ok());
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
  FakeCoordinatorClient first(clock_);
  ASSERT_TRUE(RunUntil(Config(), first, [&] { AdvanceThroughLeasePolls(first, 3); }).ok());
  FakeCoordinatorClient second(clock_);
  ASSERT_TRUE(RunUntil(Config(), second, [&] { AdvanceThroughLeasePolls(second, 3); }).ok());
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
  FakeCoordinatorClient client(clock_);
  client.Grant("L-1");
  std::atomic<bool> healthy{false};
  WorkerConfig config = Config();
  Counter asked;
  config.ready = [&healthy, &asked] {
    asked.Increment();
    return healthy.load();
  };
  WorkerAgent agent(std::move(config), client, runner_, clock_);
  absl::Status result;
  std::thread run([&] { result = agent.Run(); });
  // 600 ms of the agent's time, asked every 200 ms: not once a lease.
  for (int i = 1; i <= 4; ++i) {
    ASSERT_TRUE(asked.AwaitAtLeast(i));
    ASSERT_TRUE(clock_.AwaitWaiters(2));  // the heartbeat loop and the gate
    EXPECT_THAT(client.request_ids(), IsEmpty());
    if (i < 4) clock_.AdvanceMs(kReadyRecheckMs);
  }
  healthy.store(true);
  clock_.AdvanceMs(kReadyRecheckMs);
  EXPECT_TRUE(client.reports().AwaitAtLeast(1));
  agent.RequestDrain();
  run.join();
  EXPECT_TRUE(result.ok()) << result;
}

// Event-driven: a phase ending frees its slot and the agent leases the next
// one at once. The clock never moves here, so a loop that waited for a
// timeout (or polled) instead of being woken would never get there.
TEST_F(WorkerAgentSpoolTest, AgentWakesAtOnceWhenAPhaseEnds) {
  FakeCoordinatorClient client(clock_);
  client.Grant("L-1");
  client.Grant("L-2");
  GatedRunner runner;
  const int64_t start = clock_.NowMs();
  WorkerAgent agent(Config(), client, runner, clock_);  // one slot
  absl::Status result;
  std::thread run([&] { result = agent.Run(); });
  ASSERT_TRUE(runner.AwaitStarted(1));
  ASSERT_TRUE(clock_.AwaitWaiters(2));  // the heartbeat loop; the lease loop waits for a slot
  EXPECT_EQ(client.leases_asked().value(), 1);
  runner.Release("L-1");
  ASSERT_TRUE(runner.AwaitStarted(2));
  EXPECT_THAT(runner.started(), ElementsAre("L-1", "L-2"));
  runner.Release("L-2");
  EXPECT_TRUE(client.reports().AwaitAtLeast(2));
  agent.RequestDrain();  // wakes the long-poll at once, too
  run.join();
  EXPECT_TRUE(result.ok()) << result;
  EXPECT_EQ(clock_.NowMs(), start);
}

// After a success that yielded telemetry, the next phase is leased and runs
// while that report is still on its way (#12: the report's round trip and
// commit leave the critical path). The lease is renewed until its report is
// answered, and reports in flight beyond the slots stop the leasing (a
// coordinator that stops answering reports does not collect ever more
// outcomes in this worker).
TEST_F(WorkerAgentSpoolTest, AfterAProductiveSuccessTheNextPhaseRunsWhileItsReportIsInFlight) {
  FakeCoordinatorClient client(clock_);
  client.HoldReports(true);
  client.Grant("L-1");
  client.Grant("L-2");
  client.Grant("L-3");
  GatedRunner runner;
  runner.WriteTelemetryEvents(2);
  WorkerAgent agent(Config(), client, runner, clock_);  // one slot
  absl::Status result;
  std::thread run([&] { result = agent.Run(); });
  ASSERT_TRUE(runner.AwaitStarted(1));
  runner.Release("L-1");
  ASSERT_TRUE(client.reports().AwaitAtLeast(1));  // L-1's report, held
  ASSERT_TRUE(runner.AwaitStarted(2));
  EXPECT_THAT(runner.started(), ElementsAre("L-1", "L-2"));
  // The heartbeat loop and the lease loop (no free slot) wait on the clock:
  // advanced before the heartbeat loop waits, it would wait a whole
  // interval more.
  ASSERT_TRUE(clock_.AwaitWaiters(2));
  clock_.AdvanceMs(60'000);  // the heartbeat interval
  ASSERT_TRUE(client.heartbeats().AwaitAtLeast(1));
  EXPECT_THAT(client.last_heartbeat_ids(), ::testing::UnorderedElementsAre("L-1", "L-2"));

  runner.Release("L-2");
  ASSERT_TRUE(client.reports().AwaitAtLeast(2));  // two reports in flight, one slot
  ASSERT_TRUE(clock_.AwaitWaiters(2));
  clock_.AdvanceMs(60'000);
  ASSERT_TRUE(client.heartbeats().AwaitAtLeast(2));
  EXPECT_THAT(client.last_heartbeat_ids(), ::testing::UnorderedElementsAre("L-1", "L-2"));
  EXPECT_THAT(runner.started(), SizeIs(2));

  client.HoldReports(false);  // answered: the slot's leasing resumes
  ASSERT_TRUE(runner.AwaitStarted(3));
  runner.Release("L-3");
  EXPECT_TRUE(client.reports().AwaitAtLeast(3));
  agent.RequestDrain();
  run.join();
  EXPECT_TRUE(result.ok()) << result;
  EXPECT_EQ(agent.reported(), 3);
  // No lease was asked for while two reports were held (L-2's may come
  // before or after L-1's report call: they race, by design).
  const std::vector<int> held = client.reports_held_at_lease();
  ASSERT_GE(held.size(), 3u);
  for (int h : held) EXPECT_LE(h, 1);
}

// With a coordinator that does not hold a lease for the reports it names
// (older than lease_waits_for_reports), any other outcome holds its slot
// until its report is answered: the next grant must know of it. A failure
// can block its run or family, a timeout skip its run, and a success
// without events feeds the telemetry-loss alarm; granted before the report,
// a phase the policy would skip starts.
TEST_F(WorkerAgentSpoolTest, AnOutcomeThatCanChangeTheNextGrantHoldsItsSlotUntilItsReportLands) {
  FakeCoordinatorClient client(clock_);
  client.HoldReports(true);
  client.Grant("L-1");
  client.Grant("L-2");
  GatedRunner runner;  // exit 0 and no telemetry: a success without events
  WorkerAgent agent(Config(), client, runner, clock_);  // one slot
  absl::Status result;
  std::thread run([&] { result = agent.Run(); });
  ASSERT_TRUE(runner.AwaitStarted(1));
  runner.Release("L-1");
  ASSERT_TRUE(client.reports().AwaitAtLeast(1));  // L-1's report, held
  // The heartbeat loop and the lease loop (its slot held) wait on the clock.
  ASSERT_TRUE(clock_.AwaitWaiters(2));
  clock_.AdvanceMs(60'000);  // the heartbeat interval
  ASSERT_TRUE(client.heartbeats().AwaitAtLeast(1));
  EXPECT_THAT(client.last_heartbeat_ids(), ElementsAre("L-1"));
  EXPECT_THAT(runner.started(), ElementsAre("L-1"));
  EXPECT_EQ(client.leases_asked().value(), 1);

  client.HoldReports(false);  // answered: now the slot is free
  ASSERT_TRUE(runner.AwaitStarted(2));
  EXPECT_THAT(runner.started(), ElementsAre("L-1", "L-2"));
  runner.Release("L-2");
  EXPECT_TRUE(client.reports().AwaitAtLeast(2));
  agent.RequestDrain();
  run.join();
  EXPECT_TRUE(result.ok()) << result;
  for (int held : client.reports_held_at_lease()) EXPECT_EQ(held, 0);
}

TEST_F(WorkerAgentSpoolTest, WhenTheCoordinatorWaitsForReportsAnyOutcomeFreesItsSlotNamingIt) {
  // Issue #12: a coordinator that holds a lease until the reports it names
  // have landed lets the next lease travel beside the report, so a success
  // without events (which can change the next grant) frees its slot at once
  // and the next lease call names its lease.
  FakeCoordinatorClient client(clock_);
  client.SetRegistration({.lease_ttl_ms = 600'000,
                          .heartbeat_interval_ms = 60'000,
                          .max_lease_wait_ms = 30'000,
                          .cluster_id = {},
                          .lease_waits_for_reports = true});
  client.HoldReports(true);
  client.Grant("L-1");
  client.Grant("L-2");
  GatedRunner runner;  // exit 0 and no telemetry: a success without events
  WorkerAgent agent(Config(), client, runner, clock_);  // one slot
  absl::Status result;
  std::thread run([&] { result = agent.Run(); });
  ASSERT_TRUE(runner.AwaitStarted(1));
  runner.Release("L-1");
  ASSERT_TRUE(client.reports().AwaitAtLeast(1));  // L-1's report, held
  ASSERT_TRUE(runner.AwaitStarted(2)) << "the slot waited for the report";
  std::vector<std::vector<std::string>> after = client.after_lease_ids();
  ASSERT_GE(after.size(), 2u);
  EXPECT_THAT(after[0], IsEmpty());
  EXPECT_THAT(after[1], ElementsAre("L-1")) << "the lease did not name the report on its way";

  client.HoldReports(false);
  ASSERT_TRUE(::sluice::testing::WaitUntil([&] { return agent.reported() == 1; },
                                           std::chrono::seconds(10)));
  runner.Release("L-2");
  ASSERT_TRUE(client.leases_asked().AwaitAtLeast(3));
  after = client.after_lease_ids();
  EXPECT_THAT(after[2], Not(Contains("L-1"))) << "a landed report is named no more";
  EXPECT_TRUE(client.reports().AwaitAtLeast(2));
  agent.RequestDrain();
  run.join();
  EXPECT_TRUE(result.ok()) << result;
}

// Heartbeats follow the registration's interval on the agent's clock.
TEST_F(WorkerAgentSpoolTest, HeartbeatsAreSentEveryIntervalOfTheClock) {
  FakeCoordinatorClient client(clock_);
  WorkerAgent agent(Config(), client, runner_, clock_);
  absl::Status result;
  std::thread run([&] { result = agent.Run(); });
  ASSERT_TRUE(client.leases_asked().AwaitAtLeast(1));
  ASSERT_TRUE(clock_.AwaitWaiters(2));  // the heartbeat loop and the long-poll
  clock_.AdvanceMs(59'999);
  EXPECT_EQ(client.heartbeats().value(), 0);
  clock_.AdvanceMs(1);
  EXPECT_TRUE(client.heartbeats().AwaitAtLeast(1));
  agent.RequestDrain();
  run.join();
  EXPECT_TRUE(result.ok()) << result;
}

// Bug: the self-fence sent SIGTERM only once the TTL had passed since the
// last renewal and SIGKILL a grace later, while the coordinator may grant the
// lease again at the TTL: two runs of one phase at once. Heartbeats fail here
// and the fence must have sent SIGKILL before the TTL is up.
TEST_F(WorkerAgentSpoolTest, PhasesAreKilledBeforeTheLeaseCanBeGrantedAgain) {
  FakeCoordinatorClient client(clock_);
  client.SetRegistration({.lease_ttl_ms = 3'000,
                          .heartbeat_interval_ms = 1'000,
                          .max_lease_wait_ms = 30'000,
                          .cluster_id = {}});
  client.AnswerHeartbeats(absl::UnavailableError("coordinator unreachable"));
  client.Grant("L-1");
  GatedRunner runner;
  WorkerConfig config = Config();
  config.grace_ms = 1'000;
  // TTL 3 s, margin 300 ms: SIGKILL due at 2.7 s; SIGTERM not before one
  // interval plus TTL/4 (1.75 s), so the 1 s grace is cut to 950 ms.
  const SelfFence plan = PlanSelfFence(3'000, 1'000, config.grace_ms);
  ASSERT_EQ(plan.term_after_ms, 1'750);
  ASSERT_EQ(plan.kill_by_ms, 2'700);
  WorkerAgent agent(std::move(config), client, runner, clock_);  // one slot: busy with L-1
  absl::Status result;
  std::thread run([&] { result = agent.Run(); });
  ASSERT_TRUE(runner.AwaitStarted(1));
  ASSERT_TRUE(clock_.AwaitWaiters(2));  // the heartbeat loop; the lease loop waits for a slot
  clock_.AdvanceMs(1'000);
  ASSERT_TRUE(client.heartbeats().AwaitAtLeast(1));  // fails
  ASSERT_TRUE(clock_.AwaitWaiters(2));
  clock_.AdvanceMs(749);
  ASSERT_TRUE(clock_.AwaitWaiters(2));
  EXPECT_FALSE(runner.cancelled("L-1"));  // 1.749 s since the renewal
  clock_.AdvanceMs(1);
  ASSERT_TRUE(client.heartbeats().AwaitAtLeast(2));  // fenced just before this one
  EXPECT_TRUE(runner.cancelled("L-1"));
  const int64_t kill_within = runner.kill_within_ms("L-1");
  EXPECT_EQ(kill_within, 950);
  EXPECT_LT(1'750 + kill_within, 3'000) << "SIGKILL would land after the lease may be re-granted";
  runner.Release("L-1");
  agent.RequestDrain();
  run.join();
  EXPECT_TRUE(result.ok()) << result;
}

// The fence, for every shape of settings: SIGKILL before the TTL, SIGTERM a
// grace before it but never before a renewal was due, the grace cut to fit.
TEST(SelfFenceTest, KillLandsBeforeTheTtlAndTheGraceIsCutToFit) {
  SelfFence f = PlanSelfFence(30'000, 10'000, 10'000);  // the defaults
  EXPECT_EQ(f.kill_by_ms, 28'000);                      // margin capped at 2 s
  EXPECT_EQ(f.term_after_ms, 18'000);
  EXPECT_EQ(f.grace_ms, 10'000);
  f = PlanSelfFence(1'500, 300, 1'000);  // the fault tests' TTL
  EXPECT_EQ(f.kill_by_ms, 1'350);
  EXPECT_EQ(f.term_after_ms, 675);  // one interval plus TTL/4
  EXPECT_EQ(f.grace_ms, 675);       // cut from 1 s
  f = PlanSelfFence(3'000, 1'000, 0);
  EXPECT_EQ(f.term_after_ms, 2'700);
  EXPECT_EQ(f.grace_ms, 0);
  f = PlanSelfFence(1'000, 5'000, 500);  // heartbeats slower than the TTL
  EXPECT_EQ(f.term_after_ms, 900);
  EXPECT_EQ(f.grace_ms, 0);
  for (int64_t ttl : {100, 1'000, 5'000, 30'000, 600'000}) {
    for (int64_t interval : {10, 300, 1'000, 24'000}) {
      for (int64_t grace : {0, 500, 10'000, 120'000}) {
        f = PlanSelfFence(ttl, interval, grace);
        EXPECT_LT(f.kill_by_ms, ttl);
        EXPECT_EQ(f.term_after_ms + f.grace_ms, f.kill_by_ms);
        EXPECT_GE(f.grace_ms, 0);
        EXPECT_LE(f.grace_ms, grace);
      }
    }
  }
}

// Starts phases by a script: 'F' could not start (posix_spawn said ENOENT),
// 'S' started and succeeded; past the script every start fails.
class ScriptedStartRunner : public ProcessRunner {
 public:
  explicit ScriptedStartRunner(std::string script) : script_(std::move(script)) {}
  absl::StatusOr<ProcessResult> Run(const ProcessSpec&, const CancelToken&) override {
    const size_t call = calls_.fetch_add(1);
    if (call < script_.size() && script_[call] == 'S') {
      return SucceededResult();
    }
    return absl::NotFoundError("cannot start /nonexistent: no such file");
  }

 private:
  const std::string script_;
  std::atomic<size_t> calls_{0};
};

// Bug: a phase the worker could not start was reported `failed` (exit 127)
// and the worker leased on, failing the backlog as fast as it could lease.
TEST_F(WorkerAgentSpoolTest, StopsLeasingAfterMaxStartFailuresInARow) {
  FakeCoordinatorClient client(clock_);
  for (const char* id : {"L-1", "L-2", "L-3", "L-4"}) client.Grant(id);
  ScriptedStartRunner runner("");
  WorkerConfig config = Config();
  config.max_start_failures = 2;
  WorkerAgent agent(std::move(config), client, runner, clock_);
  const absl::Status result = agent.Run();  // returns by itself
  EXPECT_EQ(result.code(), absl::StatusCode::kFailedPrecondition) << result;
  EXPECT_THAT(std::string(result.message()),
              ::testing::HasSubstr("2 phases in a row could not be started"));
  const std::vector<AttemptReport> reports = client.attempts();
  ASSERT_THAT(reports, SizeIs(2));
  for (const AttemptReport& r : reports) {
    EXPECT_EQ(r.outcome, Outcome::kStartFailed) << OutcomeName(r.outcome);
    EXPECT_THAT(r.error_text, ::testing::HasSubstr("/nonexistent"));
  }
}

TEST_F(WorkerAgentSpoolTest, AStartedPhaseResetsTheStartFailureCount) {
  FakeCoordinatorClient client(clock_);
  for (const char* id : {"L-1", "L-2", "L-3", "L-4", "L-5"}) client.Grant(id);
  ScriptedStartRunner runner("FSFSF");  // never two in a row
  WorkerConfig config = Config();
  config.max_start_failures = 2;
  WorkerAgent agent(std::move(config), client, runner, clock_);
  absl::Status result;
  std::thread run([&] { result = agent.Run(); });
  ASSERT_TRUE(client.reports().AwaitAtLeast(5));
  agent.RequestDrain();
  run.join();
  EXPECT_TRUE(result.ok()) << result;
  EXPECT_THAT(client.attempts(), SizeIs(5));
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
