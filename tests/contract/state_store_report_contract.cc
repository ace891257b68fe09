// The StateStore contract suite, reports and the budgets they spend; see state_store_contract.h for
// how a backend gets the whole suite.
#include <algorithm>
#include <atomic>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "coordinator/coordinator.h"
#include "coordinator/store/report_limits.h"
#include "gmock/gmock.h"
#include "tests/contract/contract_fixture.h"
#include "tests/contract/state_store_contract.h"

namespace sluice::contract {
using ::sluice::testing::StatusIs;
// RecordReport

TEST_P(StateStoreContractTest, AcceptedSuccessIsFinalAndRecordsTheAttempt) {
  Contract c(store());
  c.Import({Spec("r1", "p1")});
  LeaseGrant g = c.MustLease("r1", "w1", kT0);
  ReportParams params = Contract::Report(g, Outcome::kSucceeded, 7, 2'500, kT0 + 3'000);
  params.report.exit_code = 0;
  params.report.stdout_tail = "out\n";
  params.report.stderr_tail = "err\n";
  params.report.telemetry_by_type = {{"crash", 2}, {"hang", 5}};
  params.fingerprint = "ok|fp";
  ReportResult result = Ok(store().RecordReport(params));
  EXPECT_EQ(result.disposition, ReportDisposition::kAccepted);
  EXPECT_EQ(result.phase_state, PhaseState::kSucceeded);

  PhaseRecord p = c.Phase("r1", "p1");
  EXPECT_EQ(p.state, PhaseState::kSucceeded);
  EXPECT_EQ(p.attempts, 1);
  EXPECT_EQ(p.final_outcome, Outcome::kSucceeded);
  EXPECT_EQ(p.telemetry_events, 7);
  EXPECT_EQ(p.current_lease_id, "");
  EXPECT_THAT(Ok(store().ListActiveLeases()), IsEmpty());
  EXPECT_FALSE(c.Lease("r1").has_value());

  std::vector<AttemptRecord> attempts = Ok(store().ListAttempts(""));
  ASSERT_EQ(attempts.size(), 1u);
  const AttemptRecord& a = attempts[0];
  EXPECT_EQ(a.lease_id, g.lease_id);
  EXPECT_EQ(a.run_id, "r1");
  EXPECT_EQ(a.phase_id, "p1");
  EXPECT_EQ(a.attempt, 1);
  EXPECT_EQ(a.epoch, g.epoch);
  EXPECT_EQ(a.worker_id, "w1");
  EXPECT_EQ(a.session_id, "s1");
  EXPECT_EQ(a.outcome, Outcome::kSucceeded);
  EXPECT_EQ(a.exit_code, 0);
  EXPECT_EQ(a.duration_ms, 2'500);
  EXPECT_EQ(a.fingerprint, "ok|fp");
  EXPECT_EQ(a.telemetry_events, 7);
  EXPECT_EQ(a.telemetry_by_type, (std::map<std::string, int64_t>{{"crash", 2}, {"hang", 5}}));
  EXPECT_EQ(a.stdout_tail, "out\n");
  EXPECT_EQ(a.stderr_tail, "err\n");
  EXPECT_EQ(a.started_at_ms, kT0);
  EXPECT_EQ(a.ended_at_ms, kT0 + 3'000);

  RunStats stats = c.Stats("r1");
  EXPECT_EQ(stats.succeeded, 1);
  EXPECT_EQ(stats.pending + stats.leased + stats.failed, 0);
  EXPECT_EQ(stats.successes, 1);
  EXPECT_EQ(stats.telemetry_events, 7);
  EXPECT_EQ(stats.run_ms, 2'500);
}

TEST_P(StateStoreContractTest, ABatchIsAnsweredAsIfItsReportsCameOneByOne) {
  Contract c(store());
  c.Import({Spec("r1", "p1", 0), Spec("r1", "p2", 1), Spec("r1", "p3", 2)});
  LeaseGrant g1 = c.MustLease("r1", "w1", kT0);
  LeaseGrant g2 = c.MustLease("r1", "w1", kT0);
  LeaseGrant g3 = c.MustLease("r1", "w1", kT0);
  LeaseGrant unknown = g1;
  unknown.lease_id = "L-never-granted";
  ReportParams bad = Contract::Report(g3, Outcome::kSucceeded, 3, 1'000);
  bad.report.telemetry_unknown = true;  // events with unknown telemetry: refused

  const std::vector<absl::StatusOr<ReportResult>> answers = store().RecordReports({
      Contract::Report(g1, Outcome::kSucceeded, 4, 1'000),
      Contract::Report(unknown, Outcome::kSucceeded, 1, 1'000),
      Contract::Report(g2, Outcome::kFailed, 0, 2'000),
      Contract::Report(g1, Outcome::kSucceeded, 4, 1'000),  // the same report again
      bad,
  });
  ASSERT_EQ(answers.size(), 5u);
  EXPECT_EQ(Ok(answers[0]).disposition, ReportDisposition::kAccepted);
  EXPECT_EQ(Ok(answers[0]).phase_state, PhaseState::kSucceeded);
  EXPECT_EQ(Ok(answers[1]).disposition, ReportDisposition::kUnknownLease);
  EXPECT_EQ(Ok(answers[2]).disposition, ReportDisposition::kAccepted);
  EXPECT_EQ(Ok(answers[2]).phase_state, PhaseState::kPending);  // 1 of 2 attempts spent
  EXPECT_EQ(Ok(answers[3]).disposition, ReportDisposition::kDuplicate);
  EXPECT_THAT(answers[4], StatusIs(absl::StatusCode::kInvalidArgument));

  EXPECT_EQ(c.Phase("r1", "p1").state, PhaseState::kSucceeded);
  EXPECT_EQ(c.Phase("r1", "p2").state, PhaseState::kPending);
  EXPECT_EQ(c.Phase("r1", "p3").state, PhaseState::kLeased);  // the refused one: unchanged
  EXPECT_EQ(Ok(store().ListAttempts("")).size(), 2u);
  EXPECT_EQ(Ok(store().ListActiveLeases()).size(), 1u);
  RunStats stats = c.Stats("r1");
  EXPECT_EQ(stats.attempts, 2);
  EXPECT_EQ(stats.successes, 1);
  EXPECT_EQ(stats.telemetry_events, 4);
  EXPECT_EQ(stats.run_ms, 3'000);
  EXPECT_EQ(stats.leased, 1);
  EXPECT_EQ(Ok(store().CountPhases()).succeeded, 1);
}

TEST_P(StateStoreContractTest, UnknownTelemetryIsRecordedAndKeptOutOfTheRunsKnownTime) {
  // Issue #16 item 6: an attempt whose telemetry the worker could not count
  // was stored as 0 events, indistinguishable from a silent one.
  Contract c(store());
  c.Import({Spec("r1", "p1"), Spec("r1", "p2")});
  LeaseGrant unknown = c.MustLease("r1", "w1", kT0);
  ReportParams params = Contract::Report(unknown, Outcome::kSucceeded, 0, 4'000, kT0 + 4'000);
  params.report.telemetry_unknown = true;
  EXPECT_EQ(Ok(store().RecordReport(params)).disposition, ReportDisposition::kAccepted);
  LeaseGrant known = c.MustLease("r1", "w1", kT0 + 4'000);
  EXPECT_EQ(
      Ok(store().RecordReport(Contract::Report(known, Outcome::kSucceeded, 6, 1'000, kT0 + 5'000)))
          .disposition,
      ReportDisposition::kAccepted);

  std::vector<AttemptRecord> attempts = Ok(store().ListAttempts(""));
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_TRUE(attempts[0].telemetry_unknown);
  EXPECT_EQ(attempts[0].telemetry_events, 0);
  EXPECT_FALSE(attempts[1].telemetry_unknown);
  EXPECT_EQ(attempts[1].telemetry_events, 6);
  EXPECT_TRUE(Ok(store().ListAttemptsWithoutOutput(""))[0].telemetry_unknown);
  AttemptPage page = Ok(store().ListPhaseAttempts({"r1", "p1"}, 0, 10));
  ASSERT_EQ(page.rows.size(), 1u);
  EXPECT_TRUE(page.rows[0].telemetry_unknown);

  RunStats stats = c.Stats("r1");
  EXPECT_EQ(stats.run_ms, 5'000);
  EXPECT_EQ(stats.unknown_telemetry_ms, 4'000);
  EXPECT_EQ(stats.telemetry_events, 6);
  EXPECT_EQ(Ok(store().GetRunStats("r1"))->unknown_telemetry_ms, 4'000);
  RunStatsQuery q;
  q.sort = "yield";
  RunStatsPage runs = Ok(store().ListRunStatsPage(q));
  EXPECT_EQ(runs.sum.unknown_telemetry_ms, 4'000);
  ASSERT_EQ(runs.rows.size(), 1u);
  EXPECT_EQ(runs.rows[0].unknown_telemetry_ms, 4'000);
}

TEST_P(StateStoreContractTest, UnknownTelemetryWithEventsIsRejectedBeforeAnyWrite) {
  Contract c(store());
  c.Import({Spec("r1", "p1")});
  LeaseGrant g = c.MustLease("r1", "w1", kT0);
  ReportParams params = Contract::Report(g, Outcome::kSucceeded, 3, 1'000, kT0 + 1'000);
  params.report.telemetry_unknown = true;
  EXPECT_EQ(store().RecordReport(params).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Ok(store().ListAttempts("")), IsEmpty());
  EXPECT_EQ(c.Phase("r1", "p1").state, PhaseState::kLeased);
}

TEST_P(StateStoreContractTest, FailureBelowMaxAttemptsReturnsPhaseToPending) {
  Contract c(store());
  c.Import({Spec("r1", "p1")});
  ReportResult result = c.Record(c.MustLease("r1"), Outcome::kFailed, 3, 10, /*max_attempts=*/2);
  EXPECT_EQ(result.disposition, ReportDisposition::kAccepted);
  EXPECT_EQ(result.phase_state, PhaseState::kPending);
  PhaseRecord p = c.Phase("r1", "p1");
  EXPECT_EQ(p.state, PhaseState::kPending);
  EXPECT_EQ(p.attempts, 1);
  EXPECT_FALSE(p.final_outcome.has_value());
  EXPECT_EQ(p.telemetry_events, 3);

  LeaseGrant again = c.MustLease("r1");
  EXPECT_EQ(again.phase_id, "p1");
  EXPECT_EQ(again.attempt, 2);
}

TEST_P(StateStoreContractTest, FailureAtMaxAttemptsFailsThePhaseWithThatOutcome) {
  Contract c(store());
  c.Import({Spec("r1", "p1")});
  c.Record(c.MustLease("r1"), Outcome::kFailed, 0, 0, 2);
  ReportResult result = c.Record(c.MustLease("r1"), Outcome::kTimedOut, 0, 0, 2);
  EXPECT_EQ(result.disposition, ReportDisposition::kAccepted);
  EXPECT_EQ(result.phase_state, PhaseState::kFailed);
  PhaseRecord p = c.Phase("r1", "p1");
  EXPECT_EQ(p.state, PhaseState::kFailed);
  EXPECT_EQ(p.attempts, 2);
  EXPECT_EQ(p.final_outcome, Outcome::kTimedOut);
  EXPECT_FALSE(c.Lease("r1").has_value());
  RunStats stats = c.Stats("r1");
  EXPECT_EQ(stats.failed, 1);
  EXPECT_EQ(stats.pending, 0);
  EXPECT_EQ(stats.timeouts, 1);
  EXPECT_EQ(stats.attempts, 2);
}

TEST_P(StateStoreContractTest, MaxAttemptsOfOneFailsOnTheFirstFailure) {
  Contract c(store());
  c.Import({Spec("r1", "p1")});
  EXPECT_EQ(c.Record(c.MustLease("r1"), Outcome::kKilled, 0, 0, 1).phase_state,
            PhaseState::kFailed);
  EXPECT_EQ(c.Phase("r1", "p1").final_outcome, Outcome::kKilled);
  EXPECT_EQ(c.Stats("r1").timeouts, 0);  // killed from outside is not a timeout
}

TEST_P(StateStoreContractTest, CancelledReportRequeuesWithoutSpendingAnAttempt) {
  Contract c(store());
  c.Import({Spec("r1", "p1")});
  ReportResult result = c.Record(c.MustLease("r1"), Outcome::kCancelled, 4, 50, /*max=*/1);
  EXPECT_EQ(result.disposition, ReportDisposition::kAccepted);
  EXPECT_EQ(result.phase_state, PhaseState::kPending);
  PhaseRecord p = c.Phase("r1", "p1");
  EXPECT_EQ(p.state, PhaseState::kPending);
  EXPECT_EQ(p.attempts, 0);
  EXPECT_EQ(p.requeues, 1);
  EXPECT_FALSE(p.final_outcome.has_value());
  LeaseGrant again = c.MustLease("r1");
  EXPECT_EQ(again.attempt, 2);
  EXPECT_EQ(c.Record(again, Outcome::kSucceeded, 0, 0, 1).phase_state, PhaseState::kSucceeded);
}

// A transient failure (the failure policy said counts_as_attempt=false: the
// worker, not the phase, was at fault) requeues on the requeue budget, never
// the attempt budget, and fails the phase with its own outcome once the
// budget is spent.
TEST_P(StateStoreContractTest, ReportTransientFailureUsesRequeueBudgetAndFailsWhenExhausted) {
  Contract c(store());
  c.Import({Spec("r1", "p1")});
  auto transient = [&](const LeaseGrant& g) {
    ReportParams p = Contract::Report(g, Outcome::kFailed, 0, 0, kT0 + 1'000);
    p.transition = TransitionAfterOutcome(PhaseBudget{/*max_attempts=*/1, /*max_requeues=*/2},
                                          Outcome::kFailed, /*counts_as_attempt=*/false);
    return Ok(store().RecordReport(p));
  };
  for (int i = 0; i < 2; ++i) {  // requeues 1 and 2: within max 2
    ReportResult r = transient(c.MustLease("r1"));
    EXPECT_EQ(r.disposition, ReportDisposition::kAccepted);
    EXPECT_EQ(r.phase_state, PhaseState::kPending) << "requeue " << i + 1;
  }
  PhaseRecord p = c.Phase("r1", "p1");
  EXPECT_EQ(p.attempts, 0);  // max_attempts=1 would have failed it at once
  EXPECT_EQ(p.requeues, 2);
  EXPECT_FALSE(p.final_outcome.has_value());

  ReportResult last = transient(c.MustLease("r1"));
  EXPECT_EQ(last.disposition, ReportDisposition::kAccepted);
  EXPECT_EQ(last.phase_state, PhaseState::kFailed);
  p = c.Phase("r1", "p1");
  EXPECT_EQ(p.state, PhaseState::kFailed);
  EXPECT_EQ(p.attempts, 0);
  EXPECT_EQ(p.requeues, 3);
  EXPECT_EQ(p.final_outcome, Outcome::kFailed);
  EXPECT_FALSE(c.Lease("r1").has_value());
  RunStats stats = c.Stats("r1");
  EXPECT_EQ(stats.failed, 1);
  EXPECT_EQ(stats.pending, 0);
  EXPECT_EQ(stats.attempts, 3);  // every ended attempt counts in the run's figures
}

// Bug: a phase the worker could not start was charged an attempt. The budget
// rule puts start_failed on the requeue budget (whatever counts_as_attempt
// says); the store applies that and leaves start_failed out of the session's
// progress toward its batch size.
TEST_P(StateStoreContractTest, StartFailedReportUsesTheRequeueBudgetAndIsNotSessionProgress) {
  Contract c(store());
  c.Import({Spec("r1", "p1")});
  auto start_failed = [&] {
    ReportParams p = Contract::Report(c.MustLease("r1"), Outcome::kStartFailed, 0, 0, kT0 + 1'000);
    p.transition = TransitionAfterOutcome(PhaseBudget{/*max_attempts=*/1, /*max_requeues=*/2},
                                          Outcome::kStartFailed, /*counts_as_attempt=*/true);
    return Ok(store().RecordReport(p));
  };
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(start_failed().phase_state, PhaseState::kPending) << i;
  }
  PhaseRecord p = c.Phase("r1", "p1");
  EXPECT_EQ(p.attempts, 0);
  EXPECT_EQ(p.requeues, 2);
  EXPECT_EQ(Ok(store().CountSessionAttempts("s1")), 0);
  EXPECT_EQ(start_failed().phase_state, PhaseState::kFailed);
  EXPECT_EQ(c.Phase("r1", "p1").final_outcome, Outcome::kStartFailed);
  EXPECT_EQ(Ok(store().CountSessionAttempts("s1")), 0);
  const std::vector<AttemptRecord> attempts = Ok(store().ListAttempts(""));
  ASSERT_EQ(attempts.size(), 3u);
  EXPECT_EQ(attempts[0].outcome, Outcome::kStartFailed);
}

// Bug: report counters were only checked for >= 0. The sums overflowed (UB in
// SQLite's C++ update), and on Redis an HINCRBY failing on overflow aborted
// the script after earlier writes, leaving the phase out of the pending set
// for good. Every store now checks the counters before its first write.
TEST_P(StateStoreContractTest, ReportCountersOutOfBoundsAreRejectedBeforeAnyWrite) {
  Contract c(store());
  c.Import({Spec("r1", "p1"), Spec("r1", "p2")});
  ASSERT_EQ(c.Record(c.MustLease("r1"), Outcome::kSucceeded, 5, 1'000).disposition,
            ReportDisposition::kAccepted);
  const LeaseGrant g = c.MustLease("r1");
  const RunStats before = c.Stats("r1");
  for (const auto& [events, duration] :
       std::vector<std::pair<int64_t, int64_t>>{{INT64_MAX, 0},
                                                {kMaxReportTelemetryEvents + 1, 0},
                                                {0, INT64_MAX},
                                                {0, kMaxReportDurationMs + 1},
                                                {-1, 0}}) {
    ReportParams p = Contract::Report(g, Outcome::kFailed, events, duration);
    EXPECT_THAT(store().RecordReport(p), StatusIs(absl::StatusCode::kInvalidArgument))
        << events << " " << duration;
  }
  // Nothing was written: the lease holds, the phase is leased, no attempt.
  EXPECT_EQ(Ok(store().ListActiveLeases()).size(), 1u);
  EXPECT_EQ(c.Phase("r1", g.phase_id).state, PhaseState::kLeased);
  EXPECT_EQ(Ok(store().ListAttempts("")).size(), 1u);
  const RunStats after = c.Stats("r1");
  EXPECT_EQ(after.telemetry_events, before.telemetry_events);
  EXPECT_EQ(after.attempts, before.attempts);
  // The bounds themselves are fine, and the lease is still reportable.
  ReportResult r = Ok(store().RecordReport(
      Contract::Report(g, Outcome::kSucceeded, kMaxReportTelemetryEvents, kMaxReportDurationMs)));
  EXPECT_EQ(r.disposition, ReportDisposition::kAccepted);
  EXPECT_EQ(c.Stats("r1").telemetry_events, 5 + kMaxReportTelemetryEvents);
}

TEST_P(StateStoreContractTest, CancelledReportFailsThePhaseAsCancelledOnceOverMaxRequeues) {
  Contract c(store());
  c.Import({Spec("r1", "p1")});
  ReportParams first = Contract::Report(c.MustLease("r1"), Outcome::kCancelled);
  first.transition = TransitionAfterOutcome(PhaseBudget{2, 1}, Outcome::kCancelled, true);
  EXPECT_EQ(Ok(store().RecordReport(first)).phase_state, PhaseState::kPending);
  ReportParams second = Contract::Report(c.MustLease("r1"), Outcome::kCancelled);
  second.transition = TransitionAfterOutcome(PhaseBudget{2, 1}, Outcome::kCancelled, true);
  const ReportResult r = Ok(store().RecordReport(second));
  EXPECT_EQ(r.disposition, ReportDisposition::kAccepted);
  EXPECT_EQ(r.phase_state, PhaseState::kFailed);
  PhaseRecord p = c.Phase("r1", "p1");
  EXPECT_EQ(p.final_outcome, Outcome::kCancelled);
  EXPECT_EQ(p.attempts, 0);
  EXPECT_EQ(p.requeues, 2);
  EXPECT_EQ(c.Stats("r1").failed, 1);
  // Cancelled attempts are ours, not the session's work.
  EXPECT_EQ(Ok(store().CountSessionAttempts("s1")), 0);
}

// Lost (expiry), cancelled and transient outcomes all draw on one requeue
// budget per phase, whichever comes first.
TEST_P(StateStoreContractTest, ExpiryAndRequeuedReportsShareOneRequeueBudget) {
  Contract c(store());
  c.Import({Spec("r1", "p1"), Spec("r2", "q1")});
  // p1: lost, then cancelled (within max 2), then a transient failure spends it.
  LeaseGrant g = c.MustLease("r1", "w1", kT0);
  ASSERT_EQ(Ok(store().ExpireLeases(g.expires_at_ms, LostLeaseTransition(2))).size(), 1u);
  ReportParams cancelled = Contract::Report(c.MustLease("r1"), Outcome::kCancelled);
  cancelled.transition = TransitionAfterOutcome(PhaseBudget{2, 2}, Outcome::kCancelled, true);
  EXPECT_EQ(Ok(store().RecordReport(cancelled)).phase_state, PhaseState::kPending);
  ReportParams transient = Contract::Report(c.MustLease("r1"), Outcome::kKilled);
  transient.transition =
      TransitionAfterOutcome(PhaseBudget{2, 2}, Outcome::kKilled, /*counts_as_attempt=*/false);
  EXPECT_EQ(Ok(store().RecordReport(transient)).phase_state, PhaseState::kFailed);
  EXPECT_EQ(c.Phase("r1", "p1").final_outcome, Outcome::kKilled);
  EXPECT_EQ(c.Phase("r1", "p1").requeues, 3);

  // q1: a cancelled report first, then the expiry that spends the budget.
  ReportParams q_cancelled = Contract::Report(c.MustLease("r2"), Outcome::kCancelled);
  q_cancelled.transition = TransitionAfterOutcome(PhaseBudget{2, 1}, Outcome::kCancelled, true);
  EXPECT_EQ(Ok(store().RecordReport(q_cancelled)).phase_state, PhaseState::kPending);
  LeaseGrant q = c.MustLease("r2", "w1", kT0 + 5'000);
  std::vector<ExpiredLease> expired =
      Ok(store().ExpireLeases(q.expires_at_ms, LostLeaseTransition(1)));
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0].phase_state, PhaseState::kFailed);
  EXPECT_EQ(c.Phase("r2", "q1").final_outcome, Outcome::kLost);
  EXPECT_EQ(c.Phase("r2", "q1").requeues, 2);
}

TEST_P(StateStoreContractTest, DuplicateOfACancelledReportIsDuplicateAndNotLate) {
  Contract c(store());
  c.Import({Spec("r1", "p1")});
  LeaseGrant g = c.MustLease("r1");
  ASSERT_EQ(c.Record(g, Outcome::kCancelled).phase_state, PhaseState::kPending);
  const Snapshot before = c.Snap("r1", "p1");
  const ReportResult dup = c.Record(g, Outcome::kCancelled);
  EXPECT_EQ(dup.disposition, ReportDisposition::kDuplicate);
  EXPECT_EQ(dup.phase_state, PhaseState::kPending);
  ExpectSameSnapshot(before, c.Snap("r1", "p1"));
  EXPECT_EQ(Ok(store().CountLateReports()), 0);
}

TEST_P(StateStoreContractTest, DuplicateReportIsAnsweredAndChangesNothing) {
  Contract c(store());
  c.Import({Spec("r1", "p1"), Spec("r1", "p2", 1)});
  LeaseGrant g = c.MustLease("r1");
  ASSERT_EQ(c.Record(g, Outcome::kSucceeded, 10, 100).disposition, ReportDisposition::kAccepted);
  const Snapshot before = c.Snap("r1", "p1");

  // The same report again, and a retry that claims a different result.
  ReportResult dup = c.Record(g, Outcome::kSucceeded, 10, 100);
  EXPECT_EQ(dup.disposition, ReportDisposition::kDuplicate);
  EXPECT_EQ(dup.phase_state, PhaseState::kSucceeded);
  ReportResult changed = c.Record(g, Outcome::kFailed, 999, 5'000);
  EXPECT_EQ(changed.disposition, ReportDisposition::kDuplicate);
  EXPECT_EQ(changed.phase_state, PhaseState::kSucceeded);

  ExpectSameSnapshot(before, c.Snap("r1", "p1"));
}

TEST_P(StateStoreContractTest, DuplicateOfARetriedFailureDoesNotSpendAnotherAttempt) {
  Contract c(store());
  c.Import({Spec("r1", "p1")});
  LeaseGrant g = c.MustLease("r1");
  ASSERT_EQ(c.Record(g, Outcome::kFailed, 1, 1, 2).phase_state, PhaseState::kPending);
  const Snapshot before = c.Snap("r1", "p1");
  // Were the duplicate counted, attempts would reach 2 and fail the phase.
  EXPECT_EQ(c.Record(g, Outcome::kFailed, 1, 1, 2).disposition, ReportDisposition::kDuplicate);
  ExpectSameSnapshot(before, c.Snap("r1", "p1"));
  EXPECT_EQ(c.Phase("r1", "p1").state, PhaseState::kPending);
}

TEST_P(StateStoreContractTest, ReportAfterExpiryIsLateAndNotCounted) {
  Contract c(store());
  c.Import({Spec("r1", "p1")});
  LeaseGrant g = c.MustLease("r1", "w1", kT0);
  ASSERT_EQ(Ok(store().ExpireLeases(g.expires_at_ms, LostLeaseTransition(5))).size(), 1u);
  const Snapshot before = c.Snap("r1", "p1");

  ReportResult late = c.Record(g, Outcome::kSucceeded, 50, 1'000);
  EXPECT_EQ(late.disposition, ReportDisposition::kLate);
  EXPECT_EQ(late.phase_state, PhaseState::kPending);
  ExpectSameSnapshot(before, c.Snap("r1", "p1"));
  EXPECT_EQ(c.Stats("r1").successes, 0);
  EXPECT_EQ(c.Stats("r1").telemetry_events, 0);
  // Asking again gets the same answer.
  EXPECT_EQ(c.Record(g, Outcome::kSucceeded, 50, 1'000).disposition, ReportDisposition::kLate);
}

TEST_P(StateStoreContractTest, LateReportsAreListedOncePerLeaseInTheOrderReceived) {
  Contract c(store());
  c.Import({Spec("r1", "p1"), Spec("r2", "q1")});
  EXPECT_EQ(Ok(store().CountLateReports()), 0);
  EXPECT_THAT(Ok(store().ListLateReports()), IsEmpty());
  LeaseGrant first = c.MustLease("r1", "w1", kT0);
  LeaseGrant second = c.MustLease("r2", "w2", kT0);
  ASSERT_EQ(Ok(store().ExpireLeases(first.expires_at_ms, LostLeaseTransition(5))).size(), 2u);

  // Received in the order second, first; the repeat of `second` is not kept.
  const int64_t t1 = first.expires_at_ms + 10;
  const int64_t t2 = first.expires_at_ms + 20;
  ASSERT_EQ(
      Ok(store().RecordReport(Contract::Report(second, Outcome::kFailed, 3, 0, t1))).disposition,
      ReportDisposition::kLate);
  ASSERT_EQ(
      Ok(store().RecordReport(Contract::Report(first, Outcome::kSucceeded, 7, 0, t2))).disposition,
      ReportDisposition::kLate);
  ASSERT_EQ(Ok(store().RecordReport(Contract::Report(second, Outcome::kSucceeded, 99, 0, t2 + 5)))
                .disposition,
            ReportDisposition::kLate);
  // An accepted report and an unknown lease are not late reports.
  LeaseGrant fresh = c.MustLease("r1", "w3", t2);
  ASSERT_EQ(c.Record(fresh, Outcome::kSucceeded).disposition, ReportDisposition::kAccepted);
  LeaseGrant unknown = fresh;
  unknown.lease_id = "never-granted";
  ASSERT_EQ(c.Record(unknown, Outcome::kFailed).disposition, ReportDisposition::kUnknownLease);

  EXPECT_EQ(Ok(store().CountLateReports()), 2);
  const std::vector<LateReportRecord> late = Ok(store().ListLateReports());
  ASSERT_EQ(late.size(), 2u);
  EXPECT_EQ(late[0].lease_id, second.lease_id);
  EXPECT_EQ(late[0].worker_id, "w2");
  EXPECT_EQ(late[0].outcome, Outcome::kFailed);
  EXPECT_EQ(late[0].telemetry_events, 3);
  EXPECT_EQ(late[0].error_text, "boom");
  EXPECT_EQ(late[0].received_at_ms, t1);
  EXPECT_EQ(late[1].lease_id, first.lease_id);
  EXPECT_EQ(late[1].worker_id, "w1");
  EXPECT_EQ(late[1].outcome, Outcome::kSucceeded);
  EXPECT_EQ(late[1].telemetry_events, 7);
  EXPECT_EQ(late[1].error_text, "");
  EXPECT_EQ(late[1].received_at_ms, t2);
}

TEST_P(StateStoreContractTest, LateReportDoesNotDisturbTheNewHolder) {
  Contract c(store());
  c.Import({Spec("r1", "p1")});
  LeaseGrant old_lease = c.MustLease("r1", "w1", kT0);
  Ok(store().ExpireLeases(old_lease.expires_at_ms, LostLeaseTransition(5)));
  LeaseGrant new_lease = c.MustLease("r1", "w2", old_lease.expires_at_ms);
  EXPECT_EQ(c.Record(old_lease, Outcome::kFailed).disposition, ReportDisposition::kLate);
  PhaseRecord p = c.Phase("r1", "p1");
  EXPECT_EQ(p.state, PhaseState::kLeased);
  EXPECT_EQ(p.current_lease_id, new_lease.lease_id);
  EXPECT_EQ(p.attempts, 0);
  EXPECT_EQ(c.Record(new_lease, Outcome::kSucceeded).disposition, ReportDisposition::kAccepted);
}

TEST_P(StateStoreContractTest, ReportForUnknownLeaseIsRejectedAndNotRecorded) {
  Contract c(store());
  c.Import({Spec("r1", "p1")});
  LeaseGrant g = c.MustLease("r1");
  const Snapshot before = c.Snap("r1", "p1");
  LeaseGrant fake = g;
  fake.lease_id = "never-granted";
  EXPECT_EQ(c.Record(fake, Outcome::kSucceeded, 5, 5).disposition,
            ReportDisposition::kUnknownLease);
  ExpectSameSnapshot(before, c.Snap("r1", "p1"));
}

TEST_P(StateStoreContractTest, ReportWithWrongEpochIsLateAndLeaseStaysValid) {
  Contract c(store());
  c.Import({Spec("r1", "p1")});
  LeaseGrant g = c.MustLease("r1");
  const Snapshot before = c.Snap("r1", "p1");
  LeaseGrant wrong = g;
  wrong.epoch = g.epoch + 1000;
  EXPECT_EQ(c.Record(wrong, Outcome::kSucceeded, 5, 5).disposition, ReportDisposition::kLate);
  ExpectSameSnapshot(before, c.Snap("r1", "p1"));
  EXPECT_EQ(c.Record(g, Outcome::kSucceeded).disposition, ReportDisposition::kAccepted);
}

TEST_P(StateStoreContractTest, ReportFromAnotherWorkerIsLateAndLeaseStaysValid) {
  Contract c(store());
  c.Import({Spec("r1", "p1")});
  LeaseGrant g = c.MustLease("r1", "w1");
  const Snapshot before = c.Snap("r1", "p1");
  LeaseGrant impostor = g;
  impostor.worker_id = "w2";
  EXPECT_EQ(c.Record(impostor, Outcome::kFailed).disposition, ReportDisposition::kLate);
  ExpectSameSnapshot(before, c.Snap("r1", "p1"));
  EXPECT_EQ(c.Record(g, Outcome::kSucceeded).disposition, ReportDisposition::kAccepted);
}

}  // namespace sluice::contract
