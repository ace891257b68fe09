// Containment (#16 item 3): PosixProcessRunner with sluice-phase-shim against
// real processes that try to escape: descendants that leave the phase's
// process group and session (setsid), double-fork daemons, a killed shim.
// Every process of an attempt carries a marker in its environment
// (CONTAIN_ATTEMPT=...), so leftovers are found in /proc wherever they went.
// The same cases fail with an uncontained runner (PosixProcessRunner("")):
// the escaped processes live on.
//
// Exit codes, signals, tails and errors through the shim are pinned by the
// whole ProcessRunnerTest suite, which ctest runs a second time with
// SLUICE_PHASE_SHIM set (tests/integration/CMakeLists.txt).
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <functional>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/leftovers.h"
#include "tests/testing/process.h"
#include "tests/testing/shell_spec.h"
#include "tests/testing/test_env.h"
#include "tests/testing/wait.h"
#include "worker/phase_shim_launch.h"
#include "worker/process_runner.h"

namespace sluice {
namespace {

using ::sluice::testing::BinPath;
using ::sluice::testing::ProcessesWithEnv;
using ::sluice::testing::ProcessGone;
using ::sluice::testing::ReadFile;
using ::sluice::testing::ReadPidFile;
using ::sluice::testing::ScratchDir;
using ::sluice::testing::ShellSpec;
using ::sluice::testing::WaitUntil;
using std::chrono::milliseconds;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// One attempt's marker, and SIGKILL for whatever still carries it when the
// test ends (so a failing test leaves nothing running).
class Marker {
 public:
  Marker() {
    static std::atomic<int> counter{0};
    value_ = std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1));
  }
  ~Marker() {
    for (const pid_t pid : ProcessesWithEnv(Entry())) ::kill(pid, SIGKILL);
  }
  Marker(const Marker&) = delete;
  Marker& operator=(const Marker&) = delete;

  std::string Entry() const { return "CONTAIN_ATTEMPT=" + value_; }
  void Mark(ProcessSpec& spec) const { spec.env["CONTAIN_ATTEMPT"] = value_; }
  std::vector<pid_t> Leftovers() const { return ProcessesWithEnv(Entry()); }

 private:
  std::string value_;
};

// Script lines that write this shell's pid to `pid_file` once complete.
std::string WritePid(const std::string& pid_file) {
  return "echo $$ > " + pid_file + ".tmp; mv " + pid_file + ".tmp " + pid_file + "\n";
}

// Script lines that start a shell in a new session, in the background, which
// runs `setup`, writes its pid to `pid_file` and runs `body`; they wait for
// the pid file, so the escaped shell's setup (a trap) is in place after them.
std::string EscapeInNewSession(const std::string& pid_file, const std::string& setup,
                               const std::string& body) {
  return "setsid sh -c '" + setup + "; echo $$ > " + pid_file + ".tmp; mv " + pid_file + ".tmp " +
         pid_file + "; " + body + "' < /dev/null > /dev/null 2>&1 &\n" + "while [ ! -e " +
         pid_file + " ]; do sleep 0.01; done\n";
}

// Nothing of the attempt is left: neither the process that wrote `pid_file`
// nor any other process with the marker. Run() returns only after the shim
// has killed and reaped every descendant, so no wait is needed.
void ExpectNothingLeft(const Marker& marker, const std::string& pid_file) {
  const pid_t escaped = ReadPidFile(pid_file);
  EXPECT_GT(escaped, 0) << pid_file;
  EXPECT_TRUE(escaped > 0 && ProcessGone(escaped)) << escaped;
  EXPECT_THAT(marker.Leftovers(), IsEmpty());
}

ProcessResult RunContained(const ProcessSpec& spec, const CancelToken& cancel = CancelToken()) {
  PosixProcessRunner runner(BinPath("sluice-phase-shim"));
  absl::StatusOr<ProcessResult> result = runner.Run(spec, cancel);
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? *result : ProcessResult();
}

// Runs `spec` contained and calls `stop` (on another thread) once the phase
// has written its pid to `ready_file`, i.e. once its traps are in place.
ProcessResult RunContainedAndStop(const ProcessSpec& spec, const std::string& ready_file,
                                  const std::function<void(CancelToken&)>& stop) {
  CancelToken cancel;
  std::thread stopper([&] {
    EXPECT_TRUE(WaitUntil([&] { return ReadPidFile(ready_file) > 0; }, milliseconds(10'000)));
    stop(cancel);
  });
  const ProcessResult result = RunContained(spec, cancel);
  stopper.join();
  return result;
}

// Bug: a phase's descendant that moved to its own session (setsid) and
// ignores SIGTERM survived the timeout: the runner's SIGKILL went only to the
// phase's process group.
TEST(PhaseContainmentTest, SetsidGrandchildOfAHangingPhaseIsGoneAtTimeout) {
  ScratchDir dir;
  Marker marker;
  const std::string pid_file = dir.File("escaped.pid");
  ProcessSpec spec =
      ShellSpec(dir, EscapeInNewSession(pid_file, "trap \"\" TERM", "while :; do sleep 1; done") +
                         "sleep 1000\n");
  marker.Mark(spec);
  spec.timeout_ms = 2'000;  // time enough for the escape, even on a loaded machine
  spec.grace_ms = 300;
  const ProcessResult result = RunContained(spec);
  EXPECT_EQ(result.stopped_by, StopReason::kTimeout);
  EXPECT_EQ(result.signal, SIGTERM);  // the phase itself took the SIGTERM, as uncontained
  ExpectNothingLeft(marker, pid_file);
}

// Bug: a phase that started a hanging grandchild in a new session and then
// exited left the grandchild running after the attempt.
TEST(PhaseContainmentTest, SetsidGrandchildOfAnExitedPhaseIsGoneWhenItExits) {
  ScratchDir dir;
  Marker marker;
  const std::string pid_file = dir.File("escaped.pid");
  ProcessSpec spec =
      ShellSpec(dir, EscapeInNewSession(pid_file, ":", "exec sleep 1000") + "exit 3\n");
  marker.Mark(spec);
  spec.timeout_ms = 60'000;
  const ProcessResult result = RunContained(spec);
  EXPECT_EQ(result.exit_code, 3);
  EXPECT_EQ(result.stopped_by, StopReason::kNone);
  ExpectNothingLeft(marker, pid_file);
}

// Bug: a daemon started with a double fork by a phase that succeeded lived on
// after the attempt (re-parented to the worker, out of the phase's group).
TEST(PhaseContainmentTest, DoubleForkDaemonOfASucceededPhaseIsKilledAtAttemptEnd) {
  ScratchDir dir;
  Marker marker;
  const std::string pid_file = dir.File("daemon.pid");
  ProcessSpec spec = ShellSpec(
      dir, "(setsid sh -c 'echo $$ > " + pid_file + ".tmp; mv " + pid_file + ".tmp " + pid_file +
               "; exec sleep 1000' < /dev/null > /dev/null 2>&1 &)\n" + "while [ ! -e " + pid_file +
               " ]; do sleep 0.01; done\necho done\nexit 0\n");
  marker.Mark(spec);
  const ProcessResult result = RunContained(spec);
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.stdout_tail, "done\n");
  ExpectNothingLeft(marker, pid_file);
}

// On a timeout or cancel, descendants outside the phase's group get the
// SIGTERM too, so they can shut down cleanly within the grace before the
// SIGKILL (here the phase ignores it and lives through the grace; once the
// phase has exited, whatever is left is killed at once, as its group was
// uncontained).
TEST(PhaseContainmentTest, StopTermsDescendantsThatLeftTheGroup) {
  ScratchDir dir;
  Marker marker;
  const std::string pid_file = dir.File("escaped.pid");
  const std::string phase_pid = dir.File("phase.pid");
  const std::string termed = dir.File("termed");
  ProcessSpec spec =
      ShellSpec(dir, EscapeInNewSession(pid_file, "trap \"echo yes > " + termed + "; exit 0\" TERM",
                                        "while :; do sleep 0.05; done") +
                         "trap \"\" TERM\n" + WritePid(phase_pid) + "sleep 1000\n");
  marker.Mark(spec);
  spec.grace_ms = 1'000;
  const ProcessResult result =
      RunContainedAndStop(spec, phase_pid, [](CancelToken& cancel) { cancel.Cancel(); });
  EXPECT_EQ(result.stopped_by, StopReason::kCancelled);
  EXPECT_EQ(result.signal, SIGKILL);
  EXPECT_EQ(ReadFile(termed), "yes\n");
  EXPECT_THAT(marker.Leftovers(), IsEmpty());
}

// A cancel (lease revoked, self-fence) with a kill deadline ends the whole
// tree, the escaped part included, and reports the cancel as before.
TEST(PhaseContainmentTest, CancelAndKillWithinEndsEveryDescendant) {
  ScratchDir dir;
  Marker marker;
  const std::string pid_file = dir.File("escaped.pid");
  const std::string phase_pid = dir.File("phase.pid");
  ProcessSpec spec =
      ShellSpec(dir, EscapeInNewSession(pid_file, "trap \"\" TERM", "while :; do sleep 1; done") +
                         "trap \"\" TERM\n" + WritePid(phase_pid) + "sleep 1000\n");
  marker.Mark(spec);
  spec.grace_ms = 60'000;
  const auto start = std::chrono::steady_clock::now();
  const ProcessResult result = RunContainedAndStop(
      spec, phase_pid, [](CancelToken& cancel) { cancel.CancelAndKillWithin(200); });
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(30'000));
  EXPECT_EQ(result.stopped_by, StopReason::kCancelled);
  EXPECT_EQ(result.signal, SIGKILL);
  EXPECT_THAT(marker.Leftovers(), IsEmpty());
}

// A phase killed by a signal that dumps core: the shim dies of the same
// signal (and dumps no core of its own), so the report is unchanged.
TEST(PhaseContainmentTest, CoreDumpingSignalIsReportedAsThePhasesOwn) {
  ScratchDir dir;
  const ProcessResult result = RunContained(ShellSpec(dir, "kill -SEGV $$"));
  EXPECT_EQ(result.signal, SIGSEGV);
  EXPECT_EQ(result.exit_code, -1);
}

// If the shim itself is killed (the OOM killer, an operator), the phase dies
// with it (its own PR_SET_PDEATHSIG) instead of running on unsupervised.
TEST(PhaseContainmentTest, PhaseDiesWithAKilledShim) {
  ScratchDir dir;
  Marker marker;
  const std::string pid_file = dir.File("phase.pid");
  ProcessSpec spec = ShellSpec(dir, WritePid(pid_file) + "exec sleep 1000\n");
  marker.Mark(spec);
  std::atomic<int> shim{0};
  spec.on_started = [&](int pid) { shim.store(pid); };
  std::thread killer([&] {
    ASSERT_TRUE(WaitUntil([&] { return ReadPidFile(pid_file) > 0; }, milliseconds(10'000)));
    ::kill(shim.load(), SIGKILL);
  });
  const ProcessResult result = RunContained(spec);
  killer.join();
  EXPECT_EQ(result.signal, SIGKILL);
  const pid_t phase = ReadPidFile(pid_file);
  ASSERT_GT(phase, 0);
  EXPECT_TRUE(WaitUntil([&] { return ProcessGone(phase); }, milliseconds(5'000)));
}

// A program that cannot be started is the same error as uncontained, and
// the shim leaves nothing behind.
TEST(PhaseContainmentTest, MissingProgramIsNotFound) {
  ScratchDir dir;
  PosixProcessRunner runner(BinPath("sluice-phase-shim"));
  ProcessSpec spec;
  spec.argv = {"sluice-no-such-program-xyz"};
  absl::StatusOr<ProcessResult> result = runner.Run(spec, CancelToken());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(result.status().message(),
            "cannot start sluice-no-such-program-xyz: not found in PATH");
}

// A cgroup v2 directory for this test's attempts, created under this
// process's own cgroup and removed on destruction; path() is empty where
// there is no cgroup v2 this process may create cgroups in.
class TestCgroup {
 public:
  TestCgroup() {
    std::string mount;
    std::istringstream mounts(ReadFile("/proc/self/mountinfo"));
    for (std::string line; std::getline(mounts, line);) {
      // "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS ... - FSTYPE SOURCE ..."
      std::istringstream fields(line);
      std::vector<std::string> f(std::istream_iterator<std::string>(fields), {});
      const auto dash = std::find(f.begin(), f.end(), "-");
      if (f.size() > 4 && dash != f.end() && dash + 1 != f.end() && *(dash + 1) == "cgroup2") {
        mount = f[4];
        break;
      }
    }
    std::string own;
    std::istringstream cgroups(ReadFile("/proc/self/cgroup"));
    for (std::string line; std::getline(cgroups, line);) {
      if (line.rfind("0::", 0) == 0) own = line.substr(3);
    }
    if (mount.empty() || own.empty()) return;
    const std::string dir =
        mount + (own == "/" ? "" : own) + "/sluice-test-" + std::to_string(::getpid());
    if (::mkdir(dir.c_str(), 0755) == 0) path_ = dir;
  }
  ~TestCgroup() {
    if (!path_.empty()) ::rmdir(path_.c_str());
  }
  TestCgroup(const TestCgroup&) = delete;
  TestCgroup& operator=(const TestCgroup&) = delete;

  const std::string& path() const { return path_; }
  // The attempt cgroups left in it.
  std::vector<std::string> Children() const {
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(path_)) {
      if (entry.is_directory()) names.push_back(entry.path().filename().string());
    }
    return names;
  }

 private:
  std::string path_;
};

// With a cgroup parent, every process of the attempt, the escaped one
// included, is in the attempt's own cgroup; the timeout kills it through
// cgroup.kill, and the cgroup is removed when the attempt ends.
TEST(PhaseContainmentTest, PerAttemptCgroupHoldsTheWholeTreeAndIsRemoved) {
  TestCgroup cgroup;
  if (cgroup.path().empty() ||
      CheckPhaseCgroupParent(cgroup.path()).code() != absl::StatusCode::kOk) {
    GTEST_SKIP() << "no writable cgroup v2 with cgroup.kill here";
  }
  ScratchDir dir;
  Marker marker;
  const std::string pid_file = dir.File("escaped.pid");
  const std::string escaped_cgroup = dir.File("escaped.cgroup");
  ProcessSpec spec =
      ShellSpec(dir, EscapeInNewSession(pid_file, "cat /proc/self/cgroup > " + escaped_cgroup,
                                        "trap \"\" TERM; while :; do sleep 1; done") +
                         "cat /proc/self/cgroup\nsleep 1000\n");
  marker.Mark(spec);
  spec.timeout_ms = 2'000;  // time enough for the escape, even on a loaded machine
  spec.grace_ms = 300;
  PosixProcessRunner runner(BinPath("sluice-phase-shim"), cgroup.path());
  absl::StatusOr<ProcessResult> result = runner.Run(spec, CancelToken());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->stopped_by, StopReason::kTimeout);
  EXPECT_THAT(result->stdout_tail, HasSubstr("/sluice-attempt-"));
  EXPECT_THAT(ReadFile(escaped_cgroup), HasSubstr("/sluice-attempt-"));
  ExpectNothingLeft(marker, pid_file);
  EXPECT_THAT(cgroup.Children(), IsEmpty());
}

// A cgroup parent that cannot hold the attempt's cgroup is a start failure
// naming it, and nothing runs.
TEST(PhaseContainmentTest, UnusableCgroupParentIsAStartFailure) {
  ScratchDir dir;
  const std::string missing = dir.File("no-such-cgroup");
  const std::string ran = dir.File("ran");
  PosixProcessRunner runner(BinPath("sluice-phase-shim"), missing);
  absl::StatusOr<ProcessResult> result = runner.Run(ShellSpec(dir, "touch " + ran), CancelToken());
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(result.status().message(), HasSubstr(missing));
  EXPECT_FALSE(std::filesystem::exists(ran));
  EXPECT_FALSE(CheckPhaseCgroupParent(missing).ok());
}

}  // namespace
}  // namespace sluice
