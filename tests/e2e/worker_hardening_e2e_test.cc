// The worker's hardening end to end (issue #14), with the built binaries as
// processes on the embedded SQLite store:
//  - start failures: a worker that cannot start any phase (`--exec
//    /nonexistent/...`) reports `start_failed`, which uses the requeue budget
//    and never the attempt budget or the repeat rule; it stops leasing after
//    --max-start-failures (default 3) in a row and exits 3 saying why; a
//    healthy worker then drains the same backlog completely;
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cerrno>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "coordinator/store/sqlite/sqlite_state_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/e2e_support.h"
#include "tests/testing/process.h"
#include "tests/testing/test_env.h"
#include "tests/testing/wait.h"

namespace sluice {
namespace {

using ::sluice::e2e::WorkerSpec;
using ::sluice::testing::ReadFile;
using ::sluice::testing::WaitExit;
using ::sluice::testing::WaitUntil;
using ::sluice::testing::WriteFile;
using std::chrono::milliseconds;
using ::testing::HasSubstr;

class WorkerHardeningE2ETest : public e2e::ProcessTest {
 protected:
  std::string StorePath() const { return dir_.File("state.db"); }

  // A coordinator with `phases` phases of run `run` imported and a session
  // started with `session_flags`; its address ("" and a failure otherwise).
  std::string StartDrain(const std::string& run, int phases,
                         const std::vector<std::string>& session_flags) {
    const std::string address =
        StartCoordinator("coordinator", "sqlite://" + StorePath(), "0",
                         {"--lease-ttl-ms", "5000", "--heartbeat-interval-ms", "300",
                          "--max-lease-wait-ms", "1000", "--log-level", "info"});
    if (address.empty()) return address;
    std::string backlog;
    for (int i = 0; i < phases; ++i) {
      backlog += absl::StrCat("{\"run_id\": \"", run, "\", \"phase_id\": \"p", i,
                              "\", \"phase_index\": ", i, "}\n");
    }
    WriteFile(dir_.File("backlog.jsonl"), backlog);
    e2e::CommandResult r = Sluice({"import", dir_.File("backlog.jsonl"), "--coordinator", address});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<std::string> start = {"session", "start", "--coordinator", address};
    start.insert(start.end(), session_flags.begin(), session_flags.end());
    r = Sluice(start);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.exit_code == 0 ? address : std::string();
  }
};

// Bug: a phase the worker could not start (missing program) was reported as
// `failed` exit 127: it burned the phase's attempts and fed the repeat rule,
// so one misconfigured worker failed the whole backlog as fast as it leased.
TEST_F(WorkerHardeningE2ETest, WorkerThatCannotStartPhasesStopsAndTheBacklogIsNotCharged) {
  constexpr int kPhases = 6;
  // One attempt per phase and a repeat rule at 2: charged to the phases, the
  // first failures would fail them for good and block the run.
  const std::string address =
      StartDrain("r-start", kPhases,
                 {"--max-attempts-per-phase", "1", "--max-fingerprint-repeats", "2",
                  "--max-requeues-per-phase", "5"});
  ASSERT_FALSE(address.empty());

  const pid_t broken =
      StartWorker(WorkerSpec("broken", address, "/nonexistent/sluice-phase {run_id}").Slots(1));
  const std::optional<int> code = WaitExit(broken, milliseconds(30'000));
  std::erase(children_, broken);
  ASSERT_TRUE(code.has_value()) << "the worker kept leasing: " << Log("broken");
  EXPECT_EQ(*code, 3) << Log("broken");
  EXPECT_THAT(Log("broken"), HasSubstr("3 phases in a row could not be started"));
  EXPECT_THAT(Log("broken"), HasSubstr("/nonexistent/sluice-phase"));

  {
    auto store = SqliteStateStore::Open(StorePath());
    ASSERT_TRUE(store.ok()) << store.status();
    auto attempts = (*store)->ListAttempts("");
    ASSERT_TRUE(attempts.ok()) << attempts.status();
    ASSERT_EQ(attempts->size(), 3u);
    for (const AttemptRecord& a : *attempts) {
      EXPECT_EQ(a.outcome, Outcome::kStartFailed) << OutcomeName(a.outcome);
      auto phase = (*store)->GetPhase({a.run_id, a.phase_id});
      ASSERT_TRUE(phase.ok() && phase->has_value());
      EXPECT_EQ((*phase)->state, PhaseState::kPending) << a.phase_id;
      EXPECT_EQ((*phase)->attempts, 0) << a.phase_id;
      EXPECT_GE((*phase)->requeues, 1) << a.phase_id;
    }
  }

  // A healthy worker drains everything: nothing was failed or blocked.
  const pid_t good = StartWorker(WorkerSpec("good", address, ExampleExec(" --scale 0")).Slots(2));
  ASSERT_TRUE(WaitSessionDone(address, milliseconds(30'000))) << Log("good");
  const nlohmann::json status = Status({"--coordinator", address});
  EXPECT_EQ(status["phases"].value("succeeded", -1), kPhases) << status.dump();
  EXPECT_EQ(status["phases"].value("failed", -1), 0) << status.dump();
  EXPECT_EQ(StopChild(good, SIGTERM), 0) << Log("good");
  EXPECT_EQ(StopChild(coordinator_pid_, SIGTERM), 0);
}

}  // namespace
}  // namespace sluice
