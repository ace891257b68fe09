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
