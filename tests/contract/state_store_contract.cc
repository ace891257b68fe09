// The StateStore contract suite; see state_store_contract.h for how a backend
// instantiates it. Every test starts from an empty store. Times are fixed
// numbers: the store never reads a clock itself.
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

namespace sluice::contract {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

constexpr int64_t kT0 = 1'700'000'000'000;
constexpr int64_t kTtl = 30'000;

// Unwraps a result or fails the test (gtest reports the exception).
template <typename T>
T Ok(absl::StatusOr<T> result) {
  if (!result.ok()) throw std::runtime_error(result.status().ToString());
  return *std::move(result);
}
void Ok(const absl::Status& status) {
  if (!status.ok()) throw std::runtime_error(status.ToString());
}

PhaseSpec Spec(const std::string& run, const std::string& phase, int64_t index = 0,
               int64_t priority = 0, std::vector<std::string> labels = {}) {
  PhaseSpec s;
  s.run_id = run;
  s.phase_id = phase;
  s.phase_index = index;
  s.priority = priority;
  s.labels = std::move(labels);
  s.metadata_json = absl::StrCat(R"({"origin":")", phase, R"("})");
  return s;
}

SessionRecord Session(const std::string& id, int64_t started_at_ms) {
  SessionRecord s;
  s.session_id = id;
  s.started_at_ms = started_at_ms;
  return s;
}

// Everything a report can change, to compare before and after.
struct Snapshot {
  std::optional<PhaseRecord> phase;
  std::vector<RunStats> runs;
  PhaseCounts counts;
  std::vector<AttemptRecord> attempts;
  std::vector<LeaseGrant> leases;
};

void ExpectSameRunStats(const std::vector<RunStats>& a, const std::vector<RunStats>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    SCOPED_TRACE(a[i].run_id);
    EXPECT_EQ(a[i].run_id, b[i].run_id);
    EXPECT_EQ(a[i].pending, b[i].pending);
    EXPECT_EQ(a[i].leased, b[i].leased);
    EXPECT_EQ(a[i].succeeded, b[i].succeeded);
    EXPECT_EQ(a[i].failed, b[i].failed);
    EXPECT_EQ(a[i].attempts, b[i].attempts);
    EXPECT_EQ(a[i].successes, b[i].successes);
    EXPECT_EQ(a[i].timeouts, b[i].timeouts);
    EXPECT_EQ(a[i].telemetry_events, b[i].telemetry_events);
    EXPECT_EQ(a[i].run_ms, b[i].run_ms);
    EXPECT_EQ(a[i].best_pending_priority, b[i].best_pending_priority);
  }
}

void ExpectSameSnapshot(const Snapshot& a, const Snapshot& b) {
  ASSERT_EQ(a.phase.has_value(), b.phase.has_value());
  if (a.phase) {
    EXPECT_EQ(a.phase->state, b.phase->state);
    EXPECT_EQ(a.phase->attempts, b.phase->attempts);
    EXPECT_EQ(a.phase->requeues, b.phase->requeues);
    EXPECT_EQ(a.phase->current_lease_id, b.phase->current_lease_id);
    EXPECT_EQ(a.phase->final_outcome, b.phase->final_outcome);
    EXPECT_EQ(a.phase->telemetry_events, b.phase->telemetry_events);
  }
  ExpectSameRunStats(a.runs, b.runs);
  EXPECT_EQ(a.counts.pending, b.counts.pending);
  EXPECT_EQ(a.counts.leased, b.counts.leased);
  EXPECT_EQ(a.counts.succeeded, b.counts.succeeded);
  EXPECT_EQ(a.counts.failed, b.counts.failed);
  ASSERT_EQ(a.attempts.size(), b.attempts.size());
  for (size_t i = 0; i < a.attempts.size(); ++i) {
    EXPECT_EQ(a.attempts[i].lease_id, b.attempts[i].lease_id);
    EXPECT_EQ(a.attempts[i].outcome, b.attempts[i].outcome);
    EXPECT_EQ(a.attempts[i].telemetry_events, b.attempts[i].telemetry_events);
    EXPECT_EQ(a.attempts[i].duration_ms, b.attempts[i].duration_ms);
  }
  ASSERT_EQ(a.leases.size(), b.leases.size());
  for (size_t i = 0; i < a.leases.size(); ++i) {
    EXPECT_EQ(a.leases[i].lease_id, b.leases[i].lease_id);
    EXPECT_EQ(a.leases[i].expires_at_ms, b.leases[i].expires_at_ms);
  }
}

// The fixture's helpers, kept out of the shared header so that header stays
// a small, stable interface for other backends.
class Contract {
 public:
  explicit Contract(StateStore& store) : store_(store) {}

  void Import(const std::vector<PhaseSpec>& phases) { Ok(store_.ImportPhases(phases)); }

  PhaseRecord Phase(const std::string& run, const std::string& phase) {
    std::optional<PhaseRecord> p = Ok(store_.GetPhase(PhaseKey{run, phase}));
    if (!p) throw std::runtime_error(absl::StrCat("no phase ", run, "/", phase));
    return *p;
  }

  LeaseParams Params(const std::string& run, const std::string& worker = "w1", int64_t now = kT0) {
    LeaseParams p;
    p.run_id = run;
    p.worker_id = worker;
    p.session_id = session_;
    p.lease_id = absl::StrCat("lease-", ++next_lease_);
    p.timeout_seconds = 600;
    p.now_ms = now;
    p.ttl_ms = kTtl;
    return p;
  }

  std::optional<LeaseGrant> Lease(const std::string& run, const std::string& worker = "w1",
                                  int64_t now = kT0) {
    return Ok(store_.LeaseNextInRun(Params(run, worker, now)));
  }

  LeaseGrant MustLease(const std::string& run, const std::string& worker = "w1",
                       int64_t now = kT0) {
    std::optional<LeaseGrant> g = Lease(run, worker, now);
    if (!g) throw std::runtime_error(absl::StrCat("nothing to lease in run ", run));
    return *g;
  }

  static ReportParams Report(const LeaseGrant& g, Outcome outcome, int64_t events = 0,
                             int64_t duration_ms = 0, int64_t now = kT0 + 1'000,
                             int32_t max_attempts = 2) {
    ReportParams p;
    p.report.lease_id = g.lease_id;
    p.report.epoch = g.epoch;
    p.report.worker_id = g.worker_id;
    p.report.outcome = outcome;
    p.report.exit_code = outcome == Outcome::kSucceeded ? 0 : 1;
    p.report.duration_ms = duration_ms;
    p.report.telemetry_events = events;
    p.report.error_text = outcome == Outcome::kSucceeded ? "" : "boom";
    p.fingerprint = absl::StrCat(std::string(OutcomeName(outcome)), "|fp");
    p.now_ms = now;
    p.max_attempts_per_phase = max_attempts;
    return p;
  }

  ReportResult Record(const LeaseGrant& g, Outcome outcome, int64_t events = 0,
                      int64_t duration_ms = 0, int32_t max_attempts = 2) {
    return Ok(
        store_.RecordReport(Report(g, outcome, events, duration_ms, kT0 + 1'000, max_attempts)));
  }

  RunStats Stats(const std::string& run) {
    for (RunStats& r : Ok(store_.ListRunStats())) {
      if (r.run_id == run) return r;
    }
    throw std::runtime_error(absl::StrCat("no stats for run ", run));
  }

  Snapshot Snap(const std::string& run, const std::string& phase) {
    Snapshot s;
    s.phase = Ok(store_.GetPhase(PhaseKey{run, phase}));
    s.runs = Ok(store_.ListRunStats());
    std::sort(s.runs.begin(), s.runs.end(),
              [](const RunStats& a, const RunStats& b) { return a.run_id < b.run_id; });
    s.counts = Ok(store_.CountPhases());
    s.attempts = Ok(store_.ListAttempts(""));
    s.leases = Ok(store_.ListActiveLeases());
    return s;
  }

  void set_session(std::string session) { session_ = std::move(session); }

 private:
  StateStore& store_;
  std::string session_ = "s1";
  int next_lease_ = 0;
};

}  // namespace

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
  Ok(store().ExpireLeases(g.expires_at_ms, 5));  // lost
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

  EXPECT_THAT(Ok(store().ExpireLeases(kT0 + kTtl, 5)), IsEmpty());
  EXPECT_EQ(c.Phase("r1", "p1").state, PhaseState::kLeased);
  EXPECT_EQ(Ok(store().ExpireLeases(kT0 + 2 * kTtl - 1, 5)).size(), 1u);
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
  std::vector<ExpiredLease> expired = Ok(store().ExpireLeases(now, 5));
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0].lease.lease_id, stale.lease_id);
}

TEST_P(StateStoreContractTest, RenewOfNothingIsOk) {
  EXPECT_THAT(Ok(store().RenewLeases("w1", {}, kT0, kTtl)), IsEmpty());
}

// ---------------------------------------------------------------------------
// RecordReport

TEST_P(StateStoreContractTest, AcceptedSuccessIsFinalAndRecordsTheAttempt) {
  Contract c(store());
  c.Import({Spec("r1", "p1")});
  LeaseGrant g = c.MustLease("r1", "w1", kT0);
  ReportParams params = Contract::Report(g, Outcome::kSucceeded, 7, 2'500, kT0 + 3'000);
  params.report.exit_code = 0;
  params.report.stdout_tail = "out\n";
  params.report.stderr_tail = "err\n";
  params.report.telemetry_by_type = {{"crash", 2}, {"hang", 5}};
  params.fingerprint = "ok|fp";
  ReportResult result = Ok(store().RecordReport(params));
  EXPECT_EQ(result.disposition, ReportDisposition::kAccepted);
  EXPECT_EQ(result.phase_state, PhaseState::kSucceeded);

  PhaseRecord p = c.Phase("r1", "p1");
  EXPECT_EQ(p.state, PhaseState::kSucceeded);
  EXPECT_EQ(p.attempts, 1);
  EXPECT_EQ(p.final_outcome, Outcome::kSucceeded);
  EXPECT_EQ(p.telemetry_events, 7);
  EXPECT_EQ(p.current_lease_id, "");
  EXPECT_THAT(Ok(store().ListActiveLeases()), IsEmpty());
  EXPECT_FALSE(c.Lease("r1").has_value());

  std::vector<AttemptRecord> attempts = Ok(store().ListAttempts(""));
  ASSERT_EQ(attempts.size(), 1u);
  const AttemptRecord& a = attempts[0];
  EXPECT_EQ(a.lease_id, g.lease_id);
  EXPECT_EQ(a.run_id, "r1");
  EXPECT_EQ(a.phase_id, "p1");
  EXPECT_EQ(a.attempt, 1);
  EXPECT_EQ(a.epoch, g.epoch);
  EXPECT_EQ(a.worker_id, "w1");
  EXPECT_EQ(a.session_id, "s1");
  EXPECT_EQ(a.outcome, Outcome::kSucceeded);
  EXPECT_EQ(a.exit_code, 0);
  EXPECT_EQ(a.duration_ms, 2'500);
  EXPECT_EQ(a.fingerprint, "ok|fp");
  EXPECT_EQ(a.telemetry_events, 7);
  EXPECT_EQ(a.telemetry_by_type, (std::map<std::string, int64_t>{{"crash", 2}, {"hang", 5}}));
  EXPECT_EQ(a.stdout_tail, "out\n");
  EXPECT_EQ(a.stderr_tail, "err\n");
  EXPECT_EQ(a.started_at_ms, kT0);
  EXPECT_EQ(a.ended_at_ms, kT0 + 3'000);

  RunStats stats = c.Stats("r1");
  EXPECT_EQ(stats.succeeded, 1);
  EXPECT_EQ(stats.pending + stats.leased + stats.failed, 0);
  EXPECT_EQ(stats.successes, 1);
  EXPECT_EQ(stats.telemetry_events, 7);
  EXPECT_EQ(stats.run_ms, 2'500);
}

TEST_P(StateStoreContractTest, FailureBelowMaxAttemptsReturnsPhaseToPending) {
  Contract c(store());
  c.Import({Spec("r1", "p1")});
  ReportResult result = c.Record(c.MustLease("r1"), Outcome::kFailed, 3, 10, /*max_attempts=*/2);
  EXPECT_EQ(result.disposition, ReportDisposition::kAccepted);
  EXPECT_EQ(result.phase_state, PhaseState::kPending);
  PhaseRecord p = c.Phase("r1", "p1");
  EXPECT_EQ(p.state, PhaseState::kPending);
  EXPECT_EQ(p.attempts, 1);
  EXPECT_FALSE(p.final_outcome.has_value());
  EXPECT_EQ(p.telemetry_events, 3);

  LeaseGrant again = c.MustLease("r1");
  EXPECT_EQ(again.phase_id, "p1");
  EXPECT_EQ(again.attempt, 2);
}

TEST_P(StateStoreContractTest, FailureAtMaxAttemptsFailsThePhaseWithThatOutcome) {
  Contract c(store());
  c.Import({Spec("r1", "p1")});
  c.Record(c.MustLease("r1"), Outcome::kFailed, 0, 0, 2);
  ReportResult result = c.Record(c.MustLease("r1"), Outcome::kTimedOut, 0, 0, 2);
  EXPECT_EQ(result.disposition, ReportDisposition::kAccepted);
  EXPECT_EQ(result.phase_state, PhaseState::kFailed);
  PhaseRecord p = c.Phase("r1", "p1");
  EXPECT_EQ(p.state, PhaseState::kFailed);
  EXPECT_EQ(p.attempts, 2);
  EXPECT_EQ(p.final_outcome, Outcome::kTimedOut);
  EXPECT_FALSE(c.Lease("r1").has_value());
  RunStats stats = c.Stats("r1");
  EXPECT_EQ(stats.failed, 1);
  EXPECT_EQ(stats.pending, 0);
  EXPECT_EQ(stats.timeouts, 1);
  EXPECT_EQ(stats.attempts, 2);
}

TEST_P(StateStoreContractTest, MaxAttemptsOfOneFailsOnTheFirstFailure) {
  Contract c(store());
  c.Import({Spec("r1", "p1")});
  EXPECT_EQ(c.Record(c.MustLease("r1"), Outcome::kKilled, 0, 0, 1).phase_state,
            PhaseState::kFailed);
  EXPECT_EQ(c.Phase("r1", "p1").final_outcome, Outcome::kKilled);
  EXPECT_EQ(c.Stats("r1").timeouts, 0);  // killed from outside is not a timeout
}

TEST_P(StateStoreContractTest, CancelledReportRequeuesWithoutSpendingAnAttempt) {
  Contract c(store());
  c.Import({Spec("r1", "p1")});
  ReportResult result = c.Record(c.MustLease("r1"), Outcome::kCancelled, 4, 50, /*max=*/1);
  EXPECT_EQ(result.disposition, ReportDisposition::kAccepted);
  EXPECT_EQ(result.phase_state, PhaseState::kPending);
  PhaseRecord p = c.Phase("r1", "p1");
  EXPECT_EQ(p.state, PhaseState::kPending);
  EXPECT_EQ(p.attempts, 0);
  EXPECT_EQ(p.requeues, 1);
  EXPECT_FALSE(p.final_outcome.has_value());
  LeaseGrant again = c.MustLease("r1");
  EXPECT_EQ(again.attempt, 2);
  EXPECT_EQ(c.Record(again, Outcome::kSucceeded, 0, 0, 1).phase_state, PhaseState::kSucceeded);
}

// A transient failure (the failure policy said counts_as_attempt=false: the
// worker, not the phase, was at fault) requeues on the requeue budget, never
// the attempt budget, and fails the phase with its own outcome once the
// budget is spent.
TEST_P(StateStoreContractTest, ReportTransientFailureUsesRequeueBudgetAndFailsWhenExhausted) {
  Contract c(store());
  c.Import({Spec("r1", "p1")});
  auto transient = [&](const LeaseGrant& g) {
    ReportParams p = Contract::Report(g, Outcome::kFailed, 0, 0, kT0 + 1'000, /*max_attempts=*/1);
    p.counts_as_attempt = false;
    p.max_requeues_per_phase = 2;
    return Ok(store().RecordReport(p));
  };
  for (int i = 0; i < 2; ++i) {  // requeues 1 and 2: within max 2
    ReportResult r = transient(c.MustLease("r1"));
    EXPECT_EQ(r.disposition, ReportDisposition::kAccepted);
    EXPECT_EQ(r.phase_state, PhaseState::kPending) << "requeue " << i + 1;
  }
  PhaseRecord p = c.Phase("r1", "p1");
  EXPECT_EQ(p.attempts, 0);  // max_attempts=1 would have failed it at once
  EXPECT_EQ(p.requeues, 2);
  EXPECT_FALSE(p.final_outcome.has_value());

  ReportResult last = transient(c.MustLease("r1"));
  EXPECT_EQ(last.disposition, ReportDisposition::kAccepted);
  EXPECT_EQ(last.phase_state, PhaseState::kFailed);
  p = c.Phase("r1", "p1");
  EXPECT_EQ(p.state, PhaseState::kFailed);
  EXPECT_EQ(p.attempts, 0);
  EXPECT_EQ(p.requeues, 3);
  EXPECT_EQ(p.final_outcome, Outcome::kFailed);
  EXPECT_FALSE(c.Lease("r1").has_value());
  RunStats stats = c.Stats("r1");
  EXPECT_EQ(stats.failed, 1);
  EXPECT_EQ(stats.pending, 0);
  EXPECT_EQ(stats.attempts, 3);  // every ended attempt counts in the run's figures
}

// Bug: a phase the worker could not start was charged an attempt. The store
// itself puts start_failed on the requeue budget (whatever counts_as_attempt
// says) and leaves it out of the session's progress toward its batch size.
TEST_P(StateStoreContractTest, StartFailedReportUsesTheRequeueBudgetAndIsNotSessionProgress) {
  Contract c(store());
  c.Import({Spec("r1", "p1")});
  for (int i = 0; i < 2; ++i) {
    ReportParams p = Contract::Report(c.MustLease("r1"), Outcome::kStartFailed, 0, 0, kT0 + 1'000,
                                      /*max_attempts=*/1);
    p.max_requeues_per_phase = 2;
    EXPECT_EQ(Ok(store().RecordReport(p)).phase_state, PhaseState::kPending) << i;
  }
  PhaseRecord p = c.Phase("r1", "p1");
  EXPECT_EQ(p.attempts, 0);
  EXPECT_EQ(p.requeues, 2);
  EXPECT_EQ(Ok(store().CountSessionAttempts("s1")), 0);
  ReportParams last = Contract::Report(c.MustLease("r1"), Outcome::kStartFailed, 0, 0, kT0 + 1'000,
                                       /*max_attempts=*/1);
  last.max_requeues_per_phase = 2;
  EXPECT_EQ(Ok(store().RecordReport(last)).phase_state, PhaseState::kFailed);
  EXPECT_EQ(c.Phase("r1", "p1").final_outcome, Outcome::kStartFailed);
  const std::vector<AttemptRecord> attempts = Ok(store().ListAttempts(""));
  ASSERT_EQ(attempts.size(), 3u);
  EXPECT_EQ(attempts[0].outcome, Outcome::kStartFailed);
}

TEST_P(StateStoreContractTest, CancelledReportFailsThePhaseAsCancelledOnceOverMaxRequeues) {
  Contract c(store());
  c.Import({Spec("r1", "p1")});
  ReportParams first = Contract::Report(c.MustLease("r1"), Outcome::kCancelled);
  first.max_requeues_per_phase = 1;
  EXPECT_EQ(Ok(store().RecordReport(first)).phase_state, PhaseState::kPending);
  ReportParams second = Contract::Report(c.MustLease("r1"), Outcome::kCancelled);
  second.max_requeues_per_phase = 1;
  const ReportResult r = Ok(store().RecordReport(second));
  EXPECT_EQ(r.disposition, ReportDisposition::kAccepted);
  EXPECT_EQ(r.phase_state, PhaseState::kFailed);
  PhaseRecord p = c.Phase("r1", "p1");
  EXPECT_EQ(p.final_outcome, Outcome::kCancelled);
  EXPECT_EQ(p.attempts, 0);
  EXPECT_EQ(p.requeues, 2);
  EXPECT_EQ(c.Stats("r1").failed, 1);
  // Cancelled attempts are ours, not the session's work.
  EXPECT_EQ(Ok(store().CountSessionAttempts("s1")), 0);
}

// Lost (expiry), cancelled and transient outcomes all draw on one requeue
// budget per phase, whichever comes first.
TEST_P(StateStoreContractTest, ExpiryAndRequeuedReportsShareOneRequeueBudget) {
  Contract c(store());
  c.Import({Spec("r1", "p1"), Spec("r2", "q1")});
  // p1: lost, then cancelled (within max 2), then a transient failure spends it.
  LeaseGrant g = c.MustLease("r1", "w1", kT0);
  ASSERT_EQ(Ok(store().ExpireLeases(g.expires_at_ms, 2)).size(), 1u);
  ReportParams cancelled = Contract::Report(c.MustLease("r1"), Outcome::kCancelled);
  cancelled.max_requeues_per_phase = 2;
  EXPECT_EQ(Ok(store().RecordReport(cancelled)).phase_state, PhaseState::kPending);
  ReportParams transient = Contract::Report(c.MustLease("r1"), Outcome::kKilled);
  transient.counts_as_attempt = false;
  transient.max_requeues_per_phase = 2;
  EXPECT_EQ(Ok(store().RecordReport(transient)).phase_state, PhaseState::kFailed);
  EXPECT_EQ(c.Phase("r1", "p1").final_outcome, Outcome::kKilled);
  EXPECT_EQ(c.Phase("r1", "p1").requeues, 3);

  // q1: a cancelled report first, then the expiry that spends the budget.
  ReportParams q_cancelled = Contract::Report(c.MustLease("r2"), Outcome::kCancelled);
  q_cancelled.max_requeues_per_phase = 1;
  EXPECT_EQ(Ok(store().RecordReport(q_cancelled)).phase_state, PhaseState::kPending);
  LeaseGrant q = c.MustLease("r2", "w1", kT0 + 5'000);
  std::vector<ExpiredLease> expired = Ok(store().ExpireLeases(q.expires_at_ms, 1));
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0].phase_state, PhaseState::kFailed);
  EXPECT_EQ(c.Phase("r2", "q1").final_outcome, Outcome::kLost);
  EXPECT_EQ(c.Phase("r2", "q1").requeues, 2);
}

TEST_P(StateStoreContractTest, DuplicateOfACancelledReportIsDuplicateAndNotLate) {
  Contract c(store());
  c.Import({Spec("r1", "p1")});
  LeaseGrant g = c.MustLease("r1");
  ASSERT_EQ(c.Record(g, Outcome::kCancelled).phase_state, PhaseState::kPending);
  const Snapshot before = c.Snap("r1", "p1");
  const ReportResult dup = c.Record(g, Outcome::kCancelled);
  EXPECT_EQ(dup.disposition, ReportDisposition::kDuplicate);
  EXPECT_EQ(dup.phase_state, PhaseState::kPending);
  ExpectSameSnapshot(before, c.Snap("r1", "p1"));
  EXPECT_EQ(Ok(store().CountLateReports()), 0);
}

TEST_P(StateStoreContractTest, DuplicateReportIsAnsweredAndChangesNothing) {
  Contract c(store());
  c.Import({Spec("r1", "p1"), Spec("r1", "p2", 1)});
  LeaseGrant g = c.MustLease("r1");
  ASSERT_EQ(c.Record(g, Outcome::kSucceeded, 10, 100).disposition, ReportDisposition::kAccepted);
  const Snapshot before = c.Snap("r1", "p1");

  // The same report again, and a retry that claims a different result.
  ReportResult dup = c.Record(g, Outcome::kSucceeded, 10, 100);
  EXPECT_EQ(dup.disposition, ReportDisposition::kDuplicate);
  EXPECT_EQ(dup.phase_state, PhaseState::kSucceeded);
  ReportResult changed = c.Record(g, Outcome::kFailed, 999, 5'000);
  EXPECT_EQ(changed.disposition, ReportDisposition::kDuplicate);
  EXPECT_EQ(changed.phase_state, PhaseState::kSucceeded);

  ExpectSameSnapshot(before, c.Snap("r1", "p1"));
}

TEST_P(StateStoreContractTest, DuplicateOfARetriedFailureDoesNotSpendAnotherAttempt) {
  Contract c(store());
  c.Import({Spec("r1", "p1")});
  LeaseGrant g = c.MustLease("r1");
  ASSERT_EQ(c.Record(g, Outcome::kFailed, 1, 1, 2).phase_state, PhaseState::kPending);
  const Snapshot before = c.Snap("r1", "p1");
  // Were the duplicate counted, attempts would reach 2 and fail the phase.
  EXPECT_EQ(c.Record(g, Outcome::kFailed, 1, 1, 2).disposition, ReportDisposition::kDuplicate);
  ExpectSameSnapshot(before, c.Snap("r1", "p1"));
  EXPECT_EQ(c.Phase("r1", "p1").state, PhaseState::kPending);
}

TEST_P(StateStoreContractTest, ReportAfterExpiryIsLateAndNotCounted) {
  Contract c(store());
  c.Import({Spec("r1", "p1")});
  LeaseGrant g = c.MustLease("r1", "w1", kT0);
  ASSERT_EQ(Ok(store().ExpireLeases(g.expires_at_ms, 5)).size(), 1u);
  const Snapshot before = c.Snap("r1", "p1");

  ReportResult late = c.Record(g, Outcome::kSucceeded, 50, 1'000);
  EXPECT_EQ(late.disposition, ReportDisposition::kLate);
  EXPECT_EQ(late.phase_state, PhaseState::kPending);
  ExpectSameSnapshot(before, c.Snap("r1", "p1"));
  EXPECT_EQ(c.Stats("r1").successes, 0);
  EXPECT_EQ(c.Stats("r1").telemetry_events, 0);
  // Asking again gets the same answer.
  EXPECT_EQ(c.Record(g, Outcome::kSucceeded, 50, 1'000).disposition, ReportDisposition::kLate);
}

TEST_P(StateStoreContractTest, LateReportsAreListedOncePerLeaseInTheOrderReceived) {
  Contract c(store());
  c.Import({Spec("r1", "p1"), Spec("r2", "q1")});
  EXPECT_EQ(Ok(store().CountLateReports()), 0);
  EXPECT_THAT(Ok(store().ListLateReports()), IsEmpty());
  LeaseGrant first = c.MustLease("r1", "w1", kT0);
  LeaseGrant second = c.MustLease("r2", "w2", kT0);
  ASSERT_EQ(Ok(store().ExpireLeases(first.expires_at_ms, 5)).size(), 2u);

  // Received in the order second, first; the repeat of `second` is not kept.
  const int64_t t1 = first.expires_at_ms + 10;
  const int64_t t2 = first.expires_at_ms + 20;
  ASSERT_EQ(
      Ok(store().RecordReport(Contract::Report(second, Outcome::kFailed, 3, 0, t1))).disposition,
      ReportDisposition::kLate);
  ASSERT_EQ(
      Ok(store().RecordReport(Contract::Report(first, Outcome::kSucceeded, 7, 0, t2))).disposition,
      ReportDisposition::kLate);
  ASSERT_EQ(Ok(store().RecordReport(Contract::Report(second, Outcome::kSucceeded, 99, 0, t2 + 5)))
                .disposition,
            ReportDisposition::kLate);
  // An accepted report and an unknown lease are not late reports.
  LeaseGrant fresh = c.MustLease("r1", "w3", t2);
  ASSERT_EQ(c.Record(fresh, Outcome::kSucceeded).disposition, ReportDisposition::kAccepted);
  LeaseGrant unknown = fresh;
  unknown.lease_id = "never-granted";
  ASSERT_EQ(c.Record(unknown, Outcome::kFailed).disposition, ReportDisposition::kUnknownLease);

  EXPECT_EQ(Ok(store().CountLateReports()), 2);
  const std::vector<LateReportRecord> late = Ok(store().ListLateReports());
  ASSERT_EQ(late.size(), 2u);
  EXPECT_EQ(late[0].lease_id, second.lease_id);
  EXPECT_EQ(late[0].worker_id, "w2");
  EXPECT_EQ(late[0].outcome, Outcome::kFailed);
  EXPECT_EQ(late[0].telemetry_events, 3);
  EXPECT_EQ(late[0].error_text, "boom");
  EXPECT_EQ(late[0].received_at_ms, t1);
  EXPECT_EQ(late[1].lease_id, first.lease_id);
  EXPECT_EQ(late[1].worker_id, "w1");
  EXPECT_EQ(late[1].outcome, Outcome::kSucceeded);
  EXPECT_EQ(late[1].telemetry_events, 7);
  EXPECT_EQ(late[1].error_text, "");
  EXPECT_EQ(late[1].received_at_ms, t2);
}

TEST_P(StateStoreContractTest, LateReportDoesNotDisturbTheNewHolder) {
  Contract c(store());
  c.Import({Spec("r1", "p1")});
  LeaseGrant old_lease = c.MustLease("r1", "w1", kT0);
  Ok(store().ExpireLeases(old_lease.expires_at_ms, 5));
  LeaseGrant new_lease = c.MustLease("r1", "w2", old_lease.expires_at_ms);
  EXPECT_EQ(c.Record(old_lease, Outcome::kFailed).disposition, ReportDisposition::kLate);
  PhaseRecord p = c.Phase("r1", "p1");
  EXPECT_EQ(p.state, PhaseState::kLeased);
  EXPECT_EQ(p.current_lease_id, new_lease.lease_id);
  EXPECT_EQ(p.attempts, 0);
  EXPECT_EQ(c.Record(new_lease, Outcome::kSucceeded).disposition, ReportDisposition::kAccepted);
}

TEST_P(StateStoreContractTest, ReportForUnknownLeaseIsRejectedAndNotRecorded) {
  Contract c(store());
  c.Import({Spec("r1", "p1")});
  LeaseGrant g = c.MustLease("r1");
  const Snapshot before = c.Snap("r1", "p1");
  LeaseGrant fake = g;
  fake.lease_id = "never-granted";
  EXPECT_EQ(c.Record(fake, Outcome::kSucceeded, 5, 5).disposition,
            ReportDisposition::kUnknownLease);
  ExpectSameSnapshot(before, c.Snap("r1", "p1"));
}

TEST_P(StateStoreContractTest, ReportWithWrongEpochIsLateAndLeaseStaysValid) {
  Contract c(store());
  c.Import({Spec("r1", "p1")});
  LeaseGrant g = c.MustLease("r1");
  const Snapshot before = c.Snap("r1", "p1");
  LeaseGrant wrong = g;
  wrong.epoch = g.epoch + 1000;
  EXPECT_EQ(c.Record(wrong, Outcome::kSucceeded, 5, 5).disposition, ReportDisposition::kLate);
  ExpectSameSnapshot(before, c.Snap("r1", "p1"));
  EXPECT_EQ(c.Record(g, Outcome::kSucceeded).disposition, ReportDisposition::kAccepted);
}

TEST_P(StateStoreContractTest, ReportFromAnotherWorkerIsLateAndLeaseStaysValid) {
  Contract c(store());
  c.Import({Spec("r1", "p1")});
  LeaseGrant g = c.MustLease("r1", "w1");
  const Snapshot before = c.Snap("r1", "p1");
  LeaseGrant impostor = g;
  impostor.worker_id = "w2";
  EXPECT_EQ(c.Record(impostor, Outcome::kFailed).disposition, ReportDisposition::kLate);
  ExpectSameSnapshot(before, c.Snap("r1", "p1"));
  EXPECT_EQ(c.Record(g, Outcome::kSucceeded).disposition, ReportDisposition::kAccepted);
}

// ---------------------------------------------------------------------------
// ExpireLeases

TEST_P(StateStoreContractTest, ExpiryRecordsLostAttemptAndRequeuesThePhase) {
  Contract c(store());
  c.Import({Spec("r1", "p1"), Spec("r1", "p2", 1)});
  LeaseGrant g = c.MustLease("r1", "w1", kT0);
  LeaseGrant later = c.MustLease("r1", "w1", kT0 + 1);
  EXPECT_THAT(Ok(store().ExpireLeases(g.expires_at_ms - 1, 5)), IsEmpty());

  std::vector<ExpiredLease> expired = Ok(store().ExpireLeases(g.expires_at_ms, 5));
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
  EXPECT_THAT(Ok(store().ExpireLeases(g.expires_at_ms, 5)), IsEmpty());
}

TEST_P(StateStoreContractTest, PhaseFailsAsLostOnceOverMaxRequeues) {
  Contract c(store());
  c.Import({Spec("r1", "p1")});
  int64_t now = kT0;
  for (int i = 0; i < 2; ++i) {  // requeues 1 and 2: within max 2
    LeaseGrant g = c.MustLease("r1", "w1", now);
    now = g.expires_at_ms;
    std::vector<ExpiredLease> e = Ok(store().ExpireLeases(now, 2));
    ASSERT_EQ(e.size(), 1u);
    EXPECT_EQ(e[0].phase_state, PhaseState::kPending);
  }
  LeaseGrant g = c.MustLease("r1", "w1", now);
  EXPECT_EQ(g.attempt, 3);
  std::vector<ExpiredLease> e = Ok(store().ExpireLeases(g.expires_at_ms, 2));
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
  std::vector<ExpiredLease> e = Ok(store().ExpireLeases(g.expires_at_ms, 0));
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
  Ok(store().ExpireLeases(q1.expires_at_ms, 5));  // lost, pending again
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

// ---------------------------------------------------------------------------
// Sessions

TEST_P(StateStoreContractTest, SessionRoundTripsItsSettings) {
  SessionRecord s = Session("s1", kT0);
  s.settings.batch_size = 12;
  s.settings.phase_timeout_seconds = 77;
  s.settings.max_total_minutes = 30;
  s.settings.max_attempts_per_phase = 4;
  s.settings.max_requeues_per_phase = 0;
  s.settings.run_ids = {"r1", "r2"};
  s.settings.skip_run_prefixes = {"tmp-"};
  s.settings.on_telemetry_loss = TelemetryLossAction::kPause;
  Ok(store().CreateSession(s));
  std::optional<SessionRecord> got = Ok(store().GetSession("s1"));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->session_id, "s1");
  EXPECT_EQ(got->state, SessionState::kActive);
  EXPECT_EQ(got->started_at_ms, kT0);
  EXPECT_EQ(got->ended_at_ms, 0);
  EXPECT_EQ(got->end_reason, "");
  EXPECT_EQ(got->settings.batch_size, 12);
  EXPECT_EQ(got->settings.phase_timeout_seconds, 77);
  EXPECT_EQ(got->settings.max_total_minutes, 30);
  EXPECT_EQ(got->settings.max_attempts_per_phase, 4);
  EXPECT_EQ(got->settings.max_requeues_per_phase, 0);
  EXPECT_THAT(got->settings.run_ids, ElementsAre("r1", "r2"));
  EXPECT_THAT(got->settings.skip_run_prefixes, ElementsAre("tmp-"));
  EXPECT_EQ(got->settings.on_telemetry_loss, TelemetryLossAction::kPause);
  EXPECT_FALSE(Ok(store().GetSession("nope")).has_value());
}

TEST_P(StateStoreContractTest, PolicyRecordsReplaceByKeyAndKeepKindsApart) {
  EXPECT_THAT(Ok(store().ListPolicyRecords("leasing_pause")), IsEmpty());
  Ok(store().PutPolicyRecord("leasing_pause", "s1", R"({"paused":true})"));
  Ok(store().PutPolicyRecord("leasing_pause", "s2", R"({"paused":true})"));
  Ok(store().PutPolicyRecord("fingerprint_unblock", "s1", "123"));
  Ok(store().PutPolicyRecord("leasing_pause", "s1", R"({"paused":false})"));
  const std::map<std::string, std::string> pauses = Ok(store().ListPolicyRecords("leasing_pause"));
  EXPECT_EQ(pauses, (std::map<std::string, std::string>{{"s1", R"({"paused":false})"},
                                                        {"s2", R"({"paused":true})"}}));
  EXPECT_EQ(Ok(store().ListPolicyRecords("fingerprint_unblock")),
            (std::map<std::string, std::string>{{"s1", "123"}}));
}

// The pause of leasing lives in the store: a second coordinator on the same
// store (a restart, or `sluice resume --store`) sees it and can end it.
TEST_P(StateStoreContractTest, LeasingPauseSurvivesACoordinatorRestart) {
  FakeClock clock(kT0);
  Ok(store().ImportPhases(
      {Spec("r1", "p1", 0), Spec("r1", "p2", 1), Spec("r1", "p3", 2), Spec("r1", "p4", 3)}));
  SessionSettings settings;
  settings.on_telemetry_loss = TelemetryLossAction::kPause;
  WorkerInfo w;
  w.worker_id = "w1";
  w.host = "h";
  w.slots = 1;
  {
    Coordinator first(store(), clock);
    Ok(first.Register(w));
    Ok(first.StartSession(settings, "s1"));
    for (int i = 0; i < 3; ++i) {
      clock.AdvanceMs(1'000);
      LeaseResult leased = Ok(first.Lease("w1", absl::StrCat("q", i), 1, 0));
      ASSERT_EQ(leased.leases.size(), 1u);
      AttemptReport r;
      r.lease_id = leased.leases[0].lease_id;
      r.epoch = leased.leases[0].epoch;
      r.worker_id = "w1";
      r.outcome = Outcome::kSucceeded;
      r.duration_ms = 1'000;
      Ok(first.Report(r));  // no telemetry events
    }
    Ok(first.Tick());
    ASSERT_TRUE(Ok(first.Status()).pause.has_value());
  }
  Coordinator second(store(), clock);
  Ok(second.Register(w));
  EXPECT_THAT(Ok(second.Lease("w1", "q-after", 1, 0)).leases, IsEmpty());
  const CoordinatorStatus status = Ok(second.Status());
  ASSERT_TRUE(status.pause.has_value());
  EXPECT_THAT(status.pause->reason, ::testing::HasSubstr("telemetry loss"));
  Ok(second.ResumeLeasing(""));
  Coordinator third(store(), clock);
  Ok(third.Register(w));
  EXPECT_FALSE(Ok(third.Status()).pause.has_value());
  EXPECT_EQ(Ok(third.Lease("w1", "q-resumed", 1, 0)).leases.size(), 1u);
}

TEST_P(StateStoreContractTest, OnlyOneSessionMayBeActive) {
  Ok(store().CreateSession(Session("s1", kT0)));
  absl::Status st = store().CreateSession(Session("s2", kT0 + 1));
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  EXPECT_FALSE(Ok(store().GetSession("s2")).has_value());
  Ok(store().EndSession("s1", SessionState::kStopped, kT0 + 2, "enough"));
  Ok(store().CreateSession(Session("s2", kT0 + 3)));
  EXPECT_EQ(Ok(store().LatestSession())->session_id, "s2");
}

TEST_P(StateStoreContractTest, ReusedSessionIdIsAlreadyExists) {
  Ok(store().CreateSession(Session("s1", kT0)));
  Ok(store().EndSession("s1", SessionState::kFinished, kT0 + 1, "done"));
  absl::Status st = store().CreateSession(Session("s1", kT0 + 2));
  EXPECT_EQ(st.code(), absl::StatusCode::kAlreadyExists) << st;
  std::optional<SessionRecord> s = Ok(store().GetSession("s1"));
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->state, SessionState::kFinished);  // the old one is untouched
  EXPECT_EQ(s->started_at_ms, kT0);
}

TEST_P(StateStoreContractTest, EndSessionRecordsStateTimeAndReasonOnce) {
  Ok(store().CreateSession(Session("s1", kT0)));
  Ok(store().EndSession("s1", SessionState::kFinished, kT0 + 60'000, "batch_size reached"));
  std::optional<SessionRecord> s = Ok(store().GetSession("s1"));
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->state, SessionState::kFinished);
  EXPECT_EQ(s->ended_at_ms, kT0 + 60'000);
  EXPECT_EQ(s->end_reason, "batch_size reached");

  // An ended session stays as it ended.
  absl::Status again = store().EndSession("s1", SessionState::kStopped, kT0 + 90'000, "late stop");
  EXPECT_EQ(again.code(), absl::StatusCode::kFailedPrecondition) << again;
  s = Ok(store().GetSession("s1"));
  EXPECT_EQ(s->state, SessionState::kFinished);
  EXPECT_EQ(s->end_reason, "batch_size reached");
  EXPECT_FALSE(store().EndSession("unknown", SessionState::kStopped, kT0, "x").ok());
}

TEST_P(StateStoreContractTest, LatestSessionPrefersActiveThenNewestStarted) {
  EXPECT_FALSE(Ok(store().LatestSession()).has_value());
  Ok(store().CreateSession(Session("old", kT0 + 100)));
  Ok(store().EndSession("old", SessionState::kStopped, kT0 + 150, ""));
  Ok(store().CreateSession(Session("newest", kT0 + 300)));
  Ok(store().EndSession("newest", SessionState::kFinished, kT0 + 350, ""));
  EXPECT_EQ(Ok(store().LatestSession())->session_id, "newest");

  // Active wins even when it started earlier (a clock step back).
  Ok(store().CreateSession(Session("active", kT0 + 200)));
  EXPECT_EQ(Ok(store().LatestSession())->session_id, "active");
  Ok(store().EndSession("active", SessionState::kStopped, kT0 + 400, ""));
  EXPECT_EQ(Ok(store().LatestSession())->session_id, "newest");
}

TEST_P(StateStoreContractTest, LatestSessionBreaksStartTimeTiesByCreationOrder) {
  SessionRecord first = Session("b-first", kT0);
  first.state = SessionState::kFinished;
  SessionRecord second = Session("a-second", kT0);
  second.state = SessionState::kStopped;
  Ok(store().CreateSession(first));
  Ok(store().CreateSession(second));
  EXPECT_EQ(Ok(store().LatestSession())->session_id, "a-second");
}

// ---------------------------------------------------------------------------
// Attempts by session

TEST_P(StateStoreContractTest, ListAttemptsIsInEndOrderAndFiltersBySession) {
  Contract c(store());
  c.Import({Spec("r1", "p1"), Spec("r1", "p2", 1), Spec("r1", "p3", 2)});
  c.set_session("sA");
  LeaseGrant a1 = c.MustLease("r1", "w1", kT0);
  LeaseGrant a2 = c.MustLease("r1", "w1", kT0 + 1);
  c.set_session("sB");
  LeaseGrant b1 = c.MustLease("r1", "w1", kT0 + 2);
  // End in another order than leased.
  c.Record(b1, Outcome::kSucceeded);
  c.Record(a2, Outcome::kFailed);
  Ok(store().ExpireLeases(a1.expires_at_ms, 5));

  std::vector<std::string> all;
  for (const AttemptRecord& a : Ok(store().ListAttempts(""))) all.push_back(a.lease_id);
  EXPECT_THAT(all, ElementsAre(b1.lease_id, a2.lease_id, a1.lease_id));
  std::vector<std::string> in_a;
  for (const AttemptRecord& a : Ok(store().ListAttempts("sA"))) {
    EXPECT_EQ(a.session_id, "sA");
    in_a.push_back(a.lease_id);
  }
  EXPECT_THAT(in_a, ElementsAre(a2.lease_id, a1.lease_id));
  EXPECT_THAT(Ok(store().ListAttempts("none")), IsEmpty());
}

TEST_P(StateStoreContractTest, CountSessionAttemptsExcludesLostAndCancelled) {
  Contract c(store());
  c.Import({Spec("r1", "ok"), Spec("r1", "fail", 1), Spec("r1", "timeout", 2),
            Spec("r1", "killed", 3), Spec("r1", "cancel", 4), Spec("r1", "lost", 5),
            Spec("r1", "other-session", 6)});
  c.Record(c.MustLease("r1"), Outcome::kSucceeded);
  c.Record(c.MustLease("r1"), Outcome::kFailed, 0, 0, /*max_attempts=*/1);
  c.Record(c.MustLease("r1"), Outcome::kTimedOut, 0, 0, 1);
  c.Record(c.MustLease("r1"), Outcome::kKilled, 0, 0, 1);
  LeaseGrant cancel = c.MustLease("r1");
  ASSERT_EQ(cancel.phase_id, "cancel");
  LeaseGrant lost = c.MustLease("r1", "w1", kT0 - 1);  // expires first
  ASSERT_EQ(lost.phase_id, "lost");
  c.Record(cancel, Outcome::kCancelled);
  Ok(store().ExpireLeases(lost.expires_at_ms, 5));
  c.set_session("s2");
  c.Record(c.MustLease("r1"), Outcome::kSucceeded);  // "cancel" again, other session

  EXPECT_EQ(Ok(store().CountSessionAttempts("s1")), 4);
  EXPECT_EQ(Ok(store().ListAttempts("s1")).size(), 6u);
  EXPECT_EQ(Ok(store().CountSessionAttempts("s2")), 1);
  EXPECT_EQ(Ok(store().CountSessionAttempts("none")), 0);
}

// ---------------------------------------------------------------------------
// Workers

TEST_P(StateStoreContractTest, UpsertWorkerInsertsThenReplaces) {
  WorkerInfo w;
  w.worker_id = "w1";
  w.host = "host-a";
  w.slots = 4;
  w.labels = {"linux", "gpu"};
  w.version = "1.0";
  w.last_seen_ms = kT0;
  Ok(store().UpsertWorker(w));
  WorkerInfo other = w;
  other.worker_id = "w0";
  other.labels = {};
  Ok(store().UpsertWorker(other));

  w.host = "host-b";
  w.slots = 8;
  w.labels = {"arm"};
  w.version = "1.1";
  w.last_seen_ms = kT0 + 5;
  Ok(store().UpsertWorker(w));

  std::vector<WorkerInfo> workers = Ok(store().ListWorkers());
  ASSERT_EQ(workers.size(), 2u);
  auto it = std::find_if(workers.begin(), workers.end(),
                         [](const WorkerInfo& x) { return x.worker_id == "w1"; });
  ASSERT_NE(it, workers.end());
  EXPECT_EQ(it->host, "host-b");
  EXPECT_EQ(it->slots, 8);
  EXPECT_THAT(it->labels, ElementsAre("arm"));
  EXPECT_EQ(it->version, "1.1");
  EXPECT_EQ(it->last_seen_ms, kT0 + 5);
  auto w0 = std::find_if(workers.begin(), workers.end(),
                         [](const WorkerInfo& x) { return x.worker_id == "w0"; });
  ASSERT_NE(w0, workers.end());
  EXPECT_THAT(w0->labels, IsEmpty());
}

// ---------------------------------------------------------------------------
// Concurrency

TEST_P(StateStoreContractTest, ConcurrentLeasesNeverGrantAPhaseTwice) {
  constexpr int kThreads = 8;
  constexpr int kPhases = 120;
  std::vector<PhaseSpec> specs;
  for (int i = 0; i < kPhases; ++i) specs.push_back(Spec("r1", absl::StrCat("p", i), i));
  Ok(store().ImportPhases(specs));

  std::vector<std::vector<LeaseGrant>> grants(kThreads);
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int n = 0;; ++n) {
        LeaseParams p;
        p.run_id = "r1";
        p.worker_id = absl::StrCat("w", t);
        p.session_id = "s1";
        p.lease_id = absl::StrCat("L", t, "-", n);
        p.now_ms = kT0;
        p.ttl_ms = kTtl;
        absl::StatusOr<std::optional<LeaseGrant>> g = store().LeaseNextInRun(p);
        if (!g.ok()) {
          ++errors;
          return;
        }
        if (!g->has_value()) return;
        // Report every other grant so leases and reports interleave.
        if (n % 2 == 0) {
          absl::StatusOr<ReportResult> r =
              store().RecordReport(Contract::Report(**g, Outcome::kSucceeded, 1, 10));
          if (!r.ok() || r->disposition != ReportDisposition::kAccepted) ++errors;
        }
        grants[static_cast<size_t>(t)].push_back(**g);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);

  std::set<std::string> phases;
  std::set<int64_t> epochs;
  size_t total = 0;
  for (const auto& per_thread : grants) {
    for (const LeaseGrant& g : per_thread) {
      phases.insert(g.phase_id);
      epochs.insert(g.epoch);
      ++total;
    }
  }
  EXPECT_EQ(total, static_cast<size_t>(kPhases));
  EXPECT_EQ(phases.size(), static_cast<size_t>(kPhases));
  EXPECT_EQ(epochs.size(), static_cast<size_t>(kPhases));
  PhaseCounts counts = Ok(store().CountPhases());
  EXPECT_EQ(counts.pending, 0);
  EXPECT_EQ(counts.leased + counts.succeeded, kPhases);
  RunStats stats = Contract(store()).Stats("r1");
  EXPECT_EQ(stats.attempts, counts.succeeded);
  EXPECT_EQ(stats.telemetry_events, counts.succeeded);
  EXPECT_EQ(static_cast<int64_t>(Ok(store().ListActiveLeases()).size()), counts.leased);
}

}  // namespace sluice::contract
