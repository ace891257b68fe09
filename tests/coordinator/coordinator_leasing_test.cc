// Coordinator: Register, Lease (batches, retried requests, filters, labels,
// store errors mid-batch), Heartbeat and lease expiry.
// Fixture and helpers: coordinator_fixture.h (FakeClock, in-memory SQLite).
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/coordinator/coordinator_fixture.h"

namespace sluice::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

// ---------------------------------------------------------------------------
// Register

TEST_F(CoordinatorTest, RegisterRejectsMalformedWorkerIdNamingTheField) {
  WorkerInfo w;
  w.worker_id = "w1;rm -rf";
  absl::Status st = Err(coord_.Register(w));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("worker_id"));
  EXPECT_THAT(Ok(store_.ListWorkers()), IsEmpty());
}

TEST_F(CoordinatorTest, RegisterRejectsBadSlotsAndLabels) {
  WorkerInfo w;
  w.worker_id = "w1";
  w.slots = 0;
  absl::Status st = Err(coord_.Register(w));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("slots"));
  w.slots = 1;
  w.labels = {"gpu", "has space"};
  st = Err(coord_.Register(w));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("label"));
}

TEST_F(CoordinatorTest, RegisterRecordsWorkerAndReturnsTimings) {
  WorkerInfo w;
  w.worker_id = "w1";
  w.host = "box";
  w.slots = 3;
  w.labels = {"gpu"};
  RegisterResult r = Ok(coord_.Register(w));
  EXPECT_EQ(r.lease_ttl_ms, kTtl);
  EXPECT_EQ(r.heartbeat_interval_ms, 10'000);
  EXPECT_EQ(r.max_lease_wait_ms, 30'000);
  std::vector<WorkerInfo> workers = Ok(store_.ListWorkers());
  ASSERT_EQ(workers.size(), 1u);
  EXPECT_EQ(workers[0].host, "box");
  EXPECT_EQ(workers[0].slots, 3);
  EXPECT_EQ(workers[0].last_seen_ms, clock_.NowMs());
}

// ---------------------------------------------------------------------------
// Lease

TEST_F(CoordinatorTest, LeaseBeforeRegisterIsFailedPrecondition) {
  Import({Spec("r1", "p1")});
  Start();
  absl::Status st = Err(coord_.Lease("w1", "req-1", 1, 0));
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(st.message()), HasSubstr("Register"));
  EXPECT_EQ(Phase("r1", "p1").state, PhaseState::kPending);
}

TEST_F(CoordinatorTest, LeaseWithoutSessionReturnsNothingAtOnce) {
  RegisterWorker("w1");
  Import({Spec("r1", "p1")});
  const int64_t before = clock_.NowMs();
  LeaseResult r = Ok(coord_.Lease("w1", "req-1", 4, /*wait_ms=*/0));
  EXPECT_THAT(r.leases, IsEmpty());
  EXPECT_FALSE(r.session_active);
  EXPECT_EQ(clock_.NowMs(), before);
  EXPECT_EQ(Phase("r1", "p1").state, PhaseState::kPending);
}

TEST_F(CoordinatorTest, LeaseRejectsBadArguments) {
  RegisterWorker("w1");
  EXPECT_EQ(Err(coord_.Lease("w1", "req", 0, 0)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Err(coord_.Lease("w1", "req", Config().max_phases_per_lease + 1, 0)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Err(coord_.Lease("w1", "req", 1, -1)).code(), absl::StatusCode::kInvalidArgument);
  absl::Status st = Err(coord_.Lease("w1", "bad request", 1, 0));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("request_id"));
}

TEST_F(CoordinatorTest, RetriedLeaseRequestGetsTheSameGrantsAndLeasesNoMore) {
  RegisterWorker("w1");
  RegisterWorker("w2");
  Import({Spec("r1", "p1"), Spec("r1", "p2", 1), Spec("r1", "p3", 2), Spec("r1", "p4", 3)});
  Start();
  LeaseResult first = LeaseNow("w1", 2, "req-7");
  ASSERT_EQ(first.leases.size(), 2u);
  LeaseResult retry = LeaseNow("w1", 2, "req-7");
  ASSERT_EQ(retry.leases.size(), 2u);
  EXPECT_TRUE(retry.session_active);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(retry.leases[i].lease_id, first.leases[i].lease_id);
    EXPECT_EQ(retry.leases[i].epoch, first.leases[i].epoch);
    EXPECT_EQ(retry.leases[i].phase_id, first.leases[i].phase_id);
  }
  EXPECT_EQ(Ok(store_.CountPhases()).leased, 2);

  // The request id is the worker's own: another worker using it gets new work.
  LeaseResult other = LeaseNow("w2", 1, "req-7");
  ASSERT_EQ(other.leases.size(), 1u);
  EXPECT_NE(other.leases[0].lease_id, first.leases[0].lease_id);
  EXPECT_EQ(Ok(store_.CountPhases()).leased, 3);
}

TEST_F(CoordinatorTest, BatchSizeLimitsGrantsCountingLeasesInFlight) {
  RegisterWorker("w1");
  std::vector<PhaseSpec> phases;
  for (int i = 0; i < 10; ++i) phases.push_back(Spec("r1", absl::StrCat("p", i), i));
  Import(phases);
  SessionSettings settings;
  settings.batch_size = 3;
  Start(settings);

  LeaseResult r = LeaseNow("w1", 5);
  ASSERT_EQ(r.leases.size(), 3u);
  LeaseResult more = LeaseNow("w1", 5);
  EXPECT_THAT(more.leases, IsEmpty());
  EXPECT_TRUE(more.session_active);

  // A finished attempt still counts: 1 finished + 2 in flight = 3.
  ReportNow(r.leases[0], Outcome::kSucceeded);
  EXPECT_THAT(LeaseNow("w1", 5).leases, IsEmpty());
  // A cancelled attempt does not count toward the batch: its room reopens.
  ReportNow(r.leases[1], Outcome::kCancelled);
  EXPECT_EQ(LeaseNow("w1", 5).leases.size(), 1u);
  EXPECT_EQ(Ok(store_.CountPhases()).leased, 2);
}

TEST_F(CoordinatorTest, RunFiltersDecideWhatIsLeased) {
  RegisterWorker("w1");
  Import(
      {Spec("keep-a", "a1"), Spec("keep-a", "a2", 1), Spec("skip-b", "b1"), Spec("other", "o1")});
  SessionSettings settings;
  settings.run_ids = {"keep-a", "skip-b"};
  settings.skip_run_prefixes = {"skip-"};
  Start(settings);
  LeaseResult r = LeaseNow("w1", 10);
  std::set<std::string> runs;
  for (const LeaseGrant& g : r.leases) runs.insert(g.run_id);
  EXPECT_EQ(r.leases.size(), 2u);
  EXPECT_THAT(runs, ElementsAre("keep-a"));
  EXPECT_EQ(Phase("skip-b", "b1").state, PhaseState::kPending);
  EXPECT_EQ(Phase("other", "o1").state, PhaseState::kPending);
}

TEST_F(CoordinatorTest, OneLeaseSamplesEveryRunBeforeRevisitingOne) {
  RegisterWorker("w1");
  Import({Spec("ra", "a1"), Spec("ra", "a2", 1), Spec("rb", "b1"), Spec("rb", "b2", 1),
          Spec("rc", "c1"), Spec("rc", "c2", 1)});
  Start();
  LeaseResult r = LeaseNow("w1", 3);
  std::vector<std::string> runs;
  for (const LeaseGrant& g : r.leases) runs.push_back(g.run_id);
  EXPECT_THAT(runs, UnorderedElementsAre("ra", "rb", "rc"));
}

TEST_F(CoordinatorTest, LeaseHonoursTheLabelsTheWorkerRegistered) {
  RegisterWorker("plain");
  RegisterWorker("gpu-box", {"gpu"});
  Import({Spec("r1", "needs-gpu", 0, {"gpu"})});
  Start();
  EXPECT_THAT(LeaseNow("plain").leases, IsEmpty());
  LeaseGrant g = LeaseOne("gpu-box");
  EXPECT_EQ(g.phase_id, "needs-gpu");
  EXPECT_EQ(g.worker_id, "gpu-box");
  EXPECT_EQ(g.session_id, "s1");
  EXPECT_EQ(g.attempt, 1);
}

// Regression: a store error in the middle of a multi-phase Lease threw away
// the grants already committed, stranding those phases as leased until their
// leases expired (each then counted as a lost attempt against the requeue
// budget), and a retry of the request could not recover them.
TEST_F(CoordinatorTest, StoreErrorMidBatchStillHandsOutTheGrantsAlreadyMade) {
  RegisterWorker("w1");
  Import({Spec("r1", "p1"), Spec("r1", "p2", 1), Spec("r1", "p3", 2)});
  Start();
  store_.FailNthMutatingCall(2);  // the second LeaseNextInRun
  LeaseResult r = Ok(coord_.Lease("w1", "req-1", 3, 0));
  ASSERT_EQ(r.leases.size(), 1u);
  EXPECT_THAT(store_.failed_calls(), ElementsAre("LeaseNextInRun"));
  std::vector<LeaseGrant> active = Ok(store_.ListActiveLeases());
  ASSERT_EQ(active.size(), 1u);
  EXPECT_EQ(active[0].lease_id, r.leases[0].lease_id);
  // The retried request gets the same grant rather than more work.
  LeaseResult retry = Ok(coord_.Lease("w1", "req-1", 3, 0));
  ASSERT_EQ(retry.leases.size(), 1u);
  EXPECT_EQ(retry.leases[0].lease_id, r.leases[0].lease_id);
}

TEST_F(CoordinatorTest, StoreErrorOnTheFirstLeaseIsUnavailableAndLeasesNothing) {
  RegisterWorker("w1");
  Import({Spec("r1", "p1")});
  Start();
  store_.FailNthMutatingCall(1);
  EXPECT_EQ(Err(coord_.Lease("w1", "req-1", 3, 0)).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Ok(store_.CountPhases()).leased, 0);
  EXPECT_EQ(Ok(coord_.Lease("w1", "req-1", 3, 0)).leases.size(), 1u);
}

// ---------------------------------------------------------------------------
// Heartbeat and expiry

TEST_F(CoordinatorTest, HeartbeatWithoutLeasesWritesNothing) {
  // Bug (#12): an idle worker's heartbeat (no leases) still ran a store
  // transaction and read the session: an idle fleet cost the store work.
  RegisterWorker("w1");
  store_.FailAllMutatingCalls();
  EXPECT_THAT(Ok(coord_.Heartbeat("w1", {})), IsEmpty());
  store_.Heal();
}

TEST_F(CoordinatorTest, HeartbeatRenewsSoTickPastTheFirstTtlKeepsTheLease) {
  RegisterWorker("w1");
  Import({Spec("r1", "p1")});
  Start();
  LeaseGrant g = LeaseOne();
  clock_.AdvanceMs(kTtl - 10'000);
  EXPECT_THAT(Ok(coord_.Heartbeat("w1", {g.lease_id})), IsEmpty());
  clock_.AdvanceMs(20'000);  // past the original expiry, inside the renewed one
  Ok(coord_.Tick());
  PhaseRecord p = Phase("r1", "p1");
  EXPECT_EQ(p.state, PhaseState::kLeased);
  EXPECT_EQ(p.current_lease_id, g.lease_id);
  EXPECT_EQ(p.requeues, 0);
  EXPECT_EQ(ReportNow(g, Outcome::kSucceeded).result.disposition, ReportDisposition::kAccepted);
}

TEST_F(CoordinatorTest, WithoutHeartbeatTickExpiresTheLeaseAndThePhaseIsLeasedAgain) {
  RegisterWorker("w1");
  RegisterWorker("w2");
  Import({Spec("r1", "p1")});
  Start();
  LeaseGrant g = LeaseOne("w1");
  clock_.AdvanceMs(kTtl - 1);
  Ok(coord_.Tick());
  EXPECT_EQ(Phase("r1", "p1").state, PhaseState::kLeased);
  clock_.AdvanceMs(1);
  Ok(coord_.Tick());
  PhaseRecord p = Phase("r1", "p1");
  EXPECT_EQ(p.state, PhaseState::kPending);
  EXPECT_EQ(p.requeues, 1);

  LeaseGrant again = LeaseOne("w2");
  EXPECT_EQ(again.phase_id, "p1");
  EXPECT_EQ(again.attempt, 2);
  EXPECT_GT(again.epoch, g.epoch);
  // The first worker's heartbeat and report now find the lease gone.
  EXPECT_THAT(Ok(coord_.Heartbeat("w1", {g.lease_id})), ElementsAre(g.lease_id));
  EXPECT_EQ(ReportNow(g, Outcome::kSucceeded).result.disposition, ReportDisposition::kLate);
  std::vector<AttemptRecord> attempts = Ok(store_.ListAttempts("s1"));
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0].outcome, Outcome::kLost);
}

TEST_F(CoordinatorTest, ExpiryBeyondTheSessionRequeueBudgetFailsThePhase) {
  RegisterWorker("w1");
  Import({Spec("r1", "p1")});
  SessionSettings settings;
  settings.max_requeues_per_phase = 0;
  Start(settings);
  LeaseOne();
  clock_.AdvanceMs(kTtl);
  Ok(coord_.Tick());
  PhaseRecord p = Phase("r1", "p1");
  EXPECT_EQ(p.state, PhaseState::kFailed);
  EXPECT_EQ(p.final_outcome, Outcome::kLost);
}

TEST_F(CoordinatorTest, HeartbeatAfterSessionStopCancelsEveryLease) {
  RegisterWorker("w1");
  Import({Spec("r1", "p1"), Spec("r1", "p2", 1)});
  Start();
  LeaseResult r = LeaseNow("w1", 2);
  ASSERT_EQ(r.leases.size(), 2u);
  EXPECT_THAT(Ok(coord_.Heartbeat("w1", {r.leases[0].lease_id, r.leases[1].lease_id})), IsEmpty());
  Ok(coord_.StopSession("", "operator said so"));
  EXPECT_THAT(Ok(coord_.Heartbeat("w1", {r.leases[0].lease_id, r.leases[1].lease_id})),
              UnorderedElementsAre(r.leases[0].lease_id, r.leases[1].lease_id));
  // Still renewed, so the cancellation can be reported instead of lost.
  clock_.AdvanceMs(kTtl - 1);
  Ok(coord_.Heartbeat("w1", {r.leases[0].lease_id}));
  clock_.AdvanceMs(2);
  Ok(coord_.Tick());
  EXPECT_EQ(ReportNow(r.leases[0], Outcome::kCancelled).result.disposition,
            ReportDisposition::kAccepted);
  EXPECT_EQ(Phase("r1", "p1").requeues, 1);
  EXPECT_EQ(Phase("r1", "p1").state, PhaseState::kPending);
}

TEST_F(CoordinatorTest, HeartbeatRejectsMalformedIds) {
  EXPECT_EQ(Err(coord_.Heartbeat("w 1", {})).code(), absl::StatusCode::kInvalidArgument);
  absl::Status st = Err(coord_.Heartbeat("w1", {"ok", "bad/id"}));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("lease_id"));
}

TEST_F(CoordinatorTest, HeartbeatWithMoreLeaseIdsThanTheBoundIsRefusedWithTheLimit) {
  // Bug (#14 item 8): one heartbeat could carry ~800k lease ids (a whole
  // gRPC message of them) and the coordinator renewed them all in one store
  // call; a worker holds one lease per slot.
  RegisterWorker("w1");
  const size_t limit = Config().max_heartbeat_lease_ids;
  ASSERT_EQ(limit, 4096u);
  std::vector<std::string> ids;
  for (size_t i = 0; i <= limit; ++i) ids.push_back(absl::StrCat("L", i));
  absl::Status st = Err(coord_.Heartbeat("w1", ids));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("at most 4096"));
  ids.pop_back();  // exactly the bound: renewed (unknown ids come back to cancel)
  EXPECT_EQ(Ok(coord_.Heartbeat("w1", ids)).size(), limit);
}

TEST_F(CoordinatorTest, WorkersUnseenForTheForgetTimeAreForgottenBusyAndCallingOnesKept) {
  // Bug (#14 item 8): every worker id that ever registered stayed in the
  // store's worker list (and in status, /metrics, the web view) forever.
  CoordinatorConfig config = Config();
  config.forget_workers_after_ms = 10 * 60'000;
  Coordinator coord(store_, clock_, config);
  for (const char* id : {"gone", "busy", "idle"}) {
    WorkerInfo w;
    w.worker_id = id;
    w.host = "h";
    w.slots = 1;
    Ok(coord.Register(w));
  }
  Import({Spec("r1", "p1")});
  Start();
  LeaseResult leased = Ok(coord.Lease("busy", "req-1", 1, 0));
  ASSERT_EQ(leased.leases.size(), 1u);
  const std::string lease_id = leased.leases[0].lease_id;
  for (int i = 0; i < 90; ++i) {  // 15 minutes: "busy" heartbeats, "idle" long-polls
    clock_.AdvanceMs(10'000);
    Ok(coord.Heartbeat("busy", {lease_id}));
    Ok(coord.Lease("idle", absl::StrCat("poll-", i), 1, 0));
    Ok(coord.Tick());
  }
  std::vector<std::string> ids;
  for (const WorkerInfo& w : Ok(store_.ListWorkers())) ids.push_back(w.worker_id);
  EXPECT_THAT(ids, ElementsAre("busy", "idle"));
  EXPECT_EQ(coord.contacts().size(), 2u);
}
TEST_F(CoordinatorTest, ALeaseNamingAReportOnItsWayGrantsOnlyOnceItLandedAndSeesItsOutcome) {
  // Issue #12: a worker frees its slot before the report of a failure lands
  // and names that lease in its next lease call. Nothing may be granted
  // before the report lands, or a run its failure blocks gets another phase.
  RegisterWorker("w1");
  std::vector<PhaseSpec> phases = {Spec("r1", "p1"), Spec("r1", "p2", 1), Spec("r1", "p3", 2)};
  for (PhaseSpec& p : phases) p.priority = 10;  // r1 first
  phases.push_back(Spec("r2", "q1"));
  Import(phases);
  SessionSettings settings;
  settings.max_fingerprint_repeats = 2;  // blocks r1 once two of its phases failed alike
  settings.max_attempts_per_phase = 1;
  Start(settings);
  const std::string error = "ImportError: No module named 'foo'";
  const LeaseGrant first = LeaseOne();
  ASSERT_EQ(first.run_id, "r1");
  ReportNow(first, Outcome::kFailed, 0, 1'000, error);
  const LeaseGrant second = LeaseOne();
  ASSERT_EQ(second.run_id, "r1");

  EXPECT_THAT(Ok(coord_.Lease("w1", "req-a", 1, 0, {second.lease_id})).leases, IsEmpty())
      << "granted while the named report was on its way";
  ReportNow(second, Outcome::kFailed, 0, 1'000, error);
  const LeaseResult after = Ok(coord_.Lease("w1", "req-b", 1, 0, {second.lease_id}));
  ASSERT_EQ(after.leases.size(), 1u) << "the report landed: the lease must go on";
  EXPECT_EQ(after.leases[0].run_id, "r2") << "r1 is blocked by the failure it waited for";
}

TEST_F(CoordinatorTest, ALeaseNamingTooManyOrMalformedReportsIsInvalidArgument) {
  RegisterWorker("w1");
  Import({Spec("r1", "p1")});
  Start();
  const absl::Status bad = Err(coord_.Lease("w1", "req-a", 1, 0, {"bad id\n"}));
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.message()), HasSubstr("after_lease_ids"));
  std::vector<std::string> many(10'000, "L-1");
  EXPECT_EQ(Err(coord_.Lease("w1", "req-b", 1, 0, many)).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sluice::testing
