// Issue #16 items 2, 6, 7 and 9 with the built binaries as processes
// (e2e_support.h's ProcessTest): the cluster id that ties workers to the
// store they were pointed at, an empty store refused for a session, a failed
// telemetry probe explained in the worker's log and its attempt's telemetry
// recorded as unknown (not zero), workers that exited shown
// as gone, and the telemetry-loss warning on the first silent success.
#include <signal.h>

#include <chrono>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/e2e_support.h"
#include "tests/testing/process.h"
#include "tests/testing/test_env.h"
#include "tests/testing/wait.h"

namespace sluice {
namespace {

using ::sluice::e2e::CommandResult;
using ::sluice::testing::BinPath;
using ::sluice::testing::WaitExit;
using ::sluice::testing::WaitUntil;
using std::chrono::milliseconds;
using ::testing::HasSubstr;

class IdentityE2ETest : public e2e::ProcessTest {
 protected:
  // A sluice-worker with `extra` flags; `telemetry` passes the variable that
  // makes sluice-example-phase emit events.
  pid_t StartWorkerWith(const std::string& worker_id, const std::string& address,
                        const std::vector<std::string>& extra, bool telemetry = true) {
    std::vector<std::string> argv = {BinPath("sluice-worker"),
                                     "--coordinator",
                                     address,
                                     "--exec",
                                     ExampleExec(),
                                     "--worker-id",
                                     worker_id,
                                     "--log-dir",
                                     LogDir(worker_id),
                                     "--grace-seconds",
                                     "1",
                                     "--drain-timeout",
                                     "1",
                                     "--lease-wait-ms",
                                     "500"};
    if (telemetry) argv.insert(argv.end(), {"--env", "TELEMETRY_DB_ENABLED=1"});
    argv.insert(argv.end(), extra.begin(), extra.end());
    return StartChild(argv, worker_id);
  }

  std::string StoreUrl(const std::string& name) const {
    return "sqlite://" + dir_.File(name + ".db");
  }

  // A coordinator on store `name` with `phases` "ok" phases of run r-`name`
  // and a session ending at the first zero-yield attempt
  // (--max-consecutive-zero-yield 1); its address ("" when it failed).
  std::string StartZeroYieldSession(const std::string& name, int phases) {
    const std::string address = StartCoordinator("coord", StoreUrl(name), "0", {});
    if (address.empty()) return "";
    const CommandResult imported =
        Sluice({"import", WriteBacklog(name, "r-" + name, phases, "ok"), "--coordinator", address});
    const CommandResult started =
        Sluice({"session", "start", "--max-consecutive-zero-yield", "1", "--coordinator", address});
    EXPECT_EQ(imported.exit_code, 0) << imported.err;
    EXPECT_EQ(started.exit_code, 0) << started.err;
    return imported.exit_code == 0 && started.exit_code == 0 ? address : "";
  }

  // The workers[] entry of `status` for `worker_id` ({} when absent).
  static nlohmann::json WorkerEntry(const nlohmann::json& status, const std::string& worker_id) {
    for (const nlohmann::json& w : status.value("workers", nlohmann::json::array())) {
      if (w.value("worker_id", "") == worker_id) return w;
    }
    return nlohmann::json::object();
  }
};

TEST_F(IdentityE2ETest, AWorkerPointedAtAnotherClusterIsRefusedAndExits3) {
  // Bug: a store had no cluster id, so a worker pointed at the wrong
  // coordinator (or one on a mistyped store) joined it and ran its phases.
  const std::string store = "sqlite://" + dir_.File("cluster.db");
  const std::string address = StartCoordinator("coord", store, "0", {});
  ASSERT_FALSE(address.empty());
  const nlohmann::json status = Status({"--coordinator", address});
  const std::string cluster_id = status.value("cluster_id", "");
  ASSERT_THAT(cluster_id, ::testing::MatchesRegex("cl-[0-9a-f]{16}")) << status.dump();
  EXPECT_TRUE(LogHas("coord", "cluster_id=" + cluster_id)) << Log("coord");
  const CommandResult text = Sluice({"status", "--coordinator", address});
  EXPECT_THAT(text.out, HasSubstr("cluster: " + cluster_id));

  ASSERT_EQ(
      Sluice({"import", WriteBacklog("cluster", "r-cluster", 2, "ok"), "--coordinator", address})
          .exit_code,
      0);
  ASSERT_EQ(Sluice({"session", "start", "--coordinator", address}).exit_code, 0);

  const std::string other = "cl-00000000000000ff";
  const pid_t stranger = StartWorkerWith("stranger", address, {"--cluster-id", other});
  ASSERT_GT(stranger, 0);
  const std::optional<int> code = WaitExit(stranger, milliseconds(15'000));
  std::erase(children_, stranger);
  ASSERT_TRUE(code.has_value()) << "the refused worker kept running: " << Log("stranger");
  EXPECT_EQ(*code, 3) << Log("stranger");
  EXPECT_THAT(Log("stranger"), HasSubstr("cluster id mismatch"));
  EXPECT_THAT(Log("stranger"), HasSubstr(other));
  EXPECT_THAT(Log("stranger"), HasSubstr(cluster_id));
  EXPECT_TRUE(WorkerEntry(Status({"--coordinator", address}), "stranger").empty())
      << "a refused worker was registered";
  EXPECT_EQ(LedgerStarts(), 0u) << "a refused worker ran a phase";

  // The right id: registered, and the backlog drains.
  StartWorkerWith("member", address, {"--cluster-id", cluster_id});
  EXPECT_TRUE(WaitSessionDone(address, milliseconds(30'000))) << Log("member");
  EXPECT_EQ(LedgerEnds(), 2u);
  EXPECT_TRUE(LogHas("member", "cluster_id=" + cluster_id)) << Log("member");

  // The id is the store's: the same after a restart of the coordinator.
  StopChild(coordinator_pid_, SIGTERM, milliseconds(10'000));
  EXPECT_EQ(Status({"--store", store}).value("cluster_id", ""), cluster_id);
}

TEST_F(IdentityE2ETest, ASessionOnAnEmptyStoreIsRefusedUnlessAllowed) {
  // Bug: `session start` on an empty store (e.g. a mistyped --store path) was
  // accepted, and the drain then looked finished with nothing done.
  const std::string address =
      StartCoordinator("coord", "sqlite://" + dir_.File("typo/empty.db"), "0", {});
  ASSERT_FALSE(address.empty());
  const CommandResult refused = Sluice({"session", "start", "--coordinator", address});
  EXPECT_EQ(refused.exit_code, 2) << refused.out << refused.err;
  EXPECT_THAT(refused.err, HasSubstr("holds no phases"));
  EXPECT_THAT(refused.err, HasSubstr("--allow-empty"));
  EXPECT_TRUE(Status({"--coordinator", address}).value("session", nlohmann::json()).is_null())
      << "a refused session was recorded";

  const CommandResult allowed =
      Sluice({"session", "start", "--allow-empty", "--coordinator", address});
  EXPECT_EQ(allowed.exit_code, 0) << allowed.err;
  EXPECT_THAT(allowed.out, HasSubstr("started session"));

  // `sluice drain` imports its FILE first, so its store is never empty.
  const CommandResult drain =
      Sluice({"drain", WriteBacklog("drain", "r-drain", 1, "ok"), "--workers", "1", "--exec",
              ExampleExec(" --scale 0.1"), "--env", "TELEMETRY_DB_ENABLED=1", "--store",
              "sqlite://" + dir_.File("drain.db")},
             milliseconds(30'000));
  EXPECT_EQ(drain.exit_code, 0) << drain.err;
}

TEST_F(IdentityE2ETest, AFailedTelemetryProbeSaysWhyInTheWorkerLog) {
  // Bug: a --telemetry-probe that failed without writing to stderr left
  // "telemetry probe failed: " and nothing else in the worker's log.
  const std::string address =
      StartCoordinator("coord", "sqlite://" + dir_.File("probe.db"), "0", {});
  ASSERT_FALSE(address.empty());
  ASSERT_EQ(Sluice({"import", WriteBacklog("probe", "r-probe", 2, "ok"), "--coordinator", address})
                .exit_code,
            0);
  ASSERT_EQ(Sluice({"session", "start", "--coordinator", address}).exit_code, 0);
  StartWorkerWith("probe-fails", address, {"--telemetry-probe", "/bin/false"});
  EXPECT_TRUE(WaitSessionDone(address, milliseconds(30'000))) << Log("probe-fails");
  EXPECT_THAT(Log("probe-fails"), HasSubstr("telemetry probe failed (/bin/false): exit code 1"));
  EXPECT_THAT(Log("probe-fails"), HasSubstr("its events are not counted"));
}

// A --telemetry-probe script that misbehaves (`failure`: shell commands) on
// its first `bad_calls` calls, then prints how often it was called: one event
// per attempt, as a probe of an external telemetry store would count the
// events of phases that write no telemetry file. The probe runs before and
// after each phase (not after when the first call failed), so with one slot
// the first attempts are the unknown ones.
std::string WriteProbe(const sluice::testing::ScratchDir& dir, const std::string& name,
                       int bad_calls, const std::string& failure) {
  const std::string counter = dir.File(name + ".calls");
  const std::string path = dir.File(name + ".sh");
  sluice::testing::WriteFile(
      path,
      absl::StrCat("n=$(cat ", counter, " 2>/dev/null || echo 0)\nn=$((n + 1))\necho $n > ",
                   counter, "\nif [ $n -le ", bad_calls, " ]; then ", failure, "; fi\necho $n\n"));
  return path;
}

// Checks the report of a session whose first `unknown` attempts (of
// `attempts`, all succeeded) had unknown telemetry.
void ExpectUnknownInReport(const nlohmann::json& report, int unknown, int attempts) {
  ASSERT_TRUE(report.is_object()) << report.dump();
  EXPECT_EQ(report.value("attempts", 0), attempts) << report.dump();
  EXPECT_EQ(report.value("unknown_telemetry_attempts", -1), unknown) << report.dump();
  const int64_t run_ms = report.value("run_ms", int64_t{0});
  const int64_t unknown_ms = report.value("unknown_telemetry_run_ms", int64_t{-1});
  EXPECT_GT(unknown_ms, 0) << report.dump();
  EXPECT_LT(unknown_ms, run_ms) << report.dump();
  // Yield over the attempts with known telemetry only.
  const int64_t events = report.value("telemetry_events", int64_t{0});
  EXPECT_GT(events, 0) << report.dump();
  ASSERT_TRUE(report["yield_events_per_minute"].is_number()) << report.dump();
  EXPECT_NEAR(report["yield_events_per_minute"].get<double>(),
              static_cast<double>(events) / (static_cast<double>(run_ms - unknown_ms) / 60'000.0),
              1e-6);
  ASSERT_EQ(report["runs"].size(), 1u) << report.dump();
  EXPECT_EQ(report["runs"][0].value("unknown_telemetry_attempts", -1), unknown);
  // Unknown is not a zero-event success.
  ASSERT_EQ(report["workers"].size(), 1u) << report.dump();
  EXPECT_EQ(report["workers"][0].value("zero_event_successes", -1), 0) << report.dump();
}

TEST_F(IdentityE2ETest, AFailingTelemetryProbeMakesTelemetryUnknownNotZero) {
  // Bug: an attempt whose --telemetry-probe failed was recorded with 0
  // events: it counted as zero yield (ending a session under
  // --max-consecutive-zero-yield 1), dragged the report's yield down, and
  // read as a silent success.
  const std::string address = StartZeroYieldSession("unknown", 4);
  ASSERT_FALSE(address.empty());
  // Calls 1 and 2 (the first two attempts' probes before) exit 1.
  const std::string probe = WriteProbe(dir_, "probe", 2, "exit 1");
  // No TELEMETRY_DB_ENABLED: the phases' events reach sluice through the probe only.
  StartWorkerWith("probe-fails", address, {"--telemetry-probe", "/bin/sh " + probe},
                  /*telemetry=*/false);
  ASSERT_TRUE(WaitSessionDone(address, milliseconds(30'000))) << Log("probe-fails");
  EXPECT_EQ(LedgerEnds(), 4u) << "unknown attempts ended the session as zero yield";
  EXPECT_THAT(Log("probe-fails"), HasSubstr("exit code 1"));
  EXPECT_THAT(Log("probe-fails"), HasSubstr("reported as unknown"));

  const nlohmann::json report = nlohmann::json::parse(
      Sluice({"report", "--json", "--coordinator", address}).out, nullptr, false);
  ExpectUnknownInReport(report, 2, 4);
  EXPECT_NE(report.value("end_reason", ""), "max_consecutive_zero_yield") << report.dump();
  const CommandResult text = Sluice({"report", "--coordinator", address});
  EXPECT_THAT(text.out, HasSubstr("telemetry unknown for 2 attempts")) << text.out;
}

TEST_F(IdentityE2ETest, AHangingTelemetryProbeTimesOutAndMakesTelemetryUnknown) {
  // Bug: a --telemetry-probe that hung held the phase 30 s (not
  // configurable), then recorded the attempt as 0 events.
  const std::string address = StartZeroYieldSession("hang", 3);
  ASSERT_FALSE(address.empty());
  // Call 1 (the first attempt's probe before) hangs past the timeout.
  const std::string probe = WriteProbe(dir_, "hang-probe", 1, "exec sleep 60");
  StartWorkerWith("probe-hangs", address,
                  {"--telemetry-probe", "/bin/sh " + probe, "--telemetry-probe-timeout", "0.5"},
                  /*telemetry=*/false);
  ASSERT_TRUE(WaitSessionDone(address, milliseconds(30'000))) << Log("probe-hangs");
  EXPECT_EQ(LedgerEnds(), 3u) << "an unknown attempt ended the session as zero yield";
  EXPECT_THAT(Log("probe-hangs"), HasSubstr("timed out after 0.5 s"));
  StopChild(coordinator_pid_, SIGTERM, milliseconds(10'000));
  // The store kept the flag: the report from the store alone agrees.
  const nlohmann::json report = nlohmann::json::parse(
      Sluice({"report", "--json", "--latest", "--store", StoreUrl("hang")}).out, nullptr, false);
  ExpectUnknownInReport(report, 1, 3);
}

TEST_F(IdentityE2ETest, AWorkerThatExitedIsListedAsGoneNotConnected) {
  // Bug: a worker that was SIGKILLed stayed listed as a connected worker in
  // `status` and `watch` forever.
  const std::string address = StartCoordinator(
      "coord", "sqlite://" + dir_.File("gone.db"), "0",
      {"--lease-ttl-ms", "1000", "--heartbeat-interval-ms", "300", "--max-lease-wait-ms", "500"});
  ASSERT_FALSE(address.empty());
  const pid_t doomed = StartWorkerWith("doomed", address, {});
  StartWorkerWith("alive", address, {});
  ASSERT_TRUE(WaitUntil(
      [&] {
        const nlohmann::json s = Status({"--coordinator", address});
        return !WorkerEntry(s, "doomed").empty() && !WorkerEntry(s, "alive").empty();
      },
      milliseconds(10'000)));
  EXPECT_EQ(WorkerEntry(Status({"--coordinator", address}), "doomed").value("state", ""),
            "connected");
  ASSERT_TRUE(KillChild(doomed));

  ASSERT_TRUE(WaitUntil(
      [&] {
        return WorkerEntry(Status({"--coordinator", address}), "doomed").value("state", "") ==
               "gone";
      },
      milliseconds(15'000)))
      << Status({"--coordinator", address}).dump();
  // The live worker, idle in its long polls, stays connected.
  const nlohmann::json s = Status({"--coordinator", address});
  EXPECT_EQ(WorkerEntry(s, "alive").value("state", ""), "connected") << s.dump();
  const CommandResult text = Sluice({"status", "--coordinator", address});
  EXPECT_THAT(text.out, HasSubstr("workers: 1 connected, 1 gone"));
  EXPECT_THAT(text.out, ::testing::ContainsRegex("doomed .*gone, last seen [0-9]+s ago"));
  const CommandResult watch = Sluice({"watch", "--once", "--coordinator", address});
  EXPECT_THAT(watch.out, ::testing::ContainsRegex("doomed .*gone, last seen [0-9]+s ago"))
      << watch.out;
  EXPECT_THAT(watch.out, ::testing::ContainsRegex("alive .* seen [0-9]+s ago")) << watch.out;
}

TEST_F(IdentityE2ETest, TheFirstSilentSuccessWarnsAndThePauseKeepsItsThreshold) {
  // Bug: a zero-event success raised the telemetry-loss warning only after
  // three, because one threshold gated both the warning and the pause.
  const std::string address =
      StartCoordinator("coord", "sqlite://" + dir_.File("silent.db"), "0", {"--log-level", "info"});
  ASSERT_FALSE(address.empty());
  ASSERT_EQ(
      Sluice({"import", WriteBacklog("silent", "r-silent", 6, "slow"), "--coordinator", address})
          .exit_code,
      0);
  ASSERT_EQ(Sluice({"session", "start", "--on-telemetry-loss", "pause", "--coordinator", address})
                .exit_code,
            0);
  // No TELEMETRY_DB_ENABLED: every phase succeeds with zero events. Each
  // takes 1.5-3 s, so the coordinator (ticking every 0.5 s) judges each one
  // before the next ends.
  StartWorkerWith("silent-worker", address, {}, /*telemetry=*/false);

  nlohmann::json warned;
  ASSERT_TRUE(WaitUntil(
      [&] {
        warned = Status({"--coordinator", address});
        return !warned.value("telemetry_warnings", nlohmann::json::array()).empty();
      },
      milliseconds(30'000)))
      << Log("coord");
  EXPECT_LE(warned.value("session_finished", 0), 2) << warned.dump();
  EXPECT_FALSE(warned.value("leasing_paused", true)) << "one silent success paused leasing";
  EXPECT_THAT(warned.dump(), HasSubstr("zero_event_phases"));
  EXPECT_TRUE(LogHas("coord", "telemetry alarm")) << Log("coord");

  nlohmann::json paused;
  ASSERT_TRUE(WaitUntil(
      [&] {
        paused = Status({"--coordinator", address});
        return paused.value("leasing_paused", false);
      },
      milliseconds(30'000)));
  EXPECT_GE(paused.value("session_finished", 0), 3) << paused.dump();
}

}  // namespace
}  // namespace sluice
