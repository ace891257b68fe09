// PosixProcessRunner against real processes. /bin/sh scripts are used here,
// in tests only, to build process trees that misbehave on purpose.
#include "worker/process_runner.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/process.h"
#include "tests/testing/shell_spec.h"
#include "tests/testing/test_env.h"
#include "tests/testing/wait.h"

namespace sluice {
namespace {

using ::sluice::testing::ProcessGone;
using ::sluice::testing::ReadFile;
using ::sluice::testing::ReadPidFile;
using ::sluice::testing::ScratchDir;
using ::sluice::testing::ShellSpec;
using ::sluice::testing::WaitUntil;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Lt;
using ::testing::Not;
using ::testing::SizeIs;
using ::testing::StartsWith;
using Clock = std::chrono::steady_clock;

ProcessResult RunOrDie(const ProcessSpec& spec, const CancelToken& cancel = CancelToken()) {
  PosixProcessRunner runner;
  absl::StatusOr<ProcessResult> result = runner.Run(spec, cancel);
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? *result : ProcessResult();
}

TEST(ProcessRunnerTest, ReportsExitCode) {
  ScratchDir dir;
  const ProcessResult result = RunOrDie(ShellSpec(dir, "exit 7"));
  EXPECT_EQ(result.exit_code, 7);
  EXPECT_EQ(result.signal, 0);
  EXPECT_EQ(result.stopped_by, StopReason::kNone);
  EXPECT_GE(result.duration_ms, 0);
}

TEST(ProcessRunnerTest, HugeTimeoutAndGraceDoNotOverflow) {
  ScratchDir dir;
  ProcessSpec spec = ShellSpec(dir, "exit 5");
  spec.timeout_ms = std::numeric_limits<int64_t>::max();
  spec.grace_ms = std::numeric_limits<int64_t>::max();
  const ProcessResult result = RunOrDie(spec);
  EXPECT_EQ(result.exit_code, 5);
  EXPECT_EQ(result.stopped_by, StopReason::kNone);
}

TEST(ProcessRunnerTest, ReportsSuccess) {
  ScratchDir dir;
  ProcessSpec spec;
  spec.argv = {"true"};  // looked up in PATH
  spec.stdout_path = dir.File("out");
  spec.stderr_path = dir.File("err");
  const ProcessResult result = RunOrDie(spec);
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.signal, 0);
  EXPECT_THAT(result.stdout_tail, IsEmpty());
  EXPECT_THAT(result.error_text, IsEmpty());
}

TEST(ProcessRunnerTest, ReportsTerminatingSignal) {
  ScratchDir dir;
  const ProcessResult result = RunOrDie(ShellSpec(dir, "kill -9 $$"));
  EXPECT_EQ(result.exit_code, -1);
  EXPECT_EQ(result.signal, SIGKILL);
  EXPECT_EQ(result.stopped_by, StopReason::kNone);
}

TEST(ProcessRunnerTest, TimeoutKillsWholeGroupIncludingGrandchildThatIgnoresTerm) {
  ScratchDir dir;
  const std::string pid_file = dir.File("grandchild.pid");
  // Ignoring TERM is inherited by both sleeps, so only SIGKILL ends them.
  ProcessSpec spec = ShellSpec(
      dir, "trap '' TERM; sleep 1000 & echo $! > '" + pid_file + "'; sleep 1000; echo unreachable");
  spec.timeout_ms = 300;
  spec.grace_ms = 300;

  const Clock::time_point start = Clock::now();
  const ProcessResult result = RunOrDie(spec);
  const auto elapsed =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();

  EXPECT_EQ(result.stopped_by, StopReason::kTimeout);
  EXPECT_EQ(result.signal, SIGKILL);
  EXPECT_EQ(result.exit_code, -1);
  EXPECT_GE(result.duration_ms, 300);
  EXPECT_THAT(elapsed, Lt(3000)) << "timeout 300 ms + grace 300 ms took far too long";
  EXPECT_THAT(result.stdout_tail, IsEmpty());

  const pid_t grandchild = ReadPidFile(pid_file);
  ASSERT_GT(grandchild, 0) << "the script did not record its background pid";
  EXPECT_TRUE(WaitUntil([&] { return ProcessGone(grandchild); }, std::chrono::seconds(2)))
      << "grandchild " << grandchild << " survived the group kill";
}

TEST(ProcessRunnerTest, LeftoverGroupMembersAreKilledAfterNormalExit) {
  ScratchDir dir;
  const std::string pid_file = dir.File("daemon.pid");
  const ProcessResult result =
      RunOrDie(ShellSpec(dir, "sleep 1000 & echo $! > '" + pid_file + "'; exit 3"));
  EXPECT_EQ(result.exit_code, 3);
  EXPECT_EQ(result.stopped_by, StopReason::kNone);
  const pid_t leftover = ReadPidFile(pid_file);
  ASSERT_GT(leftover, 0);
  EXPECT_TRUE(WaitUntil([&] { return ProcessGone(leftover); }, std::chrono::seconds(2)))
      << "background process " << leftover << " outlived its phase";
}

TEST(ProcessRunnerTest, GracefulExitAfterTermStillReportsTimeout) {
  ScratchDir dir;
  ProcessSpec spec =
      ShellSpec(dir, "trap 'echo cleaned up; exit 0' TERM; while :; do sleep 0.05; done");
  spec.timeout_ms = 200;
  spec.grace_ms = 10'000;
  const ProcessResult result = RunOrDie(spec);
  EXPECT_EQ(result.stopped_by, StopReason::kTimeout);
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.signal, 0);
  EXPECT_THAT(result.duration_ms, Lt(5'000)) << "should not have waited for the grace period";
  EXPECT_EQ(result.stdout_tail, "cleaned up\n");
}

TEST(ProcessRunnerTest, IdleLimitStopsAPhaseThatWentSilentButNotOneThatKeepsWriting) {
  ScratchDir dir;
  // Writes, then hangs in silence: stopped by the idle limit, long before
  // its timeout.
  ProcessSpec hung = ShellSpec(dir, "echo started; exec sleep 30");
  hung.timeout_ms = 60'000;
  hung.idle_timeout_ms = 1'000;
  hung.grace_ms = 1'000;
  const ProcessResult stopped = RunOrDie(hung);
  EXPECT_EQ(stopped.stopped_by, StopReason::kIdle);
  EXPECT_THAT(stopped.duration_ms, Lt(10'000));
  EXPECT_GE(stopped.duration_ms, 1'000);
  EXPECT_GE(stopped.longest_silence_ms, 1'000);
  EXPECT_EQ(stopped.stdout_tail, "started\n");

  // Writes to stderr every 100 ms for 2 s, longer than the 1 s limit in
  // all: it is never silent that long, so it runs to its end.
  ScratchDir dir2;
  ProcessSpec chatty =
      ShellSpec(dir2, "i=0; while [ $i -lt 20 ]; do echo tick >&2; sleep 0.1; i=$((i+1)); done");
  chatty.idle_timeout_ms = 1'000;
  const ProcessResult finished = RunOrDie(chatty);
  EXPECT_EQ(finished.stopped_by, StopReason::kNone);
  EXPECT_EQ(finished.exit_code, 0);
  EXPECT_GE(finished.duration_ms, 1'900);
  EXPECT_GE(finished.longest_silence_ms, 0);
  EXPECT_THAT(finished.longest_silence_ms, Lt(1'000));
}

TEST(ProcessRunnerTest, LongestSilenceIsMeasuredWithoutALimitAndUnknownWithoutLogFiles) {
  ScratchDir dir;
  // Silent for its first 1.2 s (the start counts), then writes and exits.
  const ProcessResult quiet_start = RunOrDie(ShellSpec(dir, "sleep 1.2; echo done"));
  EXPECT_EQ(quiet_start.stopped_by, StopReason::kNone);
  EXPECT_GE(quiet_start.longest_silence_ms, 1'000);
  EXPECT_LE(quiet_start.longest_silence_ms, quiet_start.duration_ms + kSilenceCheckMs);

  // No log files (both /dev/null): nothing to watch, so no idle stop either.
  ProcessSpec unwatched;
  unwatched.argv = {"/bin/sh", "-c", "sleep 1.5"};
  unwatched.idle_timeout_ms = 500;
  const ProcessResult result = RunOrDie(unwatched);
  EXPECT_EQ(result.stopped_by, StopReason::kNone);
  EXPECT_EQ(result.longest_silence_ms, -1);
}

TEST(ProcessRunnerTest, CancelFromAnotherThreadStopsProcess) {
  ScratchDir dir;
  const std::string started = dir.File("started");
  ProcessSpec spec = ShellSpec(dir, "echo yes > '" + started + "'; sleep 1000");
  spec.grace_ms = 2'000;
  CancelToken cancel;
  std::thread canceller([&] {
    WaitUntil([&] { return ReadFile(started) == "yes\n"; }, std::chrono::seconds(10));
    cancel.Cancel();
  });
  const Clock::time_point begin = Clock::now();
  const ProcessResult result = RunOrDie(spec, cancel);
  canceller.join();
  EXPECT_EQ(result.stopped_by, StopReason::kCancelled);
  EXPECT_EQ(result.signal, SIGTERM);
  EXPECT_EQ(result.exit_code, -1);
  EXPECT_THAT(Clock::now() - begin, Lt(std::chrono::seconds(8)));
}

TEST(ProcessRunnerTest, AlreadyCancelledTokenStopsProcessAtOnce) {
  ScratchDir dir;
  CancelToken cancel;
  cancel.Cancel();
  ProcessSpec spec = ShellSpec(dir, "sleep 1000");
  spec.grace_ms = 100;
  const ProcessResult result = RunOrDie(spec, cancel);
  EXPECT_EQ(result.stopped_by, StopReason::kCancelled);
  EXPECT_NE(result.signal, 0);
  EXPECT_THAT(result.duration_ms, Lt(3'000));
}

TEST(ProcessRunnerTest, ZeroGraceKillsImmediately) {
  ScratchDir dir;
  ProcessSpec spec = ShellSpec(dir, "trap '' TERM; sleep 1000");
  spec.timeout_ms = 100;
  spec.grace_ms = 0;
  const ProcessResult result = RunOrDie(spec);
  EXPECT_EQ(result.stopped_by, StopReason::kTimeout);
  EXPECT_EQ(result.signal, SIGKILL);
  EXPECT_THAT(result.duration_ms, Lt(3'000));
}

TEST(ProcessRunnerTest, EnvironmentIsInheritedAndOverridden) {
  ScratchDir dir;
  ASSERT_EQ(::setenv("SLUICE_RUNNER_INHERITED", "from-worker", 1), 0);
  ASSERT_EQ(::setenv("SLUICE_RUNNER_OVERRIDDEN", "old", 1), 0);
  ProcessSpec spec = ShellSpec(dir,
                               "printf '%s|%s|%s' \"$SLUICE_RUNNER_INHERITED\" "
                               "\"$SLUICE_RUNNER_OVERRIDDEN\" \"$SLUICE_RUNNER_NEW\"");
  spec.env = {{"SLUICE_RUNNER_OVERRIDDEN", "new"}, {"SLUICE_RUNNER_NEW", "a b;$(c)"}};
  const ProcessResult result = RunOrDie(spec);
  ::unsetenv("SLUICE_RUNNER_INHERITED");
  ::unsetenv("SLUICE_RUNNER_OVERRIDDEN");
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.stdout_tail, "from-worker|new|a b;$(c)");
}

// Bug: $SLUICE_TOKEN (the worker's token, or under `sluice drain` the
// operator's admin token) and the paths of sluice's token files reached every
// phase's environment.
TEST(ProcessRunnerTest, SluiceSecretsAreScrubbedFromThePhaseEnvironment) {
  ScratchDir dir;
  const std::vector<std::pair<std::string, std::string>> scrubbed = {
      {"SLUICE_TOKEN", "tok-0123456789abcdef"},
      {"SLUICE_ADMIN_TOKEN_FILE", "/secret/admin"},
      {"SLUICE_WORKER_TOKENS_FILE", "/secret/workers"},
      {"SLUICE_TLS_KEY", "/secret/tls.key"}};
  for (const auto& [name, value] : scrubbed) ASSERT_EQ(::setenv(name.c_str(), value.c_str(), 1), 0);
  ASSERT_EQ(::setenv("SLUICE_RUNNER_PLAIN", "kept", 1), 0);
  ProcessSpec spec = ShellSpec(dir, "env | grep -e ^SLUICE_ -e secret || true");
  spec.env = {{"SLUICE_GIVEN_TOKEN", "explicit"}};  // --env: the operator's choice, kept
  const ProcessResult result = RunOrDie(spec);
  for (const auto& [name, value] : scrubbed) ::unsetenv(name.c_str());
  ::unsetenv("SLUICE_RUNNER_PLAIN");
  EXPECT_EQ(result.exit_code, 0);
  for (const auto& [name, value] : scrubbed) {
    EXPECT_THAT(result.stdout_tail, Not(HasSubstr(name + "="))) << name;
    EXPECT_THAT(result.stdout_tail, Not(HasSubstr(value))) << name;
  }
  EXPECT_THAT(result.stdout_tail, HasSubstr("SLUICE_RUNNER_PLAIN=kept"));
  EXPECT_THAT(result.stdout_tail, HasSubstr("SLUICE_GIVEN_TOKEN=explicit"));
}

TEST(ProcessRunnerTest, RejectsInvalidEnvironmentName) {
  ScratchDir dir;
  ProcessSpec spec = ShellSpec(dir, "true");
  spec.env = {{"A=B", "x"}};
  PosixProcessRunner runner;
  EXPECT_EQ(runner.Run(spec, CancelToken()).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ProcessRunnerTest, WorkdirIsHonoured) {
  ScratchDir dir;
  std::filesystem::create_directory(dir.File("work"));
  testing::WriteFile(dir.File("work/marker"), "here\n");
  ProcessSpec spec = ShellSpec(dir, "pwd; cat marker");
  spec.workdir = dir.File("work");
  const ProcessResult result = RunOrDie(spec);
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.stdout_tail, std::filesystem::canonical(dir.File("work")).string() + "\nhere\n");
}

TEST(ProcessRunnerTest, MissingWorkdirIsAnError) {
  ScratchDir dir;
  ProcessSpec spec = ShellSpec(dir, "true");
  spec.workdir = dir.File("does-not-exist");
  PosixProcessRunner runner;
  absl::StatusOr<ProcessResult> result = runner.Run(spec, CancelToken());
  EXPECT_FALSE(result.ok());
  EXPECT_THAT(result.status().message(), HasSubstr("does-not-exist"));
}

TEST(ProcessRunnerTest, NonexistentProgramIsNotFound) {
  ScratchDir dir;
  PosixProcessRunner runner;
  for (const std::string program : {"sluice-no-such-program", "/nonexistent/dir/program"}) {
    ProcessSpec spec;
    spec.argv = {program, "--flag"};
    spec.stdout_path = dir.File("out");
    spec.stderr_path = dir.File("err");
    absl::StatusOr<ProcessResult> result = runner.Run(spec, CancelToken());
    EXPECT_EQ(result.status().code(), absl::StatusCode::kNotFound) << program;
    EXPECT_THAT(result.status().message(), HasSubstr(program));
  }
}

TEST(ProcessRunnerTest, EmptyArgvIsAnError) {
  PosixProcessRunner runner;
  EXPECT_EQ(runner.Run(ProcessSpec(), CancelToken()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ProcessRunnerTest, StreamsGoToLogFilesAndTails) {
  ScratchDir dir;
  const ProcessResult result =
      RunOrDie(ShellSpec(dir, "echo out one; echo err one >&2; echo out two; echo err two >&2"));
  EXPECT_EQ(ReadFile(dir.File("stdout.log")), "out one\nout two\n");
  EXPECT_EQ(ReadFile(dir.File("stderr.log")), "err one\nerr two\n");
  EXPECT_EQ(result.stdout_tail, "out one\nout two\n");
  EXPECT_EQ(result.stderr_tail, "err one\nerr two\n");
}

// A million-phase drain would otherwise leave two empty files per attempt.
TEST(ProcessRunnerTest, ALogIsCreatedOnlyWhenThePhaseWritesToIt) {
  ScratchDir dir;
  const ProcessResult silent = RunOrDie(ShellSpec(dir, "exit 3"));
  EXPECT_EQ(silent.exit_code, 3);
  EXPECT_FALSE(std::filesystem::exists(dir.File("stdout.log")));
  EXPECT_FALSE(std::filesystem::exists(dir.File("stderr.log")));
  EXPECT_THAT(silent.log_errors, IsEmpty());

  const ProcessResult talks_on_stderr = RunOrDie(ShellSpec(dir, "echo only here >&2"));
  EXPECT_FALSE(std::filesystem::exists(dir.File("stdout.log")));
  EXPECT_EQ(ReadFile(dir.File("stderr.log")), "only here\n");
  EXPECT_EQ(talks_on_stderr.stderr_tail, "only here\n");
  EXPECT_EQ(talks_on_stderr.error_text, "only here");
}

// `tail -f` of a running phase's log works from its first output on.
TEST(ProcessRunnerTest, ARunningPhasesLogGetsItsNameOnceItHasOutput) {
  ScratchDir dir;
  const std::string go_on = dir.File("go-on");
  const std::string log = dir.File("stdout.log");
  ProcessSpec spec = ShellSpec(
      dir, "echo started; while [ ! -e '" + go_on + "' ]; do sleep 0.01; done; echo ended");
  spec.timeout_ms = 60'000;
  std::thread release([&] {
    // The runner looks every kSilenceCheckMs: well within this.
    const bool named =
        WaitUntil([&] { return std::filesystem::exists(log); }, std::chrono::seconds(20));
    EXPECT_TRUE(named) << "the log of the running phase never appeared";
    if (named) {
      EXPECT_EQ(ReadFile(log), "started\n");
    }
    testing::WriteFile(go_on, "");
  });
  const ProcessResult result = RunOrDie(spec);
  release.join();
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(ReadFile(log), "started\nended\n");
  EXPECT_FALSE(std::filesystem::exists(dir.File("stderr.log")));
}

// As O_TRUNC did: output replaces what was at the path (only a rerun of the
// same lease meets one), even a FIFO the phase put there.
TEST(ProcessRunnerTest, OutputReplacesAFileAlreadyAtTheLogsPath) {
  ScratchDir dir;
  testing::WriteFile(dir.File("stdout.log"), "an older attempt's output\n");
  const std::string err = dir.File("stderr.log");
  RunOrDie(ShellSpec(dir, "echo new; mkfifo '" + err + "'; echo new err >&2"));
  EXPECT_EQ(ReadFile(dir.File("stdout.log")), "new\n");
  EXPECT_TRUE(std::filesystem::is_regular_file(err));
  EXPECT_EQ(ReadFile(err), "new err\n");
}

// A log that cannot get its name (here its directory is gone) is said in
// the result, and its end still reaches the report.
TEST(ProcessRunnerTest, OutputWhoseLogCannotBeNamedStillReachesTheTails) {
  ScratchDir dir;
  const std::filesystem::path logs = dir.path() / "logs";
  std::filesystem::create_directory(logs);
  ProcessSpec spec = ShellSpec(dir, "rm -r '" + logs.string() + "'; echo last words >&2; exit 1");
  spec.stdout_path = (logs / "stdout.log").string();
  spec.stderr_path = (logs / "stderr.log").string();
  const ProcessResult result = RunOrDie(spec);
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(result.stderr_tail, "last words\n");
  EXPECT_EQ(result.error_text, "last words");
  ASSERT_THAT(result.log_errors, SizeIs(1));
  EXPECT_THAT(result.log_errors[0], HasSubstr("cannot create log file " + spec.stderr_path));
  EXPECT_FALSE(std::filesystem::exists(logs));
}

TEST(ProcessRunnerTest, TailIsCutAtALineStart) {
  ScratchDir dir;
  ProcessSpec spec =
      ShellSpec(dir, "i=0; while [ $i -lt 500 ]; do echo \"line $i\"; i=$((i+1)); done");
  spec.tail_bytes = 100;
  const ProcessResult result = RunOrDie(spec);
  EXPECT_THAT(result.stdout_tail, SizeIs(::testing::Le(100u)));
  EXPECT_THAT(result.stdout_tail, StartsWith("line 4"));
  EXPECT_THAT(result.stdout_tail, EndsWith("line 499\n"));
  EXPECT_EQ(ReadFile(dir.File("stdout.log")).substr(0, 7), "line 0\n");
}

TEST(ProcessRunnerTest, ErrorTextIsLastNonEmptyStderrLine) {
  ScratchDir dir;
  const ProcessResult result =
      RunOrDie(ShellSpec(dir,
                         "echo 'Traceback (most recent call last):' >&2; "
                         "echo 'ValueError: the input file phase.csv has 3 bad rows' >&2; "
                         "printf '\\n   \\n' >&2; exit 1"));
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(result.error_text, "ValueError: the input file phase.csv has 3 bad rows");
}

TEST(ProcessRunnerTest, ShortLastErrorLineKeepsThePreviousOne) {
  ScratchDir dir;
  const ProcessResult result = RunOrDie(ShellSpec(
      dir, "echo noise >&2; echo 'disk quota exceeded writing out.bin' >&2; echo failed >&2"));
  EXPECT_EQ(result.error_text, "disk quota exceeded writing out.bin\nfailed");
}

TEST(ProcessRunnerTest, ErrorTextIsBounded) {
  ScratchDir dir;
  const ProcessResult result = RunOrDie(ShellSpec(
      dir, "i=0; while [ $i -lt 500 ]; do printf 'abcdefghij' >&2; i=$((i+1)); done; echo >&2"));
  EXPECT_THAT(result.error_text, SizeIs(1000u));
  EXPECT_THAT(result.error_text, EndsWith("abcdefghij"));
}

TEST(ProcessRunnerTest, EmptyStderrGivesNoErrorText) {
  ScratchDir dir;
  const ProcessResult result = RunOrDie(ShellSpec(dir, "echo only stdout; exit 2"));
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_THAT(result.error_text, IsEmpty());
  EXPECT_THAT(result.stderr_tail, IsEmpty());
}

TEST(ProcessRunnerTest, InvalidUtf8InOutputIsReplaced) {
  ScratchDir dir;
  const ProcessResult result = RunOrDie(ShellSpec(dir, "printf 'a\\377b\\n' >&2"));
  EXPECT_EQ(result.stderr_tail, "a?b\n");
  EXPECT_EQ(result.error_text, "a?b");
}

TEST(ProcessRunnerTest, StdinIsDevNull) {
  ScratchDir dir;
  const ProcessResult result = RunOrDie(ShellSpec(dir, "cat; echo \"done $?\""));
  EXPECT_EQ(result.stdout_tail, "done 0\n");
}

// Descriptors this test process would pass on to any child anyway.
std::set<std::string> InheritableFds() {
  std::set<std::string> fds;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    const std::string name = entry.path().filename().string();
    const int fd = std::atoi(name.c_str());
    const int flags = ::fcntl(fd, F_GETFD);
    if (flags >= 0 && (flags & FD_CLOEXEC) == 0) fds.insert(name);
  }
  return fds;
}

TEST(ProcessRunnerTest, ChildGetsNoExtraDescriptors) {
  ScratchDir dir;
  std::set<std::string> allowed = InheritableFds();
  allowed.insert({"0", "1", "2"});
  const ProcessResult result = RunOrDie(ShellSpec(dir, "ls /proc/$$/fd"));
  std::istringstream lines(result.stdout_tail);
  std::string fd;
  while (std::getline(lines, fd)) {
    EXPECT_TRUE(allowed.count(fd) > 0) << "descriptor " << fd << " leaked into the child";
  }
}

TEST(ProcessRunnerTest, SignalMaskAndDispositionsAreReset) {
  ScratchDir dir;
  // The worker may ignore SIGPIPE (gRPC does) and block signals in its threads.
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  struct sigaction old_pipe {};
  ASSERT_EQ(::sigaction(SIGPIPE, &ignore, &old_pipe), 0);
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGUSR1);
  sigset_t old_mask;
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &block, &old_mask), 0);

  // Flake fixed: grep used to read the *shell's* /proc/$$/status while the
  // shell had every signal blocked around its fork of grep (SigBlk
  // fffffffe7ffbfeff, most runs under --gtest_repeat). With exec, the spawned
  // process itself reports its own mask and dispositions.
  const ProcessResult result =
      RunOrDie(ShellSpec(dir, "exec grep -E '^Sig(Blk|Ign)' /proc/self/status"));

  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  ::sigaction(SIGPIPE, &old_pipe, nullptr);
  EXPECT_THAT(result.stdout_tail, HasSubstr("SigBlk:\t0000000000000000"));
  // Only the classic signals 1..31: glibc's posix_spawn leaves its own
  // internal real-time signals (32, 33) ignored, and a new glibc process
  // installs its handlers for them again.
  const size_t ign = result.stdout_tail.find("SigIgn:\t");
  ASSERT_NE(ign, std::string::npos) << result.stdout_tail;
  const unsigned long long ignored =
      std::strtoull(result.stdout_tail.c_str() + ign + 8, nullptr, 16);
  EXPECT_EQ(ignored & 0x7fffffffULL, 0u) << result.stdout_tail;
}

TEST(ProcessRunnerTest, RunsInItsOwnProcessGroup) {
  ScratchDir dir;
  // Field 5 of /proc/PID/stat is the process group ("sh" has no blank in it).
  const ProcessResult result = RunOrDie(ShellSpec(dir, "cut -d' ' -f5 /proc/$$/stat; echo $$"));
  std::istringstream lines(result.stdout_tail);
  long pgid = 0;
  long pid = 0;
  lines >> pgid >> pid;
  EXPECT_GT(pid, 0);
  EXPECT_EQ(pgid, pid);
  EXPECT_NE(pgid, static_cast<long>(::getpgrp()));
}

TEST(ProcessRunnerTest, ConcurrentRunsGetTheirOwnResults) {
  constexpr int kRuns = 8;
  std::vector<std::unique_ptr<ScratchDir>> dirs;
  std::vector<ProcessResult> results(kRuns);
  std::vector<std::thread> threads;
  for (int i = 0; i < kRuns; ++i) dirs.push_back(std::make_unique<ScratchDir>());
  PosixProcessRunner runner;  // one runner shared by all threads
  for (int i = 0; i < kRuns; ++i) {
    threads.emplace_back([&, i] {
      ProcessSpec spec = ShellSpec(*dirs[static_cast<size_t>(i)],
                                   "sleep 0.$N; echo \"out $N\"; echo \"err $N\" >&2; exit $N");
      spec.env = {{"N", std::to_string(i)}};
      absl::StatusOr<ProcessResult> result = runner.Run(spec, CancelToken());
      ASSERT_TRUE(result.ok()) << result.status();
      results[static_cast<size_t>(i)] = *result;
    });
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < kRuns; ++i) {
    const ProcessResult& result = results[static_cast<size_t>(i)];
    EXPECT_EQ(result.exit_code, i);
    EXPECT_EQ(result.stdout_tail, "out " + std::to_string(i) + "\n");
    EXPECT_EQ(result.error_text, "err " + std::to_string(i));
  }
}

TEST(ProcessRunnerTest, ConcurrentTimeoutDoesNotDisturbOtherRuns) {
  ScratchDir slow_dir;
  ScratchDir fast_dir;
  PosixProcessRunner runner;
  ProcessResult slow;
  std::thread slow_thread([&] {
    ProcessSpec spec = ShellSpec(slow_dir, "sleep 1000");
    spec.timeout_ms = 300;
    spec.grace_ms = 200;
    slow = RunOrDie(spec);
  });
  for (int i = 0; i < 5; ++i) {
    const ProcessResult fast = RunOrDie(ShellSpec(fast_dir, "echo fast; exit 4"));
    EXPECT_EQ(fast.exit_code, 4);
    EXPECT_EQ(fast.stopped_by, StopReason::kNone);
    EXPECT_EQ(fast.stdout_tail, "fast\n");
  }
  slow_thread.join();
  EXPECT_EQ(slow.stopped_by, StopReason::kTimeout);
  EXPECT_EQ(slow.signal, SIGTERM);
}

}  // namespace
}  // namespace sluice
