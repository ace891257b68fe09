// Issue #16, the coordinator and CLI side: `sluice drain` and
// sluice-coordinator do exactly what the operator asked, and say so. The
// built binaries run as processes (e2e_support.h's ProcessTest): a port in
// use, a program that cannot start, the zero-yield stop, blocked work, and
// resuming an interrupted session.
#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "coordinator/policy/drain_policy.h"
#include "coordinator/store/sqlite/sqlite_state_store.h"
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
using ::sluice::e2e::Ledger;
using ::sluice::testing::BinPath;
using ::sluice::testing::ReadFile;
using ::sluice::testing::WaitExit;
using ::sluice::testing::WriteFile;
using std::chrono::milliseconds;
using ::testing::HasSubstr;

class DrainOperatorE2ETest : public e2e::ProcessTest {
 protected:
  void TearDown() override {
    for (pid_t pid : std::vector<pid_t>(children_.rbegin(), children_.rend())) {
      StopChild(pid, SIGTERM);
    }
    ProcessTest::TearDown();
  }

  std::vector<std::string> DrainArgs(const std::string& backlog, const std::string& store,
                                     const std::string& exec) {
    return {"drain",           backlog,
            "--workers",       "1",
            "--slots",         "1",
            "--exec",          exec,
            "--env",           "TELEMETRY_DB_ENABLED=1",
            "--grace-seconds", "1",
            "--store",         "sqlite://" + dir_.File(store)};
  }
};

TEST_F(DrainOperatorE2ETest, APortInUseIsAnInfrastructureErrorForCoordinatorAndDrain) {
  // Bug: gRPC binds with SO_REUSEPORT, so a second coordinator or drain on a
  // port in use bound anyway, shared the first one's workers and exited 0.
  const std::string first =
      StartCoordinator("first", "sqlite://" + dir_.File("first.db"), "0", {"--log-level", "warn"});
  ASSERT_FALSE(first.empty());
  const std::string port = std::to_string(PortOf(first));

  const CommandResult second =
      Run({BinPath("sluice-coordinator"), "--listen", "127.0.0.1:" + port, "--store",
           "sqlite://" + dir_.File("second.db"), "--log-level", "warn"},
          milliseconds(15'000));
  EXPECT_EQ(second.exit_code, 3) << second.out << second.err;
  EXPECT_THAT(second.err, HasSubstr("127.0.0.1:" + port));
  EXPECT_THAT(second.err, HasSubstr("in use"));

  const std::string backlog = WriteBacklog("port", "r-port", 2, "ok");
  std::vector<std::string> args = DrainArgs(backlog, "drain.db", ExampleExec());
  args.insert(args.end(), {"--listen", "127.0.0.1:" + port});
  const CommandResult drain = Sluice(args, milliseconds(20'000));
  EXPECT_EQ(drain.exit_code, 3) << drain.out << drain.err;
  EXPECT_THAT(drain.err, HasSubstr("in use"));
  EXPECT_EQ(LedgerStarts(), 0u) << "a phase ran although the drain could not listen";
}

TEST_F(DrainOperatorE2ETest, AProgramThatCannotStartIsAnInfrastructureError) {
  // Bug: `sluice drain --exec /nonexistent` failed every phase and exited 1,
  // like phases that fail, instead of 3 (infrastructure).
  const std::string backlog = WriteBacklog("noexec", "r-noexec", 2, "ok");
  for (const std::string& exec : {std::string("/nonexistent/tool --phase {phase_id}"),
                                  std::string("sluice-no-such-program-16 {phase_id}")}) {
    SCOPED_TRACE(exec);
    const CommandResult r = Sluice(DrainArgs(backlog, "noexec.db", exec), milliseconds(20'000));
    EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
    EXPECT_THAT(r.err, HasSubstr("cannot start"));
  }
}

TEST_F(DrainOperatorE2ETest, ZeroYieldStopsLeasingAfterNAttemptsCountingThoseInFlight) {
  // Bug: with --max-consecutive-zero-yield 2 and four slots every phase ran
  // (leases in flight were not counted) and the end reason appeared only
  // after the last report.
  const std::string backlog = WriteBacklog("zero", "r-zero", 8, "ok");
  // No TELEMETRY_DB_ENABLED for the phases: every attempt reports 0 events.
  const CommandResult r =
      Sluice({"drain", backlog, "--workers", "2", "--slots", "2", "--exec",
              ExampleExec(" --scale 0.3"), "--grace-seconds", "1", "--max-consecutive-zero-yield",
              "2", "--store", "sqlite://" + dir_.File("zero.db"), "--json"},
             milliseconds(30'000));
  EXPECT_EQ(r.exit_code, 1) << r.err;  // phases are left over
  EXPECT_EQ(LedgerStarts(), 2u) << "attempts beyond the zero-yield limit ran";
  const nlohmann::json summary = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(summary.is_discarded()) << r.out;
  EXPECT_EQ(summary.value("attempts", -1), 2) << summary.dump();
  EXPECT_THAT(summary.dump(), HasSubstr("max_consecutive_zero_yield reached"));
}

TEST_F(DrainOperatorE2ETest, WhenEverythingLeftIsBlockedStatusAndSummarySaySo) {
  // Bug: with every pending phase blocked by the repeat rule the drain and
  // `sluice status` said "finished: nothing left to lease", and failed phases
  // read "attempts exhausted or lost too often" without saying which.
  const std::string backlog = WriteBacklog("blocked", "r-blocked", 4, "importerr");
  std::vector<std::string> args = DrainArgs(backlog, "blocked.db", ExampleExec(" --scale 0.1"));
  args.insert(args.end(),
              {"--max-attempts-per-phase", "1", "--max-fingerprint-repeats", "2", "--json"});
  const CommandResult r = Sluice(args, milliseconds(30'000));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(LedgerStarts(), 2u);
  const nlohmann::json summary = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(summary.is_discarded()) << r.out;
  const std::string end_reason = summary.value("end_reason", "");
  EXPECT_THAT(end_reason, HasSubstr("all 2 pending phases are blocked: 1 fingerprint ("));
  EXPECT_THAT(end_reason, HasSubstr("`sluice unblock ID`"));

  const CommandResult status = Sluice({"status", "--store", "sqlite://" + dir_.File("blocked.db")});
  EXPECT_EQ(status.exit_code, 0) << status.err;
  EXPECT_THAT(status.out, HasSubstr("all 2 pending phases are blocked"));
  EXPECT_THAT(status.out,
              HasSubstr("failed for good: attempts exhausted (max_attempts_per_phase 1)"));
  EXPECT_THAT(status.out, ::testing::Not(HasSubstr("or lost too often")));
}

TEST_F(DrainOperatorE2ETest, ResumeSaysWhichLimitsApplyNow) {
  // Bug: a drain started with --batch-size 20 --max-total-minutes 5,
  // interrupted and re-run without the flags silently ran with no limits.
  const std::string backlog = WriteBacklog("resume", "r-resume", 4, "slow");
  const std::vector<std::string> plain =
      DrainArgs(backlog, "resume.db", ExampleExec(" --scale 0.5"));
  std::vector<std::string> limited = plain;
  limited.insert(limited.begin(), BinPath("sluice"));
  limited.insert(limited.end(), {"--batch-size", "20", "--max-total-minutes", "5"});
  const pid_t first = StartChild(limited, "first-drain");
  ASSERT_GT(first, 0);
  ASSERT_TRUE(sluice::testing::WaitUntil([&] { return !Ledger::Read(ledger_).ends.empty(); },
                                         milliseconds(15'000)))
      << ReadFile(dir_.File("first-drain.err"));
  EXPECT_EQ(StopChild(first, SIGINT, milliseconds(15'000)), 130);

  const CommandResult second = Sluice(plain, milliseconds(30'000));
  EXPECT_EQ(second.exit_code, 0) << second.err;
  EXPECT_THAT(second.err, HasSubstr("resuming after interrupted session"));
  EXPECT_THAT(second.err, HasSubstr("(--batch-size 20 --max-total-minutes 5)"));
  EXPECT_THAT(second.err, HasSubstr("with the limits given now: no limits"));
}

TEST_F(DrainOperatorE2ETest, FingerprintsSayTheRepeatRuleIsOffAtZero) {
  // Bug: with --max-fingerprint-repeats 0 (the rule off) `sluice
  // fingerprints` claimed "a fingerprint seen 0 times blocks its runs".
  const std::string backlog = WriteBacklog("norule", "r-norule", 2, "importerr");
  std::vector<std::string> args = DrainArgs(backlog, "norule.db", ExampleExec(" --scale 0.1"));
  args.insert(args.end(), {"--max-attempts-per-phase", "1", "--max-fingerprint-repeats", "0"});
  EXPECT_EQ(Sluice(args, milliseconds(30'000)).exit_code, 1);
  const CommandResult r = Sluice({"fingerprints", "--store", "sqlite://" + dir_.File("norule.db")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr("seen 0 times")));
  EXPECT_THAT(r.out, HasSubstr("the repeat rule is off (--max-fingerprint-repeats 0)"));
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr("BLOCKED")));
}

TEST_F(DrainOperatorE2ETest, ABacklogRowWithAStateFieldIsRejectedWithItsLine) {
  // Bug: a backlog row with "state": "QUEUED" (or a CSV state column) was
  // imported with the state as metadata and silently leased.
  const std::string jsonl = dir_.File("state.jsonl");
  WriteFile(jsonl,
            "{\"run_id\": \"r-state\", \"phase_id\": \"p1-ok\"}\n"
            "{\"run_id\": \"r-state\", \"phase_id\": \"p2-ok\", \"state\": \"QUEUED\"}\n");
  const std::string csv = dir_.File("state.csv");
  WriteFile(csv, "run_id,phase_id,state\nr-state,p1-ok,DONE\n");
  for (const auto& [file, line] : {std::pair{jsonl, 2}, std::pair{csv, 1}}) {
    const CommandResult r =
        Sluice(DrainArgs(file, "state.db", ExampleExec(" --scale 0.1")), milliseconds(20'000));
    EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
    EXPECT_THAT(r.err, HasSubstr(absl::StrCat(file, ":", line, ": field \"state\"")));
  }
  EXPECT_EQ(LedgerStarts(), 0u);
}

TEST_F(DrainOperatorE2ETest, ProgressGivesYieldInEventsPerWorkerMinute) {
  // Bug: the drain's progress bar gave yield in events per phase while
  // watch, report and recommend give events per worker-minute.
  const std::string backlog = WriteBacklog("yield", "r-yield", 2, "ok");
  const std::string drain = absl::StrCat(
      BinPath("sluice"), " drain ", backlog, " --workers 1 --exec \"", ExampleExec(" --scale 0.1"),
      "\" --env TELEMETRY_DB_ENABLED=1 --grace-seconds 1 --store sqlite://", dir_.File("yield.db"));
  const std::string pty =
      absl::StrCat(sluice::testing::InPty(drain), " > ", dir_.File("yield.tty"), " 2>&1");
  ASSERT_EQ(std::system(pty.c_str()), 0) << ReadFile(dir_.File("yield.tty"));
  const std::string tty = ReadFile(dir_.File("yield.tty"));
  EXPECT_THAT(tty, ::testing::ContainsRegex("yield [0-9.]+ ev/min"));
  EXPECT_THAT(tty, ::testing::Not(HasSubstr("ev/phase")));
}

// Issue #13: the commands that read a store directly. The store is written
// here, in-process, the way a coordinator writes it: real leases, reports
// prepared by the DrainPolicy, times from the system clock.
class StoreCommandsTest : public DrainOperatorE2ETest {
 protected:
  // Imports one phase per run (p1, and p2 for two-phase runs), starts
  // session s1 with `settings`, then records `outcome` with `error` once per
  // entry of `failures` (a run id) at the current time.
  void WriteStore(const std::string& path, const std::vector<std::string>& runs,
                  const SessionSettings& settings,
                  const std::vector<std::pair<std::string, std::string>>& failures) {
    auto store = SqliteStateStore::Open(path);
    ASSERT_TRUE(store.ok()) << store.status();
    std::vector<PhaseSpec> specs;
    for (const std::string& run : runs) {
      for (const char* phase : {"p1", "p2"}) {
        PhaseSpec p;
        p.run_id = run;
        p.phase_id = phase;
        specs.push_back(p);
      }
    }
    ASSERT_TRUE((*store)->ImportPhases(specs).ok());
    SessionRecord session;
    session.session_id = "s1";
    session.settings = settings;
    session.started_at_ms = SystemClock::Default().NowMs();
    ASSERT_TRUE((*store)->CreateSession(session).ok());
    DrainPolicy policy(**store, SystemClock::Default(), {});
    int leases = 0;
    for (const auto& [run, error] : failures) {
      LeaseParams lp;
      lp.run_id = run;
      lp.worker_id = "w1";
      lp.session_id = "s1";
      lp.lease_id = absl::StrCat("L", ++leases);
      lp.timeout_seconds = 600;
      lp.now_ms = SystemClock::Default().NowMs();
      lp.ttl_ms = 60'000;
      auto grant = (*store)->LeaseNextInRun(lp);
      ASSERT_TRUE(grant.ok() && grant->has_value()) << run;
      AttemptReport report;
      report.lease_id = (*grant)->lease_id;
      report.epoch = (*grant)->epoch;
      report.worker_id = "w1";
      report.outcome = Outcome::kFailed;
      report.exit_code = 1;
      report.duration_ms = 1'000;
      report.error_text = error;
      auto params = policy.PrepareReport(report, settings);
      ASSERT_TRUE(params.ok()) << params.status();
      auto result = (*store)->RecordReport(*params);
      ASSERT_TRUE(result.ok()) << result.status();
      ASSERT_EQ(result->disposition, ReportDisposition::kAccepted);
    }
  }
};

TEST_F(StoreCommandsTest, StatusThroughTheStoreShowsARunBackingOff) {
  // Bug: backoffs lived in the coordinator's memory only: `sluice status
  // --store` (a coordinator of its own) never showed a run backing off.
  const std::string db = dir_.File("backoff.db");
  SessionSettings settings;
  settings.max_requeues_per_phase = 10;
  // Three rate limits in a row (built-in transient set): 40 s from the last.
  WriteStore(db, {"r-limited", "r-fine"}, settings,
             {{"r-limited", "HTTP 429: rate limit exceeded"},
              {"r-limited", "HTTP 429: rate limit exceeded"},
              {"r-limited", "HTTP 429: rate limit exceeded"},
              {"r-fine", "AssertionError: expected 3 got 4"}});
  const CommandResult text = Sluice({"status", "--store", "sqlite://" + db});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_THAT(text.out, ::testing::ContainsRegex(
                            "run r-limited \\(2 phases\\): backing off after a transient failure "
                            "for [34][0-9] s"));
  const nlohmann::json status = Status({"--store", "sqlite://" + db});
  std::vector<std::string> backing_off;
  for (const nlohmann::json& row : status.value("skipped", nlohmann::json::array())) {
    if (absl::StrContains(row.value("reason", ""), "backing off")) {
      backing_off.push_back(row.value("kind", "") + " " + row.value("run_id", ""));
    }
  }
  // r-fine's own failure is no transient one.
  EXPECT_EQ(backing_off, (std::vector<std::string>{"excluded r-limited"})) << status.dump();
}

TEST_F(StoreCommandsTest, ReportAndRecommendGroupRunsByTheFamilyPattern) {
  // Bug: `sluice report --store` and `sluice recommend` grouped runs with the
  // default rule whatever --family-pattern the drain used.
  const std::string db = dir_.File("families.db");
  WriteStore(db, {"svc-east-v1", "svc-west-v2"}, SessionSettings{},
             {{"svc-east-v1", "ImportError: x"}, {"svc-west-v2", "ImportError: x"}});
  const std::string store = "sqlite://" + db;
  auto families = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {"report", "--store", store, "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    const CommandResult r = Sluice(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<std::string> keys;
    const nlohmann::json j = nlohmann::json::parse(r.out, nullptr, false);
    for (const nlohmann::json& f : j.value("families", nlohmann::json::array())) {
      keys.push_back(f.value("family", ""));
    }
    return keys;
  };
  EXPECT_EQ(families({}), (std::vector<std::string>{"svc-east", "svc-west"}));
  EXPECT_EQ(families({"--family-pattern", "([a-z]+)-.*"}), (std::vector<std::string>{"svc"}));
  const CommandResult text =
      Sluice({"report", "--store", store, "--family-pattern", "([a-z]+)-.*"});
  EXPECT_EQ(text.exit_code, 0) << text.err;
  EXPECT_THAT(text.out, ::testing::ContainsRegex("\nsvc +2 +2 "));  // family, runs, attempts

  const CommandResult rec =
      Sluice({"recommend", "--store", store, "--family-pattern", "([a-z]+)-.*", "--json"});
  ASSERT_EQ(rec.exit_code, 0) << rec.err;
  const nlohmann::json j = nlohmann::json::parse(rec.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << rec.out;
  EXPECT_THAT(j.value("drain_command", ""), HasSubstr("--family-pattern '([a-z]+)-.*'"));
}

TEST_F(StoreCommandsTest, PlanShowsTheExpectedCurveOnTheStoreAndThroughACoordinator) {
  // Issue #13: `sluice plan` shows the expected curve of what is left, in
  // text and JSON, whether it reads the store or asks a running coordinator.
  // "broken" failed deterministically with nothing to show: deferred, so it
  // is left off the curve and counted.
  const std::string db = dir_.File("curve.db");
  WriteStore(db, {"alpha", "beta", "broken"}, SessionSettings{},
             {{"broken", "AssertionError: expected 3 got 4"}});
  const std::string store = "sqlite://" + db;
  auto curve_of = [&](const std::vector<std::string>& target) {
    std::vector<std::string> args = {"plan", "--json"};
    args.insert(args.end(), target.begin(), target.end());
    const CommandResult r = Sluice(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const nlohmann::json j = nlohmann::json::parse(r.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << r.out;
    return j.is_discarded() ? nlohmann::json() : j.value("expected_curve", nlohmann::json());
  };
  auto expect_curve_text = [&](const std::vector<std::string>& target) {
    std::vector<std::string> args = {"plan"};
    args.insert(args.end(), target.begin(), target.end());
    const CommandResult r = Sluice(args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_THAT(r.out, HasSubstr("expected curve of what is left (4 phases in 2 runs")) << r.out;
    EXPECT_THAT(r.out, ::testing::ContainsRegex(
                           "expected yield at the margin \\(last slice\\): [0-9.]+ events/"
                           "worker-min"))
        << r.out;
    EXPECT_THAT(r.out, ::testing::ContainsRegex(
                           "left off the curve: 1 run \\([12] phases?\\) excluded or deferred"))
        << r.out;
  };

  const nlohmann::json on_store = curve_of({"--store", store});
  ASSERT_TRUE(on_store.is_object()) << on_store.dump();
  const nlohmann::json& points = on_store["points"];
  ASSERT_TRUE(points.is_array() && !points.empty()) << on_store.dump();
  EXPECT_EQ(points.back().value("phases", 0), 4);  // alpha's and beta's p1 and p2
  EXPECT_GT(points.back().value("events", 0.0), 0);
  EXPECT_GT(points.back().value("worker_minutes", 0.0), 0);
  EXPECT_EQ(on_store.value("runs", 0), 2);
  EXPECT_EQ(on_store.value("left_off_runs", 0), 1);
  EXPECT_GT(on_store.value("marginal_yield", 0.0), 0);
  expect_curve_text({"--store", store});

  const std::string address = StartCoordinator("coord", store, "0", {"--log-level", "warn"});
  ASSERT_FALSE(address.empty());
  // The same store and policy: the same estimates, the same curve.
  EXPECT_EQ(curve_of({"--coordinator", address}), on_store);
  expect_curve_text({"--coordinator", address});
}

TEST_F(StoreCommandsTest, ABadFamilyPatternIsAUsageErrorAndOpensNoStore) {
  const std::string missing = "sqlite://" + dir_.File("never.db");
  for (const std::string command : {"report", "status", "plan", "recommend"}) {
    for (const auto& [pattern, why] :
         {std::pair<std::string, std::string>{"svc-(", "does not compile"},
          std::pair<std::string, std::string>{"svc-.*", "has no capture group"}}) {
      SCOPED_TRACE(command + " " + pattern);
      const CommandResult r = Sluice({command, "--store", missing, "--family-pattern", pattern});
      EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
      EXPECT_THAT(r.err, HasSubstr("--family-pattern \"" + pattern + "\" " + why));
    }
  }
  EXPECT_FALSE(std::filesystem::exists(dir_.File("never.db")));
  // A running coordinator groups by its own pattern: asking for another is
  // refused, not ignored.
  const CommandResult r =
      Sluice({"report", "--coordinator", "127.0.0.1:1", "--family-pattern", "([a-z]+)-.*"});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_THAT(r.err, HasSubstr("--family-pattern applies to --store only"));
}

}  // namespace
}  // namespace sluice

namespace sluice {
namespace {

// Seconds in "seen Ns ago" of `worker_id`'s line in a watch frame (-1: none).
int SeenSecondsAgo(const std::string& frame, const std::string& worker_id) {
  std::smatch m;
  const std::regex line(worker_id + R"(\s.*seen (\d+)s ago)");
  return std::regex_search(frame, m, line) ? std::stoi(m[1]) : -1;
}

TEST_F(DrainOperatorE2ETest, WatchCountsABusyWorkersLastSeenFromItsLastHeartbeat) {
  // Bug: `sluice watch` showed a busy worker as "seen 39s ago": the time
  // since it registered, while it heartbeat every few seconds.
  const std::string address =
      StartCoordinator("coord", "sqlite://" + dir_.File("seen.db"), "0",
                       {"--heartbeat-interval-ms", "300", "--log-level", "warn"});
  ASSERT_FALSE(address.empty());
  const std::string backlog = WriteBacklog("seen", "r-seen", 1, "hang");
  ASSERT_EQ(Sluice({"import", backlog, "--coordinator", address}).exit_code, 0);
  ASSERT_EQ(Sluice({"session", "start", "--coordinator", address}).exit_code, 0);
  StartWorker(e2e::WorkerSpec("busy-worker", address, ExampleExec()).Slots(1).DrainTimeout(0.5));
  ASSERT_TRUE(sluice::testing::WaitUntil(
      [&] {
        return Status({"--coordinator", address})
                   .value("active_leases", nlohmann::json::array())
                   .size() == 1;
      },
      milliseconds(10'000)));
  // The worker registered before its lease; let several heartbeats pass.
  const auto leased_at = std::chrono::steady_clock::now();
  sluice::testing::WaitUntil(
      [&] { return std::chrono::steady_clock::now() - leased_at > milliseconds(4'000); },
      milliseconds(6'000));
  const CommandResult watch = Sluice({"watch", "--once", "--coordinator", address});
  ASSERT_EQ(watch.exit_code, 0) << watch.err;
  const int seen = SeenSecondsAgo(watch.out, "busy-worker");
  ASSERT_GE(seen, 0) << watch.out;
  EXPECT_LE(seen, 2) << watch.out;
}

}  // namespace
}  // namespace sluice
