// Planner on its own over an in-memory SqliteStateStore and a FakeClock: the
// rows it explains carry the policy's typed reasons, and the plan simulates
// one label-less worker.
#include "coordinator/policy/planner.h"

#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "coordinator/store/sqlite/sqlite_state_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/attempts.h"
#include "tests/testing/forwarding_state_store.h"

namespace sluice {
namespace {

using ::testing::SizeIs;

PhaseSpec Spec(const std::string& run, const std::string& phase,
               std::vector<std::string> labels = {}) {
  PhaseSpec p;
  p.run_id = run;
  p.phase_id = phase;
  p.labels = std::move(labels);
  return p;
}

class PlannerTest : public ::testing::Test {
 protected:
  PlannerTest()
      : store_(SqliteStateStore::Open(":memory:").value()),
        policy_(*store_, clock_, {}),
        planner_(*store_, clock_, policy_) {}

  FakeClock clock_;
  std::unique_ptr<SqliteStateStore> store_;
  DrainPolicy policy_;
  Planner planner_;
};

TEST_F(PlannerTest, ExplainedRowsCarryTheTypedReasonAndItsKind) {
  store_->ImportPhases({Spec("tmp-1", "a"), Spec("gpu", "b", {"gpu"}), Spec("ok", "c")}).value();
  SessionSettings s;
  s.skip_run_prefixes = {"tmp-"};
  const std::vector<SkipRow> rows = planner_.ExplainSkips(s).value();
  ASSERT_THAT(rows, SizeIs(2));
  EXPECT_EQ(rows[0].code, SkipReason::kSkippedByPrefix);
  EXPECT_EQ(rows[0].kind, "excluded");
  EXPECT_EQ(rows[0].run_id, "tmp-1");
  EXPECT_EQ(rows[0].reason, "skipped by --skip-run-prefix");
  EXPECT_EQ(rows[1].code, SkipReason::kNeedsLabels);
  EXPECT_EQ(rows[1].kind, "waiting_for_labels");
  EXPECT_EQ(rows[1].phase_id, "b");
  EXPECT_EQ(rows[1].reason,
            "waiting for a worker with labels gpu (no registered worker has them all)");
}

// Bug: the failed-for-good rows read the whole history at every status and
// looked up every phase ever attempted (a running coordinator's status at 1M
// attempts: 2.2 s, 712 MB), while only runs with failed phases are rows.
TEST_F(PlannerTest, FailedForGoodRowsReadOnlyNewAttemptsAndLookUpOnlyFailedRunsPhases) {
  class LookupCountingStore : public testing::ForwardingStateStore {
   public:
    using ForwardingStateStore::ForwardingStateStore;
    absl::StatusOr<std::optional<PhaseRecord>> GetPhase(const PhaseKey& key) override {
      looked_up.push_back(key.run_id + "/" + key.phase_id);
      return ForwardingStateStore::GetPhase(key);
    }
    absl::StatusOr<AttemptBatch> ListAttemptsFrom(const std::string& session, int64_t cursor,
                                                  int64_t limit) override {
      cursors.push_back(cursor);
      return ForwardingStateStore::ListAttemptsFrom(session, cursor, limit);
    }
    std::vector<std::string> looked_up;
    std::vector<int64_t> cursors;
  };
  std::vector<PhaseSpec> phases = {Spec("bad", "x"), Spec("bad2", "y")};
  for (int i = 0; i < 12; ++i) phases.push_back(Spec("ok", "p" + std::to_string(i)));
  store_->ImportPhases(phases).value();
  SessionSettings s;
  s.max_attempts_per_phase = 1;
  SessionRecord session;
  session.session_id = "s1";
  session.settings = s;
  ASSERT_TRUE(store_->CreateSession(session).ok());
  auto record = [&](const std::string& run, Outcome outcome) {
    LeaseParams lp;
    lp.run_id = run;
    lp.worker_id = "w1";
    lp.session_id = "s1";
    lp.lease_id = "L-" + run + std::to_string(clock_.NowMs());
    lp.timeout_seconds = 600;
    lp.now_ms = clock_.NowMs();
    lp.ttl_ms = 60'000;
    clock_.AdvanceMs(1);
    const AttemptReport report =
        testing::GrantReport(store_->LeaseNextInRun(lp).value().value(), outcome,
                             outcome == Outcome::kSucceeded ? "" : "boom");
    const ReportParams params = policy_.PrepareReport(report, s).value();
    ASSERT_EQ(store_->RecordReport(params).value().disposition, ReportDisposition::kAccepted);
  };
  for (int i = 0; i < 12; ++i) record("ok", Outcome::kSucceeded);
  record("bad", Outcome::kFailed);

  LookupCountingStore counting(*store_);
  Planner planner(counting, clock_, policy_);
  const std::vector<SkipRow> rows = planner.ExplainSkips(s).value();
  ASSERT_THAT(rows, SizeIs(1));
  EXPECT_EQ(rows[0].kind, "failed");
  EXPECT_EQ(rows[0].run_id, "bad");
  EXPECT_EQ(rows[0].reason, "failed for good: attempts exhausted (max_attempts_per_phase 1)");
  EXPECT_THAT(counting.looked_up, ::testing::ElementsAre("bad/x"));
  EXPECT_THAT(counting.cursors, ::testing::ElementsAre(0));

  // The next status reads on from where this one stopped.
  record("bad2", Outcome::kFailed);
  counting.cursors.clear();
  const std::vector<SkipRow> later = planner.ExplainSkips(s).value();
  ASSERT_THAT(later, SizeIs(2));
  EXPECT_EQ(later[1].run_id, "bad2");
  EXPECT_EQ(later[1].reason, "failed for good: attempts exhausted (max_attempts_per_phase 1)");
  ASSERT_THAT(counting.cursors, SizeIs(1));
  EXPECT_GT(counting.cursors[0], 0);
  // A new term counts from the start again, and to the same rows.
  planner.ResetForNewTerm();
  counting.cursors.clear();
  const std::vector<SkipRow> again = planner.ExplainSkips(s).value();
  EXPECT_THAT(counting.cursors, ::testing::ElementsAre(0));
  ASSERT_THAT(again, SizeIs(2));
  EXPECT_EQ(again[0].reason, later[0].reason);
  EXPECT_EQ(again[1].reason, later[1].reason);
  // A policy replay's count of a shorter prefix (one that began before this
  // status read on) does not replace the longer one.
  const int64_t read_to = store_->ListAttemptsFrom("", 0, 1'000).value().next_cursor;
  planner.FollowHistory()->Done(1);
  counting.cursors.clear();
  EXPECT_THAT(planner.ExplainSkips(s).value(), SizeIs(2));
  EXPECT_THAT(counting.cursors, ::testing::ElementsAre(read_to));
  // One whose read began before a new term is not taken: that status reads
  // from the start.
  std::unique_ptr<HistoryFollower> old_term = planner.FollowHistory();
  planner.ResetForNewTerm();
  old_term->Done(read_to + 1'000);
  counting.cursors.clear();
  EXPECT_THAT(planner.ExplainSkips(s).value(), SizeIs(2));
  EXPECT_THAT(counting.cursors, ::testing::ElementsAre(0));
  // One that reaches further is taken: the next status reads on from it.
  std::unique_ptr<HistoryFollower> replay = planner.FollowHistory();
  store_->ImportPhases({Spec("late", "z")}).value();
  record("late", Outcome::kFailed);
  const AttemptBatch all = store_->ListAttemptsFrom("", 0, 1'000).value();
  for (const AttemptRecord& a : all.rows) replay->Observe(a);
  replay->Done(all.next_cursor);
  counting.cursors.clear();
  const std::vector<SkipRow> adopted = planner.ExplainSkips(s).value();
  EXPECT_THAT(counting.cursors, ::testing::ElementsAre(all.next_cursor));
  ASSERT_THAT(adopted, SizeIs(3));
  EXPECT_EQ(adopted[2].run_id, "late");
  EXPECT_EQ(adopted[2].reason, later[1].reason);
}

TEST_F(PlannerTest, PlanListsExclusionsWithTheirCodeAndSkipsLabelledPhases) {
  store_->ImportPhases({Spec("tmp-1", "a"), Spec("gpu", "b", {"gpu"}), Spec("ok", "c")}).value();
  SessionSettings s;
  s.skip_run_prefixes = {"tmp-"};
  const LeasePlan plan = planner_.Plan(s, 10).value();
  ASSERT_THAT(plan.excluded, SizeIs(1));
  EXPECT_EQ(plan.excluded[0].excluded.code, SkipReason::kSkippedByPrefix);
  EXPECT_EQ(plan.excluded[0].excluded_reason, "skipped by --skip-run-prefix");
  ASSERT_THAT(plan.leases, SizeIs(1));
  EXPECT_EQ(plan.leases[0].run_id, "ok");
  EXPECT_EQ(plan.leases[0].why, "sampling a new run");
  ASSERT_THAT(plan.needs_labels, SizeIs(1));
  EXPECT_EQ(plan.needs_labels[0].phase_id, "b");
  EXPECT_THAT(planner_.Plan(s, 0).value().leases, ::testing::IsEmpty());
}

TEST_F(PlannerTest, PlanCurveCoversAllPendingWorkNotJustTheLimit) {
  store_->ImportPhases({Spec("tmp-1", "a"), Spec("ok", "c"), Spec("ok", "d"), Spec("ok", "e")})
      .value();
  SessionSettings s;
  s.skip_run_prefixes = {"tmp-"};
  const LeasePlan plan = planner_.Plan(s, 1).value();
  ASSERT_THAT(plan.leases, SizeIs(1));
  ASSERT_FALSE(plan.curve.points.empty());
  EXPECT_EQ(plan.curve.points.back().phases, 3);
  EXPECT_EQ(plan.curve.runs, 1);
  EXPECT_EQ(plan.curve.left_off_runs, 1);
  EXPECT_EQ(plan.curve.left_off_phases, 1);
  // The stop rule's bar above every estimate leaves everything off.
  s.min_expected_yield = 1'000;
  const LeasePlan cut = planner_.Plan(s, 1).value();
  EXPECT_THAT(cut.curve.points, ::testing::IsEmpty());
  EXPECT_EQ(cut.curve.left_off_phases, 4);
}

TEST_F(PlannerTest, ReportWithoutAnySessionIsNotFound) {
  EXPECT_EQ(planner_.ReportFor("").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace sluice
