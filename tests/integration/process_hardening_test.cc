// PosixProcessRunner against phases that misbehave on purpose (issue #14):
// a FIFO put in a log's place, the self-fence's shortened grace, log modes,
// orphans re-parented to the worker (a child subreaper) and reaped.
// /bin/sh scripts build the misbehaviour, in tests only.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/shell_spec.h"
#include "tests/testing/test_env.h"
#include "worker/orphan_reaper.h"
#include "worker/process_runner.h"

namespace sluice {
namespace {

using ::sluice::testing::ReadFile;
using ::sluice::testing::ScratchDir;
using ::sluice::testing::ShellSpec;
using ::testing::Lt;
using Clock = std::chrono::steady_clock;

// Bug: the runner read the tails of a phase's logs with a blocking open; a
// phase that replaced its log with a FIFO hung the worker's reader forever.
TEST(ProcessHardeningTest, FifoInPlaceOfALogDoesNotHangTheRunner) {
  ScratchDir dir;
  const std::string err = dir.File("stderr.log");
  const std::string out = dir.File("stdout.log");
  ProcessSpec spec = ShellSpec(
      dir, "rm -f '" + err + "' '" + out + "' && mkfifo '" + err + "' '" + out + "'; exit 4");
  PosixProcessRunner runner;
  absl::StatusOr<ProcessResult> result = runner.Run(spec, CancelToken());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 4);
  EXPECT_EQ(result->stdout_tail, "");
  EXPECT_EQ(result->stderr_tail, "");
  EXPECT_EQ(result->error_text, "");
}

TEST(ProcessHardeningTest, LogFilesAreReadableByTheOwnerOnly) {
  ScratchDir dir;
  PosixProcessRunner runner;
  ASSERT_TRUE(runner.Run(ShellSpec(dir, "echo out; echo err >&2"), CancelToken()).ok());
  for (const char* name : {"stdout.log", "stderr.log"}) {
    struct stat st {};
    ASSERT_EQ(::stat(dir.File(name).c_str(), &st), 0) << name;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << name;
  }
}

// The self-fence's kill must land within the lease TTL whatever the phase's
// grace: CancelAndKillWithin cuts a long grace short, also for a phase that
// was already being stopped with the long one.
TEST(ProcessHardeningTest, KillWithinCutsALongGraceShort) {
  ScratchDir dir;
  const std::string started = dir.File("started");
  ProcessSpec spec =
      ShellSpec(dir, "trap '' TERM; echo yes > '" + started + "'; while :; do sleep 0.05; done");
  spec.grace_ms = 600'000;
  CancelToken cancel;
  std::thread fence([&] {
    while (!std::filesystem::exists(started)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    cancel.Cancel();  // a drain: SIGTERM, which the phase ignores
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    cancel.CancelAndKillWithin(200);  // the fence
  });
  const Clock::time_point begin = Clock::now();
  PosixProcessRunner runner;
  absl::StatusOr<ProcessResult> result = runner.Run(spec, cancel);
  fence.join();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->stopped_by, StopReason::kCancelled);
  EXPECT_EQ(result->signal, SIGKILL);
  EXPECT_THAT(Clock::now() - begin, Lt(std::chrono::seconds(10)));
  EXPECT_EQ(cancel.kill_within_ms(), 200);
}

// Bug: orphans of phases were never reaped. With the worker a subreaper, a
// phase's double-forked daemon comes to it once the phase exits, and
// ReapUntracked takes it when it ends.
TEST(ProcessHardeningTest, OrphanComesToTheSubreaperAndIsReaped) {
  ASSERT_TRUE(BecomeChildSubreaper().ok());
  ScratchDir dir;
  const std::string pid_file = dir.File("orphan.pid");
  ProcessSpec spec =
      // The phase exits once its daemon has left the group (the runner
      // kills whatever is left in it).
      ShellSpec(dir, "setsid sh -c 'echo $$ > " + pid_file + ".tmp; mv " + pid_file + ".tmp " +
                         pid_file + "; sleep 0.2' < /dev/null > /dev/null 2>&1 & while [ ! -e " +
                         pid_file + " ]; do sleep 0.01; done; exit 0");
  PosixProcessRunner runner;
  absl::StatusOr<ProcessResult> result = runner.Run(spec, CancelToken());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 0);
  pid_t orphan = 0;
  const Clock::time_point deadline = Clock::now() + std::chrono::seconds(10);
  while (orphan == 0 && Clock::now() < deadline) {
    orphan = static_cast<pid_t>(std::atol(ReadFile(pid_file).c_str()));
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_GT(orphan, 0);
  // It is ours now; once it has exited, one call reaps it.
  siginfo_t info{};
  ASSERT_EQ(::waitid(P_PID, static_cast<id_t>(orphan), &info, WEXITED | WNOWAIT), 0)
      << "the orphan did not come to this subreaper";
  EXPECT_GE(ChildRegistry::Get().ReapUntracked(), 1);
  errno = 0;
  EXPECT_EQ(::kill(orphan, 0), -1);
  EXPECT_EQ(errno, ESRCH);
}

// The reaper never takes the exit status of a child the runner tracks.
TEST(ProcessHardeningTest, ReaperNeverStealsATrackedChildsStatus) {
  ScratchDir dir;
  std::atomic<bool> done{false};
  std::thread reaper([&] {
    while (!done.load()) ChildRegistry::Get().ReapUntracked();
  });
  PosixProcessRunner runner;
  for (int i = 0; i < 30; ++i) {
    absl::StatusOr<ProcessResult> result = runner.Run(ShellSpec(dir, "exit 7"), CancelToken());
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->exit_code, 7) << "run " << i;
  }
  done.store(true);
  reaper.join();
}

}  // namespace
}  // namespace sluice
