// Pure Scheduler ranking: RunStats in, run order out.
#include "coordinator/policy/scheduler.h"

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

TEST(SchedulerTest, ExpectedMinutesChargeAHangingRunItsTimeouts) {
  // Two runs with the same events per attempt: "hangs" spent 10 minutes an
  // attempt (its timeouts), "quick" half a minute. Its phases are expected
  // to cost more minutes (what `plan`'s expected curve charges), at a lower
  // yield. Backlog: 42 min over 8 attempts + a prior of 2 x 1 min, so 4.4
  // min per attempt; hangs: (40 + 2 x 4.4) / (4 + 2), quick: (2 + 8.8) / 6.
  RunStats hangs = Explored("hangs", 3, 4, 8, 40.0);
  hangs.timeouts = 4;
  const std::vector<RunRanking> est =
      Scheduler().EstimateAll({hangs, Explored("quick", 3, 4, 8, 2.0)});
  EXPECT_NEAR(est[0].expected_minutes, 48.8 / 6, 1e-9);
  EXPECT_NEAR(est[1].expected_minutes, 10.8 / 6, 1e-9);
  EXPECT_LT(est[0].expected_yield, est[1].expected_yield);
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

// --- Run-family priors, deferral and fairness ---

std::vector<std::string> OrderWith(const Scheduler& scheduler, const std::vector<RunStats>& runs,
                                   const std::map<std::string, RunPolicyState>& policy = {}) {
  std::vector<std::string> ids;
  for (const RunRanking& r : scheduler.Rank(runs, SessionSettings{}, policy)) {
    ids.push_back(r.run_id);
  }
  return ids;
}

RunPolicyState FailedDeterministically(int64_t times) {
  RunPolicyState p;
  p.deterministic_failures = times;
  p.failure_fingerprint = "FAILED|exit-1|importerror: no module named <str>";
  return p;
}

TEST(SchedulerFamilyTest, PolicyStateReachesItsOwnRunWhetherRunsComeSortedOrNot) {
  // Decide matches sorted runs to the (sorted) policy map in one walk and
  // looks each one up otherwise; entries for runs not listed are skipped.
  RunPolicyState blocked;
  blocked.blocked_by_fingerprint = "FAILED|exit-1|boom";
  const std::map<std::string, RunPolicyState> policy = {
      {"a0", blocked}, {"b-1", FailedDeterministically(1)}, {"c-1", blocked}, {"zz", blocked}};
  RunStats b = Explored("b-1", 2, 1, 0, 0.1);
  b.successes = 0;
  for (const std::vector<RunStats>& runs :
       {std::vector<RunStats>{Pending("a-1", 2), b, Pending("c-1", 2)},
        std::vector<RunStats>{Pending("c-1", 2), b, Pending("a-1", 2)}}) {
    std::map<std::string, RunDecision> by_run;
    for (RunDecision& d : Scheduler().Decide(runs, SessionSettings{}, policy, 0)) {
      std::string id = d.ranking.run_id;
      by_run.emplace(std::move(id), std::move(d));
    }
    ASSERT_EQ(by_run.size(), 3u);
    EXPECT_TRUE(by_run["a-1"].excluded.empty());
    EXPECT_TRUE(by_run["a-1"].ranking.deferred.empty());
    EXPECT_EQ(by_run["b-1"].ranking.deferred.code, SkipReason::kDeferredOwnFailures);
    EXPECT_EQ(by_run["c-1"].excluded.code, SkipReason::kFingerprintRepeats);
  }
}

TEST(SchedulerFamilyTest, UnexploredRunOfAProductiveFamilyIsSampledFirst) {
  // "zeta-v1" yielded well; "zeta-v2" is its unexplored sibling. Both
  // unexplored runs are sampled before any second look, but the sibling of
  // the productive run goes first although "alpha" sorts first by id.
  const std::vector<RunStats> runs = {Explored("zeta-v1", 0, 4, 80, 4.0), Pending("alpha", 2),
                                      Pending("zeta-v2", 2)};
  EXPECT_THAT(OrderWith(Scheduler(), runs), ElementsAre("zeta-v2", "alpha"));
  // With a rule that makes every run its own family, the id decides.
  SchedulerOptions o;
  o.family_rule = *RunFamilyRule::Compile("(zeta-v1|zeta-v2|alpha)");  // every run its own family
  EXPECT_THAT(OrderWith(Scheduler(o), runs), ElementsAre("alpha", "zeta-v2"));
}

TEST(SchedulerFamilyTest, RunEstimateIsShrunkTowardItsFamilyThenTheGlobalPrior) {
  const Scheduler s;
  // A sibling with a long record (10 events/min) dominates the prior of an
  // unexplored run; a sibling with one attempt only moves it part of the way.
  const auto strong = s.EstimateAll({Explored("x-v1", 0, 40, 400, 40.0), Pending("x-v2", 1)});
  EXPECT_GT(strong[1].expected_yield, 7.0);
  EXPECT_LT(strong[1].expected_yield, 10.0);
  const auto weak = s.EstimateAll({Explored("y-v1", 0, 1, 10, 1.0), Pending("y-v2", 1)});
  EXPECT_GT(weak[1].expected_yield, s.Estimate(Pending("new", 1)).expected_yield);
  EXPECT_LT(weak[1].expected_yield, strong[1].expected_yield);
  // A run's own record outweighs the family once it is long enough.
  const auto own =
      s.EstimateAll({Explored("z-v1", 0, 40, 400, 40.0), Explored("z-v2", 1, 40, 0, 40.0)});
  EXPECT_LT(own[1].expected_yield, 1.0);
  // Success probability pools the same way.
  RunStats failing_sibling = Pending("f-v1", 0);
  failing_sibling.attempts = 20;
  const auto p = s.EstimateAll({failing_sibling, Pending("f-v2", 1), Pending("other", 1)});
  EXPECT_LT(p[1].success_probability, 0.15);
  EXPECT_GT(p[2].success_probability, p[1].success_probability);
  EXPECT_EQ(p[1].family, "f");
}

TEST(SchedulerFamilyTest, RunWhoseSampledPhaseFailedDeterministicallyIsDeferred) {
  // A quick failure looks better than four slow attempts without events...
  RunStats aaa = Explored("aaa", 3, 1, 0, 0.1);
  aaa.successes = 0;
  const std::vector<RunStats> with_failure = {aaa, Explored("mid", 3, 4, 0, 4.0)};
  const std::map<std::string, RunPolicyState> policy = {{"aaa", FailedDeterministically(1)}};
  EXPECT_THAT(OrderWith(Scheduler(), with_failure), ElementsAre("aaa", "mid"));
  // ...but it failed deterministically: it goes after every other run.
  EXPECT_THAT(OrderWith(Scheduler(), with_failure, policy), ElementsAre("mid", "aaa"));
  const auto decisions = Scheduler().Decide(with_failure, SessionSettings{}, policy, 0);
  ASSERT_EQ(decisions.size(), 2u);
  EXPECT_TRUE(decisions[1].excluded_reason.empty());  // deferred, not excluded
  EXPECT_TRUE(decisions[1].excluded.empty());
  EXPECT_EQ(decisions[1].ranking.deferred.code, SkipReason::kDeferredOwnFailures);
  EXPECT_THAT(decisions[1].ranking.deferred.Text(),
              ::testing::AllOf(::testing::HasSubstr("failed deterministically 1 time"),
                               ::testing::HasSubstr("fingerprint ")));
  EXPECT_TRUE(decisions[0].ranking.deferred.empty());
}

TEST(SchedulerFamilyTest, UnexploredSiblingOfADeterministicallyFailingRunIsDeferred) {
  RunStats bad1 = Pending("bad-v1", 2);
  bad1.attempts = 2;
  bad1.run_ms = 120'000;
  const std::vector<RunStats> runs = {bad1, Pending("bad-v2", 4), Pending("zz", 4),
                                      Explored("steady", 4, 3, 3, 3.0)};
  const std::map<std::string, RunPolicyState> policy = {{"bad-v1", FailedDeterministically(2)}};
  // The unexplored sibling is not sampled first; it waits behind every run
  // that is not deferred, explored or not.
  EXPECT_THAT(OrderWith(Scheduler(), runs, policy),
              ElementsAre("zz", "steady", "bad-v2", "bad-v1"));
  const auto decisions = Scheduler().Decide(runs, SessionSettings{}, policy, 0);
  EXPECT_EQ(decisions[2].ranking.deferred.code, SkipReason::kDeferredFamilyFailures);
  EXPECT_THAT(decisions[2].ranking.deferred.Text(),
              ::testing::HasSubstr("run family 'bad' failed deterministically 2 time(s)"));
  // Without the failure record nothing is deferred: the sibling is still
  // sampled before any second look, after "zz" whose prior is not dragged
  // down by a sibling without events.
  EXPECT_THAT(OrderWith(Scheduler(), runs), ElementsAre("zz", "bad-v2", "steady", "bad-v1"));
  // With a family rule that separates the two, the sibling is not deferred.
  SchedulerOptions o;
  o.family_rule = *RunFamilyRule::Compile("(.*)-v[0-9]+-never");
  EXPECT_THAT(OrderWith(Scheduler(o), runs, policy),
              ElementsAre("bad-v2", "zz", "steady", "bad-v1"));
}

TEST(SchedulerFamilyTest, FamilyWithASuccessIsNotDeferred) {
  RunStats mixed1 = Explored("mix-v1", 1, 3, 3, 3.0);
  mixed1.successes = 1;
  const std::vector<RunStats> runs = {mixed1, Pending("mix-v2", 2), Pending("other", 2)};
  const std::map<std::string, RunPolicyState> policy = {{"mix-v1", FailedDeterministically(2)}};
  const auto decisions = Scheduler().Decide(runs, SessionSettings{}, policy, 0);
  for (const RunDecision& d : decisions) {
    EXPECT_TRUE(d.ranking.deferred.empty()) << d.ranking.run_id;
  }
}

TEST(SchedulerFamilyTest, LeasesInFlightDiscountTheScoreSoOneRunDoesNotTakeEveryWorker) {
  RunStats best = Explored("best", 10, 10, 100, 10.0);  // ~10 events/min
  RunStats good = Explored("good", 10, 10, 70, 10.0);   // ~7 events/min
  EXPECT_THAT(Order({best, good}), ElementsAre("best", "good"));
  best.leased = 1;  // one worker already on it: 10 / 2 < 7
  EXPECT_THAT(Order({best, good}), ElementsAre("good", "best"));
  good.leased = 1;
  EXPECT_THAT(Order({best, good}), ElementsAre("best", "good"));
}

TEST(SchedulerFamilyTest, CustomFamilyPatternDecidesWhoIsASibling) {
  // Default rule: "svc-a" and "svc-b" are one family ("svc").
  const Scheduler def;
  const auto by_default =
      def.EstimateAll({Explored("svc-a", 0, 20, 200, 20.0), Pending("svc-b", 1)});
  EXPECT_EQ(by_default[1].family, "svc");
  EXPECT_GT(by_default[1].expected_yield, 5.0);
  // A pattern that only strips versions keeps them apart: no family evidence.
  SchedulerOptions o;
  o.family_rule = *RunFamilyRule::Compile("(.*)-v[0-9]+");
  const auto custom =
      Scheduler(o).EstimateAll({Explored("svc-a", 0, 20, 200, 20.0), Pending("svc-b", 1)});
  EXPECT_EQ(custom[1].family, "svc-b");
  EXPECT_LT(custom[1].expected_yield, by_default[1].expected_yield);
}

}  // namespace
}  // namespace sluice
