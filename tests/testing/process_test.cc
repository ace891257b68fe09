// The shared process helpers against real children: output to files, the
// environment, exit codes and signals, the deadline, zombies, pid files, and
// the shell and pseudo-terminal runners.
#include "tests/testing/process.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_env.h"
#include "tests/testing/wait.h"

namespace sluice::testing {
namespace {

using std::chrono::milliseconds;
using ::testing::HasSubstr;

class ProcessHelpersTest : public ::testing::Test {
 protected:
  pid_t Sh(const std::string& script, const std::vector<std::string>& env = {}) {
    return Spawn({"/bin/sh", "-c", script}, dir_.File("out"), dir_.File("err"), env);
  }
  ScratchDir dir_;
};

TEST_F(ProcessHelpersTest, SpawnWritesOutputToFilesAndPassesTheExtraEnvironment) {
  setenv("SLUICE_PROCESS_TEST_KEPT", "kept", 1);
  setenv("SLUICE_PROCESS_TEST_REPLACED", "old", 1);
  const pid_t pid =
      Sh("echo \"$SLUICE_PROCESS_TEST_KEPT $SLUICE_PROCESS_TEST_REPLACED $EXTRA\"; "
         "echo oops >&2; exit 3",
         {"SLUICE_PROCESS_TEST_REPLACED=new", "EXTRA=x y"});
  ASSERT_GT(pid, 0);
  EXPECT_EQ(WaitExit(pid, milliseconds(10'000)), 3);
  EXPECT_EQ(ReadFile(dir_.File("out")), "kept new x y\n");
  EXPECT_EQ(ReadFile(dir_.File("err")), "oops\n");
}

TEST_F(ProcessHelpersTest, WaitExitGivesUpAtTheDeadlineAndReportsSignalsAs128PlusN) {
  const pid_t pid = Sh("exec sleep 30");
  ASSERT_GT(pid, 0);
  EXPECT_EQ(WaitExit(pid, milliseconds(100)), std::nullopt);
  EXPECT_FALSE(ProcessGone(pid));
  ::kill(pid, SIGTERM);  // default disposition in the child, whatever ours is
  EXPECT_EQ(WaitExit(pid, milliseconds(10'000)), 128 + SIGTERM);
  EXPECT_TRUE(ProcessGone(pid));
  EXPECT_EQ(WaitExit(pid, milliseconds(100)), -1);  // reaped: no longer a child
  EXPECT_EQ(Spawn({"/nonexistent/program"}, dir_.File("out"), dir_.File("err")), 0);
}

TEST_F(ProcessHelpersTest, AZombieCountsAsGoneAndAGroupIsKilledWhole) {
  // The grandchild's group is its own; the shell writes its pid and waits.
  const std::string pid_file = dir_.File("grandchild.pid");
  const pid_t pid =
      Sh("setsid sh -c 'echo $$ > \"$0.tmp\" && mv \"$0.tmp\" \"$0\"; "
         "exec sleep 30' \"" +
         pid_file + "\" & wait");
  ASSERT_GT(pid, 0);
  EXPECT_EQ(ReadPidFile(dir_.File("missing.pid")), 0);
  ASSERT_TRUE(WaitUntil([&] { return ReadPidFile(pid_file) > 0; }, milliseconds(10'000)));
  const pid_t grandchild = ReadPidFile(pid_file);
  EXPECT_FALSE(ProcessGone(grandchild));
  KillProcessGroup(grandchild);
  EXPECT_TRUE(WaitUntil([&] { return ProcessGone(grandchild); }, milliseconds(10'000)));
  EXPECT_EQ(WaitExit(pid, milliseconds(10'000)), 0);

  const pid_t zombie = Sh("exit 0");
  ASSERT_GT(zombie, 0);
  EXPECT_TRUE(WaitUntil([&] { return ProcessGone(zombie); }, milliseconds(10'000)));
  EXPECT_EQ(WaitExit(zombie, milliseconds(10'000)), 0);  // still reapable
}

TEST_F(ProcessHelpersTest, RunShellReadsStdoutAndTheExitCode) {
  const ShellResult r = RunShell("echo out; echo err >&2; exit 4");
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_EQ(r.output, "out\n");
  EXPECT_EQ(RunShell("(echo both; echo err >&2) 2>&1").output, "both\nerr\n");
  EXPECT_EQ(RunShell("kill -KILL $$").exit_code, 128 + SIGKILL);
}

TEST_F(ProcessHelpersTest, InPtyRunsTheCommandOnATerminal) {
  const ShellResult r = RunShell(InPty("sh -c \"test -t 1 && echo tty\""));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("tty"));
  EXPECT_EQ(RunShell("test -t 1 && echo tty").output, "");
}

}  // namespace
}  // namespace sluice::testing
