// `sluice watch` under a pseudo-terminal (util-linux `script`), screenshot
// free: the test reads what the binary draws and asserts on the text.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "coordinator/coordinator.h"
#include "coordinator/store/sqlite/sqlite_state_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/process.h"
#include "tests/testing/test_env.h"

namespace sluice {
namespace {

using ::sluice::testing::BinPath;
using ::sluice::testing::InPty;
using ::sluice::testing::RunShell;
using ::sluice::testing::ScratchDir;
using ::sluice::testing::ShellResult;
using ::testing::HasSubstr;
using ::testing::Not;

size_t Count(const std::string& haystack, const std::string& needle) {
  size_t count = 0;
  for (size_t pos = haystack.find(needle); pos != std::string::npos;
       pos = haystack.find(needle, pos + 1)) {
    ++count;
  }
  return count;
}

class WatchTest : public ::testing::Test {
 protected:
  // A store with 6 phases in two runs and an active session in which one
  // phase succeeded (30 events in 60 s) and one failed with an ImportError.
  void SetUp() override {
    db_ = dir_.File("state.db");
    auto store = SqliteStateStore::Open(db_);
    ASSERT_TRUE(store.ok()) << store.status();
    FakeClock clock(SystemClock::Default().NowMs());
    Coordinator coord(**store, clock);
    std::vector<PhaseSpec> specs;
    for (const char* run : {"research-system-v1", "research-system-v2"}) {
      for (int i = 0; i < 3; ++i) {
        PhaseSpec s;
        s.run_id = run;
        s.phase_id = absl::StrCat("p", i);
        specs.push_back(s);
      }
    }
    ASSERT_TRUE(coord.ImportBacklog(specs).ok());
    WorkerInfo w;
    w.worker_id = "worker-one";
    w.host = "box";
    w.slots = 2;
    ASSERT_TRUE(coord.Register(w).ok());
    SessionSettings settings;
    settings.max_attempts_per_phase = 1;  // the failure is final
    ASSERT_TRUE(coord.StartSession(settings, "s-watch").ok());
    auto leased = coord.Lease("worker-one", "r1", 2, 0);
    ASSERT_TRUE(leased.ok());
    ASSERT_EQ(leased->leases.size(), 2u);
    for (size_t i = 0; i < 2; ++i) {
      const LeaseGrant& g = leased->leases[i];
      AttemptReport report;
      report.lease_id = g.lease_id;
      report.epoch = g.epoch;
      report.worker_id = "worker-one";
      report.outcome = i == 0 ? Outcome::kSucceeded : Outcome::kFailed;
      report.exit_code = i == 0 ? 0 : 1;
      report.duration_ms = 60'000;
      report.telemetry_events = i == 0 ? 30 : 0;
      report.error_text = i == 0 ? "" : "ImportError: No module named 'ci_helpers'";
      ASSERT_TRUE(coord.Report(report).ok());
    }
  }

  std::string WatchCommand(const std::string& flags) const {
    return absl::StrCat(BinPath("sluice"), " watch --store sqlite://", db_, " ", flags);
  }

  ScratchDir dir_;
  std::string db_;
};

TEST_F(WatchTest, OnceDrawsPhasesProgressYieldWorkersAndFingerprints) {
  ShellResult r = RunShell(InPty(WatchCommand("--once")));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("phases: pending 4  leased 0  succeeded 1  failed 1"));
  EXPECT_THAT(r.output, HasSubstr("2/6 done (33.3%)"));
  EXPECT_THAT(r.output, HasSubstr("session s-watch: active"));
  EXPECT_THAT(r.output, HasSubstr("yield: 15.00 events/min"));  // 30 events in 2 minutes
  EXPECT_THAT(r.output, HasSubstr("worker-one"));
  EXPECT_THAT(r.output, HasSubstr("ImportError: No module named 'ci_helpers'"));
  EXPECT_THAT(r.output, Not(HasSubstr("\x1b[")));  // --once draws no escapes
}

TEST_F(WatchTest, LiveViewRedrawsUntilQIsTyped) {
  ShellResult r = RunShell(absl::StrCat("(sleep 1.5; printf q) | timeout 30 ",
                                        InPty(WatchCommand("--interval-ms 200"))));
  ASSERT_EQ(r.exit_code, 0) << r.output;        // timeout would exit 124
  EXPECT_THAT(r.output, HasSubstr("\x1b[2J"));  // cleared once, then redrawn in place
  EXPECT_GE(Count(r.output, "sluice watch (q to quit)"), 2u) << r.output;
  EXPECT_THAT(r.output, HasSubstr("pending 4"));
}

TEST_F(WatchTest, CtrlCQuits) {
  ShellResult r = RunShell(absl::StrCat("(sleep 1; printf '\\003') | timeout 30 ",
                                        InPty(WatchCommand("--interval-ms 200"))));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("pending 4"));
}

TEST_F(WatchTest, WithoutATerminalFramesAreAppendedPlainly) {
  ShellResult r = RunShell(
      absl::StrCat("(sleep 1; printf q) | timeout 30 ", WatchCommand("--interval-ms 200")));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, Not(HasSubstr("\x1b[")));
  EXPECT_THAT(r.output, HasSubstr("pending 4"));
}

TEST(WatchNoEvidenceTest, YieldWithoutRunTimeIsShownAsNoneInWatchAndReport) {
  // Bug: with no attempt time recorded yet, `sluice watch` and `sluice report`
  // showed yield 0.00 (and the report's JSON 0), as if phases emitted nothing.
  ScratchDir dir;
  const std::string db = dir.File("state.db");
  {
    auto store = SqliteStateStore::Open(db);
    ASSERT_TRUE(store.ok()) << store.status();
    FakeClock clock(SystemClock::Default().NowMs());
    Coordinator coord(**store, clock);
    PhaseSpec s;
    s.run_id = "research-system-v1";
    s.phase_id = "p0";
    ASSERT_TRUE(coord.ImportBacklog({s}).ok());
    ASSERT_TRUE(coord.StartSession(SessionSettings{}, "s-empty").ok());
  }
  const std::string target = absl::StrCat(" --store sqlite://", db);
  ShellResult watch = RunShell(InPty(absl::StrCat(BinPath("sluice"), " watch --once", target)));
  ASSERT_EQ(watch.exit_code, 0) << watch.output;
  EXPECT_THAT(watch.output, HasSubstr("yield: - events/min (recent -)"));
  EXPECT_THAT(watch.output, Not(HasSubstr("0.00")));

  ShellResult text = RunShell(absl::StrCat(BinPath("sluice"), " report", target));
  ASSERT_EQ(text.exit_code, 0) << text.output;
  EXPECT_THAT(text.output, HasSubstr("yield - events/min"));
  EXPECT_THAT(text.output, Not(HasSubstr("0.00")));

  ShellResult json = RunShell(absl::StrCat(BinPath("sluice"), " report --json", target));
  ASSERT_EQ(json.exit_code, 0) << json.output;
  const nlohmann::json report = nlohmann::json::parse(json.output, nullptr, false);
  ASSERT_TRUE(report.is_object()) << json.output;
  EXPECT_TRUE(report.at("yield_events_per_minute").is_null()) << json.output;
}

}  // namespace
}  // namespace sluice
