// PhaseExecutor with a recording runner: what becomes of a lease the worker
// must not run, and of a phase that cannot be started.
#include "worker/phase_executor.h"

#include <signal.h>

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_env.h"
#include "tests/worker/fake_coordinator_client.h"
#include "worker/process_runner.h"
#include "worker/worker_config.h"

namespace sluice {
namespace {

using ::sluice::testing::ScratchDir;
using ::sluice::testing::SucceededResult;
using ::testing::HasSubstr;

// Records each spec; answers with `status` (OK: exit 0).
class RecordingRunner : public ProcessRunner {
 public:
  absl::StatusOr<ProcessResult> Run(const ProcessSpec& spec, const CancelToken&) override {
    specs.push_back(spec);
    if (!status.ok()) return status;
    return SucceededResult();
  }
  absl::Status status = absl::OkStatus();
  std::vector<ProcessSpec> specs;
};

class PhaseExecutorTest : public ::testing::Test {
 protected:
  PhaseExecutorTest() {
    config_.worker_id = "w1";
    config_.command = *CommandTemplate::Parse("/bin/true {run_id} {phase_id}");
    config_.log_dir = dir_.File("logs");
  }
  static LeaseGrant Lease() {
    LeaseGrant g;
    g.lease_id = "L-1";
    g.run_id = "r1";
    g.phase_id = "p1";
    g.attempt = 1;
    g.session_id = "S-1";
    g.timeout_seconds = 60;
    return g;
  }

  ScratchDir dir_;
  WorkerConfig config_;
  RecordingRunner runner_;
};

// Bug: the worker trusted the lease's identifiers: one the command template
// does not use (session_id) went unchecked into the phase's environment, and
// run/phase/lease ids into log paths.
TEST_F(PhaseExecutorTest, LeaseWithABadIdentifierIsRefusedBeforeAnythingRuns) {
  PhaseExecutor executor(config_, runner_);
  for (const auto& [field, value] :
       std::vector<std::pair<std::string, std::string>>{{"session_id", "../../etc"},
                                                        {"session_id", "x\ny"},
                                                        {"lease_id", "../L"},
                                                        {"run_id", ".."},
                                                        {"phase_id", "-rf"}}) {
    LeaseGrant lease = Lease();
    if (field == "session_id") lease.session_id = value;
    if (field == "lease_id") lease.lease_id = value;
    if (field == "run_id") lease.run_id = value;
    if (field == "phase_id") lease.phase_id = value;
    const AttemptReport report = executor.Execute(lease, CancelToken());
    EXPECT_EQ(report.outcome, Outcome::kFailed) << field << "=" << value;
    EXPECT_THAT(report.error_text, HasSubstr("worker refused the lease: " + field))
        << field << "=" << value;
  }
  EXPECT_TRUE(runner_.specs.empty());
}

// Bug: a phase that could not be started (missing program, log file,
// workdir) was reported `failed` and charged to the phase.
TEST_F(PhaseExecutorTest, PhaseThatCannotStartIsStartFailed) {
  runner_.status = absl::NotFoundError("cannot start /nonexistent: no such file");
  PhaseExecutor executor(config_, runner_);
  const AttemptReport report = executor.Execute(Lease(), CancelToken());
  EXPECT_EQ(report.outcome, Outcome::kStartFailed) << OutcomeName(report.outcome);
  EXPECT_THAT(report.error_text, HasSubstr("cannot start phase: cannot start /nonexistent"));
  EXPECT_EQ(report.lease_id, "L-1");
}

TEST_F(PhaseExecutorTest, ValidLeaseRunsWithItsIdentifiersInTheEnvironment) {
  PhaseExecutor executor(config_, runner_);
  const AttemptReport report = executor.Execute(Lease(), CancelToken());
  EXPECT_EQ(report.outcome, Outcome::kSucceeded);
  ASSERT_EQ(runner_.specs.size(), 1u);
  EXPECT_EQ(runner_.specs[0].env.at("SLUICE_SESSION_ID"), "S-1");
  EXPECT_THAT(runner_.specs[0].argv, ::testing::ElementsAre("/bin/true", "r1", "p1"));
}

// The idle limit (#13) end to end in the worker, with a real process: the
// grant's idle_timeout_seconds stops a silent phase as timed out, says so,
// and the report carries the silence it measured.
TEST_F(PhaseExecutorTest, TheGrantsIdleLimitStopsASilentPhaseAsTimedOut) {
  config_.command = *CommandTemplate::Parse("/bin/sleep 30");
  config_.grace_ms = 1'000;
  PosixProcessRunner real;
  PhaseExecutor executor(config_, real);
  LeaseGrant lease = Lease();
  lease.idle_timeout_seconds = 1;
  const AttemptReport report = executor.Execute(lease, CancelToken());
  EXPECT_EQ(report.outcome, Outcome::kTimedOut) << OutcomeName(report.outcome);
  EXPECT_THAT(report.error_text, HasSubstr("no output for 1 s (the idle limit)"));
  EXPECT_LT(report.duration_ms, 10'000);
  EXPECT_GE(report.longest_silence_ms, 1'000);

  // Without a limit in the grant the same kind of phase runs to its end,
  // and its silence is still measured.
  config_.command = *CommandTemplate::Parse("/bin/sleep 0.3");
  PhaseExecutor unlimited(config_, real);
  const AttemptReport ended = unlimited.Execute(Lease(), CancelToken());
  EXPECT_EQ(ended.outcome, Outcome::kSucceeded);
  EXPECT_GE(ended.longest_silence_ms, 200);
}

// Bug: every telemetry probe wrote to one LOG_DIR/probe.out, so the probes of
// two slots running at once overwrote each other's output and read a wrong
// count.
TEST_F(PhaseExecutorTest, EachAttemptsProbesWriteTheirOwnOutputFiles) {
  config_.telemetry_probe = {"/bin/echo", "5"};
  PhaseExecutor executor(config_, runner_);
  LeaseGrant other = Lease();
  other.lease_id = "L-2";
  other.phase_id = "p2";
  executor.Execute(Lease(), CancelToken());
  executor.Execute(other, CancelToken());
  std::set<std::string> outputs;
  int probes = 0;
  for (const ProcessSpec& spec : runner_.specs) {
    if (spec.argv != config_.telemetry_probe) continue;
    ++probes;
    outputs.insert(spec.stdout_path);
    outputs.insert(spec.stderr_path);
  }
  // The recording runner prints no count, so each attempt runs only the
  // probe before it; two attempts, two probes, four distinct files.
  EXPECT_EQ(probes, 2);
  EXPECT_EQ(outputs.size(), 4u);
}

// Answers probe runs from `probe_results` in order (phases succeed).
class ProbeRunner : public ProcessRunner {
 public:
  explicit ProbeRunner(std::vector<std::string> argv) : probe_argv_(std::move(argv)) {}
  absl::StatusOr<ProcessResult> Run(const ProcessSpec& spec, const CancelToken&) override {
    if (spec.argv != probe_argv_) {
      // A directory where the telemetry file should be: it cannot be read.
      if (unreadable_telemetry)
        std::filesystem::create_directory(spec.env.at("SLUICE_TELEMETRY_FILE"));
      return SucceededResult();
    }
    probe_timeouts.push_back(spec.timeout_ms);
    ProcessResult r = probe_results.at(next_++);
    return r;
  }
  std::vector<ProcessResult> probe_results;
  std::vector<int64_t> probe_timeouts;
  bool unreadable_telemetry = false;

 private:
  std::vector<std::string> probe_argv_;
  size_t next_ = 0;
};

ProcessResult ProbePrinted(const std::string& out) {
  ProcessResult r = SucceededResult();
  r.stdout_tail = out;
  return r;
}

TEST_F(PhaseExecutorTest, AProbeThatFailsOrHangsMakesTheTelemetryUnknownNotZero) {
  // Issue #16 item 6: a failed probe left the attempt at 0 events, which
  // the coordinator took for zero yield.
  config_.telemetry_probe = {"/usr/bin/probe"};
  config_.telemetry_probe_timeout_ms = 1'500;
  ProbeRunner runner(config_.telemetry_probe);
  ProcessResult failed = SucceededResult();
  failed.exit_code = 1;
  ProcessResult hung = SucceededResult();
  hung.stopped_by = StopReason::kTimeout;
  hung.signal = SIGTERM;
  runner.probe_results = {ProbePrinted("10\n"), ProbePrinted("14\n"),  // known: 4 events
                          ProbePrinted("14\n"), failed,                // after failed
                          hung};                                       // before hung
  PhaseExecutor executor(config_, runner);
  AttemptReport known = executor.Execute(Lease(), CancelToken());
  EXPECT_FALSE(known.telemetry_unknown);
  EXPECT_EQ(known.telemetry_events, 4);
  AttemptReport after_failed = executor.Execute(Lease(), CancelToken());
  EXPECT_TRUE(after_failed.telemetry_unknown);
  EXPECT_EQ(after_failed.telemetry_events, 0);
  EXPECT_TRUE(after_failed.telemetry_by_type.empty());
  AttemptReport before_hung = executor.Execute(Lease(), CancelToken());
  EXPECT_TRUE(before_hung.telemetry_unknown);
  EXPECT_EQ(before_hung.outcome, Outcome::kSucceeded) << "the phase still ran";
  // --telemetry-probe-timeout bounds every probe; no probe after a hung one.
  EXPECT_THAT(runner.probe_timeouts, ::testing::Each(1'500));
  EXPECT_EQ(runner.probe_timeouts.size(), 5u);
}

TEST_F(PhaseExecutorTest, AnUnreadableTelemetryFileMakesTheTelemetryUnknown) {
  ProbeRunner runner({"no-probe"});
  runner.unreadable_telemetry = true;
  PhaseExecutor executor(config_, runner);
  AttemptReport report = executor.Execute(Lease(), CancelToken());
  EXPECT_TRUE(report.telemetry_unknown);
  EXPECT_EQ(report.telemetry_events, 0);
}

}  // namespace
}  // namespace sluice
