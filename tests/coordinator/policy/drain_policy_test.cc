// The drain controller's rules, over a real in-memory SqliteStateStore and a
// FakeClock (no sleeps; every Lease uses wait_ms = 0). Numbered scenarios
// follow issue "Drain policy": 4 attempts per phase across sessions, 5
// timeouts per run, 6 session deadline, 7 memory across sessions, 8 dry-run
// equals the leased order, 9 every run sampled once first.
#include <algorithm>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "coordinator/coordinator.h"
#include "coordinator/policy/failure_policy.h"
#include "coordinator/store/sqlite/sqlite_state_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace sluice {
namespace {

using ::sluice::testing::Ok;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

PhaseSpec Spec(const std::string& run, const std::string& phase, int64_t index = 0) {
  PhaseSpec s;
  s.run_id = run;
  s.phase_id = phase;
  s.phase_index = index;
  return s;
}

class DrainPolicyTest : public ::testing::Test {
 protected:
  DrainPolicyTest() { Reopen(); }

  // A new Coordinator over the same store: what a restart or a new session
  // on another coordinator sees.
  void Reopen() {
    coord_.reset();
    if (!store_) store_ = Ok(SqliteStateStore::Open(":memory:"));
    coord_ = std::make_unique<Coordinator>(*store_, clock_);
    WorkerInfo w;
    w.worker_id = "w1";
    w.host = "h";
    w.slots = 1;
    if (!coord_->Register(w).ok()) throw std::runtime_error("register");
  }

  std::vector<LeaseGrant> Lease(int n = 1) {
    return Ok(coord_->Lease("w1", absl::StrCat("r", ++request_), n, 0)).leases;
  }

  ReportAnswer Finish(const LeaseGrant& g, Outcome outcome, const std::string& error = "",
                      int64_t events = 0, int exit_code = 1, bool telemetry_unknown = false) {
    AttemptReport r;
    r.lease_id = g.lease_id;
    r.epoch = g.epoch;
    r.worker_id = "w1";
    r.outcome = outcome;
    r.exit_code = outcome == Outcome::kSucceeded ? 0 : exit_code;
    r.duration_ms = 60'000;
    r.error_text = error;
    r.telemetry_events = events;
    r.telemetry_unknown = telemetry_unknown;
    clock_.AdvanceMs(60'000);
    return Ok(coord_->Report(r));
  }

  SessionRecord Start(SessionSettings s) {
    return Ok(coord_->StartSession(s, absl::StrCat("s", ++sessions_)));
  }
  void Stop() { Ok(coord_->StopSession("", "test")); }

  FakeClock clock_;
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<Coordinator> coord_;
  int request_ = 0;
  int sessions_ = 0;
};

// Scenario 4.
TEST_F(DrainPolicyTest, PhaseFailingTwiceIsNeverLeasedAgainInThisOrTheNextSession) {
  Ok(coord_->ImportBacklog({Spec("r1", "p1")}));
  SessionSettings s;
  s.max_attempts_per_phase = 2;
  s.max_fingerprint_repeats = 0;  // isolate the attempt rule
  Start(s);
  for (int i = 0; i < 2; ++i) {
    auto grants = Lease();
    ASSERT_EQ(grants.size(), 1u);
    Finish(grants[0], Outcome::kFailed, absl::StrCat("boom ", i));
  }
  EXPECT_THAT(Lease(), IsEmpty());
  Stop();
  Reopen();
  Start(s);
  EXPECT_THAT(Lease(), IsEmpty());
  auto phase = Ok(store_->GetPhase({"r1", "p1"}));
  ASSERT_TRUE(phase.has_value());
  EXPECT_EQ(phase->state, PhaseState::kFailed);
  EXPECT_EQ(phase->attempts, 2);
}

// Scenario 5.
TEST_F(DrainPolicyTest, TwoTimeoutsSkipTheRestOfTheRunButKillsAndTransientsDoNot) {
  Ok(coord_->ImportBacklog({Spec("slow", "a", 1), Spec("slow", "b", 2), Spec("slow", "c", 3),
                            Spec("slow", "d", 4), Spec("slow", "e", 5)}));
  SessionSettings s;
  s.max_timeouts_per_run = 2;
  s.max_attempts_per_phase = 1;
  s.retry_on = {"connection reset"};
  Start(s);
  // An outside kill and a transient failure do not count as timeouts.
  Finish(Lease()[0], Outcome::kKilled, "", 0, 143);
  auto transient = Lease()[0];
  EXPECT_EQ(Finish(transient, Outcome::kFailed, "ConnectionResetError: connection reset by peer")
                .result.phase_state,
            PhaseState::kPending);
  clock_.AdvanceMs(600'000);  // past the run's backoff
  Finish(Lease()[0], Outcome::kTimedOut, "phase timed out after 900 s");
  EXPECT_EQ(Lease().size(), 1u) << "one timeout is below the limit";
}

// Issue #13 changed the timeout rule: at the limit the run is deferred (the
// plan says why); a run with nothing to show is excluded only at twice it.
// (Before: excluded with its third phase never leased after two timeouts.)
TEST_F(DrainPolicyTest, SecondTimeoutExcludesRunWithReason) {
  Ok(coord_->ImportBacklog({Spec("slow", "a", 1), Spec("slow", "b", 2), Spec("slow", "c", 3),
                            Spec("slow", "d", 4), Spec("slow", "e", 5)}));
  SessionSettings s;
  s.max_timeouts_per_run = 2;
  s.max_attempts_per_phase = 1;
  Start(s);
  Finish(Lease()[0], Outcome::kTimedOut, "t");
  Finish(Lease()[0], Outcome::kTimedOut, "t");
  LeasePlan plan = Ok(coord_->Plan(s, 100));
  EXPECT_TRUE(plan.excluded.empty());
  ASSERT_FALSE(plan.leases.empty());
  EXPECT_THAT(plan.leases[0].why, HasSubstr("deferred: max_timeouts_per_run reached (2 timeouts"));
  Finish(Lease()[0], Outcome::kTimedOut, "t");
  Finish(Lease()[0], Outcome::kTimedOut, "t");
  EXPECT_THAT(Lease(), IsEmpty());
  plan = Ok(coord_->Plan(s, 100));
  ASSERT_EQ(plan.excluded.size(), 1u);
  EXPECT_EQ(plan.excluded[0].ranking.run_id, "slow");
  EXPECT_THAT(plan.excluded[0].excluded_reason, HasSubstr("max_timeouts_per_run reached (4"));
}

// Issue #13, scenario: a run that mixes hangs with productive phases keeps
// its productive phases. Its hangs defer it behind the other runs; they
// never exclude it, however many.
TEST_F(DrainPolicyTest, HangsDeferAProductiveRunButItsOtherPhasesStillRun) {
  std::vector<PhaseSpec> phases;
  for (int p = 0; p < 6; ++p) phases.push_back(Spec("mixed", absl::StrCat("p", p), p));
  phases.push_back(Spec("plain", "p0", 0));
  Ok(coord_->ImportBacklog(phases));
  SessionSettings s;
  s.max_timeouts_per_run = 2;
  s.max_attempts_per_phase = 1;
  Start(s);
  int mixed_successes = 0;
  int timeouts = 0;
  std::vector<std::string> order;
  for (int i = 0; i < 7; ++i) {
    auto g = Lease();
    ASSERT_EQ(g.size(), 1u) << "lease " << i;
    order.push_back(g[0].run_id);
    if (g[0].run_id == "mixed" && mixed_successes == 0 && timeouts < 1) {
      Finish(g[0], Outcome::kSucceeded, "", 3);
      ++mixed_successes;
    } else if (g[0].run_id == "mixed" && timeouts < 4) {
      Finish(g[0], Outcome::kTimedOut, "phase timed out after 900 s");
      ++timeouts;
    } else {
      Finish(g[0], Outcome::kSucceeded, "", 1);
    }
  }
  EXPECT_THAT(Lease(), IsEmpty()) << "every phase ran";
  EXPECT_EQ(timeouts, 4);
  // Once deferred (2 timeouts), "mixed" waits for "plain".
  const auto plain = std::find(order.begin(), order.end(), "plain");
  ASSERT_NE(plain, order.end());
  EXPECT_LE(std::count(order.begin(), plain, "mixed"), 3);
}

// Issue #13, scenario: a phase-specific failure whose text normalises like
// other phases' (same fingerprint) does not block productive runs: the
// repeat rule needs a fingerprint that hit two phases of one family.
TEST_F(DrainPolicyTest, APhaseSpecificFingerprintDoesNotBlockProductiveRuns) {
  std::vector<PhaseSpec> phases;
  for (const std::string run : {"alpha", "beta", "gamma"}) {
    for (int p = 0; p < 3; ++p) phases.push_back(Spec(run, absl::StrCat("p", p), p));
  }
  Ok(coord_->ImportBacklog(phases));
  SessionSettings s;
  s.max_fingerprint_repeats = 2;
  s.max_attempts_per_phase = 1;
  Start(s);
  int leased = 0;
  while (true) {
    auto g = Lease();
    if (g.empty()) break;
    ++leased;
    if (g[0].phase_id == "p1") {
      Finish(g[0], Outcome::kFailed, "AssertionError: column 'ledger' has unexpected values", 1);
    } else {
      Finish(g[0], Outcome::kSucceeded, "", 2);
    }
  }
  EXPECT_EQ(leased, 9) << "no run was blocked";
  auto fps = Ok(coord_->ListFingerprints());
  ASSERT_EQ(fps.size(), 1u);
  EXPECT_EQ(fps[0].count, 3);
}

// Scenario 6: the lease's timeout never reaches past the deadline, a phase
// stopped there is cancelled (not a failure), and after it nothing is leased.
TEST_F(DrainPolicyTest, NothingRunsPastTheSessionDeadline) {
  Ok(coord_->ImportBacklog({Spec("r", "a", 1), Spec("r", "b", 2)}));
  SessionSettings s;
  s.max_total_minutes = 1;
  s.phase_timeout_seconds = 900;
  Start(s);
  clock_.AdvanceMs(50'000);
  auto g = Lease();
  ASSERT_EQ(g.size(), 1u);
  EXPECT_LE(g[0].timeout_seconds, 10);
  EXPECT_TRUE(g[0].timeout_is_session_deadline);
  clock_.AdvanceMs(11'000);
  EXPECT_THAT(Ok(coord_->Heartbeat("w1", {g[0].lease_id})), ::testing::Contains(g[0].lease_id));
  EXPECT_THAT(Lease(), IsEmpty());
  AttemptReport r;
  r.lease_id = g[0].lease_id;
  r.epoch = g[0].epoch;
  r.worker_id = "w1";
  r.outcome = Outcome::kCancelled;
  Ok(coord_->Report(r));
  auto phase = Ok(store_->GetPhase({"r", "a"}));
  EXPECT_EQ(phase->state, PhaseState::kPending);
  EXPECT_EQ(phase->attempts, 0) << "a cancellation is not a failed attempt";
}

// Scenario 7 and the repeat rule, with the unblock workflow.
TEST_F(DrainPolicyTest, KnownFingerprintBlocksItsRunsAcrossSessionsUntilUnblocked) {
  std::vector<PhaseSpec> phases;
  for (int run = 0; run < 3; ++run) {
    for (int p = 0; p < 3; ++p) {
      phases.push_back(Spec(absl::StrCat("research-v", run), absl::StrCat("p", p), p));
    }
  }
  phases.push_back(Spec("healthy", "ok1"));
  Ok(coord_->ImportBacklog(phases));
  SessionSettings s;
  s.max_fingerprint_repeats = 3;
  s.max_attempts_per_phase = 1;
  Start(s);
  // Sample each research run once: the same import error with different
  // paths and line numbers.
  int failures = 0;
  while (failures < 3) {
    auto g = Lease();
    ASSERT_EQ(g.size(), 1u);
    if (g[0].run_id == "healthy") {
      Finish(g[0], Outcome::kSucceeded, "", 2);
      continue;
    }
    Finish(g[0], Outcome::kFailed,
           absl::StrCat("ImportError while importing test module '/src/", g[0].run_id, "/test_",
                        g[0].phase_id, ".py', line ", 10 + failures));
    ++failures;
  }
  EXPECT_THAT(Lease(), IsEmpty()) << "all research runs are blocked";
  auto fps = Ok(coord_->ListFingerprints());
  ASSERT_FALSE(fps.empty());
  EXPECT_EQ(fps[0].count, 3);
  EXPECT_EQ(fps[0].runs.size(), 3u);

  // A new session on a new coordinator remembers.
  Stop();
  Reopen();
  Start(s);
  EXPECT_THAT(Lease(), IsEmpty());
  LeasePlan plan = Ok(coord_->Plan(s, 100));
  ASSERT_EQ(plan.excluded.size(), 3u);
  EXPECT_THAT(plan.excluded[0].excluded_reason, HasSubstr("blocked by fingerprint " + fps[0].id));

  // After the fix: unblock by short id and the runs come back.
  EXPECT_EQ(Ok(coord_->UnblockFingerprint(fps[0].id)), fps[0].fingerprint);
  EXPECT_EQ(Lease().size(), 1u);
  Stop();
  Reopen();  // the unblock is durable
  Start(s);
  EXPECT_EQ(Lease().size(), 1u);
}

TEST_F(DrainPolicyTest, TransientFailuresDoNotFeedTheRepeatRule) {
  Ok(coord_->ImportBacklog({Spec("a", "1"), Spec("b", "1"), Spec("c", "1"), Spec("d", "1")}));
  SessionSettings s;
  s.max_fingerprint_repeats = 2;
  s.retry_on = {"503|connection reset"};
  Start(s);
  for (int i = 0; i < 3; ++i) {
    Finish(Lease()[0], Outcome::kFailed, "anthropic.InternalServerError: Error code: 503");
  }
  EXPECT_THAT(Ok(coord_->ListFingerprints()), IsEmpty());
}

TEST_F(DrainPolicyTest, InvalidRetryPatternIsRejectedWithItsName) {
  SessionSettings s;
  s.retry_on = {"(unclosed"};
  auto st = coord_->StartSession(s, "");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.status().message()), HasSubstr("(unclosed"));
}

TEST_F(DrainPolicyTest, ConsecutiveZeroYieldEndsTheSession) {
  Ok(coord_->ImportBacklog({Spec("a", "1"), Spec("b", "1"), Spec("c", "1"), Spec("d", "1")}));
  SessionSettings s;
  s.max_consecutive_zero_yield = 2;
  Start(s);
  Finish(Lease()[0], Outcome::kSucceeded, "", 0);
  Finish(Lease()[0], Outcome::kSucceeded, "", 0);
  Ok(coord_->Tick());
  auto session = Ok(store_->LatestSession());
  ASSERT_TRUE(session.has_value());
  EXPECT_EQ(session->state, SessionState::kFinished);
  EXPECT_THAT(session->end_reason, HasSubstr("max_consecutive_zero_yield"));
}

TEST_F(DrainPolicyTest, UnknownTelemetryNeitherLengthensNorEndsTheZeroYieldStreak) {
  // Issue #16 item 6: an attempt whose probe failed (0 events, unknown)
  // counted as zero yield and ended the session.
  Ok(coord_->ImportBacklog(
      {Spec("a", "1"), Spec("b", "1"), Spec("c", "1"), Spec("d", "1"), Spec("e", "1")}));
  SessionSettings s;
  s.max_consecutive_zero_yield = 2;
  Start(s);
  Finish(Lease()[0], Outcome::kSucceeded, "", 0, 1, /*telemetry_unknown=*/true);
  Finish(Lease()[0], Outcome::kSucceeded, "", 0, 1, /*telemetry_unknown=*/true);
  Ok(coord_->Tick());
  auto session = Ok(store_->LatestSession());
  ASSERT_TRUE(session.has_value());
  EXPECT_EQ(session->state, SessionState::kActive) << session->end_reason;
  // Nor does it reset a streak: zero, unknown, zero is two in a row.
  Finish(Lease()[0], Outcome::kSucceeded, "", 0);
  Finish(Lease()[0], Outcome::kSucceeded, "", 0, 1, /*telemetry_unknown=*/true);
  Finish(Lease()[0], Outcome::kSucceeded, "", 0);
  Ok(coord_->Tick());
  session = Ok(store_->LatestSession());
  EXPECT_EQ(session->state, SessionState::kFinished);
  EXPECT_THAT(session->end_reason, HasSubstr("max_consecutive_zero_yield"));
}

// Scenario 8: with one worker on an unchanged store, the plan is the order
// actually leased. Every run is sampled before any run's second phase, so the
// order does not depend on the outcomes.
TEST_F(DrainPolicyTest, DryRunOrderEqualsLeasedOrderWithOneWorker) {
  std::vector<PhaseSpec> phases;
  for (int run = 0; run < 5; ++run) {
    phases.push_back(Spec(absl::StrCat("run", run), "p0", 0));
  }
  phases.push_back(Spec("run2", "p1", 1));
  PhaseSpec urgent = Spec("run4", "p9", 9);
  urgent.priority = 5;
  phases.push_back(urgent);
  Ok(coord_->ImportBacklog(phases));
  SessionSettings s;
  LeasePlan plan = Ok(coord_->Plan(s, 100));
  auto before = Ok(store_->CountPhases());
  EXPECT_EQ(before.pending, 7) << "planning changes nothing";
  Start(s);
  std::vector<std::string> leased;
  while (true) {
    auto g = Lease();
    if (g.empty()) break;
    leased.push_back(g[0].run_id + "/" + g[0].phase_id);
    Finish(g[0], Outcome::kSucceeded, "", 1);
  }
  std::vector<std::string> planned;
  for (const PlannedLease& l : plan.leases) planned.push_back(l.run_id + "/" + l.phase_id);
  EXPECT_EQ(planned, leased);
  ASSERT_FALSE(planned.empty());
  EXPECT_EQ(planned.front(), "run4/p9") << "priority first";
}

// Scenario 9.
TEST_F(DrainPolicyTest, EveryRunIsSampledOnceBeforeALowYieldRunGetsASecondAttempt) {
  std::vector<PhaseSpec> phases;
  for (int p = 0; p < 5; ++p) phases.push_back(Spec("big-bad", absl::StrCat("p", p), p));
  for (int run = 0; run < 4; ++run) phases.push_back(Spec(absl::StrCat("small", run), "p0"));
  Ok(coord_->ImportBacklog(phases));
  SessionSettings s;
  s.max_fingerprint_repeats = 0;
  Start(s);
  std::vector<std::string> order;
  for (int i = 0; i < 5; ++i) {
    auto g = Lease();
    ASSERT_EQ(g.size(), 1u);
    order.push_back(g[0].run_id);
    if (g[0].run_id == "big-bad") {
      Finish(g[0], Outcome::kFailed, absl::StrCat("failure ", i));
    } else {
      Finish(g[0], Outcome::kSucceeded, "", 3);
    }
  }
  EXPECT_EQ(std::count(order.begin(), order.end(), "big-bad"), 1)
      << "big-bad leased twice before every run was sampled";
}

// Run-family priors: once a sampled phase of "fam-v1" failed deterministically,
// its sibling "fam-v2" is not sampled ahead of other work; it waits until
// nothing else is eligible, and the plan says why.
TEST_F(DrainPolicyTest, SiblingOfADeterministicallyFailingRunWaitsBehindOtherWork) {
  Ok(coord_->ImportBacklog({Spec("fam-v1", "p0", 0), Spec("fam-v1", "p1", 1),
                            Spec("fam-v2", "p0", 0), Spec("fam-v2", "p1", 1), Spec("solo", "p0", 0),
                            Spec("solo", "p1", 1), Spec("solo", "p2", 2)}));
  SessionSettings s;
  s.max_attempts_per_phase = 1;
  Start(s);
  std::vector<std::string> order;
  auto g = Lease();
  ASSERT_EQ(g.size(), 1u);
  ASSERT_EQ(g[0].run_id, "fam-v1");  // all priors equal: by run id
  Finish(g[0], Outcome::kFailed, "ImportError: /src/fam-v1/test_a.py, line 12 (request id 7f3a)");

  LeasePlan plan = Ok(coord_->Plan(s, 100));
  ASSERT_GE(plan.leases.size(), 4u);
  EXPECT_EQ(plan.leases[0].run_id, "solo");
  EXPECT_EQ(plan.leases[3].run_id, "fam-v2");
  EXPECT_THAT(plan.leases[3].why, HasSubstr("run family 'fam' failed deterministically"));

  while (true) {
    g = Lease();
    if (g.empty()) break;
    order.push_back(g[0].run_id);
    if (g[0].run_id == "solo") {
      Finish(g[0], Outcome::kSucceeded, "", 2);
    } else {
      Finish(g[0], Outcome::kFailed,
             absl::StrCat("ImportError: /src/", g[0].run_id, "/test_", g[0].phase_id,
                          ".py, line 3 (request id ", order.size(), ")"));
    }
  }
  ASSERT_GE(order.size(), 3u);
  EXPECT_EQ(std::vector<std::string>(order.begin(), order.begin() + 3),
            std::vector<std::string>({"solo", "solo", "solo"}));
}

// Explained skips: status and the report say why each piece of pending work
// is not leased now (issue #4) and that a phase waits for a worker with its
// labels (issue #7).
TEST_F(DrainPolicyTest, StatusAndReportExplainExcludedDeferredWaitingAndFailedWork) {
  PhaseSpec gpu = Spec("gpu", "p0");
  gpu.labels = {"gpu", "cuda12"};
  Ok(coord_->ImportBacklog({Spec("fam-v1", "p0", 0), Spec("fam-v1", "p1", 1),
                            Spec("fam-v2", "p0", 0), gpu, Spec("ok", "p0", 0), Spec("ok", "p1", 1),
                            Spec("slow", "p0", 0), Spec("slow", "p1", 1), Spec("slow", "p2", 2),
                            Spec("tmp-x", "p0", 0)}));
  SessionSettings s;
  s.skip_run_prefixes = {"tmp-"};
  s.max_attempts_per_phase = 1;
  Start(s);
  auto g = Lease();
  ASSERT_EQ(g.size(), 1u);
  ASSERT_EQ(g[0].run_id, "fam-v1");
  Finish(g[0], Outcome::kFailed, "ModuleNotFoundError: No module named 'fam_client'");
  // "gpu" cannot go to this label-less worker; fam-* are deferred: "ok" and
  // "slow" get the next four leases.
  for (int i = 0; i < 4; ++i) {
    g = Lease();
    ASSERT_EQ(g.size(), 1u);
    ASSERT_THAT(g[0].run_id, ::testing::AnyOf("ok", "slow"));
    if (g[0].run_id == "ok") {
      Finish(g[0], Outcome::kSucceeded, "", 1);
    } else {
      Finish(g[0], Outcome::kTimedOut);
    }
  }
  auto find = [](const std::vector<SkipRow>& rows, const std::string& kind,
                 const std::string& run) -> const SkipRow* {
    for (const SkipRow& r : rows) {
      if (r.kind == kind && r.run_id == run) return &r;
    }
    return nullptr;
  };
  CoordinatorStatus status = Ok(coord_->Status(/*explain_skips=*/true));
  const std::vector<SkipRow>& rows = status.skipped;
  ASSERT_NE(find(rows, "excluded", "tmp-x"), nullptr);
  EXPECT_EQ(find(rows, "excluded", "tmp-x")->reason, "skipped by --skip-run-prefix");
  // Issue #13: two timeouts defer the run (they excluded it before).
  ASSERT_NE(find(rows, "deferred", "slow"), nullptr);
  EXPECT_THAT(find(rows, "deferred", "slow")->reason, HasSubstr("max_timeouts_per_run reached"));
  EXPECT_EQ(find(rows, "deferred", "slow")->phases, 1);
  ASSERT_NE(find(rows, "deferred", "fam-v1"), nullptr);
  EXPECT_THAT(find(rows, "deferred", "fam-v1")->reason,
              HasSubstr("its sampled phases failed deterministically 1 time(s)"));
  ASSERT_NE(find(rows, "deferred", "fam-v2"), nullptr);
  EXPECT_THAT(find(rows, "deferred", "fam-v2")->reason, HasSubstr("run family 'fam'"));
  const SkipRow* waiting = find(rows, "waiting_for_labels", "gpu");
  ASSERT_NE(waiting, nullptr);
  EXPECT_EQ(waiting->phase_id, "p0");
  EXPECT_THAT(waiting->reason,
              HasSubstr("waiting for a worker with labels cuda12,gpu"));  // sorted by the store
  ASSERT_NE(find(rows, "failed", "slow"), nullptr);
  EXPECT_EQ(find(rows, "failed", "slow")->phases, 2);
  EXPECT_THAT(find(rows, "failed", "fam-v1")->reason, HasSubstr("attempts exhausted"));
  EXPECT_EQ(find(rows, "excluded", "ok"), nullptr);
  EXPECT_EQ(find(rows, "deferred", "ok"), nullptr);

  // The report of the latest session carries the same rows, in JSON and text.
  SessionReport report = Ok(coord_->SessionReportFor(""));
  EXPECT_EQ(report.skipped.size(), rows.size());
  EXPECT_THAT(SessionReportText(report),
              HasSubstr("waiting_for_labels gpu/p0 (1 phase): waiting for a worker with labels"));
  EXPECT_THAT(SessionReportJson(report), HasSubstr("\"kind\": \"deferred\""));

  // A worker with the labels registers: the phase no longer waits for one.
  WorkerInfo w2;
  w2.worker_id = "w2";
  w2.host = "h";
  w2.slots = 1;
  w2.labels = {"cuda12", "gpu", "linux"};
  Ok(coord_->Register(w2));
  EXPECT_EQ(find(Ok(coord_->Status(true)).skipped, "waiting_for_labels", "gpu"), nullptr);
  EXPECT_THAT(Ok(coord_->Status()).skipped, IsEmpty()) << "only on request";
}

TEST_F(DrainPolicyTest, PhasesWaitingForLabelsAreListedUpToAHundredThenCounted) {
  std::vector<PhaseSpec> phases;
  for (int i = 0; i < 105; ++i) {
    PhaseSpec p = Spec("gpu-run", absl::StrCat("p", i), i);
    p.labels = {"gpu"};
    phases.push_back(p);
  }
  Ok(coord_->ImportBacklog(phases));
  const std::vector<SkipRow> rows = Ok(coord_->Status(true)).skipped;
  ASSERT_EQ(rows.size(), 101u);
  EXPECT_EQ(rows[99].run_id, "gpu-run");
  EXPECT_EQ(rows[100].run_id, "*");
  EXPECT_EQ(rows[100].phases, 5);
  EXPECT_THAT(rows[100].reason, HasSubstr("more phases waiting"));
}

TEST(FailurePolicyTest, OnlyNonTransientFailuresCountAndUnblockForgets) {
  FailurePolicy p;
  p.Observe("r1", Outcome::kFailed, "failed|exit:1|x", "x", 10, false);
  p.Observe("r2", Outcome::kFailed, "failed|exit:1|x", "x", 20, false);
  p.Observe("r3", Outcome::kTimedOut, "timed_out|timeout|", "", 30, false);
  p.Observe("r3", Outcome::kFailed, "failed|exit:1|x", "x", 40, true);
  EXPECT_EQ(p.BlockingFingerprint("r1", 2), "failed|exit:1|x");
  EXPECT_EQ(p.BlockingFingerprint("r3", 2), std::nullopt);
  EXPECT_EQ(p.BlockingFingerprint("r1", 3), std::nullopt);
  p.Unblock("failed|exit:1|x", 50);
  EXPECT_EQ(p.BlockingFingerprint("r1", 2), std::nullopt);
  // History older than the unblock is not counted again on reload.
  AttemptRecord old;
  old.run_id = "r1";
  old.outcome = Outcome::kFailed;
  old.fingerprint = "failed|exit:1|x";
  old.ended_at_ms = 10;
  FailurePolicy reloaded;
  reloaded.Load({old, old}, {{"failed|exit:1|x", 50}});
  EXPECT_EQ(reloaded.BlockingFingerprint("r1", 1), std::nullopt);
}

// Issue #13: the repeat rule blocked whole productive runs when
// phase-specific failures shared a fingerprint. A fingerprint now blocks
// once it is run-wide (two phase ids in one family, or two runs of
// families with no success), and in a productive run only when it hit more
// of the run's phases than the run has successes.
TEST(FailurePolicyTest, RepeatRuleBlocksOnlyRunWideFingerprints) {
  const std::string fp = "failed|exit:1|assertionerror: column has unexpected values";
  FailurePolicy p;
  p.Observe("alpha", Outcome::kSucceeded, "", "", 1, false, "p0");
  p.Observe("beta", Outcome::kSucceeded, "", "", 2, false, "p0");
  p.Observe("alpha", Outcome::kFailed, fp, "x", 3, false, "p1");
  p.Observe("alpha", Outcome::kFailed, fp, "x", 4, false, "p1");  // its retry
  p.Observe("beta", Outcome::kFailed, fp, "x", 5, false, "p1");
  EXPECT_FALSE(p.RunWide(fp));
  EXPECT_EQ(p.BlockingFingerprint("alpha", 2, 1), std::nullopt);
  EXPECT_EQ(p.BlockingFingerprint("beta", 2, 1), std::nullopt);
  // A second phase of alpha: run-wide now; it dominates alpha (2 phases > 1
  // success) but not beta (1 phase, 1 success).
  p.Observe("alpha", Outcome::kFailed, fp, "x", 6, false, "p2");
  EXPECT_TRUE(p.RunWide(fp));
  EXPECT_EQ(p.BlockingFingerprint("alpha", 2, 1), fp);
  EXPECT_EQ(p.BlockingFingerprint("beta", 2, 1), std::nullopt);
  // Runs of families without a success failing alike at one phase id.
  FailurePolicy q;
  q.Observe("x", Outcome::kFailed, fp, "x", 1, false, "p0");
  EXPECT_FALSE(q.RunWide(fp));
  q.Observe("y", Outcome::kFailed, fp, "x", 2, false, "p0");
  EXPECT_TRUE(q.RunWide(fp));
  EXPECT_EQ(q.BlockingFingerprint("x", 2), fp);
}

// A run of a productive family is not blocked by a fingerprint that other
// runs share until it hit two of its own phases: one phase failing alike may
// be that phase's own problem, and blocking would give the run's other
// phases up untried (policy_bench found such a phase never leased).
TEST(FailurePolicyTest, ARunOfAProductiveFamilyIsBlockedOnlyOnceTheFingerprintHitTwoOfItsPhases) {
  const std::string fp = "failed|exit:1|assertionerror: column 'geo_id' has unexpected values";
  FailurePolicy p;
  p.Observe("billing-2024-03-05", Outcome::kSucceeded, "", "", 1, false, "p0");
  // Two runs of families without a success fail alike: run-wide.
  p.Observe("ingest-a", Outcome::kFailed, fp, "x", 2, false, "p0");
  p.Observe("search-a", Outcome::kFailed, fp, "x", 3, false, "p0");
  ASSERT_TRUE(p.RunWide(fp));
  // The productive family's other run fails alike once: not blocked.
  p.Observe("billing-2024-03-06", Outcome::kFailed, fp, "x", 4, false, "p0");
  EXPECT_EQ(p.BlockingFingerprint("billing-2024-03-06", 3), std::nullopt);
  // An unproductive family's run with one such failure is (unchanged).
  p.Observe("render-a", Outcome::kFailed, fp, "x", 5, false, "p0");
  EXPECT_EQ(p.BlockingFingerprint("render-a", 3), fp);
  // A second phase of the productive family's run fails alike: blocked.
  p.Observe("billing-2024-03-06", Outcome::kFailed, fp, "x", 6, false, "p1");
  EXPECT_EQ(p.BlockingFingerprint("billing-2024-03-06", 3), fp);
}

TEST(TransientMatcherTest, MatchesCaseInsensitivelyOnFingerprintOrText) {
  auto m = Ok(TransientMatcher::Compile({"connection RESET", "5\\d\\d service"}));
  EXPECT_TRUE(m.Matches("failed|exit:1|connectionreseterror: connection reset by peer", ""));
  EXPECT_TRUE(m.Matches("", "503 Service Unavailable"));
  EXPECT_FALSE(m.Matches("failed|exit:1|importerror", "ImportError"));
}

}  // namespace
}  // namespace sluice
