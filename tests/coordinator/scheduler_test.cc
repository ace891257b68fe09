// Pure Scheduler ranking: RunStats in, run order out.
#include "coordinator/scheduler.h"

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sluice {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

RunStats Pending(const std::string& id, int64_t pending) {
  RunStats r;
  r.run_id = id;
  r.pending = pending;
  return r;
}

// A run with `attempts` finished attempts that produced `events` telemetry
// events over `minutes` of run time.
RunStats Explored(const std::string& id, int64_t pending, int64_t attempts, int64_t events,
                  double minutes) {
  RunStats r = Pending(id, pending);
  r.attempts = attempts;
  r.successes = attempts;
  r.telemetry_events = events;
  r.run_ms = static_cast<int64_t>(minutes * 60'000);
  return r;
}

std::vector<std::string> Order(const std::vector<RunStats>& runs,
                               const SessionSettings& settings = {}) {
  std::vector<std::string> ids;
  for (const RunRanking& r : Scheduler().Rank(runs, settings)) ids.push_back(r.run_id);
  return ids;
}

TEST(SchedulerTest, RunAllowedHonoursRunIdsAndSkipPrefixes) {
  SessionSettings all;
  EXPECT_TRUE(Scheduler::RunAllowed(all, "anything"));

  SessionSettings only;
  only.run_ids = {"a", "b"};
  EXPECT_TRUE(Scheduler::RunAllowed(only, "a"));
  EXPECT_FALSE(Scheduler::RunAllowed(only, "c"));
  EXPECT_FALSE(Scheduler::RunAllowed(only, "ab"));  // exact ids, not prefixes

  SessionSettings skip;
  skip.skip_run_prefixes = {"tmp-", "old"};
  EXPECT_FALSE(Scheduler::RunAllowed(skip, "tmp-1"));
  EXPECT_FALSE(Scheduler::RunAllowed(skip, "older"));
  EXPECT_TRUE(Scheduler::RunAllowed(skip, "x-tmp-1"));  // prefix, not substring

  SessionSettings both = only;
  both.skip_run_prefixes = {"b"};
  EXPECT_TRUE(Scheduler::RunAllowed(both, "a"));
  EXPECT_FALSE(Scheduler::RunAllowed(both, "b"));  // skipping wins over listing
}

TEST(SchedulerTest, RankLeavesOutRunsWithNothingPendingOrFilteredOut) {
  RunStats busy = Pending("busy", 0);
  busy.leased = 3;
  SessionSettings settings;
  settings.skip_run_prefixes = {"skip"};
  EXPECT_THAT(Order({Pending("a", 1), Pending("empty", 0), busy, Pending("skip-me", 5)}, settings),
              ElementsAre("a"));
  EXPECT_THAT(Order({}), IsEmpty());
}

TEST(SchedulerTest, UnexploredRunsComeBeforeExploredOnes) {
  // "hot" has a stellar yield; the unexplored runs are still tried first.
  EXPECT_THAT(
      Order({Explored("hot", 5, 10, 100'000, 1.0), Pending("new-b", 1), Pending("new-a", 1)}),
      ElementsAre("new-a", "new-b", "hot"));
}

TEST(SchedulerTest, ARunWithALeaseInFlightCountsAsExplored) {
  RunStats in_flight = Pending("a", 4);
  in_flight.leased = 1;
  EXPECT_THAT(Order({in_flight, Pending("b", 4)}), ElementsAre("b", "a"));
  EXPECT_TRUE(Scheduler().Estimate(in_flight).explored);
  EXPECT_FALSE(Scheduler().Estimate(Pending("b", 4)).explored);
}

TEST(SchedulerTest, HigherYieldFirstAmongExploredRuns) {
  EXPECT_THAT(Order({Explored("low", 5, 4, 4, 4.0), Explored("high", 5, 4, 400, 4.0),
                     Explored("mid", 5, 4, 40, 4.0)}),
              ElementsAre("high", "mid", "low"));
}

TEST(SchedulerTest, PriorityDominatesExplorationAndYield) {
  RunStats urgent = Explored("urgent", 1, 10, 0, 10.0);  // explored, zero yield
  urgent.best_pending_priority = 5;
  RunStats fresh = Pending("fresh", 1);
  RunStats hot = Explored("hot", 1, 10, 10'000, 1.0);
  RunStats negative = Pending("aaa-negative", 1);
  negative.best_pending_priority = -1;
  EXPECT_THAT(Order({fresh, hot, urgent, negative}),
              ElementsAre("urgent", "fresh", "hot", "aaa-negative"));
}

TEST(SchedulerTest, TiesBreakByFewerLeasesInFlightThenRunId) {
  RunStats b2 = Pending("b", 3);
  b2.leased = 2;
  RunStats a2 = Pending("a", 3);
  a2.leased = 2;
  RunStats c1 = Pending("c", 3);
  c1.leased = 1;
  // Same priority, all explored (leases in flight), same prior-only yield.
  EXPECT_THAT(Order({b2, a2, c1}), ElementsAre("c", "a", "b"));
  EXPECT_THAT(Order({Pending("z", 1), Pending("m", 1), Pending("a", 1)}),
              ElementsAre("a", "m", "z"));
}

TEST(SchedulerTest, PriorKeepsOneLuckyAttemptFromOutrankingASteadyRun) {
  // One quick attempt with a few events vs. a long steady record.
  RunStats lucky = Explored("lucky", 5, 1, 3, 0.1);
  RunStats steady = Explored("steady", 5, 50, 500, 50.0);
  const Scheduler s;
  const double lucky_raw = 3 / 0.1;  // 30 events/min without a prior
  EXPECT_LT(s.Estimate(lucky).expected_yield, lucky_raw);
  EXPECT_NEAR(s.Estimate(steady).expected_yield, 10.0, 0.5);
  // The prior alone: 0.5 success x 1 event per success over 1 minute.
  EXPECT_DOUBLE_EQ(s.Estimate(Pending("new", 1)).expected_yield, 0.5);
  EXPECT_DOUBLE_EQ(s.Estimate(Pending("new", 1)).success_probability, 0.5);
}

TEST(SchedulerTest, SuccessProbabilityFollowsTheRecord) {
  RunStats bad = Pending("bad", 1);
  bad.attempts = 8;
  bad.successes = 0;
  RunStats good = Pending("good", 1);
  good.attempts = 8;
  good.successes = 8;
  const Scheduler s;
  EXPECT_LT(s.Estimate(bad).success_probability, 0.2);
  EXPECT_GT(s.Estimate(good).success_probability, 0.8);
}

// Simulates leasing one phase at a time, each attempt ending before the
// next lease: every run is sampled once before any run gets a second look,
// and then the productive run is preferred over the unproductive one.
TEST(SchedulerTest, SamplesEveryRunOnceBeforeASecondAttemptOnALowYieldRun) {
  std::map<std::string, RunStats> runs = {{"a", Pending("a", 5)},
                                          {"b", Pending("b", 5)},
                                          {"c", Pending("c", 5)},
                                          {"d", Pending("d", 5)}};
  // What one attempt of each run yields: "a" is leased first and is poor.
  const std::map<std::string, int64_t> events_per_attempt = {
      {"a", 0}, {"b", 20}, {"c", 1}, {"d", 2}};
  const Scheduler scheduler;
  std::vector<std::string> picks;
  for (int i = 0; i < 6; ++i) {
    std::vector<RunStats> stats;
    for (const auto& [id, r] : runs) stats.push_back(r);
    std::vector<RunRanking> ranked = scheduler.Rank(stats, SessionSettings{});
    ASSERT_FALSE(ranked.empty());
    RunStats& chosen = runs[ranked[0].run_id];
    picks.push_back(chosen.run_id);
    --chosen.pending;
    ++chosen.attempts;
    chosen.telemetry_events += events_per_attempt.at(chosen.run_id);
    chosen.run_ms += 60'000;
  }
  ASSERT_EQ(picks.size(), 6u);
  EXPECT_THAT(std::vector<std::string>(picks.begin(), picks.begin() + 4),
              ElementsAre("a", "b", "c", "d"));
  EXPECT_EQ(picks[4], "b");  // best yield
  EXPECT_EQ(picks[5], "b");
  EXPECT_EQ(std::count(picks.begin(), picks.end(), "a"), 1);
}

TEST(SchedulerTest, LeasesInFlightSpreadAcrossRunsBeforeStacking) {
  // Attempts still running (no results yet): each lease makes its run
  // explored, so the next goes to a run not yet touched.
  std::map<std::string, RunStats> runs = {
      {"a", Pending("a", 3)}, {"b", Pending("b", 3)}, {"c", Pending("c", 3)}};
  std::vector<std::string> picks;
  for (int i = 0; i < 6; ++i) {
    std::vector<RunStats> stats;
    for (const auto& [id, r] : runs) stats.push_back(r);
    RunStats& chosen = runs[Scheduler().Rank(stats, SessionSettings{})[0].run_id];
    picks.push_back(chosen.run_id);
    --chosen.pending;
    ++chosen.leased;
  }
  EXPECT_THAT(picks, ElementsAre("a", "b", "c", "a", "b", "c"));
}

}  // namespace
}  // namespace sluice
