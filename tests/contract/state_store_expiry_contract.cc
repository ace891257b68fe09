// The StateStore contract suite, lease expiry and run aggregates; see state_store_contract.h for
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
#include "gmock/gmock.h"
#include "tests/contract/contract_fixture.h"
#include "tests/contract/state_store_contract.h"

namespace sluice::contract {
// ExpireLeases

TEST_P(StateStoreContractTest, ExpiryRecordsLostAttemptAndRequeuesThePhase) {
  Contract c(store());
  c.Import({Spec("r1", "p1"), Spec("r1", "p2", 1)});
  LeaseGrant g = c.MustLease("r1", "w1", kT0);
  LeaseGrant later = c.MustLease("r1", "w1", kT0 + 1);
  EXPECT_THAT(Ok(store().ExpireLeases(g.expires_at_ms - 1, LostLeaseTransition(5))), IsEmpty());

  std::vector<ExpiredLease> expired =
      Ok(store().ExpireLeases(g.expires_at_ms, LostLeaseTransition(5)));
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0].lease.lease_id, g.lease_id);
  EXPECT_EQ(expired[0].lease.run_id, "r1");
  EXPECT_EQ(expired[0].lease.phase_id, "p1");
  EXPECT_EQ(expired[0].lease.worker_id, "w1");
  EXPECT_EQ(expired[0].lease.epoch, g.epoch);
  EXPECT_EQ(expired[0].phase_state, PhaseState::kPending);

  PhaseRecord p = c.Phase("r1", "p1");
  EXPECT_EQ(p.state, PhaseState::kPending);
  EXPECT_EQ(p.attempts, 0);
  EXPECT_EQ(p.requeues, 1);
  EXPECT_EQ(p.current_lease_id, "");
  std::vector<LeaseGrant> active = Ok(store().ListActiveLeases());
  ASSERT_EQ(active.size(), 1u);
  EXPECT_EQ(active[0].lease_id, later.lease_id);

  std::vector<AttemptRecord> attempts = Ok(store().ListAttempts(""));
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0].lease_id, g.lease_id);
  EXPECT_EQ(attempts[0].outcome, Outcome::kLost);
  EXPECT_EQ(attempts[0].attempt, 1);
  EXPECT_EQ(attempts[0].ended_at_ms, g.expires_at_ms);
  EXPECT_FALSE(attempts[0].fingerprint.empty());

  RunStats stats = c.Stats("r1");
  EXPECT_EQ(stats.pending, 1);
  EXPECT_EQ(stats.leased, 1);
  EXPECT_EQ(stats.attempts, 1);
  EXPECT_EQ(stats.successes, 0);
  // Sweeping again finds nothing new.
  EXPECT_THAT(Ok(store().ExpireLeases(g.expires_at_ms, LostLeaseTransition(5))), IsEmpty());
}

TEST_P(StateStoreContractTest, PhaseFailsAsLostOnceOverMaxRequeues) {
  Contract c(store());
  c.Import({Spec("r1", "p1")});
  int64_t now = kT0;
  for (int i = 0; i < 2; ++i) {  // requeues 1 and 2: within max 2
    LeaseGrant g = c.MustLease("r1", "w1", now);
    now = g.expires_at_ms;
    std::vector<ExpiredLease> e = Ok(store().ExpireLeases(now, LostLeaseTransition(2)));
    ASSERT_EQ(e.size(), 1u);
    EXPECT_EQ(e[0].phase_state, PhaseState::kPending);
  }
  LeaseGrant g = c.MustLease("r1", "w1", now);
  EXPECT_EQ(g.attempt, 3);
  std::vector<ExpiredLease> e = Ok(store().ExpireLeases(g.expires_at_ms, LostLeaseTransition(2)));
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].phase_state, PhaseState::kFailed);
  PhaseRecord p = c.Phase("r1", "p1");
  EXPECT_EQ(p.state, PhaseState::kFailed);
  EXPECT_EQ(p.final_outcome, Outcome::kLost);
  EXPECT_EQ(p.requeues, 3);
  EXPECT_EQ(p.attempts, 0);
  EXPECT_FALSE(c.Lease("r1").has_value());
  RunStats stats = c.Stats("r1");
  EXPECT_EQ(stats.failed, 1);
  EXPECT_EQ(stats.attempts, 3);
}

TEST_P(StateStoreContractTest, ZeroMaxRequeuesFailsOnTheFirstLoss) {
  Contract c(store());
  c.Import({Spec("r1", "p1")});
  LeaseGrant g = c.MustLease("r1");
  std::vector<ExpiredLease> e = Ok(store().ExpireLeases(g.expires_at_ms, LostLeaseTransition(0)));
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].phase_state, PhaseState::kFailed);
  EXPECT_EQ(c.Phase("r1", "p1").final_outcome, Outcome::kLost);
}

// ---------------------------------------------------------------------------
// Aggregates

TEST_P(StateStoreContractTest, RunStatsAndCountsAreExactAfterAMixedSequence) {
  Contract c(store());
  c.Import({Spec("r1", "p1", 0, 1), Spec("r1", "p2", 0, 5), Spec("r1", "p3", 0, 3),
            Spec("r2", "q1", 0, -3), Spec("r3", "x1", 0, 4)});
  LeaseGrant p2 = c.MustLease("r1", "w1", kT0);
  ASSERT_EQ(p2.phase_id, "p2");
  c.Record(p2, Outcome::kSucceeded, 10, 60'000);
  LeaseGrant p3 = c.MustLease("r1", "w1", kT0);
  ASSERT_EQ(p3.phase_id, "p3");
  c.Record(p3, Outcome::kTimedOut, 2, 30'000);  // attempt 1 of 2: pending again
  LeaseGrant p3b = c.MustLease("r1", "w1", kT0);
  ASSERT_EQ(p3b.phase_id, "p3");  // stays leased
  LeaseGrant q1 = c.MustLease("r2", "w2", kT0 - 1);
  Ok(store().ExpireLeases(q1.expires_at_ms, LostLeaseTransition(5)));  // lost, pending again
  LeaseGrant x1 = c.MustLease("r3", "w2", kT0);
  c.Record(x1, Outcome::kFailed, 1, 500, /*max_attempts=*/1);  // failed for good
  c.Record(p3b, Outcome::kCancelled, 0, 0);                    // back to pending
  LeaseGrant p3c = c.MustLease("r1", "w1", kT0);
  ASSERT_EQ(p3c.phase_id, "p3");

  RunStats r1 = c.Stats("r1");
  EXPECT_EQ(r1.pending, 1);
  EXPECT_EQ(r1.leased, 1);
  EXPECT_EQ(r1.succeeded, 1);
  EXPECT_EQ(r1.failed, 0);
  EXPECT_EQ(r1.attempts, 3);  // success, timeout, cancelled
  EXPECT_EQ(r1.successes, 1);
  EXPECT_EQ(r1.timeouts, 1);
  EXPECT_EQ(r1.telemetry_events, 12);
  EXPECT_EQ(r1.run_ms, 90'000);
  EXPECT_EQ(r1.best_pending_priority, 1);  // p1; p3 (3) is leased

  RunStats r2 = c.Stats("r2");
  EXPECT_EQ(r2.pending, 1);
  EXPECT_EQ(r2.leased, 0);
  EXPECT_EQ(r2.attempts, 1);  // the lost one
  EXPECT_EQ(r2.successes, 0);
  EXPECT_EQ(r2.timeouts, 0);
  EXPECT_EQ(r2.telemetry_events, 0);
  EXPECT_EQ(r2.run_ms, 0);
  EXPECT_EQ(r2.best_pending_priority, -3);

  RunStats r3 = c.Stats("r3");
  EXPECT_EQ(r3.pending, 0);
  EXPECT_EQ(r3.failed, 1);
  EXPECT_EQ(r3.attempts, 1);
  EXPECT_EQ(r3.telemetry_events, 1);
  EXPECT_EQ(r3.run_ms, 500);

  EXPECT_EQ(Ok(store().ListRunStats()).size(), 3u);
  PhaseCounts counts = Ok(store().CountPhases());
  EXPECT_EQ(counts.pending, 2);
  EXPECT_EQ(counts.leased, 1);
  EXPECT_EQ(counts.succeeded, 1);
  EXPECT_EQ(counts.failed, 1);
  EXPECT_EQ(Ok(store().ListAttempts("")).size(), 5u);
}

TEST_P(StateStoreContractTest, ALeaseIsActiveFromItsGrantUntilItsReportOrExpiry) {
  // Issue #12: a lease request that names reports on their way asks this on
  // every look, by id.
  Contract c(store());
  c.Import({Spec("r1", "p1"), Spec("r1", "p2", 1)});
  LeaseGrant reported = c.MustLease("r1", "w1", kT0);
  LeaseGrant expiring = c.MustLease("r1", "w1", kT0 + 1);
  EXPECT_TRUE(Ok(store().IsLeaseActive(reported.lease_id)));
  EXPECT_TRUE(Ok(store().IsLeaseActive(expiring.lease_id)));
  EXPECT_FALSE(Ok(store().IsLeaseActive("L-never-granted")));
  c.Record(reported, Outcome::kFailed);
  EXPECT_FALSE(Ok(store().IsLeaseActive(reported.lease_id)));
  EXPECT_TRUE(Ok(store().IsLeaseActive(expiring.lease_id)));
  ASSERT_EQ(Ok(store().ExpireLeases(expiring.expires_at_ms, LostLeaseTransition(5))).size(), 1u);
  EXPECT_FALSE(Ok(store().IsLeaseActive(expiring.lease_id)));
}

TEST_P(StateStoreContractTest, EmptyStoreHasNoRunsAndZeroCounts) {
  EXPECT_THAT(Ok(store().ListRunStats()), IsEmpty());
  PhaseCounts counts = Ok(store().CountPhases());
  EXPECT_EQ(counts.total(), 0);
  EXPECT_THAT(Ok(store().ListActiveLeases()), IsEmpty());
  EXPECT_THAT(Ok(store().ListAttempts("")), IsEmpty());
  EXPECT_THAT(Ok(store().ListWorkers()), IsEmpty());
  EXPECT_FALSE(Ok(store().LatestSession()).has_value());
  EXPECT_EQ(Ok(store().CountSessionAttempts("s1")), 0);
}

}  // namespace sluice::contract
