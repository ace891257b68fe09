// Containment end to end (#16 item 3), with the built binaries as processes
// on the embedded SQLite store: a phase never outlives its worker or its
// timeout, even when part of it escaped into a new session (setsid). Every
// process a phase starts carries a marker in its environment (the --exec
// template runs it under `env CONTAIN_E2E=...`), so leftovers are found in
// /proc wherever they moved.
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/e2e_support.h"
#include "tests/testing/leftovers.h"
#include "tests/testing/process.h"
#include "tests/testing/test_env.h"
#include "tests/testing/wait.h"

namespace sluice {
namespace {

using ::sluice::e2e::WorkerSpec;
using ::sluice::testing::ProcessesWithEnv;
using ::sluice::testing::ProcessGone;
using ::sluice::testing::ReadPidFile;
using ::sluice::testing::WaitUntil;
using ::sluice::testing::WriteFile;
using std::chrono::milliseconds;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr int64_t kLeaseTtlMs = 5'000;

class ContainmentE2ETest : public e2e::ProcessTest {
 protected:
  void TearDown() override {
    for (const pid_t pid : ProcessesWithEnv(MarkerEntry())) ::kill(pid, SIGKILL);
    e2e::ProcessTest::TearDown();
  }

  std::string MarkerEntry() const { return "CONTAIN_E2E=" + dir_.path().string(); }

  // A coordinator whose session holds one phase (run r-contain, phase p0),
  // with `session_flags`; its address, "" and a failure otherwise.
  std::string StartOnePhase(const std::vector<std::string>& session_flags) {
    const std::string address =
        StartCoordinator("coordinator", "sqlite://" + dir_.File("state.db"), "0",
                         {"--lease-ttl-ms", std::to_string(kLeaseTtlMs), "--heartbeat-interval-ms",
                          "300", "--max-lease-wait-ms", "1000"});
    if (address.empty()) return address;
    WriteFile(dir_.File("one.jsonl"),
              "{\"run_id\": \"r-contain\", \"phase_id\": \"p0\", \"phase_index\": 0}\n");
    std::vector<std::string> start = {"session", "start", "--coordinator", address};
    start.insert(start.end(), session_flags.begin(), session_flags.end());
    const bool loaded =
        Sluice({"import", dir_.File("one.jsonl"), "--coordinator", address}).exit_code == 0 &&
        Sluice(start).exit_code == 0;
    EXPECT_TRUE(loaded) << "import or session start failed; see cmd-*.err in " << dir_.path();
    return loaded ? address : std::string();
  }

  // A phase that starts a grandchild in a new session (writing its pid to
  // escaped.pid), a background child, writes its own pid to phase.pid and
  // waits for both forever; the --exec template that runs it, marked.
  std::string EscapingPhaseExec() {
    const std::string script = dir_.File("escape.sh");
    WriteFile(script, "#!/bin/sh\nd=" + dir_.path().string() +
                          "\nsetsid sh -c 'echo $$ > \"$0.tmp\"; mv \"$0.tmp\" \"$0\"; "
                          "exec sleep 1000' \"$d/escaped.pid\" < /dev/null > /dev/null 2>&1 &\n"
                          "sleep 1000 &\n"
                          "while [ ! -e \"$d/escaped.pid\" ]; do sleep 0.01; done\n"
                          "echo $$ > \"$d/phase.tmp\"; mv \"$d/phase.tmp\" \"$d/phase.pid\"\n"
                          "wait\n");
    EXPECT_EQ(::chmod(script.c_str(), 0755), 0);
    return "env " + MarkerEntry() + " " + script + " {phase_id}";
  }
};

// Bug: after `kill -9` of a worker its phase lived on (adopted by init), and
// so did what the phase had started in another session, while the lease
// expired and the phase was granted again: two copies at once.
TEST_F(ContainmentE2ETest, KilledWorkersPhaseTreeIsGoneBeforeItsLeaseCanExpire) {
  const std::string address = StartOnePhase({});
  ASSERT_FALSE(address.empty());
  const pid_t worker = StartWorker(WorkerSpec("w-contain", address, EscapingPhaseExec()).Slots(1));
  ASSERT_TRUE(
      WaitUntil([&] { return ReadPidFile(dir_.File("phase.pid")) > 0; }, milliseconds(20'000)))
      << Log("w-contain");
  const pid_t escaped = ReadPidFile(dir_.File("escaped.pid"));
  ASSERT_GT(escaped, 0);
  // The phase's shell, its sleep, and the escaped shell (now sleep).
  ASSERT_GE(ProcessesWithEnv(MarkerEntry()).size(), 3u);

  const auto killed_at = std::chrono::steady_clock::now();
  EXPECT_EQ(StopChild(worker, SIGKILL), 128 + SIGKILL);
  // Well inside one lease TTL: the coordinator cannot have granted the phase
  // again before every process of the old attempt was gone. The escaped one
  // is waited for too: a killed process's environment reads empty while it
  // is still exiting, before it is a zombie (a loaded CI machine saw it
  // unmarked but not yet gone).
  EXPECT_TRUE(
      WaitUntil([&] { return ProcessesWithEnv(MarkerEntry()).empty() && ProcessGone(escaped); },
                milliseconds(kLeaseTtlMs / 2)))
      << ProcessesWithEnv(MarkerEntry()).size() << " processes of the attempt left; escaped "
      << (ProcessGone(escaped) ? "gone" : "alive");
  EXPECT_LT(std::chrono::steady_clock::now() - killed_at, milliseconds(kLeaseTtlMs));
  EXPECT_EQ(StopChild(coordinator_pid_, SIGTERM), 0);
}

// Bug: a phase whose grandchild escaped with setsid outlived its timeout:
// the worker's SIGKILL reached only the phase's process group.
TEST_F(ContainmentE2ETest, TimedOutPhaseLeavesNothingBehind) {
  const std::string address =
      StartOnePhase({"--phase-timeout-seconds", "2", "--max-attempts-per-phase", "1",
                     "--max-timeouts-per-run", "0"});
  ASSERT_FALSE(address.empty());
  const pid_t worker = StartWorker(WorkerSpec("w-timeout", address, EscapingPhaseExec()).Slots(1));
  ASSERT_TRUE(
      WaitUntil([&] { return ReadPidFile(dir_.File("escaped.pid")) > 0; }, milliseconds(20'000)))
      << Log("w-timeout");
  const pid_t escaped = ReadPidFile(dir_.File("escaped.pid"));
  ASSERT_TRUE(WaitSessionDone(address, milliseconds(30'000))) << Log("w-timeout");
  const nlohmann::json status = Status({"--coordinator", address});
  EXPECT_EQ(status["phases"].value("failed", -1), 1) << status.dump();
  // The outcome is reported only after the runner returned, and the runner
  // returns only once every descendant has been killed and reaped.
  EXPECT_TRUE(ProcessGone(escaped));
  EXPECT_THAT(ProcessesWithEnv(MarkerEntry()), IsEmpty());
  EXPECT_EQ(StopChild(worker, SIGTERM), 0) << Log("w-timeout");
  EXPECT_EQ(StopChild(coordinator_pid_, SIGTERM), 0);
}

// A worker started with `env` ("NAME=VALUE") added to its environment, run
// to its exit; its exit code (nullopt: still running after 10 s, killed).
std::optional<int> RunWorkerWithEnv(const std::string& address, const std::string& id,
                                    const std::string& log_dir, const std::string& env,
                                    const std::string& out, const std::string& err) {
  const pid_t worker =
      sluice::testing::Spawn({sluice::testing::BinPath("sluice-worker"), "--coordinator", address,
                              "--exec", "/bin/true", "--worker-id", id, "--log-dir", log_dir},
                             out, err, {env});
  if (worker <= 0) return std::nullopt;
  std::optional<int> code = sluice::testing::WaitExit(worker, milliseconds(10'000));
  if (!code) {
    ::kill(worker, SIGKILL);
    sluice::testing::WaitExit(worker, milliseconds(5'000));
  }
  return code;
}

// A worker that cannot find its shim does not run phases uncontained, nor
// one whose $SLUICE_PHASE_CGROUP is not a usable cgroup v2 directory: it
// refuses to start, as an infrastructure error, naming what it missed, and
// the phase stays pending.
TEST_F(ContainmentE2ETest, WorkerWithoutItsShimOrCgroupRefusesToStart) {
  const std::string address = StartOnePhase({});
  ASSERT_FALSE(address.empty());
  const std::string missing = dir_.File("no-such-shim");
  EXPECT_EQ(
      RunWorkerWithEnv(address, "w-noshim", LogDir("w-noshim"), "SLUICE_PHASE_SHIM=" + missing,
                       dir_.File("w-noshim.out"), dir_.File("w-noshim.err")),
      3)
      << Log("w-noshim");
  EXPECT_THAT(Log("w-noshim"), HasSubstr(missing));
  // A plain directory is not a cgroup.
  EXPECT_EQ(RunWorkerWithEnv(address, "w-nocg", LogDir("w-nocg"),
                             "SLUICE_PHASE_CGROUP=" + dir_.path().string(), dir_.File("w-nocg.out"),
                             dir_.File("w-nocg.err")),
            3)
      << Log("w-nocg");
  EXPECT_THAT(Log("w-nocg"), HasSubstr("has no cgroup.procs"));
  const nlohmann::json status = Status({"--coordinator", address});
  EXPECT_EQ(status["phases"].value("pending", -1), 1) << status.dump();
  EXPECT_EQ(StopChild(coordinator_pid_, SIGTERM), 0);
}

}  // namespace
}  // namespace sluice
