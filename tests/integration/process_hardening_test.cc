// PosixProcessRunner against phases that misbehave on purpose (issue #14):
// a FIFO put in a log's place, the self-fence's shortened grace, log modes.
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
#include "tests/testing/test_env.h"
#include "worker/process_runner.h"

namespace sluice {
namespace {

using ::sluice::testing::ReadFile;
using ::sluice::testing::ScratchDir;
using ::testing::Lt;
using Clock = std::chrono::steady_clock;

ProcessSpec ShellSpec(const ScratchDir& dir, const std::string& script) {
  ProcessSpec spec;
  spec.argv = {"/bin/sh", "-c", script};
  spec.stdout_path = dir.File("stdout.log");
  spec.stderr_path = dir.File("stderr.log");
  return spec;
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

}  // namespace
}  // namespace sluice
