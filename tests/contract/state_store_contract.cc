// The StateStore contract suite, import, leasing and renewal; see state_store_contract.h for
// how a backend gets the whole suite.
#include "tests/contract/state_store_contract.h"

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

namespace sluice::contract {
void StateStoreContractTest::SetUp() {
  store_ = GetParam().make();
  ASSERT_NE(store_, nullptr) << "factory " << GetParam().name << " made no store";
}

// ---------------------------------------------------------------------------
// Import

TEST_P(StateStoreContractTest, ImportInsertsNewPhasesAsPending) {
  Contract c(store());
  PhaseSpec spec = Spec("r1", "p1", 7, -3, {"gpu", "linux"});
  spec.last_error = "old failure";
  ImportResult result = Ok(store().ImportPhases({spec, Spec("r1", "p2"), Spec("r2", "q1")}));
  EXPECT_EQ(result.inserted, 3);
  EXPECT_EQ(result.updated, 0);
  EXPECT_EQ(result.unchanged, 0);

  PhaseRecord p = c.Phase("r1", "p1");
  EXPECT_EQ(p.spec.run_id, "r1");
  EXPECT_EQ(p.spec.phase_id, "p1");
  EXPECT_EQ(p.spec.phase_index, 7);
  EXPECT_EQ(p.spec.priority, -3);
  EXPECT_EQ(p.spec.last_error, "old failure");
  EXPECT_THAT(p.spec.labels, UnorderedElementsAre("gpu", "linux"));
  EXPECT_EQ(p.spec.metadata_json, R"({"origin":"p1"})");
  EXPECT_EQ(p.state, PhaseState::kPending);
  EXPECT_EQ(p.attempts, 0);
  EXPECT_EQ(p.requeues, 0);
  EXPECT_EQ(p.current_lease_id, "");
  EXPECT_FALSE(p.final_outcome.has_value());
  EXPECT_EQ(p.telemetry_events, 0);

  PhaseCounts counts = Ok(store().CountPhases());
  EXPECT_EQ(counts.pending, 3);
  EXPECT_EQ(counts.total(), 3);
  EXPECT_EQ(c.Stats("r1").pending, 2);
  EXPECT_EQ(c.Stats("r2").pending, 1);
}

TEST_P(StateStoreContractTest, GetPhaseOfUnknownPhaseIsNullopt) {
  Contract c(store());
  c.Import({Spec("r1", "p1")});
  EXPECT_FALSE(Ok(store().GetPhase(PhaseKey{"r1", "nope"})).has_value());
  EXPECT_FALSE(Ok(store().GetPhase(PhaseKey{"nope", "p1"})).has_value());
}

TEST_P(StateStoreContractTest, ReimportCountsInsertedUpdatedAndUnchanged) {
  Contract c(store());
  c.Import({Spec("r1", "p1", 0, 1), Spec("r1", "p2", 1, 1)});
  ImportResult result =
      Ok(store().ImportPhases({Spec("r1", "p1", 0, 1), Spec("r1", "p2", 1, 9), Spec("r1", "p3")}));
  EXPECT_EQ(result.inserted, 1);
  EXPECT_EQ(result.updated, 1);
  EXPECT_EQ(result.unchanged, 1);
  EXPECT_EQ(c.Phase("r1", "p2").spec.priority, 9);
  EXPECT_EQ(c.Stats("r1").pending, 3);
  EXPECT_EQ(c.Stats("r1").best_pending_priority, 9);
  EXPECT_EQ(Ok(store().CountPhases()).total(), 3);
}

TEST_P(StateStoreContractTest, ReimportWithNewPriorityReordersPendingPhases) {
  Contract c(store());
  c.Import({Spec("r1", "p1", 0), Spec("r1", "p2", 1)});
  c.Import({Spec("r1", "p1", 0), Spec("r1", "p2", 1, /*priority=*/5)});
  EXPECT_EQ(c.MustLease("r1").phase_id, "p2");
  EXPECT_EQ(c.MustLease("r1").phase_id, "p1");
}

// A phase re-imported while leased keeps its lease; its new rank applies
// when it goes back to pending.
TEST_P(StateStoreContractTest, ReimportOfALeasedPhaseRanksItByTheNewSpecWhenRequeued) {
  Contract c(store());
  c.Import({Spec("r1", "p1", 0), Spec("r1", "p2", 1)});
  LeaseGrant g = c.MustLease("r1");
  ASSERT_EQ(g.phase_id, "p1");
  c.Import({Spec("r1", "p1", 0, /*priority=*/-5), Spec("r1", "p2", 1)});
  EXPECT_EQ(c.Phase("r1", "p1").state, PhaseState::kLeased);
  ASSERT_EQ(c.Record(g, Outcome::kFailed).phase_state, PhaseState::kPending);
  EXPECT_EQ(c.Stats("r1").best_pending_priority, 0);
  EXPECT_EQ(c.MustLease("r1").phase_id, "p2");
  EXPECT_EQ(c.MustLease("r1").phase_id, "p1");
}

TEST_P(StateStoreContractTest, ReimportKeepsStateAttemptsAndHistory) {
  Contract c(store());
  c.Import({Spec("r1", "done"), Spec("r1", "retry", 1), Spec("r1", "busy", 2)});
  c.Record(c.MustLease("r1"), Outcome::kSucceeded, 5, 100);  // done
  c.Record(c.MustLease("r1"), Outcome::kFailed, 0, 100);     // retry: attempt 1 of 2
  LeaseGrant busy = c.MustLease("r1");                       // retry is next again...
  ASSERT_EQ(busy.phase_id, "retry");
  c.Record(busy, Outcome::kCancelled);  // ...hand it back
  busy = c.MustLease("r1");
  ASSERT_EQ(busy.phase_id, "retry");

  // Every spec field changes; history must not.
  std::vector<PhaseSpec> changed = {Spec("r1", "done", 5, 5), Spec("r1", "retry", 6, 6),
                                    Spec("r1", "busy", 7, 7)};
  for (PhaseSpec& s : changed) s.last_error = "new text";
  ImportResult result = Ok(store().ImportPhases(changed));
  EXPECT_EQ(result.updated, 3);

  PhaseRecord done = c.Phase("r1", "done");
  EXPECT_EQ(done.state, PhaseState::kSucceeded);
  EXPECT_EQ(done.attempts, 1);
  EXPECT_EQ(done.final_outcome, Outcome::kSucceeded);
  EXPECT_EQ(done.telemetry_events, 5);
  EXPECT_EQ(done.spec.priority, 5);
  PhaseRecord retry = c.Phase("r1", "retry");
  EXPECT_EQ(retry.state, PhaseState::kLeased);
  EXPECT_EQ(retry.attempts, 1);
  EXPECT_EQ(retry.requeues, 1);
  EXPECT_EQ(retry.current_lease_id, busy.lease_id);
  EXPECT_EQ(retry.spec.last_error, "new text");
  EXPECT_EQ(c.Phase("r1", "busy").state, PhaseState::kPending);

  RunStats stats = c.Stats("r1");
  EXPECT_EQ(stats.pending, 1);
  EXPECT_EQ(stats.leased, 1);
  EXPECT_EQ(stats.succeeded, 1);
  EXPECT_EQ(stats.attempts, 3);
  EXPECT_EQ(Ok(store().ListAttempts("")).size(), 3u);
  // The lease survives the import and can still be reported.
  EXPECT_EQ(c.Record(busy, Outcome::kSucceeded).disposition, ReportDisposition::kAccepted);
}

TEST_P(StateStoreContractTest, ImportOfNothingChangesNothing) {
  ImportResult result = Ok(store().ImportPhases({}));
  EXPECT_EQ(result.inserted + result.updated + result.unchanged, 0);
  EXPECT_EQ(Ok(store().CountPhases()).total(), 0);
  EXPECT_THAT(Ok(store().ListRunStats()), IsEmpty());
}

// ---------------------------------------------------------------------------
// LeaseNextInRun

TEST_P(StateStoreContractTest, LeaseOrderIsPriorityDescThenIndexThenPhaseId) {
  Contract c(store());
  c.Import({Spec("r1", "low", 0, -1), Spec("r1", "b", 2, 5), Spec("r1", "a", 2, 5),
            Spec("r1", "first", 9, 7), Spec("r1", "z", 1, 5), Spec("r2", "other", 0, 100)});
  std::vector<std::string> order;
  while (std::optional<LeaseGrant> g = c.Lease("r1")) order.push_back(g->phase_id);
  EXPECT_THAT(order, ElementsAre("first", "z", "a", "b", "low"));
  EXPECT_EQ(c.Phase("r2", "other").state, PhaseState::kPending);
}

TEST_P(StateStoreContractTest, LeaseReturnsNulloptWhenRunHasNothingPending) {
  Contract c(store());
  EXPECT_FALSE(c.Lease("r1").has_value());  // empty store
  c.Import({Spec("r1", "p1"), Spec("r2", "q1")});
  EXPECT_FALSE(c.Lease("unknown-run").has_value());
  c.MustLease("r1");
  EXPECT_FALSE(c.Lease("r1").has_value());  // its only phase is leased
  EXPECT_EQ(Ok(store().CountPhases()).leased, 1);
  EXPECT_EQ(c.Stats("r2").pending, 1);
}

TEST_P(StateStoreContractTest, LeasePassesOverPhasesNeedingLabelsTheWorkerLacks) {
  Contract c(store());
  c.Import({Spec("r1", "gpu-linux", 0, 9, {"gpu", "linux"}), Spec("r1", "gpu", 1, 5, {"gpu"}),
            Spec("r1", "any", 2, 0)});
  LeaseParams plain = c.Params("r1");
  std::optional<LeaseGrant> g = Ok(store().LeaseNextInRun(plain));
  ASSERT_TRUE(g.has_value());
  EXPECT_EQ(g->phase_id, "any");

  LeaseParams gpu_only = c.Params("r1");
  gpu_only.worker_labels = {"gpu"};
  g = Ok(store().LeaseNextInRun(gpu_only));
  ASSERT_TRUE(g.has_value());
  EXPECT_EQ(g->phase_id, "gpu");

  gpu_only.lease_id = "another";
  EXPECT_FALSE(Ok(store().LeaseNextInRun(gpu_only)).has_value());  // needs linux too

  LeaseParams both = c.Params("r1");
  both.worker_labels = {"linux", "extra", "gpu"};
  g = Ok(store().LeaseNextInRun(both));
  ASSERT_TRUE(g.has_value());
  EXPECT_EQ(g->phase_id, "gpu-linux");
}

// Leases every pending phase of `run` with retries_last; their ids in order.
static std::vector<std::string> LeaseAllRetriesLast(Contract& c, StateStore& store,
                                                    const std::string& run,
                                                    std::vector<bool>* retry_tier = nullptr) {
  std::vector<std::string> order;
  while (true) {
    LeaseParams p = c.Params(run);
    p.retries_last = true;
    std::optional<LeaseGrant> g = Ok(store.LeaseNextInRun(p));
    if (!g) break;
    order.push_back(g->phase_id);
    if (retry_tier != nullptr) retry_tier->push_back(g->retry_tier);
  }
  return order;
}

TEST_P(StateStoreContractTest, RetriesLastLeasesUntriedPhasesOfTheBestPriorityBeforeRetries) {
  Contract c(store());
  c.Import({Spec("r1", "p0", 0, 5), Spec("r1", "p1", 1, 5), Spec("r1", "p2", 2, 5),
            Spec("r1", "low", 3, 1)});
  c.Record(c.MustLease("r1"), Outcome::kFailed);  // p0: pending again, one own outcome
  ASSERT_EQ(c.Phase("r1", "p0").state, PhaseState::kPending);
  // Without the flag the retry comes first, by phase_index.
  const std::optional<LeaseGrant> again = Ok(store().LeaseNextInRun(c.Params("r1")));
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->phase_id, "p0");
  c.Record(*again, Outcome::kFailed, 0, 0, /*max_attempts=*/3);
  ASSERT_EQ(c.Phase("r1", "p0").state, PhaseState::kPending);
  std::vector<bool> tiers;
  const std::vector<std::string> order = LeaseAllRetriesLast(c, store(), "r1", &tiers);
  EXPECT_THAT(tiers, ElementsAre(false, false, true, false));
  // Untried p1, p2 of priority 5, then the retry p0 (still priority 5),
  // then the untried phase of a lower priority.
  EXPECT_THAT(order, ElementsAre("p1", "p2", "p0", "low"));
}

TEST_P(StateStoreContractTest, APhaseWhoseBacklogRowSaysItTimedOutWaitsLikeARetry) {
  Contract c(store());
  std::vector<PhaseSpec> specs = {Spec("r1", "hung", 0, 5), Spec("r1", "net", 1, 5),
                                  Spec("r1", "plain", 2, 5), Spec("r1", "low", 3, 1)};
  specs[0].last_error = "phase timed out after 900s (no output for 612s)";
  specs[1].last_error = "TimeoutError: The read operation timed out";  // a network timeout
  c.Import(specs);
  // Without retries_last the backlog order stands.
  const std::optional<LeaseGrant> first = Ok(store().LeaseNextInRun(c.Params("r1")));
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->phase_id, "hung");
  EXPECT_FALSE(first->retry_tier);                                  // no tiers without retries_last
  c.Record(*first, Outcome::kCancelled, 0, 0, /*max_attempts=*/3);  // pending again, untried
  ASSERT_EQ(c.Phase("r1", "hung").attempts, 0);
  std::vector<bool> tiers;
  const std::vector<std::string> order = LeaseAllRetriesLast(c, store(), "r1", &tiers);
  // The grant says which came from the retry tier.
  EXPECT_THAT(tiers, ElementsAre(false, false, true, false));
  // The phase that hung before goes after its priority's other untried
  // phases, but before a lower priority; a network timeout is no hang.
  EXPECT_THAT(order, ElementsAre("net", "plain", "hung", "low"));

  // untried_only: nothing while only the retry tier is left.
  PhaseSpec tail = Spec("r2", "hung-again", 0, 5);
  tail.last_error = "TimeoutExpired: Command 'pytest' timed out after 1800 seconds";
  c.Import({tail});
  LeaseParams p = c.Params("r2");
  p.retries_last = true;
  p.untried_only = true;
  EXPECT_FALSE(Ok(store().LeaseNextInRun(p)).has_value());
  EXPECT_EQ(c.Phase("r2", "hung-again").state, PhaseState::kPending);
  p.untried_only = false;
  const std::optional<LeaseGrant> g = Ok(store().LeaseNextInRun(p));
  ASSERT_TRUE(g.has_value());
  EXPECT_EQ(g->phase_id, "hung-again");
  EXPECT_TRUE(g->retry_tier);
}

TEST_P(StateStoreContractTest, LeaseGrantDescribesTheLeaseAndMarksThePhaseLeased) {
  Contract c(store());
  c.Import({Spec("r1", "p1"), Spec("r1", "p2", 1)});
  LeaseParams params = c.Params("r1", "worker-7", kT0 + 5);
  params.session_id = "sess-9";
  params.lease_id = "L-1";
  params.timeout_seconds = 42;
  params.ttl_ms = 1'234;
  std::optional<LeaseGrant> g = Ok(store().LeaseNextInRun(params));
  ASSERT_TRUE(g.has_value());
  EXPECT_EQ(g->lease_id, "L-1");
  EXPECT_EQ(g->run_id, "r1");
  EXPECT_EQ(g->phase_id, "p1");
  EXPECT_EQ(g->attempt, 1);
  EXPECT_GT(g->epoch, 0);
  EXPECT_EQ(g->worker_id, "worker-7");
  EXPECT_EQ(g->session_id, "sess-9");
  EXPECT_EQ(g->timeout_seconds, 42);
  EXPECT_EQ(g->leased_at_ms, kT0 + 5);
  EXPECT_EQ(g->expires_at_ms, kT0 + 5 + 1'234);

  PhaseRecord p = c.Phase("r1", "p1");
  EXPECT_EQ(p.state, PhaseState::kLeased);
  EXPECT_EQ(p.current_lease_id, "L-1");
  EXPECT_EQ(p.attempts, 0);  // nothing ended yet

  std::vector<LeaseGrant> active = Ok(store().ListActiveLeases());
  ASSERT_EQ(active.size(), 1u);
  EXPECT_EQ(active[0].lease_id, "L-1");
  EXPECT_EQ(active[0].epoch, g->epoch);
  EXPECT_EQ(active[0].worker_id, "worker-7");
  EXPECT_EQ(active[0].session_id, "sess-9");
  EXPECT_EQ(active[0].attempt, 1);
  EXPECT_EQ(active[0].timeout_seconds, 42);
  EXPECT_EQ(active[0].expires_at_ms, kT0 + 5 + 1'234);

  RunStats stats = c.Stats("r1");
  EXPECT_EQ(stats.pending, 1);
  EXPECT_EQ(stats.leased, 1);
  EXPECT_EQ(stats.attempts, 0);
}

TEST_P(StateStoreContractTest, EpochsIncreaseStrictlyAcrossRunsAndReleases) {
  Contract c(store());
  c.Import({Spec("r1", "p1"), Spec("r1", "p2"), Spec("r2", "q1")});
  std::vector<int64_t> epochs;
  LeaseGrant a = c.MustLease("r1");
  epochs.push_back(a.epoch);
  epochs.push_back(c.MustLease("r2").epoch);
  c.Record(a, Outcome::kFailed);
  epochs.push_back(c.MustLease("r1").epoch);  // p1 again
  epochs.push_back(c.MustLease("r1").epoch);  // p2
  for (size_t i = 1; i < epochs.size(); ++i) EXPECT_LT(epochs[i - 1], epochs[i]) << i;
}

TEST_P(StateStoreContractTest, AttemptNumbersAreOneBasedAndCountLostAndCancelledAttempts) {
  Contract c(store());
  c.Import({Spec("r1", "p1")});
  LeaseGrant g = c.MustLease("r1", "w1", kT0);
  EXPECT_EQ(g.attempt, 1);
  Ok(store().ExpireLeases(g.expires_at_ms, LostLeaseTransition(5)));  // lost
  g = c.MustLease("r1", "w1", kT0 + kTtl);
  EXPECT_EQ(g.attempt, 2);
  c.Record(g, Outcome::kCancelled);
  g = c.MustLease("r1");
  EXPECT_EQ(g.attempt, 3);
  c.Record(g, Outcome::kFailed, 0, 0, /*max_attempts=*/5);
  g = c.MustLease("r1");
  EXPECT_EQ(g.attempt, 4);
  PhaseRecord p = c.Phase("r1", "p1");
  EXPECT_EQ(p.attempts, 1);
  EXPECT_EQ(p.requeues, 2);
}

// ---------------------------------------------------------------------------
// RenewLeases

TEST_P(StateStoreContractTest, RenewExtendsLeaseSoItOutlivesItsFirstExpiry) {
  Contract c(store());
  c.Import({Spec("r1", "p1")});
  LeaseGrant g = c.MustLease("r1", "w1", kT0);
  std::vector<std::string> gone = Ok(store().RenewLeases("w1", {g.lease_id}, kT0 + kTtl - 1, kTtl));
  EXPECT_THAT(gone, IsEmpty());
  std::vector<LeaseGrant> active = Ok(store().ListActiveLeases());
  ASSERT_EQ(active.size(), 1u);
  EXPECT_EQ(active[0].expires_at_ms, kT0 + 2 * kTtl - 1);

  EXPECT_THAT(Ok(store().ExpireLeases(kT0 + kTtl, LostLeaseTransition(5))), IsEmpty());
  EXPECT_EQ(c.Phase("r1", "p1").state, PhaseState::kLeased);
  EXPECT_EQ(Ok(store().ExpireLeases(kT0 + 2 * kTtl - 1, LostLeaseTransition(5))).size(), 1u);
}

TEST_P(StateStoreContractTest, RenewReportsLeasesTheWorkerNoLongerHolds) {
  Contract c(store());
  c.Import({Spec("r1", "mine"), Spec("r1", "theirs", 1), Spec("r1", "reported", 2),
            Spec("r1", "stale", 3)});
  LeaseGrant mine = c.MustLease("r1", "w1", kT0 + 10'000);
  LeaseGrant theirs = c.MustLease("r1", "w2", kT0 + 10'000);
  LeaseGrant reported = c.MustLease("r1", "w1", kT0 + 10'000);
  LeaseGrant stale = c.MustLease("r1", "w1", kT0);  // expires first
  c.Record(reported, Outcome::kSucceeded);

  const int64_t now = kT0 + kTtl;  // == stale.expires_at_ms: expired, not yet reaped
  std::vector<std::string> gone = Ok(store().RenewLeases(
      "w1", {mine.lease_id, theirs.lease_id, reported.lease_id, stale.lease_id, "never-granted"},
      now, kTtl));
  EXPECT_THAT(gone, UnorderedElementsAre(theirs.lease_id, reported.lease_id, stale.lease_id,
                                         "never-granted"));
  for (const LeaseGrant& l : Ok(store().ListActiveLeases())) {
    if (l.lease_id == mine.lease_id) {
      EXPECT_EQ(l.expires_at_ms, now + kTtl);
    }
    if (l.lease_id == theirs.lease_id) {
      EXPECT_EQ(l.expires_at_ms, theirs.expires_at_ms);
    }
  }
  // The stale lease was not revived: the next expiry sweep takes it.
  std::vector<ExpiredLease> expired = Ok(store().ExpireLeases(now, LostLeaseTransition(5)));
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0].lease.lease_id, stale.lease_id);
}

TEST_P(StateStoreContractTest, RenewOfNothingIsOk) {
  EXPECT_THAT(Ok(store().RenewLeases("w1", {}, kT0, kTtl)), IsEmpty());
}

}  // namespace sluice::contract
