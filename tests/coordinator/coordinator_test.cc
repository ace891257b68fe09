// Coordinator logic over a real in-memory SqliteStateStore and a FakeClock:
// no sleeps, every Lease call uses wait_ms = 0 so it returns at once.
#include "coordinator/coordinator.h"

#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/fingerprint.h"
#include "coordinator/insight/session_report.h"
#include "coordinator/store/sqlite/sqlite_state_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/failing_state_store.h"

namespace sluice {
namespace {

using ::sluice::testing::FailingStateStore;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

template <typename T>
T Ok(absl::StatusOr<T> result) {
  if (!result.ok()) throw std::runtime_error(result.status().ToString());
  return *std::move(result);
}
void Ok(const absl::Status& status) {
  if (!status.ok()) throw std::runtime_error(status.ToString());
}

std::unique_ptr<StateStore> MemoryStore() {
  absl::StatusOr<std::unique_ptr<SqliteStateStore>> store = SqliteStateStore::Open(":memory:");
  if (!store.ok()) throw std::runtime_error(store.status().ToString());
  return *std::move(store);
}

PhaseSpec Spec(const std::string& run, const std::string& phase, int64_t index = 0,
               std::vector<std::string> labels = {}) {
  PhaseSpec s;
  s.run_id = run;
  s.phase_id = phase;
  s.phase_index = index;
  s.labels = std::move(labels);
  return s;
}

// The status code and message of a call that must fail.
template <typename T>
absl::Status Err(const absl::StatusOr<T>& result) {
  EXPECT_FALSE(result.ok()) << "expected an error";
  return result.status();
}

class CoordinatorTest : public ::testing::Test {
 protected:
  static constexpr int64_t kTtl = 30'000;

  CoordinatorTest() : store_(MemoryStore()), coord_(store_, clock_, Config()) {}

  static CoordinatorConfig Config() {
    CoordinatorConfig c;
    c.lease_ttl_ms = kTtl;
    c.heartbeat_interval_ms = 10'000;
    c.max_lease_wait_ms = 30'000;
    return c;
  }

  void RegisterWorker(const std::string& id, std::vector<std::string> labels = {}) {
    WorkerInfo w;
    w.worker_id = id;
    w.host = "host-" + id;
    w.slots = 2;
    w.labels = std::move(labels);
    w.version = "test";
    Ok(coord_.Register(w));
  }

  void Import(const std::vector<PhaseSpec>& phases) { Ok(coord_.ImportBacklog(phases)); }

  SessionRecord Start(SessionSettings settings = {}, const std::string& id = "s1") {
    return Ok(coord_.StartSession(settings, id));
  }

  // A fresh request id each call unless one is given.
  LeaseResult LeaseNow(const std::string& worker, int32_t max_phases = 1,
                       std::string request_id = "") {
    if (request_id.empty()) request_id = absl::StrCat("req-", ++next_request_);
    return Ok(coord_.Lease(worker, request_id, max_phases, /*wait_ms=*/0));
  }

  LeaseGrant LeaseOne(const std::string& worker = "w1") {
    LeaseResult r = LeaseNow(worker);
    if (r.leases.size() != 1) throw std::runtime_error("expected exactly one grant");
    return r.leases[0];
  }

  static AttemptReport ReportOf(const LeaseGrant& g, Outcome outcome, int64_t events = 0,
                                int64_t duration_ms = 1'000, const std::string& error = "") {
    AttemptReport r;
    r.lease_id = g.lease_id;
    r.epoch = g.epoch;
    r.worker_id = g.worker_id;
    r.outcome = outcome;
    r.exit_code = outcome == Outcome::kSucceeded ? 0 : (outcome == Outcome::kFailed ? 1 : -1);
    r.signal = outcome == Outcome::kTimedOut ? 15 : 0;
    r.duration_ms = duration_ms;
    r.telemetry_events = events;
    r.error_text = error;
    return r;
  }

  ReportAnswer ReportNow(const LeaseGrant& g, Outcome outcome, int64_t events = 0,
                         int64_t duration_ms = 1'000, const std::string& error = "") {
    return Ok(coord_.Report(ReportOf(g, outcome, events, duration_ms, error)));
  }

  PhaseRecord Phase(const std::string& run, const std::string& phase) {
    std::optional<PhaseRecord> p = Ok(store_.GetPhase(PhaseKey{run, phase}));
    if (!p) throw std::runtime_error("no phase " + run + "/" + phase);
    return *p;
  }

  SessionRecord Session(const std::string& id = "s1") {
    std::optional<SessionRecord> s = Ok(store_.GetSession(id));
    if (!s) throw std::runtime_error("no session " + id);
    return *s;
  }

  FakeClock clock_;
  FailingStateStore store_;  // unarmed unless a test arms it
  Coordinator coord_;
  int next_request_ = 0;
};

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

// ---------------------------------------------------------------------------
// Report

TEST_F(CoordinatorTest, ReportRejectsInvalidReportsAndRecordsNothing) {
  RegisterWorker("w1");
  Import({Spec("r1", "p1")});
  Start();
  LeaseGrant g = LeaseOne();

  AttemptReport lost = ReportOf(g, Outcome::kLost);
  absl::Status st = Err(coord_.Report(lost));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("lost"));

  AttemptReport negative = ReportOf(g, Outcome::kSucceeded, -1);
  st = Err(coord_.Report(negative));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("telemetry_events"));

  AttemptReport typed = ReportOf(g, Outcome::kSucceeded, 3);
  typed.telemetry_by_type = {{"a", 2}, {"b", 2}};
  EXPECT_EQ(Err(coord_.Report(typed)).code(), absl::StatusCode::kInvalidArgument);

  AttemptReport duration = ReportOf(g, Outcome::kSucceeded, 0, -5);
  EXPECT_EQ(Err(coord_.Report(duration)).code(), absl::StatusCode::kInvalidArgument);

  AttemptReport big_out = ReportOf(g, Outcome::kSucceeded);
  big_out.stdout_tail = std::string(Config().max_tail_bytes + 1, 'x');
  st = Err(coord_.Report(big_out));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("stdout_tail"));

  AttemptReport big_err = ReportOf(g, Outcome::kFailed);
  big_err.stderr_tail = std::string(Config().max_tail_bytes + 1, 'x');
  st = Err(coord_.Report(big_err));
  EXPECT_THAT(std::string(st.message()), HasSubstr("stderr_tail"));

  AttemptReport big_text = ReportOf(g, Outcome::kFailed);
  big_text.error_text = std::string(Config().max_error_text_bytes + 1, 'x');
  st = Err(coord_.Report(big_text));
  EXPECT_THAT(std::string(st.message()), HasSubstr("error_text"));

  AttemptReport bad_worker = ReportOf(g, Outcome::kSucceeded);
  bad_worker.worker_id = "w1;x";
  EXPECT_EQ(Err(coord_.Report(bad_worker)).code(), absl::StatusCode::kInvalidArgument);

  EXPECT_THAT(Ok(store_.ListAttempts("")), IsEmpty());
  EXPECT_EQ(Phase("r1", "p1").state, PhaseState::kLeased);
  // A tail of exactly the limit is fine.
  AttemptReport at_limit = ReportOf(g, Outcome::kSucceeded);
  at_limit.stdout_tail = std::string(Config().max_tail_bytes, 'x');
  EXPECT_EQ(Ok(coord_.Report(at_limit)).result.disposition, ReportDisposition::kAccepted);
}

TEST_F(CoordinatorTest, ReportReturnsAndStoresTheFingerprint) {
  RegisterWorker("w1");
  Import({Spec("r1", "p1")});
  Start();
  LeaseGrant g = LeaseOne();
  const std::string error = "ImportError: No module named 'foo' at /srv/app/main.py line 12";
  ReportAnswer answer = ReportNow(g, Outcome::kFailed, 0, 100, error);
  const Fingerprint expected = ComputeFingerprint(Outcome::kFailed, 1, 0, error);
  EXPECT_EQ(answer.fingerprint, expected.key);
  EXPECT_THAT(answer.fingerprint, ::testing::StartsWith("failed|exit:1|"));
  EXPECT_EQ(answer.result.disposition, ReportDisposition::kAccepted);
  EXPECT_EQ(answer.result.phase_state, PhaseState::kPending);
  std::vector<AttemptRecord> attempts = Ok(store_.ListAttempts("s1"));
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0].fingerprint, expected.key);
  EXPECT_EQ(attempts[0].error_text, error);
}

TEST_F(CoordinatorTest, ReportUsesTheSessionsAttemptBudget) {
  RegisterWorker("w1");
  Import({Spec("r1", "p1")});
  SessionSettings settings;
  settings.max_attempts_per_phase = 1;
  Start(settings);
  EXPECT_EQ(ReportNow(LeaseOne(), Outcome::kFailed).result.phase_state, PhaseState::kFailed);
  EXPECT_EQ(Phase("r1", "p1").final_outcome, Outcome::kFailed);
}

TEST_F(CoordinatorTest, TransientErrorInAProductiveRunDoesNotBlockIt) {
  // Issue #13: "read operation timed out" fed the repeat rule and blocked two
  // productive runs whole. The built-in transient set now recognises it with
  // no --retry-on: the run backs off, is leased again, and every phase ends.
  RegisterWorker("w1");
  Import({Spec("r1", "p1"), Spec("r1", "p2"), Spec("r1", "p3")});
  SessionSettings settings;
  settings.max_fingerprint_repeats = 1;  // one counted repeat would block r1
  settings.max_attempts_per_phase = 1;   // one counted failure would fail a phase
  Start(settings);
  int transient = 0;
  for (int i = 0; i < 20; ++i) {
    LeaseResult r = LeaseNow("w1");
    if (r.leases.empty()) {
      clock_.AdvanceMs(10'000);  // past the backoff
      continue;
    }
    if (transient < 2) {
      ++transient;
      ReportNow(r.leases[0], Outcome::kFailed, 0, 1'000,
                "TimeoutError: The read operation timed out (request id: req_3f2a)");
    } else {
      ReportNow(r.leases[0], Outcome::kSucceeded, 2);
    }
  }
  EXPECT_EQ(transient, 2);
  for (const char* p : {"p1", "p2", "p3"}) {
    EXPECT_EQ(Phase("r1", p).state, PhaseState::kSucceeded) << p;
  }
}

TEST_F(CoordinatorTest, FailedReportLeavesStoreUnchangedAndRetryCountsOnce) {
  RegisterWorker("w1");
  Import({Spec("r1", "p1"), Spec("r1", "p2", 1)});
  Start();
  LeaseGrant g = LeaseOne();
  const std::vector<RunStats> stats_before = Ok(store_.ListRunStats());

  store_.FailNthMutatingCall(1);
  absl::StatusOr<ReportAnswer> failed = coord_.Report(ReportOf(g, Outcome::kSucceeded, 7, 500));
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(store_.failed_calls(), ElementsAre("RecordReport"));

  PhaseRecord p = Phase("r1", "p1");
  EXPECT_EQ(p.state, PhaseState::kLeased);
  EXPECT_EQ(p.current_lease_id, g.lease_id);
  EXPECT_EQ(p.attempts, 0);
  EXPECT_EQ(p.telemetry_events, 0);
  EXPECT_THAT(Ok(store_.ListAttempts("")), IsEmpty());
  EXPECT_EQ(Ok(store_.ListActiveLeases()).size(), 1u);
  const std::vector<RunStats> stats_mid = Ok(store_.ListRunStats());
  ASSERT_EQ(stats_mid.size(), 1u);
  EXPECT_EQ(stats_mid[0].attempts, stats_before[0].attempts);
  EXPECT_EQ(stats_mid[0].telemetry_events, stats_before[0].telemetry_events);
  EXPECT_EQ(stats_mid[0].leased, 1);

  // The worker retries: recorded once; a further retry is a duplicate.
  ReportAnswer retried = Ok(coord_.Report(ReportOf(g, Outcome::kSucceeded, 7, 500)));
  EXPECT_EQ(retried.result.disposition, ReportDisposition::kAccepted);
  EXPECT_EQ(retried.result.phase_state, PhaseState::kSucceeded);
  ReportAnswer again = Ok(coord_.Report(ReportOf(g, Outcome::kSucceeded, 7, 500)));
  EXPECT_EQ(again.result.disposition, ReportDisposition::kDuplicate);
  EXPECT_EQ(Ok(store_.ListAttempts("")).size(), 1u);
  const std::vector<RunStats> stats_after = Ok(store_.ListRunStats());
  EXPECT_EQ(stats_after[0].attempts, 1);
  EXPECT_EQ(stats_after[0].successes, 1);
  EXPECT_EQ(stats_after[0].telemetry_events, 7);
  EXPECT_EQ(Ok(store_.CountSessionAttempts("s1")), 1);
}

// ---------------------------------------------------------------------------
// Sessions

TEST_F(CoordinatorTest, StartSessionRejectsBadSettingsNamingTheSetting) {
  struct Case {
    std::string field;
    SessionSettings settings;
  };
  std::vector<Case> cases;
  cases.push_back({"batch_size", {}});
  cases.back().settings.batch_size = -1;
  cases.push_back({"phase_timeout_seconds", {}});
  cases.back().settings.phase_timeout_seconds = 0;
  cases.push_back({"max_total_minutes", {}});
  cases.back().settings.max_total_minutes = -1;
  cases.push_back({"max_attempts_per_phase", {}});
  cases.back().settings.max_attempts_per_phase = 0;
  cases.push_back({"max_requeues_per_phase", {}});
  cases.back().settings.max_requeues_per_phase = -1;
  cases.push_back({"run_id", {}});
  cases.back().settings.run_ids = {"ok", "not ok"};
  cases.push_back({"skip_run_prefix", {}});
  cases.back().settings.skip_run_prefixes = {"a/b"};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.field);
    absl::Status st = Err(coord_.StartSession(c.settings, ""));
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(st.message()), HasSubstr(c.field));
  }
  EXPECT_EQ(Err(coord_.StartSession({}, "bad id")).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(Ok(store_.LatestSession()).has_value());
}

TEST_F(CoordinatorTest, StartSessionWhileOneIsActiveIsFailedPrecondition) {
  SessionRecord s = Start({}, "");
  EXPECT_FALSE(s.session_id.empty());
  EXPECT_EQ(s.state, SessionState::kActive);
  EXPECT_EQ(s.started_at_ms, clock_.NowMs());
  EXPECT_EQ(Err(coord_.StartSession({}, "s2")).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Ok(store_.LatestSession())->session_id, s.session_id);
}

TEST_F(CoordinatorTest, StopSessionWithoutAnActiveOneIsFailedPrecondition) {
  EXPECT_EQ(Err(coord_.StopSession("", "")).code(), absl::StatusCode::kFailedPrecondition);
  Start();
  clock_.AdvanceMs(5'000);
  SessionRecord stopped = Ok(coord_.StopSession("", ""));
  EXPECT_EQ(stopped.state, SessionState::kStopped);
  EXPECT_EQ(stopped.ended_at_ms, clock_.NowMs());
  EXPECT_EQ(stopped.end_reason, "stopped by operator");
  EXPECT_EQ(Err(coord_.StopSession("", "")).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Err(coord_.StopSession("s1", "again")).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Session().end_reason, "stopped by operator");
}

TEST_F(CoordinatorTest, StoppedSessionLeasesNothing) {
  RegisterWorker("w1");
  Import({Spec("r1", "p1")});
  Start();
  Ok(coord_.StopSession("s1", "enough"));
  LeaseResult r = LeaseNow("w1");
  EXPECT_THAT(r.leases, IsEmpty());
  EXPECT_FALSE(r.session_active);
  EXPECT_EQ(Session().end_reason, "enough");
}

TEST_F(CoordinatorTest, TickEndsSessionWhenNothingIsLeftToLease) {
  RegisterWorker("w1");
  Import({Spec("r1", "p1"), Spec("r1", "p2", 1)});
  Start();
  LeaseResult r = LeaseNow("w1", 2);
  ASSERT_EQ(r.leases.size(), 2u);
  ReportNow(r.leases[0], Outcome::kSucceeded);
  Ok(coord_.Tick());
  EXPECT_EQ(Session().state, SessionState::kActive);  // a lease is still in flight
  ReportNow(r.leases[1], Outcome::kSucceeded);
  clock_.AdvanceMs(1'000);
  Ok(coord_.Tick());
  SessionRecord s = Session();
  EXPECT_EQ(s.state, SessionState::kFinished);
  EXPECT_EQ(s.end_reason, "nothing left to lease");
  EXPECT_EQ(s.ended_at_ms, clock_.NowMs());
}

TEST_F(CoordinatorTest, TickEndsSessionAtOnceWhenFiltersExcludeEveryRun) {
  Import({Spec("r1", "p1")});
  SessionSettings settings;
  settings.skip_run_prefixes = {"r"};
  Start(settings);
  Ok(coord_.Tick());
  EXPECT_EQ(Session().end_reason, "nothing left to lease");
}

TEST_F(CoordinatorTest, TickEndsSessionWhenBatchSizeIsReached) {
  RegisterWorker("w1");
  Import({Spec("r1", "p1"), Spec("r1", "p2", 1), Spec("r1", "p3", 2)});
  SessionSettings settings;
  settings.batch_size = 2;
  Start(settings);
  LeaseResult r = LeaseNow("w1", 3);
  ASSERT_EQ(r.leases.size(), 2u);
  ReportNow(r.leases[0], Outcome::kFailed);
  Ok(coord_.Tick());
  EXPECT_EQ(Session().state, SessionState::kActive);
  ReportNow(r.leases[1], Outcome::kSucceeded);
  Ok(coord_.Tick());
  EXPECT_EQ(Session().state, SessionState::kFinished);
  EXPECT_EQ(Session().end_reason, "batch_size reached");
  EXPECT_FALSE(LeaseNow("w1").session_active);
}

TEST_F(CoordinatorTest, TickEndsSessionWhenMaxTotalMinutesPass) {
  RegisterWorker("w1");
  Import({Spec("r1", "p1"), Spec("r1", "p2", 1)});
  SessionSettings settings;
  settings.max_total_minutes = 2;
  Start(settings);
  LeaseGrant g = LeaseOne();
  clock_.AdvanceMs(2 * 60'000 - 1);
  Ok(coord_.Heartbeat("w1", {g.lease_id}));
  Ok(coord_.Tick());
  EXPECT_EQ(Session().state, SessionState::kActive);
  clock_.AdvanceMs(1);
  // Past the deadline the session is over for leasing even before Tick.
  LeaseResult late = LeaseNow("w1");
  EXPECT_FALSE(late.session_active);
  EXPECT_THAT(late.leases, IsEmpty());
  EXPECT_THAT(Ok(coord_.Heartbeat("w1", {g.lease_id})), ElementsAre(g.lease_id));
  Ok(coord_.Tick());
  SessionRecord s = Session();
  EXPECT_EQ(s.state, SessionState::kFinished);
  EXPECT_EQ(s.end_reason, "max_total_minutes reached");
  EXPECT_EQ(s.ended_at_ms, clock_.NowMs());
}

TEST_F(CoordinatorTest, StatusReportsCountsWorkersLeasesAndSessionProgress) {
  RegisterWorker("w1");
  RegisterWorker("w2");
  Import({Spec("r1", "p1"), Spec("r1", "p2", 1), Spec("r2", "q1"), Spec("r2", "q2", 1)});
  CoordinatorStatus before = Ok(coord_.Status());
  EXPECT_FALSE(before.session.has_value());
  EXPECT_EQ(before.phases.pending, 4);
  EXPECT_EQ(before.workers.size(), 2u);

  Start();
  LeaseResult a = LeaseNow("w1", 2);
  LeaseResult b = LeaseNow("w2", 1);
  ASSERT_EQ(a.leases.size(), 2u);
  ASSERT_EQ(b.leases.size(), 1u);
  ReportNow(a.leases[0], Outcome::kSucceeded);

  CoordinatorStatus s = Ok(coord_.Status());
  EXPECT_EQ(s.phases.pending, 1);
  EXPECT_EQ(s.phases.leased, 2);
  EXPECT_EQ(s.phases.succeeded, 1);
  EXPECT_EQ(s.active_leases.size(), 2u);
  EXPECT_EQ(s.active_leases_by_worker, (std::map<std::string, int32_t>{{"w1", 1}, {"w2", 1}}));
  ASSERT_TRUE(s.session.has_value());
  EXPECT_EQ(s.session->session_id, "s1");
  EXPECT_EQ(s.session_finished, 1);
  EXPECT_FALSE(s.session_done);

  ReportNow(a.leases[1], Outcome::kSucceeded);
  ReportNow(b.leases[0], Outcome::kFailed);  // pending again (attempt 1 of 2)
  ReportNow(LeaseOne("w1"), Outcome::kSucceeded);
  ReportNow(LeaseOne("w1"), Outcome::kSucceeded);
  s = Ok(coord_.Status());
  EXPECT_EQ(s.phases.succeeded, 4);
  EXPECT_EQ(s.session_finished, 5);
  EXPECT_TRUE(s.session_done);
  EXPECT_THAT(s.active_leases_by_worker, IsEmpty());
}

TEST_F(CoordinatorTest, ImportValidatesEveryPhaseBeforeStoringAny) {
  EXPECT_EQ(Err(coord_.ImportBacklog({})).code(), absl::StatusCode::kInvalidArgument);
  absl::Status st = Err(coord_.ImportBacklog({Spec("r1", "ok"), Spec("r1", "bad id")}));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("phase #2"));
  EXPECT_THAT(std::string(st.message()), HasSubstr("phase_id"));
  EXPECT_EQ(Ok(store_.CountPhases()).total(), 0);
  ImportResult r = Ok(coord_.ImportBacklog({Spec("r1", "ok")}));
  EXPECT_EQ(r.inserted, 1);
}

// ---------------------------------------------------------------------------
// Session report

class SessionReportTest : public CoordinatorTest {
 protected:
  const std::string kImportError = "ImportError: No module named 'foo'";

  // Session "old" finishes one phase; session "s1" then runs five attempts:
  // r1/p1 succeeded (30 events, 60 s), r1/p2 failed (ImportError, 5 events,
  // 30 s), r2/q1 failed (same ImportError, 15 s), r2/q2 timed out (15 s),
  // r2/q3 lost.
  void SetUp() override {
    RegisterWorker("w1");
    Import({Spec("r1", "p1"), Spec("r1", "p2", 1), Spec("r2", "q1"), Spec("r2", "q2", 1),
            Spec("r2", "q3", 2), Spec("r3", "x1")});
    SessionSettings old_settings;
    old_settings.run_ids = {"r3"};
    Start(old_settings, "old");
    ReportNow(LeaseOne(), Outcome::kSucceeded, 1'000, 1'000);
    Ok(coord_.StopSession("old", "done"));

    SessionSettings settings;
    settings.max_attempts_per_phase = 1;
    Start(settings, "s1");
    LeaseResult r = LeaseNow("w1", 5);
    ASSERT_EQ(r.leases.size(), 5u);
    std::map<std::string, LeaseGrant> by_phase;
    for (const LeaseGrant& g : r.leases) by_phase[g.phase_id] = g;
    ASSERT_EQ(by_phase.size(), 5u);
    ReportNow(by_phase["p1"], Outcome::kSucceeded, 30, 60'000);
    ReportNow(by_phase["p2"], Outcome::kFailed, 5, 30'000, kImportError);
    ReportNow(by_phase["q1"], Outcome::kFailed, 0, 15'000, kImportError);
    ReportNow(by_phase["q2"], Outcome::kTimedOut, 0, 15'000, "phase timed out");
    clock_.AdvanceMs(kTtl);
    Ok(coord_.Tick());  // q3 lost
  }
};

TEST_F(SessionReportTest, CountsOutcomesTelemetryAndYieldOfTheSessionOnly) {
  SessionReport r = Ok(BuildSessionReport(store_, "s1"));
  EXPECT_EQ(r.session_id, "s1");
  EXPECT_EQ(r.state, "active");
  EXPECT_EQ(r.attempts, 5);
  EXPECT_EQ(r.outcomes, (std::map<std::string, int64_t>{
                            {"succeeded", 1}, {"failed", 2}, {"timed_out", 1}, {"lost", 1}}));
  EXPECT_EQ(r.telemetry_events, 35);
  EXPECT_EQ(r.run_ms, 120'000);
  // 35 events over 2 minutes of phase run time.
  EXPECT_DOUBLE_EQ(r.yield_per_minute, 17.5);
  EXPECT_DOUBLE_EQ(YieldPerMinute(35, 120'000), 17.5);
  EXPECT_DOUBLE_EQ(YieldPerMinute(35, 0), 0.0);

  EXPECT_EQ(r.phases.pending, 1);  // q3, requeued after the loss
  EXPECT_EQ(r.phases.leased, 0);
  EXPECT_EQ(r.phases.succeeded, 2);  // p1 and the old session's x1
  EXPECT_EQ(r.phases.failed, 3);

  ASSERT_EQ(r.runs.size(), 2u);  // r3 belongs to the old session
  EXPECT_EQ(r.runs[0].run_id, "r1");
  EXPECT_EQ(r.runs[0].attempts, 2);
  EXPECT_EQ(r.runs[0].succeeded, 1);
  EXPECT_EQ(r.runs[0].failed, 1);
  EXPECT_EQ(r.runs[0].timed_out, 0);
  EXPECT_EQ(r.runs[0].telemetry_events, 35);
  EXPECT_EQ(r.runs[0].run_ms, 90'000);
  EXPECT_EQ(r.runs[0].phases.succeeded, 1);
  EXPECT_EQ(r.runs[0].phases.failed, 1);
  EXPECT_EQ(r.runs[1].run_id, "r2");
  EXPECT_EQ(r.runs[1].attempts, 3);
  EXPECT_EQ(r.runs[1].failed, 2);  // failed + timed out; lost is not the phase's failure
  EXPECT_EQ(r.runs[1].timed_out, 1);
  EXPECT_EQ(r.runs[1].phases.pending, 1);
  EXPECT_EQ(r.runs[1].phases.failed, 2);
}

TEST_F(SessionReportTest, GroupsErrorsByFingerprintMostFrequentFirst) {
  SessionReport r = Ok(BuildSessionReport(store_, "s1"));
  ASSERT_EQ(r.top_errors.size(), 3u);  // import error, timeout, lost
  const std::string import_fp = ComputeFingerprint(Outcome::kFailed, 1, 0, kImportError).key;
  EXPECT_EQ(r.top_errors[0].fingerprint, import_fp);
  EXPECT_EQ(r.top_errors[0].fingerprint_id, FingerprintId(import_fp));
  EXPECT_EQ(r.top_errors[0].example_error, kImportError);
  EXPECT_EQ(r.top_errors[0].attempts, 2);
  EXPECT_EQ(r.top_errors[0].runs, 2);
  EXPECT_EQ(r.top_errors[0].run_ms, 45'000);
  EXPECT_EQ(r.top_errors[1].attempts, 1);
  EXPECT_EQ(r.top_errors[2].attempts, 1);
  EXPECT_LT(r.top_errors[1].fingerprint, r.top_errors[2].fingerprint);  // ties by fingerprint
  std::set<std::string> rest = {r.top_errors[1].fingerprint, r.top_errors[2].fingerprint};
  EXPECT_TRUE(rest.contains(ComputeFingerprint(Outcome::kTimedOut, -1, 15, "phase timed out").key));
  EXPECT_TRUE(std::any_of(rest.begin(), rest.end(),
                          [](const std::string& fp) { return fp.starts_with("lost|"); }));
}

TEST_F(SessionReportTest, JsonRoundTripsEveryField) {
  Ok(coord_.StopSession("s1", "enough"));
  SessionReport r = Ok(BuildSessionReport(store_, "s1"));
  SessionReport back = Ok(SessionReportFromJson(SessionReportJson(r)));
  EXPECT_EQ(back.session_id, r.session_id);
  EXPECT_EQ(back.state, "stopped");
  EXPECT_EQ(back.end_reason, "enough");
  EXPECT_EQ(back.started_at_ms, r.started_at_ms);
  EXPECT_EQ(back.ended_at_ms, r.ended_at_ms);
  EXPECT_NE(back.ended_at_ms, 0);
  EXPECT_EQ(back.outcomes, r.outcomes);
  EXPECT_EQ(back.attempts, r.attempts);
  EXPECT_EQ(back.telemetry_events, r.telemetry_events);
  EXPECT_EQ(back.run_ms, r.run_ms);
  EXPECT_DOUBLE_EQ(back.yield_per_minute, r.yield_per_minute);
  EXPECT_EQ(back.phases.pending, r.phases.pending);
  EXPECT_EQ(back.phases.leased, r.phases.leased);
  EXPECT_EQ(back.phases.succeeded, r.phases.succeeded);
  EXPECT_EQ(back.phases.failed, r.phases.failed);
  ASSERT_EQ(back.top_errors.size(), r.top_errors.size());
  for (size_t i = 0; i < r.top_errors.size(); ++i) {
    EXPECT_EQ(back.top_errors[i].fingerprint, r.top_errors[i].fingerprint);
    EXPECT_EQ(back.top_errors[i].fingerprint_id, r.top_errors[i].fingerprint_id);
    EXPECT_EQ(back.top_errors[i].example_error, r.top_errors[i].example_error);
    EXPECT_EQ(back.top_errors[i].attempts, r.top_errors[i].attempts);
    EXPECT_EQ(back.top_errors[i].runs, r.top_errors[i].runs);
    EXPECT_EQ(back.top_errors[i].run_ms, r.top_errors[i].run_ms);
  }
  ASSERT_EQ(back.runs.size(), r.runs.size());
  for (size_t i = 0; i < r.runs.size(); ++i) {
    EXPECT_EQ(back.runs[i].run_id, r.runs[i].run_id);
    EXPECT_EQ(back.runs[i].attempts, r.runs[i].attempts);
    EXPECT_EQ(back.runs[i].succeeded, r.runs[i].succeeded);
    EXPECT_EQ(back.runs[i].failed, r.runs[i].failed);
    EXPECT_EQ(back.runs[i].timed_out, r.runs[i].timed_out);
    EXPECT_EQ(back.runs[i].telemetry_events, r.runs[i].telemetry_events);
    EXPECT_EQ(back.runs[i].run_ms, r.runs[i].run_ms);
    EXPECT_EQ(back.runs[i].phases.pending, r.runs[i].phases.pending);
    EXPECT_EQ(back.runs[i].phases.failed, r.runs[i].phases.failed);
  }
  EXPECT_EQ(SessionReportJson(back), SessionReportJson(r));
  EXPECT_THAT(SessionReportText(r), HasSubstr("yield 17.50 events/min"));
}

TEST_F(SessionReportTest, UnknownSessionIsNotFoundAndBadJsonIsInvalidArgument) {
  EXPECT_EQ(Err(BuildSessionReport(store_, "nope")).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Err(SessionReportFromJson("[1,2]")).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Err(SessionReportFromJson(R"({"session_id":"s"})")).code(),
            absl::StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------
// Telemetry-loss alarm: warn, or pause leasing until an operator resumes.

class TelemetryLossTest : public CoordinatorTest {
 protected:
  void SetUp() override {
    RegisterWorker("w1");
    std::vector<PhaseSpec> specs;
    for (int i = 0; i < 10; ++i) specs.push_back(Spec("r1", absl::StrCat("p", i), i));
    Import(specs);
  }

  // Leases and reports `n` successes with `events` telemetry events each.
  void Succeed(int n, int64_t events) {
    for (int i = 0; i < n; ++i) {
      clock_.AdvanceMs(1'000);
      ReportNow(LeaseOne(), Outcome::kSucceeded, events);
    }
  }

  static SessionSettings Settings(TelemetryLossAction action) {
    SessionSettings s;
    s.on_telemetry_loss = action;
    return s;
  }
};

TEST_F(TelemetryLossTest, PauseStopsLeasingSaysWhyAndResumeContinues) {
  Start(Settings(TelemetryLossAction::kPause));
  const LeaseGrant running = LeaseOne();  // running phases are not touched by a pause
  Succeed(3, 0);                          // phases that emit only with TELEMETRY_DB_ENABLED=1
  Ok(coord_.Tick());

  const CoordinatorStatus status = Ok(coord_.Status());
  ASSERT_TRUE(status.pause.has_value());
  EXPECT_THAT(status.pause->reason, HasSubstr("telemetry loss: telemetry looks lost: 3 of 3"));
  EXPECT_EQ(status.pause->paused_at_ms, clock_.NowMs());
  ASSERT_EQ(status.telemetry_warnings.size(), 1u);
  EXPECT_EQ(status.telemetry_warnings[0].kind, TelemetryWarningKind::kZeroEventPhases);
  EXPECT_EQ(status.phases.pending, 6);

  LeaseResult paused = LeaseNow("w1");
  EXPECT_THAT(paused.leases, IsEmpty());
  EXPECT_TRUE(paused.session_active);  // workers keep polling
  // The running phase still reports and renews.
  EXPECT_THAT(Ok(coord_.Heartbeat("w1", {running.lease_id})), IsEmpty());
  EXPECT_EQ(ReportNow(running, Outcome::kSucceeded, 0).result.disposition,
            ReportDisposition::kAccepted);
  Ok(coord_.Tick());
  EXPECT_THAT(LeaseNow("w1").leases, IsEmpty());

  const LeasingPause ended = Ok(coord_.ResumeLeasing(""));
  EXPECT_EQ(ended.session_id, "s1");
  EXPECT_THAT(ended.reason, HasSubstr("telemetry loss"));
  EXPECT_FALSE(Ok(coord_.Status()).pause.has_value());
  EXPECT_THAT(Ok(coord_.Status()).telemetry_warnings, IsEmpty());
  EXPECT_EQ(LeaseNow("w1").leases.size(), 1u);
  EXPECT_EQ(Err(coord_.ResumeLeasing("")).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(TelemetryLossTest, AfterAResumeOnlyNewAttemptsCanPauseAgain) {
  Start(Settings(TelemetryLossAction::kPause));
  Succeed(3, 0);
  Ok(coord_.Tick());
  Ok(coord_.ResumeLeasing("s1"));
  Ok(coord_.Tick());  // the attempts that fired the alarm are not judged again
  EXPECT_FALSE(Ok(coord_.Status()).pause.has_value());
  Succeed(2, 50);  // fixed: phases emit again
  Ok(coord_.Tick());
  EXPECT_FALSE(Ok(coord_.Status()).pause.has_value());
  EXPECT_THAT(Ok(coord_.Status()).telemetry_warnings, IsEmpty());
  Succeed(3, 0);  // 3 silent of 5 since the resume: lost again
  Ok(coord_.Tick());
  EXPECT_TRUE(Ok(coord_.Status()).pause.has_value());
}

TEST_F(TelemetryLossTest, WarnModeKeepsLeasingAndReportsTheWarning) {
  Start(Settings(TelemetryLossAction::kWarn));
  Succeed(3, 0);
  Ok(coord_.Tick());
  const CoordinatorStatus status = Ok(coord_.Status());
  EXPECT_FALSE(status.pause.has_value());
  ASSERT_EQ(status.telemetry_warnings.size(), 1u);
  EXPECT_EQ(LeaseNow("w1").leases.size(), 1u);
  EXPECT_EQ(Err(coord_.ResumeLeasing("")).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(TelemetryLossTest, HealthyTelemetryNeverPauses) {
  Start(Settings(TelemetryLossAction::kPause));
  Succeed(6, 10);
  Ok(coord_.Tick());
  EXPECT_FALSE(Ok(coord_.Status()).pause.has_value());
  EXPECT_THAT(Ok(coord_.Status()).telemetry_warnings, IsEmpty());
  EXPECT_EQ(LeaseNow("w1").leases.size(), 1u);
}

TEST_F(TelemetryLossTest, PauseIsDurableAcrossACoordinatorRestartAndResumableFromAnother) {
  Start(Settings(TelemetryLossAction::kPause));
  Succeed(3, 0);
  Ok(coord_.Tick());
  ASSERT_TRUE(Ok(coord_.Status()).pause.has_value());

  // A new coordinator on the same store (restart) does not silently resume.
  Coordinator restarted(store_, clock_, Config());
  WorkerInfo w;
  w.worker_id = "w2";
  w.host = "h";
  w.slots = 1;
  Ok(restarted.Register(w));
  EXPECT_THAT(Ok(restarted.Lease("w2", "q1", 1, 0)).leases, IsEmpty());
  ASSERT_TRUE(Ok(restarted.Status()).pause.has_value());

  // An operator resumes through another process (`sluice resume --store`);
  // the running coordinator sees it at its next tick.
  Coordinator operator_side(store_, clock_, Config());
  Ok(operator_side.ResumeLeasing(""));
  Ok(coord_.Tick());
  EXPECT_EQ(LeaseNow("w1").leases.size(), 1u);
}

TEST_F(TelemetryLossTest, ResumeRejectsBadOrInactiveSessions) {
  EXPECT_EQ(Err(coord_.ResumeLeasing("")).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Err(coord_.ResumeLeasing("bad id!")).code(), absl::StatusCode::kInvalidArgument);
  Start(Settings(TelemetryLossAction::kPause));
  EXPECT_EQ(Err(coord_.ResumeLeasing("nope")).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(TelemetryLossTest, OutcomeTotalsCountEveryOutcomeIncludingLost) {
  Start();
  ReportNow(LeaseOne(), Outcome::kSucceeded, 1);
  ReportNow(LeaseOne(), Outcome::kFailed);
  ReportNow(LeaseOne(), Outcome::kTimedOut);
  LeaseOne();  // never reported: lost once the TTL passes
  clock_.AdvanceMs(kTtl + 1);
  Ok(coord_.Tick());
  std::map<Outcome, int64_t> totals = Ok(coord_.OutcomeTotals());
  EXPECT_EQ(totals[Outcome::kSucceeded], 1);
  EXPECT_EQ(totals[Outcome::kFailed], 1);
  EXPECT_EQ(totals[Outcome::kTimedOut], 1);
  EXPECT_EQ(totals[Outcome::kLost], 1);
  EXPECT_EQ(totals[Outcome::kKilled], 0);
  EXPECT_EQ(totals[Outcome::kCancelled], 0);
  // A restarted coordinator counts the same from the store's history.
  Coordinator restarted(store_, clock_, Config());
  EXPECT_EQ(Ok(restarted.OutcomeTotals()), totals);
}

}  // namespace
}  // namespace sluice
