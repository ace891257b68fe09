// The expected curve of what is left (`sluice plan`, issue #13): pure, from
// the scheduler's decisions. Hand-built decisions for the arithmetic, the
// real Scheduler for the order.
#include "coordinator/policy/expected_curve.h"

#include <string>
#include <vector>

#include "coordinator/policy/scheduler.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sluice {
namespace {

using ::testing::DoubleEq;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

RunDecision Eligible(const std::string& run_id, int64_t pending, double yield, double minutes) {
  RunDecision d;
  d.ranking.run_id = run_id;
  d.ranking.expected_yield = yield;
  d.ranking.expected_minutes = minutes;
  d.pending = pending;
  return d;
}

// A run with `attempts` finished attempts (all succeeded) that produced
// `events` telemetry events over `minutes` of run time.
RunStats Explored(const std::string& id, int64_t pending, int64_t attempts, int64_t events,
                  double minutes) {
  RunStats r;
  r.run_id = id;
  r.pending = pending;
  r.attempts = attempts;
  r.successes = attempts;
  r.telemetry_events = events;
  r.run_ms = static_cast<int64_t>(minutes * 60'000);
  return r;
}

std::vector<double> SliceYields(const ExpectedCurve& curve) {
  std::vector<double> out;
  for (const ExpectedCurvePoint& p : curve.points) out.push_back(p.slice_yield);
  return out;
}

TEST(ExpectedCurve, CumulativeSumsMatchAHandComputedExample) {
  // a: 2 phases of 2 min at 3 events/min = 6 events each; b: 1 phase of 4
  // min at 1 event/min = 4 events. 16 events in 8 minutes; slices of 1.6
  // events: a's first phase (6) crosses three boundaries and closes one.
  const ExpectedCurve curve =
      ComputeExpectedCurve({Eligible("a", 2, 3.0, 2.0), Eligible("b", 1, 1.0, 4.0)});
  ASSERT_EQ(curve.points.size(), 3u);
  const double minutes[] = {2, 4, 8}, events[] = {6, 12, 16}, yields[] = {3, 3, 1};
  for (size_t i = 0; i < 3; ++i) {
    SCOPED_TRACE(i);
    EXPECT_DOUBLE_EQ(curve.points[i].worker_minutes, minutes[i]);
    EXPECT_DOUBLE_EQ(curve.points[i].events, events[i]);
    EXPECT_EQ(curve.points[i].phases, static_cast<int64_t>(i + 1));
    EXPECT_DOUBLE_EQ(curve.points[i].slice_yield, yields[i]);
  }
  EXPECT_EQ(curve.runs, 2);

  // Two slices: the first ends at a's second phase (12 >= 8 events).
  const ExpectedCurve halves =
      ComputeExpectedCurve({Eligible("a", 2, 3.0, 2.0), Eligible("b", 1, 1.0, 4.0)}, 2);
  ASSERT_EQ(halves.points.size(), 2u);
  EXPECT_DOUBLE_EQ(halves.points[0].events, 12);
  EXPECT_DOUBLE_EQ(halves.points[0].worker_minutes, 4);
  EXPECT_DOUBLE_EQ(halves.points[1].events, 16);
  EXPECT_DOUBLE_EQ(halves.points[1].worker_minutes, 8);
}

TEST(ExpectedCurve, MarginalYieldIsTheLastSlicesOwnNotTheAverage) {
  // Cumulative average 16/8 = 2 events/min; the last slice (b) yields 1.
  ExpectedCurve curve =
      ComputeExpectedCurve({Eligible("a", 2, 3.0, 2.0), Eligible("b", 1, 1.0, 4.0)});
  EXPECT_DOUBLE_EQ(curve.marginal_yield, 1.0);
  // A slice spanning two runs: (6 + 4 events) / (2 + 4 minutes).
  curve = ComputeExpectedCurve({Eligible("a", 1, 3.0, 2.0), Eligible("b", 1, 1.0, 4.0)}, 1);
  ASSERT_EQ(curve.points.size(), 1u);
  EXPECT_DOUBLE_EQ(curve.marginal_yield, 10.0 / 6.0);
}

TEST(ExpectedCurve, OrderFollowsThePolicysRankingNotTheYield) {
  // "urgent" has a higher priority and a poor yield, "hot" a great one: the
  // policy leases urgent's phases first, so the curve starts with them and
  // its margin is hot's, not the worst run's.
  RunStats urgent = Explored("urgent", 2, 4, 4, 4.0);
  urgent.best_pending_priority = 5;
  const RunStats hot = Explored("hot", 2, 4, 400, 4.0);
  const Scheduler scheduler;
  const std::vector<RunDecision> decisions =
      scheduler.Decide({hot, urgent}, SessionSettings{}, {}, 0);
  ASSERT_EQ(decisions[0].ranking.run_id, "urgent");
  const double urgent_yield = decisions[0].ranking.expected_yield;
  const double hot_yield = decisions[1].ranking.expected_yield;
  ASSERT_LT(urgent_yield, hot_yield);
  // Fine enough slices that every phase closes one.
  const ExpectedCurve curve = ComputeExpectedCurve(decisions, 1000);
  EXPECT_THAT(SliceYields(curve), ElementsAre(DoubleEq(urgent_yield), DoubleEq(urgent_yield),
                                              DoubleEq(hot_yield), DoubleEq(hot_yield)));
  EXPECT_DOUBLE_EQ(curve.marginal_yield, hot_yield);
}

TEST(ExpectedCurve, SkippedWorkIsLeftOffAndCounted) {
  RunDecision excluded = Eligible("blocked", 4, 9.0, 1.0);
  excluded.excluded = {SkipReason::kFingerprintRepeats, "x"};
  RunDecision deferred = Eligible("deferred", 3, 9.0, 1.0);
  deferred.ranking.deferred = {SkipReason::kDeferredOwnFailures, "2 time(s)"};
  const ExpectedCurve curve = ComputeExpectedCurve(
      {Eligible("ok", 2, 1.0, 1.0), deferred, Eligible("done", 0, 5.0, 1.0), excluded});
  EXPECT_EQ(curve.left_off_runs, 2);  // "done" has nothing pending: nothing left off
  EXPECT_EQ(curve.left_off_phases, 7);
  EXPECT_EQ(curve.runs, 1);
  ASSERT_FALSE(curve.points.empty());
  EXPECT_EQ(curve.points.back().phases, 2);
  EXPECT_DOUBLE_EQ(curve.points.back().events, 2.0);
  EXPECT_THAT(ExpectedCurveText(curve),
              HasSubstr("left off the curve: 2 runs (7 phases) excluded or deferred"));
}

TEST(ExpectedCurve, EmptyInputHasNoPointsAndNoMargin) {
  const ExpectedCurve curve = ComputeExpectedCurve({});
  EXPECT_THAT(curve.points, IsEmpty());
  EXPECT_EQ(curve.marginal_yield, 0);
  EXPECT_EQ(curve.left_off_runs, 0);
  EXPECT_EQ(ExpectedCurveText(curve), "expected curve: nothing left that the policy would lease\n");
  // Everything skipped: still nothing to lease, and the one run is counted.
  RunDecision blocked = Eligible("blocked", 1, 1.0, 1.0);
  blocked.excluded = {SkipReason::kFingerprintRepeats, "x"};
  EXPECT_THAT(ExpectedCurveText(ComputeExpectedCurve({blocked})),
              HasSubstr("left off the curve: 1 run (1 phase) excluded or deferred\n"));
}

TEST(ExpectedCurve, NoExpectedEventsSlicesByPhases) {
  const ExpectedCurve curve = ComputeExpectedCurve({Eligible("dry", 4, 0.0, 1.0)}, 2);
  ASSERT_EQ(curve.points.size(), 2u);
  EXPECT_EQ(curve.points[0].phases, 2);
  EXPECT_EQ(curve.points[1].phases, 4);
  EXPECT_DOUBLE_EQ(curve.points[1].worker_minutes, 4.0);
  EXPECT_EQ(curve.marginal_yield, 0);
}

TEST(ExpectedCurve, TextShowsEachPointAndTheMargin) {
  const std::string text = ExpectedCurveText(
      ComputeExpectedCurve({Eligible("a", 2, 3.0, 2.0), Eligible("b", 1, 1.0, 4.0)}));
  EXPECT_THAT(text, HasSubstr("expected curve of what is left (3 phases in 2 runs"));
  EXPECT_THAT(text, HasSubstr("         8.0       16.0       3       1.000\n"));
  EXPECT_THAT(text,
              HasSubstr("expected yield at the margin (last slice): 1.000 events/worker-min"));
}

}  // namespace
}  // namespace sluice
