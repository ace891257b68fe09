// The worker's hardening end to end (issue #14), with the built binaries as
// processes on the embedded SQLite store:
//  - start failures: a worker that cannot start any phase (`--exec
//    /nonexistent/...`) reports `start_failed`, which uses the requeue budget
//    and never the attempt budget or the repeat rule; it stops leasing after
//    --max-start-failures (default 3) in a row and exits 3 saying why; a
//    healthy worker then drains the same backlog completely;
//  - orphans: phases that leave a daemon behind (a double fork) have it
//    re-parented to the worker, a child subreaper, which reaps it.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
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

// Bug: orphans of phases (a double fork, a daemon) were never reaped by the
// worker; as PID 1 in a container without init they stayed zombies forever.
// This test process makes itself a subreaper too: without the worker's own,
// the orphans would come here and stay zombies, as under an init that never
// waits.
TEST_F(WorkerHardeningE2ETest, OrphansOfPhasesAreReapedByTheWorker) {
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
  const std::string script = dir_.File("orphan.sh");
  // The daemon leaves the phase's process group (setsid), so the runner's
  // group kill does not reach it, writes its pid to orphan.PHASE and lives
  // 200 ms; the phase exits once the daemon is on its own.
  WriteFile(script, "#!/bin/sh\nf=" + dir_.File("orphan.") +
                        "$1\nsetsid sh -c 'echo $$ > \"$0.tmp\"; mv \"$0.tmp\" \"$0\"; sleep 0.2' "
                        "\"$f\" < /dev/null > /dev/null 2>&1 &\n"
                        "while [ ! -e \"$f\" ]; do sleep 0.01; done\nexit 0\n");
  ASSERT_EQ(::chmod(script.c_str(), 0755), 0);
  constexpr int kPhases = 3;
  const std::string address = StartDrain("r-orphan", kPhases, {});
  ASSERT_FALSE(address.empty());
  const pid_t worker =
      StartWorker(WorkerSpec("w-orphan", address, script + " {phase_id}").Slots(1));
  ASSERT_TRUE(WaitSessionDone(address, milliseconds(30'000))) << Log("w-orphan");
  std::vector<pid_t> orphans;
  for (int i = 0; i < kPhases; ++i) {
    const pid_t pid =
        static_cast<pid_t>(std::atol(ReadFile(dir_.File(absl::StrCat("orphan.p", i))).c_str()));
    ASSERT_GT(pid, 0) << "phase p" << i << " left no daemon";
    orphans.push_back(pid);
  }
  // Each orphan ends 200 ms after it started; the worker reaps it within its
  // reaper's period. A zombie still answers kill(pid, 0).
  for (const pid_t pid : orphans) {
    EXPECT_TRUE(
        WaitUntil([&] { return ::kill(pid, 0) != 0 && errno == ESRCH; }, milliseconds(10'000)))
        << "orphan " << pid << " was not reaped; /proc/" << pid
        << "/stat: " << ReadFile("/proc/" + std::to_string(pid) + "/stat");
  }
  EXPECT_EQ(StopChild(worker, SIGTERM), 0) << Log("w-orphan");
  EXPECT_EQ(StopChild(coordinator_pid_, SIGTERM), 0);
  // Reap here whatever came to this process, so the test leaves nothing.
  while (::waitpid(-1, nullptr, WNOHANG) > 0) {
  }
}

}  // namespace
}  // namespace sluice
