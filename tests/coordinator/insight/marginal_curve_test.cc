// The marginal curve (coordinator/insight/marginal_curve.h): events against
// worker-minutes in steps of equal worker time, each with its own yield.
#include "coordinator/insight/marginal_curve.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace sluice {
namespace {

TimelineBucket Bucket(int64_t run_ms, int64_t events) {
  TimelineBucket b;
  b.run_ms = run_ms;
  b.telemetry_events = events;
  return b;
}

TEST(MarginalCurveTest, StepsOfEqualWorkerTimeCarryTheYieldOfEachStep) {
  const std::vector<MarginalStep> curve = ComputeMarginalCurve(
      {Bucket(60'000, 4), Bucket(60'000, 2), Bucket(60'000, 1), Bucket(60'000, 0)}, 2);
  ASSERT_EQ(curve.size(), 2u);
  EXPECT_DOUBLE_EQ(curve[0].worker_minutes, 2);
  EXPECT_EQ(curve[0].events, 6);
  EXPECT_DOUBLE_EQ(curve[0].step_yield, 3);  // 6 events in 2 minutes
  EXPECT_DOUBLE_EQ(curve[1].worker_minutes, 4);
  EXPECT_EQ(curve[1].events, 7);
  EXPECT_DOUBLE_EQ(curve[1].step_yield, 0.5);  // the last 2 minutes were worth 1 event
}

TEST(MarginalCurveTest, NoWorkerTimeGivesNoCurve) {
  EXPECT_TRUE(ComputeMarginalCurve({}).empty());
  EXPECT_TRUE(ComputeMarginalCurve({Bucket(0, 0), Bucket(0, 0)}).empty());
  EXPECT_EQ(MarginalCurveText({}), "");
}

TEST(MarginalCurveTest, ABucketCrossingSeveralStepBoundariesClosesOneStep) {
  // 10 of 11 worker-minutes in the first bucket: steps are never finer than a
  // bucket, and the last step still ends at the whole session.
  const std::vector<MarginalStep> curve =
      ComputeMarginalCurve({Bucket(600'000, 5), Bucket(0, 0), Bucket(60'000, 1)}, 10);
  ASSERT_EQ(curve.size(), 2u);
  EXPECT_DOUBLE_EQ(curve[0].worker_minutes, 10);
  EXPECT_DOUBLE_EQ(curve[0].step_yield, 0.5);
  EXPECT_DOUBLE_EQ(curve[1].worker_minutes, 11);
  EXPECT_EQ(curve[1].events, 6);
  EXPECT_DOUBLE_EQ(curve[1].step_yield, 1);
}

TEST(MarginalCurveTest, TheReportShowsItInTextAndJson) {
  SessionReport r;
  r.session_id = "s1";
  r.timeline = {Bucket(120'000, 3)};
  EXPECT_THAT(SessionReportText(r), ::testing::HasSubstr("marginal curve (events collected"));
  const nlohmann::json j = nlohmann::json::parse(SessionReportJson(r));
  ASSERT_EQ(j.at("marginal_curve").size(), 1u);
  EXPECT_EQ(j["marginal_curve"][0].at("worker_minutes").get<double>(), 2.0);
  EXPECT_EQ(j["marginal_curve"][0].at("telemetry_events").get<int64_t>(), 3);
  EXPECT_EQ(j["marginal_curve"][0].at("step_yield_events_per_minute").get<double>(), 1.5);
}

}  // namespace
}  // namespace sluice
