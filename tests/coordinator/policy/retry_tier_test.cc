// RetryTier (coordinator/policy/retry_tier.h) on its own, and its effect on
// the ranking through DrainPolicy and the Scheduler.
#include "coordinator/policy/retry_tier.h"

#include <memory>

#include "common/clock.h"
#include "coordinator/policy/drain_policy.h"
#include "coordinator/policy/scheduler.h"
#include "coordinator/store/sqlite/sqlite_state_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sluice {
namespace {

TEST(RetryTierTest, ARunIsInItsRetryTierFromATierGrantToItsNextUntriedGrant) {
  RetryTier t;
  EXPECT_FALSE(t.InTier("r1"));
  t.Granted("r1", "L1", /*retry_tier=*/true);
  EXPECT_TRUE(t.InTier("r1"));
  EXPECT_FALSE(t.InTier("r2"));
  t.Granted("r1", "L2", /*retry_tier=*/false);  // e.g. a phase lost and untried again
  EXPECT_FALSE(t.InTier("r1"));
  t.Granted("r1", "L3", true);
  t.Reset();
  EXPECT_FALSE(t.InTier("r1"));
}

TEST(RetryTierTest, TheFactorLearnsWhatTierAttemptsYieldAgainstEveryones) {
  RetryTier t;
  // Everyone: 0.4 events per minute, 5 minutes per attempt.
  EXPECT_DOUBLE_EQ(t.Factor(0.4, 5), RetryTier::kPriorFactor);  // no tier evidence yet
  EXPECT_DOUBLE_EQ(t.Factor(0, 5), RetryTier::kPriorFactor);    // nothing yielded at all
  // Three tier attempts that hung for 15 minutes each, with no events.
  for (const char* lease : {"L1", "L2", "L3"}) {
    t.Granted("r1", lease, true);
    t.Observe(lease, /*own_outcome=*/true, 0, 15 * 60'000, false);
  }
  // (0 + 2 x 0.5 x 0.4 x 5) / (45 + 2 x 5) / 0.4 = 2 / 55 / 0.4
  EXPECT_NEAR(t.Factor(0.4, 5), 2.0 / 55 / 0.4, 1e-9);
  EXPECT_LT(t.Factor(0.4, 5), 0.1);
  // Outcomes of leases that were not tier grants, of unknown telemetry, and
  // that were not the phase's own (transient, lost) teach nothing.
  const double before = t.Factor(0.4, 5);
  t.Observe("L-untried", true, 50, 60'000, false);
  t.Granted("r1", "L4", true);
  t.Observe("L4", /*own_outcome=*/false, 50, 60'000, false);
  t.Granted("r1", "L5", true);
  t.Observe("L5", true, 50, 60'000, /*telemetry_unknown=*/true);
  EXPECT_DOUBLE_EQ(t.Factor(0.4, 5), before);
  // Tier attempts that yield more than everyone's never rank above 1.
  for (const char* lease : {"L6", "L7", "L8", "L9"}) {
    t.Granted("r1", lease, true);
    t.Observe(lease, true, 100, 60'000, false);
  }
  EXPECT_DOUBLE_EQ(t.Factor(0.4, 5), 1.0);
}

LeaseGrant Grant(const std::string& run, const std::string& lease, bool retry_tier) {
  LeaseGrant g;
  g.run_id = run;
  g.lease_id = lease;
  g.retry_tier = retry_tier;
  return g;
}

TEST(RetryTierTest, ARunInItsRetryTierRanksBelowAnEqualRunWithUntriedPhases) {
  FakeClock clock;
  std::unique_ptr<SqliteStateStore> store = SqliteStateStore::Open(":memory:").value();
  DrainPolicy policy(*store, clock, {});
  std::vector<RunStats> runs(2);
  for (size_t i = 0; i < runs.size(); ++i) {
    runs[i].run_id = i == 0 ? "a-run" : "b-run";
    runs[i].pending = 3;
    runs[i].attempts = 4;
    runs[i].successes = 4;
    runs[i].telemetry_events = 8;
    runs[i].run_ms = 4 * 60'000;
  }
  const SessionSettings settings;
  std::vector<RunRanking> ranked = policy.Rank(runs, settings, clock.NowMs()).value();
  ASSERT_EQ(ranked.size(), 2u);
  EXPECT_EQ(ranked[0].run_id, "a-run");  // equal: by run id
  const double yield = ranked[0].expected_yield;
  policy.Granted(Grant("a-run", "L1", /*retry_tier=*/true));
  ranked = policy.Rank(runs, settings, clock.NowMs()).value();
  ASSERT_EQ(ranked.size(), 2u);
  EXPECT_EQ(ranked[0].run_id, "b-run");
  EXPECT_EQ(ranked[1].run_id, "a-run");
  EXPECT_DOUBLE_EQ(ranked[1].expected_yield, yield * RetryTier::kPriorFactor);
  // Its next grant from the untried tier ends it.
  policy.Granted(Grant("a-run", "L2", /*retry_tier=*/false));
  ranked = policy.Rank(runs, settings, clock.NowMs()).value();
  EXPECT_EQ(ranked[0].run_id, "a-run");
}

}  // namespace
}  // namespace sluice
