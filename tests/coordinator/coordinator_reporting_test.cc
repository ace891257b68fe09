// Coordinator: Report (validation, fingerprints, budgets, retries after a
// store error) and the session report built from what was reported.
// Fixture and helpers: coordinator_fixture.h (FakeClock, in-memory SQLite).
#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/fingerprint.h"
#include "coordinator/insight/session_report.h"
#include "coordinator/store/report_limits.h"
#include "tests/coordinator/coordinator_fixture.h"

namespace sluice::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// ---------------------------------------------------------------------------
// Report

TEST_F(CoordinatorTest, AReportBatchAnswersEachReportAndRecordsTheGoodOnes) {
  RegisterWorker("w1");
  Import({Spec("r1", "p1"), Spec("r1", "p2"), Spec("r1", "p3")});
  Start();
  LeaseResult leased = LeaseNow("w1", 3);
  ASSERT_EQ(leased.leases.size(), 3u);
  AttemptReport negative = ReportOf(leased.leases[1], Outcome::kSucceeded, -1);
  std::vector<absl::StatusOr<ReportAnswer>> answers = Ok(coord_.ReportBatch({
      ReportOf(leased.leases[0], Outcome::kSucceeded, 5),
      negative,
      ReportOf(leased.leases[2], Outcome::kFailed, 0, 1'000, "ImportError: no module named x"),
  }));
  ASSERT_EQ(answers.size(), 3u);
  EXPECT_EQ(Ok(answers[0]).result.disposition, ReportDisposition::kAccepted);
  EXPECT_EQ(Err(answers[1]).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(Err(answers[1]).message()), HasSubstr("telemetry_events"));
  const ReportAnswer& failed = Ok(answers[2]);
  EXPECT_EQ(failed.result.disposition, ReportDisposition::kAccepted);
  EXPECT_THAT(failed.fingerprint, HasSubstr("importerror: no module named x"));

  EXPECT_EQ(Phase("r1", "p1").state, PhaseState::kSucceeded);
  EXPECT_EQ(Phase("r1", "p2").state, PhaseState::kLeased);  // the bad report: nothing recorded
  EXPECT_EQ(Phase("r1", "p3").attempts, 1);
  // The status and the policy saw both accepted reports.
  CoordinatorStatus status = Ok(coord_.Status());
  EXPECT_EQ(status.phases.succeeded, 1);
  EXPECT_EQ(Ok(store_.GetRunStats("r1"))->telemetry_events, 5);

  // The bad one, fixed and sent again, is recorded once.
  answers = Ok(coord_.ReportBatch({ReportOf(leased.leases[1], Outcome::kSucceeded, 2),
                                   ReportOf(leased.leases[1], Outcome::kSucceeded, 2)}));
  EXPECT_EQ(Ok(answers[0]).result.disposition, ReportDisposition::kAccepted);
  EXPECT_EQ(Ok(answers[1]).result.disposition, ReportDisposition::kDuplicate);
  EXPECT_EQ(Ok(store_.GetRunStats("r1"))->telemetry_events, 7);
}

TEST_F(CoordinatorTest, AReportBatchMustHoldOneToTheLimitOfReports) {
  RegisterWorker("w1");
  Import({Spec("r1", "p1")});
  Start();
  LeaseGrant g = LeaseOne();
  EXPECT_EQ(Err(coord_.ReportBatch({})).code(), absl::StatusCode::kInvalidArgument);
  std::vector<AttemptReport> too_many(Coordinator::kMaxReportBatch + 1,
                                      ReportOf(g, Outcome::kSucceeded, 1));
  absl::Status st = Err(coord_.ReportBatch(too_many));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("256"));
  EXPECT_EQ(Phase("r1", "p1").state, PhaseState::kLeased);
}

TEST_F(CoordinatorTest, ReportRejectsInvalidReportsAndRecordsNothing) {
  RegisterWorker("w1");
  Import({Spec("r1", "p1")});
  Start();
  LeaseGrant g = LeaseOne();

  AttemptReport lost = ReportOf(g, Outcome::kLost);
  absl::Status st = Err(coord_.Report(lost));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("lost"));

  AttemptReport negative = ReportOf(g, Outcome::kSucceeded, -1);
  st = Err(coord_.Report(negative));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("telemetry_events"));

  AttemptReport typed = ReportOf(g, Outcome::kSucceeded, 3);
  typed.telemetry_by_type = {{"a", 2}, {"b", 2}};
  EXPECT_EQ(Err(coord_.Report(typed)).code(), absl::StatusCode::kInvalidArgument);

  AttemptReport duration = ReportOf(g, Outcome::kSucceeded, 0, -5);
  EXPECT_EQ(Err(coord_.Report(duration)).code(), absl::StatusCode::kInvalidArgument);

  AttemptReport big_out = ReportOf(g, Outcome::kSucceeded);
  big_out.stdout_tail = std::string(Config().max_tail_bytes + 1, 'x');
  st = Err(coord_.Report(big_out));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("stdout_tail"));

  AttemptReport big_err = ReportOf(g, Outcome::kFailed);
  big_err.stderr_tail = std::string(Config().max_tail_bytes + 1, 'x');
  st = Err(coord_.Report(big_err));
  EXPECT_THAT(std::string(st.message()), HasSubstr("stderr_tail"));

  AttemptReport big_text = ReportOf(g, Outcome::kFailed);
  big_text.error_text = std::string(Config().max_error_text_bytes + 1, 'x');
  st = Err(coord_.Report(big_text));
  EXPECT_THAT(std::string(st.message()), HasSubstr("error_text"));

  AttemptReport bad_worker = ReportOf(g, Outcome::kSucceeded);
  bad_worker.worker_id = "w1;x";
  EXPECT_EQ(Err(coord_.Report(bad_worker)).code(), absl::StatusCode::kInvalidArgument);

  EXPECT_THAT(Ok(store_.ListAttempts("")), IsEmpty());
  EXPECT_EQ(Phase("r1", "p1").state, PhaseState::kLeased);
  // A tail of exactly the limit is fine.
  AttemptReport at_limit = ReportOf(g, Outcome::kSucceeded);
  at_limit.stdout_tail = std::string(Config().max_tail_bytes, 'x');
  EXPECT_EQ(Ok(coord_.Report(at_limit)).result.disposition, ReportDisposition::kAccepted);
}

// Bug: report counters were only checked for >= 0: per-type counts could add
// up past INT64_MAX (the sum wrapped and passed the check), and huge
// telemetry_events, duration_ms or type counts went on to the store's sums.
TEST_F(CoordinatorTest, ReportCountersAndTheirSumsAreBoundedBeforeAnyWrite) {
  RegisterWorker("w1");
  Import({Spec("r1", "p1")});
  Start();
  const LeaseGrant g = LeaseOne();

  AttemptReport wraps = ReportOf(g, Outcome::kSucceeded, 10);
  wraps.telemetry_by_type = {{"a", INT64_MAX}, {"b", 2}};
  absl::Status st = Err(coord_.Report(wraps));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
  EXPECT_THAT(std::string(st.message()), HasSubstr("telemetry_by_type"));

  AttemptReport events = ReportOf(g, Outcome::kSucceeded, INT64_MAX);
  st = Err(coord_.Report(events));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
  EXPECT_THAT(std::string(st.message()), HasSubstr("telemetry_events"));

  AttemptReport duration = ReportOf(g, Outcome::kSucceeded, 0, INT64_MAX);
  st = Err(coord_.Report(duration));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
  EXPECT_THAT(std::string(st.message()), HasSubstr("duration_ms"));

  AttemptReport types = ReportOf(g, Outcome::kSucceeded, 0);
  for (size_t i = 0; i <= kMaxReportTelemetryTypes; ++i) {
    types.telemetry_by_type[absl::StrCat("t", i)] = 0;
  }
  st = Err(coord_.Report(types));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
  EXPECT_THAT(std::string(st.message()), HasSubstr("types"));

  EXPECT_THAT(Ok(store_.ListAttempts("")), IsEmpty());
  EXPECT_EQ(Phase("r1", "p1").state, PhaseState::kLeased);
  // At the bounds the report is accepted.
  AttemptReport at_bounds =
      ReportOf(g, Outcome::kSucceeded, kMaxReportTelemetryEvents, kMaxReportDurationMs);
  at_bounds.telemetry_by_type = {{"a", kMaxReportTelemetryEvents}};
  EXPECT_EQ(Ok(coord_.Report(at_bounds)).result.disposition, ReportDisposition::kAccepted);
}

TEST_F(CoordinatorTest, ReportReturnsAndStoresTheFingerprint) {
  RegisterWorker("w1");
  Import({Spec("r1", "p1")});
  Start();
  LeaseGrant g = LeaseOne();
  const std::string error = "ImportError: No module named 'foo' at /srv/app/main.py line 12";
  ReportAnswer answer = ReportNow(g, Outcome::kFailed, 0, 100, error);
  const Fingerprint expected = ComputeFingerprint(Outcome::kFailed, 1, 0, error);
  EXPECT_EQ(answer.fingerprint, expected.key);
  EXPECT_THAT(answer.fingerprint, ::testing::StartsWith("failed|exit:1|"));
  EXPECT_EQ(answer.result.disposition, ReportDisposition::kAccepted);
  EXPECT_EQ(answer.result.phase_state, PhaseState::kPending);
  std::vector<AttemptRecord> attempts = Ok(store_.ListAttempts("s1"));
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0].fingerprint, expected.key);
  EXPECT_EQ(attempts[0].error_text, error);
}

TEST_F(CoordinatorTest, ReportUsesTheSessionsAttemptBudget) {
  RegisterWorker("w1");
  Import({Spec("r1", "p1")});
  SessionSettings settings;
  settings.max_attempts_per_phase = 1;
  Start(settings);
  EXPECT_EQ(ReportNow(LeaseOne(), Outcome::kFailed).result.phase_state, PhaseState::kFailed);
  EXPECT_EQ(Phase("r1", "p1").final_outcome, Outcome::kFailed);
}

TEST_F(CoordinatorTest, FailedReportLeavesStoreUnchangedAndRetryCountsOnce) {
  RegisterWorker("w1");
  Import({Spec("r1", "p1"), Spec("r1", "p2", 1)});
  Start();
  LeaseGrant g = LeaseOne();
  const std::vector<RunStats> stats_before = Ok(store_.ListRunStats());

  store_.FailNthMutatingCall(1);
  absl::StatusOr<ReportAnswer> failed = coord_.Report(ReportOf(g, Outcome::kSucceeded, 7, 500));
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(store_.failed_calls(), ElementsAre("RecordReport"));

  PhaseRecord p = Phase("r1", "p1");
  EXPECT_EQ(p.state, PhaseState::kLeased);
  EXPECT_EQ(p.current_lease_id, g.lease_id);
  EXPECT_EQ(p.attempts, 0);
  EXPECT_EQ(p.telemetry_events, 0);
  EXPECT_THAT(Ok(store_.ListAttempts("")), IsEmpty());
  EXPECT_EQ(Ok(store_.ListActiveLeases()).size(), 1u);
  const std::vector<RunStats> stats_mid = Ok(store_.ListRunStats());
  ASSERT_EQ(stats_mid.size(), 1u);
  EXPECT_EQ(stats_mid[0].attempts, stats_before[0].attempts);
  EXPECT_EQ(stats_mid[0].telemetry_events, stats_before[0].telemetry_events);
  EXPECT_EQ(stats_mid[0].leased, 1);

  // The worker retries: recorded once; a further retry is a duplicate.
  ReportAnswer retried = Ok(coord_.Report(ReportOf(g, Outcome::kSucceeded, 7, 500)));
  EXPECT_EQ(retried.result.disposition, ReportDisposition::kAccepted);
  EXPECT_EQ(retried.result.phase_state, PhaseState::kSucceeded);
  ReportAnswer again = Ok(coord_.Report(ReportOf(g, Outcome::kSucceeded, 7, 500)));
  EXPECT_EQ(again.result.disposition, ReportDisposition::kDuplicate);
  EXPECT_EQ(Ok(store_.ListAttempts("")).size(), 1u);
  const std::vector<RunStats> stats_after = Ok(store_.ListRunStats());
  EXPECT_EQ(stats_after[0].attempts, 1);
  EXPECT_EQ(stats_after[0].successes, 1);
  EXPECT_EQ(stats_after[0].telemetry_events, 7);
  EXPECT_EQ(Ok(store_.CountSessionAttempts("s1")), 1);
}

// ---------------------------------------------------------------------------
// Session report

class SessionReportTest : public CoordinatorTest {
 protected:
  const std::string kImportError = "ImportError: No module named 'foo'";

  // Session "old" finishes one phase; session "s1" then runs five attempts:
  // r1/p1 succeeded (30 events, 60 s), r1/p2 failed (ImportError, 5 events,
  // 30 s), r2/q1 failed (same ImportError, 15 s), r2/q2 timed out (15 s),
  // r2/q3 lost.
  void SetUp() override {
    RegisterWorker("w1");
    Import({Spec("r1", "p1"), Spec("r1", "p2", 1), Spec("r2", "q1"), Spec("r2", "q2", 1),
            Spec("r2", "q3", 2), Spec("r3", "x1")});
    SessionSettings old_settings;
    old_settings.run_ids = {"r3"};
    Start(old_settings, "old");
    ReportNow(LeaseOne(), Outcome::kSucceeded, 1'000, 1'000);
    Ok(coord_.StopSession("old", "done"));

    SessionSettings settings;
    settings.max_attempts_per_phase = 1;
    Start(settings, "s1");
    LeaseResult r = LeaseNow("w1", 5);
    ASSERT_EQ(r.leases.size(), 5u);
    std::map<std::string, LeaseGrant> by_phase;
    for (const LeaseGrant& g : r.leases) by_phase[g.phase_id] = g;
    ASSERT_EQ(by_phase.size(), 5u);
    ReportNow(by_phase["p1"], Outcome::kSucceeded, 30, 60'000);
    ReportNow(by_phase["p2"], Outcome::kFailed, 5, 30'000, kImportError);
    ReportNow(by_phase["q1"], Outcome::kFailed, 0, 15'000, kImportError);
    ReportNow(by_phase["q2"], Outcome::kTimedOut, 0, 15'000, "phase timed out");
    clock_.AdvanceMs(kTtl);
    Ok(coord_.Tick());  // q3 lost
  }
};

TEST_F(SessionReportTest, CountsOutcomesTelemetryAndYieldOfTheSessionOnly) {
  SessionReport r = Ok(BuildSessionReport(store_, "s1"));
  EXPECT_EQ(r.session_id, "s1");
  EXPECT_EQ(r.state, "active");
  EXPECT_EQ(r.attempts, 5);
  EXPECT_EQ(r.outcomes, (std::map<std::string, int64_t>{
                            {"succeeded", 1}, {"failed", 2}, {"timed_out", 1}, {"lost", 1}}));
  EXPECT_EQ(r.telemetry_events, 35);
  EXPECT_EQ(r.run_ms, 120'000);
  // 35 events over 2 minutes of phase run time.
  EXPECT_DOUBLE_EQ(r.yield_per_minute, 17.5);
  EXPECT_DOUBLE_EQ(YieldPerMinute(35, 120'000), 17.5);
  EXPECT_DOUBLE_EQ(YieldPerMinute(35, 0), 0.0);

  EXPECT_EQ(r.phases.pending, 1);  // q3, requeued after the loss
  EXPECT_EQ(r.phases.leased, 0);
  EXPECT_EQ(r.phases.succeeded, 2);  // p1 and the old session's x1
  EXPECT_EQ(r.phases.failed, 3);

  ASSERT_EQ(r.runs.size(), 2u);  // r3 belongs to the old session
  EXPECT_EQ(r.runs[0].run_id, "r1");
  EXPECT_EQ(r.runs[0].attempts, 2);
  EXPECT_EQ(r.runs[0].succeeded, 1);
  EXPECT_EQ(r.runs[0].failed, 1);
  EXPECT_EQ(r.runs[0].timed_out, 0);
  EXPECT_EQ(r.runs[0].telemetry_events, 35);
  EXPECT_EQ(r.runs[0].run_ms, 90'000);
  EXPECT_EQ(r.runs[0].phases.succeeded, 1);
  EXPECT_EQ(r.runs[0].phases.failed, 1);
  EXPECT_EQ(r.runs[1].run_id, "r2");
  EXPECT_EQ(r.runs[1].attempts, 3);
  EXPECT_EQ(r.runs[1].failed, 2);  // failed + timed out; lost is not the phase's failure
  EXPECT_EQ(r.runs[1].timed_out, 1);
  EXPECT_EQ(r.runs[1].phases.pending, 1);
  EXPECT_EQ(r.runs[1].phases.failed, 2);
}

TEST_F(SessionReportTest, GroupsErrorsByFingerprintMostFrequentFirst) {
  SessionReport r = Ok(BuildSessionReport(store_, "s1"));
  ASSERT_EQ(r.top_errors.size(), 3u);  // import error, timeout, lost
  const std::string import_fp = ComputeFingerprint(Outcome::kFailed, 1, 0, kImportError).key;
  EXPECT_EQ(r.top_errors[0].fingerprint, import_fp);
  EXPECT_EQ(r.top_errors[0].fingerprint_id, FingerprintId(import_fp));
  EXPECT_EQ(r.top_errors[0].example_error, kImportError);
  EXPECT_EQ(r.top_errors[0].attempts, 2);
  EXPECT_EQ(r.top_errors[0].runs, 2);
  EXPECT_EQ(r.top_errors[0].run_ms, 45'000);
  EXPECT_EQ(r.top_errors[1].attempts, 1);
  EXPECT_EQ(r.top_errors[2].attempts, 1);
  EXPECT_LT(r.top_errors[1].fingerprint, r.top_errors[2].fingerprint);  // ties by fingerprint
  std::set<std::string> rest = {r.top_errors[1].fingerprint, r.top_errors[2].fingerprint};
  EXPECT_TRUE(rest.contains(ComputeFingerprint(Outcome::kTimedOut, -1, 15, "phase timed out").key));
  EXPECT_TRUE(std::any_of(rest.begin(), rest.end(),
                          [](const std::string& fp) { return fp.starts_with("lost|"); }));
}

TEST_F(SessionReportTest, JsonRoundTripsEveryField) {
  Ok(coord_.StopSession("s1", "enough"));
  SessionReport r = Ok(BuildSessionReport(store_, "s1"));
  SessionReport back = Ok(SessionReportFromJson(SessionReportJson(r)));
  EXPECT_EQ(back.session_id, r.session_id);
  EXPECT_EQ(back.state, "stopped");
  EXPECT_EQ(back.end_reason, "enough");
  EXPECT_EQ(back.started_at_ms, r.started_at_ms);
  EXPECT_EQ(back.ended_at_ms, r.ended_at_ms);
  EXPECT_NE(back.ended_at_ms, 0);
  EXPECT_EQ(back.outcomes, r.outcomes);
  EXPECT_EQ(back.attempts, r.attempts);
  EXPECT_EQ(back.telemetry_events, r.telemetry_events);
  EXPECT_EQ(back.run_ms, r.run_ms);
  EXPECT_DOUBLE_EQ(back.yield_per_minute, r.yield_per_minute);
  EXPECT_EQ(back.phases.pending, r.phases.pending);
  EXPECT_EQ(back.phases.leased, r.phases.leased);
  EXPECT_EQ(back.phases.succeeded, r.phases.succeeded);
  EXPECT_EQ(back.phases.failed, r.phases.failed);
  ASSERT_EQ(back.top_errors.size(), r.top_errors.size());
  for (size_t i = 0; i < r.top_errors.size(); ++i) {
    EXPECT_EQ(back.top_errors[i].fingerprint, r.top_errors[i].fingerprint);
    EXPECT_EQ(back.top_errors[i].fingerprint_id, r.top_errors[i].fingerprint_id);
    EXPECT_EQ(back.top_errors[i].example_error, r.top_errors[i].example_error);
    EXPECT_EQ(back.top_errors[i].attempts, r.top_errors[i].attempts);
    EXPECT_EQ(back.top_errors[i].runs, r.top_errors[i].runs);
    EXPECT_EQ(back.top_errors[i].run_ms, r.top_errors[i].run_ms);
  }
  ASSERT_EQ(back.runs.size(), r.runs.size());
  for (size_t i = 0; i < r.runs.size(); ++i) {
    EXPECT_EQ(back.runs[i].run_id, r.runs[i].run_id);
    EXPECT_EQ(back.runs[i].attempts, r.runs[i].attempts);
    EXPECT_EQ(back.runs[i].succeeded, r.runs[i].succeeded);
    EXPECT_EQ(back.runs[i].failed, r.runs[i].failed);
    EXPECT_EQ(back.runs[i].timed_out, r.runs[i].timed_out);
    EXPECT_EQ(back.runs[i].telemetry_events, r.runs[i].telemetry_events);
    EXPECT_EQ(back.runs[i].run_ms, r.runs[i].run_ms);
    EXPECT_EQ(back.runs[i].phases.pending, r.runs[i].phases.pending);
    EXPECT_EQ(back.runs[i].phases.failed, r.runs[i].phases.failed);
  }
  EXPECT_EQ(SessionReportJson(back), SessionReportJson(r));
  EXPECT_THAT(SessionReportText(r), HasSubstr("yield 17.50 events/min"));
}

// Issue #13: the coordinator built its report with the default family rule,
// whatever its --family-pattern, so `sluice report` and the drain's summary
// disagreed with the scheduler and the web view about families.
TEST_F(SessionReportTest, FamiliesFollowTheCoordinatorsFamilyPattern) {
  const SessionReport by_default = Ok(coord_.SessionReportFor("s1"));
  std::vector<std::string> keys;
  for (const GroupReportRow& f : by_default.families) keys.push_back(f.key);
  EXPECT_EQ(keys, (std::vector<std::string>{"r1", "r2"}));

  CoordinatorConfig config = Config();
  config.family_pattern = "(r)[0-9]+";
  Coordinator patterned(store_, clock_, config);
  const SessionReport r = Ok(patterned.SessionReportFor("s1"));
  ASSERT_EQ(r.families.size(), 1u);
  EXPECT_EQ(r.families[0].key, "r");
  EXPECT_EQ(r.families[0].runs, 2);
  EXPECT_EQ(r.families[0].attempts, 5);
  for (const RunReportRow& run : r.runs) EXPECT_EQ(run.family, "r") << run.run_id;
  // And through the JSON `sluice report` reads.
  const SessionReport parsed = Ok(SessionReportFromJson(SessionReportJson(r)));
  ASSERT_EQ(parsed.families.size(), 1u);
  EXPECT_EQ(parsed.families[0].key, "r");
}

TEST_F(SessionReportTest, UnknownSessionIsNotFoundAndBadJsonIsInvalidArgument) {
  EXPECT_EQ(Err(BuildSessionReport(store_, "nope")).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Err(SessionReportFromJson("[1,2]")).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Err(SessionReportFromJson(R"({"session_id":"s"})")).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(CoordinatorTest, TransientErrorInAProductiveRunDoesNotBlockIt) {
  // Issue #13: "read operation timed out" fed the repeat rule and blocked two
  // productive runs whole. The built-in transient set now recognises it with
  // no --retry-on: the run backs off, is leased again, and every phase ends.
  RegisterWorker("w1");
  Import({Spec("r1", "p1"), Spec("r1", "p2"), Spec("r1", "p3")});
  SessionSettings settings;
  settings.max_fingerprint_repeats = 1;  // one counted repeat would block r1
  settings.max_attempts_per_phase = 1;   // one counted failure would fail a phase
  Start(settings);
  int transient = 0;
  for (int i = 0; i < 20; ++i) {
    LeaseResult r = LeaseNow("w1");
    if (r.leases.empty()) {
      clock_.AdvanceMs(10'000);  // past the backoff
      continue;
    }
    if (transient < 2) {
      ++transient;
      ReportNow(r.leases[0], Outcome::kFailed, 0, 1'000,
                "TimeoutError: The read operation timed out (request id: req_3f2a)");
    } else {
      ReportNow(r.leases[0], Outcome::kSucceeded, 2);
    }
  }
  EXPECT_EQ(transient, 2);
  for (const char* p : {"p1", "p2", "p3"}) {
    EXPECT_EQ(Phase("r1", p).state, PhaseState::kSucceeded) << p;
  }
}

TEST_F(CoordinatorTest, ARetryOfAFailedPhaseWaitsBehindItsRunsUntriedPhases) {
  // Issue #13: a phase that failed non-transiently was retried at once (the
  // lowest phase_index first), ahead of its run's untried phases. Retries now
  // go behind them; the attempt budget still allows the retry later.
  RegisterWorker("w1");
  Import({Spec("r1", "p1"), Spec("r1", "p2"), Spec("r1", "p3")});
  Start();
  const LeaseGrant first = LeaseOne();
  ASSERT_EQ(first.phase_id, "p1");
  ReportNow(first, Outcome::kFailed, 0, 1'000, "AssertionError: column 'x' has unexpected values");
  ASSERT_EQ(Phase("r1", "p1").state, PhaseState::kPending);
  std::vector<std::string> order;
  for (int i = 0; i < 3; ++i) {
    const LeaseGrant g = LeaseOne();
    order.push_back(g.phase_id);
    ReportNow(g, Outcome::kSucceeded, 1);
  }
  EXPECT_EQ(order, (std::vector<std::string>{"p2", "p3", "p1"}));
}

TEST_F(CoordinatorTest, ARunWhoseUntriedPhasesAreDoneYieldsToARunWithUntriedOnes) {
  // Issue #13, phase by phase: r1 yields more than r2, but all r1 has left
  // is a phase whose backlog row says it hung. That phase waits behind r2's
  // untried phases (r1 is ranked by what retry-tier attempts yield), and is
  // still leased once they are done.
  RegisterWorker("w1");
  PhaseSpec hung = Spec("r1", "p2");
  hung.phase_index = 1;
  hung.last_error = "phase timed out after 900s (no output for 612s)";
  PhaseSpec q2 = Spec("r2", "q2");
  q2.phase_index = 1;
  PhaseSpec q3 = Spec("r2", "q3");
  q3.phase_index = 2;
  Import({Spec("r1", "p1"), hung, Spec("r2", "q1"), q2, q3});
  Start();
  // One phase of each run: r1's yields 3 events, r2's 2.
  for (int i = 0; i < 2; ++i) {
    const LeaseGrant g = LeaseOne();
    ASSERT_EQ(g.phase_id, g.run_id == "r1" ? "p1" : "q1");
    ReportNow(g, Outcome::kSucceeded, g.run_id == "r1" ? 3 : 2, 60'000);
  }
  std::vector<std::string> order;
  for (int i = 0; i < 3; ++i) {
    const LeaseGrant g = LeaseOne();
    order.push_back(g.phase_id);
    ReportNow(g, Outcome::kSucceeded, 2, 60'000);
  }
  EXPECT_EQ(order, (std::vector<std::string>{"q2", "q3", "p2"}));
}

TEST_F(CoordinatorTest, GrantsCarryTheIdleLimitOnceItIsLearntFromReportedSilences) {
  // Issue #13, hangs: after 5 attempts that ended on their own, each silent
  // for at most 90 s, a grant tells the worker to stop a phase silent for
  // twice that (a hang then costs 3 minutes, not the 15-minute timeout).
  RegisterWorker("w1");
  std::vector<PhaseSpec> phases;
  for (int i = 0; i < 7; ++i) {
    PhaseSpec p = Spec("r1", "p" + std::to_string(i));
    p.phase_index = i;
    phases.push_back(p);
  }
  Import(phases);
  Start();
  for (int i = 0; i < 5; ++i) {
    const LeaseGrant g = LeaseOne();
    EXPECT_EQ(g.idle_timeout_seconds, 0) << "nothing learnt before grant " << i;
    AttemptReport r = ReportOf(g, Outcome::kSucceeded, 1, 120'000);
    r.longest_silence_ms = 60'000 + i * 7'500;  // up to 90 s
    Ok(coord_.Report(r));
  }
  const LeaseGrant learnt = LeaseOne();
  EXPECT_EQ(learnt.idle_timeout_seconds, 180);
  EXPECT_LT(learnt.idle_timeout_seconds, learnt.timeout_seconds);
}

}  // namespace
}  // namespace sluice::testing
