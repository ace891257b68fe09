// Coordinator: the telemetry-loss alarm (warn, or pause leasing until an
// operator resumes) and the outcome totals.
// Fixture and helpers: coordinator_fixture.h (FakeClock, in-memory SQLite).
#include <map>
#include <string>
#include <vector>

#include "tests/coordinator/coordinator_fixture.h"

namespace sluice::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

class TelemetryLossTest : public CoordinatorTest {
 protected:
  void SetUp() override {
    RegisterWorker("w1");
    std::vector<PhaseSpec> specs;
    for (int i = 0; i < 10; ++i) specs.push_back(Spec("r1", absl::StrCat("p", i), i));
    Import(specs);
  }

  // Leases and reports `n` successes with `events` telemetry events each.
  void Succeed(int n, int64_t events) {
    for (int i = 0; i < n; ++i) {
      clock_.AdvanceMs(1'000);
      ReportNow(LeaseOne(), Outcome::kSucceeded, events);
    }
  }

  static SessionSettings Settings(TelemetryLossAction action) {
    SessionSettings s;
    s.on_telemetry_loss = action;
    return s;
  }
};

TEST_F(TelemetryLossTest, PauseStopsLeasingSaysWhyAndResumeContinues) {
  Start(Settings(TelemetryLossAction::kPause));
  const LeaseGrant running = LeaseOne();  // running phases are not touched by a pause
  Succeed(3, 0);                          // phases that emit only with TELEMETRY_DB_ENABLED=1
  Ok(coord_.Tick());

  const CoordinatorStatus status = Ok(coord_.Status());
  ASSERT_TRUE(status.pause.has_value());
  EXPECT_THAT(status.pause->reason, HasSubstr("telemetry loss: telemetry looks lost: 3 of 3"));
  EXPECT_EQ(status.pause->paused_at_ms, clock_.NowMs());
  ASSERT_EQ(status.telemetry_warnings.size(), 1u);
  EXPECT_EQ(status.telemetry_warnings[0].kind, TelemetryWarningKind::kZeroEventPhases);
  EXPECT_EQ(status.phases.pending, 6);

  LeaseResult paused = LeaseNow("w1");
  EXPECT_THAT(paused.leases, IsEmpty());
  EXPECT_TRUE(paused.session_active);  // workers keep polling
  // The running phase still reports and renews.
  EXPECT_THAT(Ok(coord_.Heartbeat("w1", {running.lease_id})), IsEmpty());
  EXPECT_EQ(ReportNow(running, Outcome::kSucceeded, 0).result.disposition,
            ReportDisposition::kAccepted);
  Ok(coord_.Tick());
  EXPECT_THAT(LeaseNow("w1").leases, IsEmpty());

  const LeasingPause ended = Ok(coord_.ResumeLeasing(""));
  EXPECT_EQ(ended.session_id, "s1");
  EXPECT_THAT(ended.reason, HasSubstr("telemetry loss"));
  EXPECT_FALSE(Ok(coord_.Status()).pause.has_value());
  EXPECT_THAT(Ok(coord_.Status()).telemetry_warnings, IsEmpty());
  EXPECT_EQ(LeaseNow("w1").leases.size(), 1u);
  EXPECT_EQ(Err(coord_.ResumeLeasing("")).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(TelemetryLossTest, AfterAResumeOnlyNewAttemptsCanPauseAgain) {
  Start(Settings(TelemetryLossAction::kPause));
  Succeed(3, 0);
  Ok(coord_.Tick());
  Ok(coord_.ResumeLeasing("s1"));
  Ok(coord_.Tick());  // the attempts that fired the alarm are not judged again
  EXPECT_FALSE(Ok(coord_.Status()).pause.has_value());
  Succeed(2, 50);  // fixed: phases emit again
  Ok(coord_.Tick());
  EXPECT_FALSE(Ok(coord_.Status()).pause.has_value());
  EXPECT_THAT(Ok(coord_.Status()).telemetry_warnings, IsEmpty());
  Succeed(3, 0);  // 3 silent of 5 since the resume: lost again
  Ok(coord_.Tick());
  EXPECT_TRUE(Ok(coord_.Status()).pause.has_value());
}

TEST_F(TelemetryLossTest, WarnModeKeepsLeasingAndReportsTheWarning) {
  Start(Settings(TelemetryLossAction::kWarn));
  Succeed(3, 0);
  Ok(coord_.Tick());
  const CoordinatorStatus status = Ok(coord_.Status());
  EXPECT_FALSE(status.pause.has_value());
  ASSERT_EQ(status.telemetry_warnings.size(), 1u);
  EXPECT_EQ(LeaseNow("w1").leases.size(), 1u);
  EXPECT_EQ(Err(coord_.ResumeLeasing("")).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(TelemetryLossTest, HealthyTelemetryNeverPauses) {
  Start(Settings(TelemetryLossAction::kPause));
  Succeed(6, 10);
  Ok(coord_.Tick());
  EXPECT_FALSE(Ok(coord_.Status()).pause.has_value());
  EXPECT_THAT(Ok(coord_.Status()).telemetry_warnings, IsEmpty());
  EXPECT_EQ(LeaseNow("w1").leases.size(), 1u);
}

TEST_F(TelemetryLossTest, PauseIsDurableAcrossACoordinatorRestartAndResumableFromAnother) {
  Start(Settings(TelemetryLossAction::kPause));
  Succeed(3, 0);
  Ok(coord_.Tick());
  ASSERT_TRUE(Ok(coord_.Status()).pause.has_value());

  // A new coordinator on the same store (restart) does not silently resume.
  Coordinator restarted(store_, clock_, Config());
  WorkerInfo w;
  w.worker_id = "w2";
  w.host = "h";
  w.slots = 1;
  Ok(restarted.Register(w));
  EXPECT_THAT(Ok(restarted.Lease("w2", "q1", 1, 0)).leases, IsEmpty());
  ASSERT_TRUE(Ok(restarted.Status()).pause.has_value());

  // An operator resumes through another process (`sluice resume --store`);
  // the running coordinator sees it at its next tick.
  Coordinator operator_side(store_, clock_, Config());
  Ok(operator_side.ResumeLeasing(""));
  Ok(coord_.Tick());
  EXPECT_EQ(LeaseNow("w1").leases.size(), 1u);
}

TEST_F(TelemetryLossTest, ResumeRejectsBadOrInactiveSessions) {
  EXPECT_EQ(Err(coord_.ResumeLeasing("")).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Err(coord_.ResumeLeasing("bad id!")).code(), absl::StatusCode::kInvalidArgument);
  Start(Settings(TelemetryLossAction::kPause));
  EXPECT_EQ(Err(coord_.ResumeLeasing("nope")).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(TelemetryLossTest, OutcomeTotalsCountEveryOutcomeIncludingLost) {
  Start();
  ReportNow(LeaseOne(), Outcome::kSucceeded, 1);
  ReportNow(LeaseOne(), Outcome::kFailed);
  ReportNow(LeaseOne(), Outcome::kTimedOut);
  LeaseOne();  // never reported: lost once the TTL passes
  clock_.AdvanceMs(kTtl + 1);
  Ok(coord_.Tick());
  std::map<Outcome, int64_t> totals = Ok(coord_.OutcomeTotals());
  EXPECT_EQ(totals[Outcome::kSucceeded], 1);
  EXPECT_EQ(totals[Outcome::kFailed], 1);
  EXPECT_EQ(totals[Outcome::kTimedOut], 1);
  EXPECT_EQ(totals[Outcome::kLost], 1);
  EXPECT_EQ(totals[Outcome::kKilled], 0);
  EXPECT_EQ(totals[Outcome::kCancelled], 0);
  // A restarted coordinator counts the same from the store's history.
  Coordinator restarted(store_, clock_, Config());
  EXPECT_EQ(Ok(restarted.OutcomeTotals()), totals);
}

}  // namespace
}  // namespace sluice::testing
