// The built binaries as separate processes, as in drain_e2e_test.cc: the
// worker-side features of a drain. The telemetry-loss alarm, the worker's
// required environment, a worker's --service helper, and the progress line of
// `sluice drain`. The fixture is drain_e2e_fixture.h.
#include <signal.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/drain_e2e_fixture.h"
#include "tests/e2e/e2e_support.h"
#include "tests/testing/process.h"
#include "tests/testing/test_env.h"
#include "tests/testing/wait.h"

namespace sluice {
namespace {

using ::sluice::e2e::Backlog;
using ::sluice::e2e::CommandResult;
using ::sluice::e2e::DrainE2ETest;
using ::sluice::e2e::Ledger;
using ::sluice::testing::BinPath;
using ::sluice::testing::ProcessGone;
using ::sluice::testing::ReadFile;
using ::sluice::testing::WaitUntil;
using ::sluice::testing::WriteFile;
using std::chrono::milliseconds;
using ::testing::HasSubstr;
using ::testing::SizeIs;

// The scenario: the workers do not pass TELEMETRY_DB_ENABLED=1 to
// phases that emit telemetry only with it. The alarm fires; with
// --on-telemetry-loss pause leasing stops, status says why, and `sluice
// resume` (here on the store, from another process) lets the drain continue.
TEST_F(DrainE2ETest, TelemetryLossPausesTheDrainUntilAnOperatorResumes) {
  const std::string backlog = dir_.File("silent.jsonl");
  WriteFile(backlog, Backlog("r-silent", 12, 0));
  const std::string store_url = "sqlite://" + dir_.File("silent/state.db");
  const pid_t drain = StartChild(
      {BinPath("sluice"), "drain", backlog, "--workers", "1", "--exec", ExampleExec(" --scale 0.1"),
       "--grace-seconds", "1", "--on-telemetry-loss", "pause", "--store", store_url},
      "silent-drain");
  ASSERT_GT(drain, 0);
  nlohmann::json status;
  ASSERT_TRUE(WaitUntil(
      [&] {
        status = Status({"--store", store_url});
        return status.value("leasing_paused", false) || ProcessGone(drain);
      },
      milliseconds(30'000), milliseconds(250)))
      << ReadFile(dir_.File("silent-drain.err"));
  ASSERT_TRUE(status.value("leasing_paused", false))
      << status.dump() << "\ndrain gone: " << ProcessGone(drain) << "\ndrain stderr:\n"
      << ReadFile(dir_.File("silent-drain.err"));
  EXPECT_THAT(status.value("paused_reason", ""), HasSubstr("telemetry loss: telemetry looks lost"));
  // The drain notices the pause on its next status poll (every 200 ms).
  EXPECT_TRUE(WaitUntil(
      [&] {
        return ReadFile(dir_.File("silent-drain.err")).find("leasing paused: telemetry loss") !=
               std::string::npos;
      },
      milliseconds(5'000)))
      << ReadFile(dir_.File("silent-drain.err"));

  // Leasing stopped: once the running phase is done nothing else starts.
  ASSERT_TRUE(WaitUntil(
      [&] {
        return Status({"--store", store_url})["active_leases"].empty();
      },
      milliseconds(10'000), milliseconds(250)));
  const size_t ended = Ledger::Read(ledger_).ends.size();
  std::this_thread::sleep_for(milliseconds(1'500));
  EXPECT_EQ(Ledger::Read(ledger_).ends.size(), ended);
  EXPECT_LT(ended, 12u);
  const CommandResult text = Sluice({"status", "--store", store_url});
  EXPECT_THAT(text.out, HasSubstr("paused: telemetry loss:"));

  const CommandResult resumed = Sluice({"resume", "--store", store_url});
  EXPECT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_THAT(resumed.out, HasSubstr("resumed leasing of session"));
  EXPECT_TRUE(
      WaitUntil([&] { return Ledger::Read(ledger_).ends.size() > ended; }, milliseconds(10'000)));

  const std::optional<int> code = StopChild(drain, SIGTERM, milliseconds(15'000));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 130);
}

TEST_F(DrainE2ETest, WithTheTelemetryEnvironmentTheAlarmStaysQuiet) {
  const std::string backlog = dir_.File("loud.jsonl");
  WriteFile(backlog, Backlog("r-loud", 6, 0));
  const CommandResult r =
      Sluice({"drain", backlog, "--workers", "1", "--exec", ExampleExec(" --scale 0.1"), "--env",
              "TELEMETRY_DB_ENABLED=1", "--grace-seconds", "1", "--on-telemetry-loss", "pause",
              "--store", "sqlite://" + dir_.File("loud/state.db"), "--json"},
             milliseconds(30'000));
  EXPECT_EQ(r.exit_code, 0) << r.err << "\n" << r.out;
  EXPECT_THAT(r.err, ::testing::Not(HasSubstr("leasing paused")));
  const nlohmann::json summary = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(summary.is_discarded()) << r.out;
  EXPECT_THAT(summary["telemetry_warnings"], SizeIs(0)) << summary.dump();
  EXPECT_EQ(summary["phases"].value("succeeded", -1), 6);
}

TEST_F(DrainE2ETest, WorkerRefusesToStartWithoutItsRequiredEnvironment) {
  std::vector<std::string> worker = {
      BinPath("sluice-worker"), "--coordinator",          "127.0.0.1:1",   "--exec", ExampleExec(),
      "--require-env",          "TELEMETRY_DB_ENABLED=1", "--print-config"};
  CommandResult r = Run(worker, milliseconds(10'000));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("TELEMETRY_DB_ENABLED is not set"));
  worker.insert(worker.end(), {"--env", "TELEMETRY_DB_ENABLED=0"});
  r = Run(worker, milliseconds(10'000));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("TELEMETRY_DB_ENABLED is '0', required '1'"));
  worker.back() = "TELEMETRY_DB_ENABLED=1";
  r = Run(worker, milliseconds(10'000));
  EXPECT_EQ(r.exit_code, 0) << r.err;  // --print-config: the checks passed
  EXPECT_THAT(r.out, HasSubstr("\"require_env\""));
}

// `sluice-worker --service`: the helper starts once for all phases, nothing
// is leased while its health check fails, and it stops with the worker.
TEST_F(DrainE2ETest, WorkerServiceStartsOnceGatesLeasingAndStopsWithTheWorker) {
  const std::string address =
      StartCoordinator({"--lease-ttl-ms", "5000", "--heartbeat-interval-ms", "500"});
  ASSERT_FALSE(address.empty());
  const std::string backlog = dir_.File("svc.jsonl");
  WriteFile(backlog, Backlog("r-svc", 5, 0));
  ASSERT_EQ(Sluice({"import", backlog, "--coordinator", address}).exit_code, 0);
  ASSERT_EQ(Sluice({"session", "start", "--coordinator", address}).exit_code, 0);

  const std::string pids = dir_.File("service.pids");
  const std::string healthy = dir_.File("service.healthy");
  const pid_t worker = StartChild({BinPath("sluice-worker"),
                                   "--coordinator",
                                   address,
                                   "--exec",
                                   ExampleExec(" --scale 0.1"),
                                   "--env",
                                   "TELEMETRY_DB_ENABLED=1",
                                   "--worker-id",
                                   "svc-worker",
                                   "--log-dir",
                                   dir_.File("logs-svc"),
                                   "--grace-seconds",
                                   "1",
                                   "--lease-wait-ms",
                                   "500",
                                   "--service",
                                   "/bin/sh -c 'echo $$ >> " + pids + "; exec sleep 600'",
                                   "--service-health",
                                   "test -e " + healthy,
                                   "--log-level",
                                   "info"},
                                  "svc-worker");
  ASSERT_GT(worker, 0);
  ASSERT_TRUE(WaitUntil([&] { return !ReadFile(pids).empty(); }, milliseconds(10'000)));
  // Running but unhealthy: nothing is leased.
  std::this_thread::sleep_for(milliseconds(1'500));
  EXPECT_TRUE(Ledger::Read(ledger_).starts.empty());

  WriteFile(healthy, "ok\n");
  ASSERT_TRUE(WaitSessionDone(address, milliseconds(30'000)))
      << ReadFile(dir_.File("svc-worker.err"));
  EXPECT_EQ(Ledger::Read(ledger_).ends.size(), 5u);
  const std::vector<std::string> started = absl::StrSplit(ReadFile(pids), '\n', absl::SkipEmpty());
  ASSERT_EQ(started.size(), 1u) << "one service for every phase";
  const pid_t service = std::stoi(started[0]);
  EXPECT_FALSE(ProcessGone(service));

  EXPECT_EQ(StopChild(worker, SIGTERM), 0);
  EXPECT_TRUE(WaitUntil([&] { return ProcessGone(service); }, milliseconds(5'000)))
      << "the service outlived its worker";
}

// A worker whose service never becomes healthy gives up: exit 3, service stopped.
TEST_F(DrainE2ETest, WorkerExitsWhenItsServiceNeverBecomesHealthy) {
  const std::string pids = dir_.File("never.pids");
  const CommandResult r =
      Run({BinPath("sluice-worker"), "--coordinator", "127.0.0.1:1", "--exec", ExampleExec(),
           "--log-dir", dir_.File("logs-never"), "--service",
           "/bin/sh -c 'echo $$ >> " + pids + "; exec sleep 600'", "--service-health", "false",
           "--service-start-timeout", "1", "--grace-seconds", "1"},
          milliseconds(15'000));
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_THAT(r.err, HasSubstr("did not become healthy"));
  const std::vector<std::string> started = absl::StrSplit(ReadFile(pids), '\n', absl::SkipEmpty());
  ASSERT_EQ(started.size(), 1u);
  EXPECT_TRUE(ProcessGone(std::stoi(started[0])));
  EXPECT_EQ(Run({BinPath("sluice-worker"), "--coordinator", "127.0.0.1:1", "--exec", "true",
                 "--service-health", "http://127.0.0.1:1/"},
                milliseconds(10'000))
                .exit_code,
            2);  // a health check without a service
}

// On a terminal `sluice drain` redraws one progress line; in a pipe it
// prints plain log lines. The terminal is a pseudo-terminal from script(1)
// (tests/testing/process.h's InPty).
TEST_F(DrainE2ETest, ProgressIsABarOnATerminalAndPlainLinesOtherwise) {
  const std::string backlog = dir_.File("bar.jsonl");
  WriteFile(backlog, Backlog("r-bar", 6, 0));
  const std::string drain =
      absl::StrCat(BinPath("sluice"), " drain ", backlog, " --workers 1 --exec \"",
                   ExampleExec(" --scale 0.3"), "\" --env TELEMETRY_DB_ENABLED=1 --grace-seconds 1",
                   " --store sqlite://", dir_.File("bar/state.db"));
  const std::string pty =
      absl::StrCat(sluice::testing::InPty(drain), " > ", dir_.File("bar.tty"), " 2>&1");
  ASSERT_EQ(std::system(pty.c_str()), 0) << ReadFile(dir_.File("bar.tty"));
  const std::string tty = ReadFile(dir_.File("bar.tty"));
  EXPECT_THAT(tty, HasSubstr("\r\033[K["));  // redrawn in place
  EXPECT_THAT(tty, HasSubstr("6/6 phases"));
  EXPECT_THAT(tty, HasSubstr("done"));
  EXPECT_THAT(tty, HasSubstr("/min"));
  EXPECT_THAT(tty, HasSubstr("yield "));
  EXPECT_THAT(tty, ::testing::Not(HasSubstr("progress: ")));

  const std::string again = dir_.File("bar2.jsonl");
  WriteFile(again, Backlog("r-plain", 2, 0));
  const CommandResult piped =
      Sluice({"drain", again, "--workers", "1", "--exec", ExampleExec(" --scale 0.1"),
              "--grace-seconds", "1", "--store", "sqlite://" + dir_.File("plain/state.db")});
  EXPECT_EQ(piped.exit_code, 0) << piped.err;
  EXPECT_THAT(piped.out, HasSubstr("progress: "));
  EXPECT_THAT(piped.out, ::testing::Not(HasSubstr("\033[K")));
}

}  // namespace
}  // namespace sluice
