// DrainPolicy on its own, one test (or more) per named rule of
// coordinator/policy/drain_policy.h, over an in-memory SqliteStateStore and a
// FakeClock: no sleeps, no leases unless the rule needs the store's counts.
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/fingerprint.h"
#include "coordinator/policy/backlog_history.h"
#include "coordinator/policy/drain_policy.h"
#include "coordinator/store/sqlite/sqlite_state_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/attempts.h"
#include "tests/testing/forwarding_state_store.h"

namespace sluice {
namespace {

using ::sluice::testing::ForGrant;
using ::sluice::testing::GrantReport;
using ::testing::IsEmpty;

PhaseSpec Spec(const std::string& run, const std::string& phase) {
  PhaseSpec p;
  p.run_id = run;
  p.phase_id = phase;
  return p;
}

RunStats Pending(const std::string& run, int64_t pending = 1) {
  RunStats r;
  r.run_id = run;
  r.pending = pending;
  return r;
}

// A failed report (exit code 1) with `error`.
AttemptReport Failure(const std::string& error) {
  AttemptReport r;
  r.outcome = Outcome::kFailed;
  r.exit_code = 1;
  r.error_text = error;
  return r;
}

class DrainPolicyRules : public ::testing::Test {
 protected:
  DrainPolicyRules()
      : store_(SqliteStateStore::Open(":memory:").value()), policy_(*store_, clock_, {}) {}

  // An accepted report of `outcome` in `run` as the store would answer it.
  ReportParams Observe(const std::string& run, Outcome outcome, const SessionSettings& settings,
                       const std::string& error = "boom", int64_t events = 0,
                       const std::optional<SessionRecord>& session = std::nullopt) {
    AttemptReport report;
    report.lease_id = "L";
    report.worker_id = "w1";
    report.outcome = outcome;
    report.exit_code = outcome == Outcome::kSucceeded ? 0 : 1;
    report.error_text = error;
    report.telemetry_events = events;
    ReportParams params = policy_.PrepareReport(report, settings).value();
    ReportResult result;
    result.disposition = ReportDisposition::kAccepted;
    result.run_id = run;
    result.phase_id = "p";
    EXPECT_TRUE(policy_.EnsureLoaded().ok());
    policy_.Observe(params, result, session);
    return params;
  }

  SessionRecord ActiveSession(SessionSettings settings, const std::string& id = "s1") {
    SessionRecord s;
    s.session_id = id;
    s.settings = std::move(settings);
    s.started_at_ms = clock_.NowMs();
    EXPECT_TRUE(store_->CreateSession(s).ok());
    return s;
  }

  // Leases `run`'s next phase in the store for `session`, as a coordinator would.
  LeaseGrant LeaseFrom(const std::string& run, const SessionRecord& session) {
    LeaseParams lp;
    lp.run_id = run;
    lp.worker_id = "w1";
    lp.session_id = session.session_id;
    lp.lease_id = "L" + std::to_string(++leases_);
    lp.timeout_seconds = 600;
    lp.now_ms = clock_.NowMs();
    lp.ttl_ms = 60'000;
    return store_->LeaseNextInRun(lp).value().value();
  }

  RunDecision DecisionFor(const std::string& run, const SessionSettings& settings,
                          std::vector<RunStats> runs = {}) {
    if (runs.empty()) runs = {Pending(run)};
    const std::vector<RunDecision> decisions =
        policy_.Decide(runs, settings, clock_.NowMs()).value();
    for (const RunDecision& d : decisions) {
      if (d.ranking.run_id == run) return d;
    }
    throw std::runtime_error("no decision for " + run);
  }

  FakeClock clock_;
  std::unique_ptr<SqliteStateStore> store_;
  DrainPolicy policy_;
  int leases_ = 0;  // LeaseFrom's lease ids
};

TEST_F(DrainPolicyRules, AttemptBudgetIsHandedToTheStoresAtomicWrite) {
  SessionSettings s;
  s.max_attempts_per_phase = 3;
  s.max_requeues_per_phase = 7;
  AttemptReport r;
  r.outcome = Outcome::kFailed;
  r.exit_code = 2;
  r.error_text = "boom";
  const ReportParams p = policy_.PrepareReport(r, s).value();
  // An own failure spends the attempt budget: failed for good at the 3rd.
  EXPECT_EQ(p.transition.counter, PhaseTransition::Counter::kAttempts);
  EXPECT_EQ(p.transition.fail_at, 3);
  EXPECT_EQ(p.transition, TransitionAfterOutcome(PhaseBudget{3, 7}, Outcome::kFailed, true));
  EXPECT_EQ(p.now_ms, clock_.NowMs());
  EXPECT_EQ(p.fingerprint, ComputeFingerprint(Outcome::kFailed, 2, 0, "boom").key);
}

TEST_F(DrainPolicyRules, RequeueBudgetOfExpiryIsTheLatestSessionsOrTheDefault) {
  EXPECT_EQ(DrainPolicy::RequeueBudget(std::nullopt), SessionSettings{}.max_requeues_per_phase);
  SessionRecord s;
  s.settings.max_requeues_per_phase = 1;
  EXPECT_EQ(DrainPolicy::RequeueBudget(s), 1);
  EXPECT_EQ(DrainPolicy::ExpiryTransition(s), LostLeaseTransition(1));
  EXPECT_EQ(DrainPolicy::ExpiryTransition(std::nullopt),
            LostLeaseTransition(SessionSettings{}.max_requeues_per_phase));
}

TEST_F(DrainPolicyRules, TransientFailureUsesTheRequeueBudgetNotTheAttemptBudget) {
  SessionSettings s;
  s.retry_on = {"connection reset"};
  AttemptReport r;
  r.outcome = Outcome::kFailed;
  r.exit_code = 1;
  r.error_text = "ConnectionResetError: Connection RESET by peer";
  auto spends = [&] { return policy_.PrepareReport(r, s).value().transition.counter; };
  EXPECT_EQ(spends(), PhaseTransition::Counter::kRequeues);
  r.error_text = "ValueError: bad input";
  EXPECT_EQ(spends(), PhaseTransition::Counter::kAttempts);
  // Only failures can be transient: a timeout with the same text counts.
  r.outcome = Outcome::kTimedOut;
  r.error_text = "connection reset";
  EXPECT_EQ(spends(), PhaseTransition::Counter::kAttempts);
}

TEST_F(DrainPolicyRules, TransientDefaultSetRecognisesInfrastructureErrorsCaseInsensitively) {
  const SessionSettings s;  // no --retry-on
  AttemptReport r = Failure("");
  for (const char* text :
       {"ConnectionResetError: [Errno 104] Connection reset by peer", "connection REFUSED",
        "ConnectionAbortedError: connection aborted", "TimeoutError: The read operation timed out",
        "ReadTimeout: read timeout=30", "ConnectTimeoutError: connect timeout",
        "urlopen error ETIMEDOUT", "HTTPError: 429 Too Many Requests",
        "requests.exceptions.HTTPError: 503 Server Error", "upstream answered HTTP 502",
        "status code: 500", "Resource temporarily unavailable",
        "RateLimitError: rate limit exceeded", "BrokenPipeError: [Errno 32] Broken pipe",
        "socket.gaierror: [Errno -2] Name or service not known",
        "socket.gaierror: [Errno -3] Temporary failure in name resolution",
        "curl: (6) Could not resolve host: example.org"}) {
    r.error_text = text;
    EXPECT_FALSE(policy_.PrepareReport(r, s).value().transition.counter ==
                 PhaseTransition::Counter::kAttempts)
        << text;
  }
  for (const char* text : {"AssertionError: expected 3 rows, got 2",
                           "File \"/work/t.py\", line 503, in check\nKeyError: 'id'",
                           "ModuleNotFoundError: No module named 'ingest_client'",
                           "ValueError: 429 is not a valid port"}) {
    r.error_text = text;
    EXPECT_TRUE(policy_.PrepareReport(r, s).value().transition.counter ==
                PhaseTransition::Counter::kAttempts)
        << text;
  }
}

TEST_F(DrainPolicyRules, TransientDefaultSetIsSwitchedOffByNoDefaultTransient) {
  SessionSettings s;
  s.retry_on = {kNoDefaultTransient};
  AttemptReport r = Failure("ConnectionResetError: Connection reset by peer");
  EXPECT_TRUE(policy_.PrepareReport(r, s).value().transition.counter ==
              PhaseTransition::Counter::kAttempts);
  EXPECT_TRUE(ValidateSessionSettings(s).ok());
}

TEST_F(DrainPolicyRules, TransientDefaultSetIsExtendedByRetryOn) {
  SessionSettings s;
  s.retry_on = {"quota exceeded"};
  AttemptReport r = Failure("QUOTA EXCEEDED for project x");
  EXPECT_FALSE(policy_.PrepareReport(r, s).value().transition.counter ==
               PhaseTransition::Counter::kAttempts);
  r.error_text = "broken pipe";
  EXPECT_FALSE(policy_.PrepareReport(r, s).value().transition.counter ==
               PhaseTransition::Counter::kAttempts);
  s.retry_on = {"quota exceeded", kNoDefaultTransient};
  EXPECT_TRUE(policy_.PrepareReport(r, s).value().transition.counter ==
              PhaseTransition::Counter::kAttempts);
}

TEST_F(DrainPolicyRules, RetryWorthItRuleRetriesAFirstFailureOnThePrior) {
  SessionSettings s;
  s.max_attempts_per_phase = 3;
  AttemptReport r = Failure("KeyError: 'id'");
  // No evidence yet: the prior says a retry is worth a look; the budget is
  // the session's, never more.
  EXPECT_EQ(policy_.PrepareReport(r, s).value().transition.fail_at, 3);
}

TEST_F(DrainPolicyRules, RetryWorthItRuleDeclinesAFingerprintWhoseRetriesFail) {
  SessionSettings s;
  Observe("r1", Outcome::kFailed, s, "KeyError: 'id'");
  Observe("r1", Outcome::kFailed, s, "KeyError: 'id'");  // the retry failed the same way
  AttemptReport r = Failure("KeyError: 'id'");
  const ReportParams p = policy_.PrepareReport(r, s).value();
  EXPECT_EQ(p.transition.fail_at, 1);  // fails for good now
  EXPECT_EQ(p.transition.counter, PhaseTransition::Counter::kAttempts);
  const PolicyReason why = RetryEvidence().Decide(Outcome::kFailed, p.fingerprint);
  EXPECT_TRUE(why.empty()) << "a fresh evidence base follows the prior";
  // A success is never touched.
  r.outcome = Outcome::kSucceeded;
  r.exit_code = 0;
  r.error_text = "";
  EXPECT_EQ(policy_.PrepareReport(r, s).value().transition,
            TransitionAfterOutcome(PhaseBudget{s.max_attempts_per_phase, s.max_requeues_per_phase},
                                   Outcome::kSucceeded, true));
}

TEST_F(DrainPolicyRules, RetryWorthItRuleKeepsRetryingAFingerprintWhoseRetriesSucceed) {
  SessionSettings s;
  for (const char* run : {"r1", "r2"}) {
    Observe(run, Outcome::kFailed, s, "AssertionError: flaky");
    Observe(run, Outcome::kSucceeded, s, "", 1);
  }
  AttemptReport r = Failure("AssertionError: flaky");
  EXPECT_EQ(policy_.PrepareReport(r, s).value().transition.fail_at, 2);
}

TEST_F(DrainPolicyRules, RetryWorthItRuleAfterAHangNeedsTwiceTheEvidence) {
  // A hang costs the whole phase timeout again: at the same estimate (one
  // failed retry cluster-wide: 1/3) a failure is retried, a timeout is not.
  RetryEvidence e;
  e.Observe("r1", "p", Outcome::kFailed, "other", false);
  e.Observe("r1", "p", Outcome::kFailed, "other", false);
  EXPECT_NEAR(e.RetrySuccess("timeout"), 1.0 / 3, 1e-9);
  EXPECT_TRUE(e.Decide(Outcome::kFailed, "boom").empty());
  const PolicyReason why = e.Decide(Outcome::kTimedOut, "timeout");
  EXPECT_EQ(why.code, SkipReason::kRetryNotWorthIt);
  EXPECT_EQ(SkipKindName(why.code), "failed");
  EXPECT_THAT(why.Text(), ::testing::HasSubstr("retry not worth it"));
  // Transient failures, kills and lost leases neither count nor break a chain.
  e.Observe("r2", "p", Outcome::kTimedOut, "timeout", false);
  e.Observe("r2", "p", Outcome::kFailed, "connection reset", true);
  e.Observe("r2", "p", Outcome::kLost, "", false);
  e.Observe("r2", "p", Outcome::kSucceeded, "", false);
  EXPECT_GT(e.RetrySuccess("timeout"), 1.0 / 3);
}

TEST_F(DrainPolicyRules, BacklogHistoryRuleDoesNotRetryAFailureThatRepeatsTheBacklogRow) {
  SessionSettings s;
  s.max_attempts_per_phase = 3;
  const SessionRecord session = ActiveSession(s);
  PhaseSpec same = Spec("r1", "same");
  same.last_error = "AssertionError: column 'geo_id' has unexpected values (line 41)";
  PhaseSpec hung = Spec("r1", "hung");
  hung.phase_index = 1;  // leased in this order: same, hung, other
  hung.last_error = "phase timed out after 900s (no output for 612s)";
  PhaseSpec other = Spec("r1", "other");
  other.phase_index = 2;
  other.last_error = "OSError: [Errno 28] No space left on device: '/tmp/build-cache'";
  ASSERT_TRUE(store_->ImportPhases({same, hung, other}).ok());

  // The same failure as the row records (inside a longer traceback, with
  // other line numbers): it failed twice the same way, so no third try.
  AttemptReport r = Failure(
      "Traceback (most recent call last):\n  File \"/work/t.py\", line 7\n"
      "AssertionError: column 'geo_id' has unexpected values (line 97)");
  r.lease_id = LeaseFrom("r1", session).lease_id;
  ASSERT_EQ(store_->GetPhase({"r1", "same"}).value()->current_lease_id, r.lease_id);
  EXPECT_EQ(policy_.PrepareReport(r, s).value().transition.fail_at, 1);

  // A timeout of a phase whose row says it timed out before.
  AttemptReport t;
  t.outcome = Outcome::kTimedOut;
  t.error_text = "phase timed out after 900 s";
  t.lease_id = LeaseFrom("r1", session).lease_id;
  EXPECT_EQ(policy_.PrepareReport(t, s).value().transition.fail_at, 1);

  // A failure unlike the row's keeps the session's budget (the prior says
  // a first failure is worth another look).
  AttemptReport o = Failure("KeyError: 'id'");
  o.lease_id = LeaseFrom("r1", session).lease_id;
  EXPECT_EQ(policy_.PrepareReport(o, s).value().transition.fail_at, 3);
  // So does a timeout of that phase: its row says no timeout.
  t.lease_id = o.lease_id;
  EXPECT_EQ(policy_.PrepareReport(t, s).value().transition.fail_at, 3);
}

TEST_F(DrainPolicyRules, RetryTierLearnsFromPhaseVerdictsOnlyNotFromKills) {
  SessionSettings s;
  ASSERT_TRUE(policy_.EnsureLoaded().ok());
  // Everyone's yield: 2 events over 5 minutes.
  AttemptReport first;
  first.lease_id = "A";
  first.outcome = Outcome::kSucceeded;
  first.telemetry_events = 2;
  first.duration_ms = 5 * 60'000;
  ReportResult in_r0;
  in_r0.disposition = ReportDisposition::kAccepted;
  in_r0.run_id = "r0";
  in_r0.phase_id = "p0";
  policy_.Observe(policy_.PrepareReport(first, s).value(), in_r0, std::nullopt);

  // r1's untried phases are done: its retry tier is leased from now on.
  policy_.UntriedDone("r1");
  ASSERT_TRUE(policy_.InRetryTier("r1"));
  auto TierAttempt = [&](const std::string& lease_id, Outcome outcome) {
    LeaseGrant grant;
    grant.lease_id = lease_id;
    grant.run_id = "r1";
    grant.phase_id = "p1";
    grant.retry_tier = true;
    policy_.Granted(grant);
    AttemptReport report;
    report.lease_id = lease_id;
    report.outcome = outcome;
    report.exit_code = outcome == Outcome::kKilled ? -1 : 0;
    report.signal = outcome == Outcome::kKilled ? 9 : 0;
    report.duration_ms = 30 * 60'000;  // 30 minutes, no events
    ReportResult result;
    result.disposition = ReportDisposition::kAccepted;
    result.run_id = "r1";
    result.phase_id = "p1";
    policy_.Observe(policy_.PrepareReport(report, s).value(), result, std::nullopt);
  };
  const double on_the_prior = DecisionFor("r1", s).ranking.expected_yield;
  EXPECT_GT(on_the_prior, 0);

  // Killed from outside (the OOM killer): not the phase's verdict, so the
  // tier learns nothing from its 30 minutes.
  TierAttempt("K", Outcome::kKilled);
  EXPECT_DOUBLE_EQ(DecisionFor("r1", s).ranking.expected_yield, on_the_prior);

  // A timeout is the phase's own: 30 minutes without events lower the tier.
  TierAttempt("T", Outcome::kTimedOut);
  EXPECT_LT(DecisionFor("r1", s).ranking.expected_yield, on_the_prior);
}

TEST(BacklogHistory, RepeatsBacklogFailureNamesWhyAndSparesTransientAndShortTexts) {
  const PolicyReason again =
      RepeatsBacklogFailure(Outcome::kTimedOut, "", "TimeoutExpired: Command 'x' timed out");
  EXPECT_EQ(again.code, SkipReason::kRetryNotWorthIt);
  EXPECT_THAT(again.Text(), ::testing::HasSubstr("backlog row"));
  // A transient-looking failure twice is no evidence for the third try.
  EXPECT_TRUE(RepeatsBacklogFailure(Outcome::kFailed,
                                    "ConnectionResetError: [Errno 104] Connection reset by peer",
                                    "ConnectionResetError: [Errno 104] Connection reset by peer")
                  .empty());
  // Too short to call two failures the same.
  EXPECT_TRUE(RepeatsBacklogFailure(Outcome::kFailed, "error", "error").empty());
  // No row text, or a success: nothing to say.
  EXPECT_TRUE(RepeatsBacklogFailure(Outcome::kFailed, "KeyError: 'some_field'", "").empty());
  EXPECT_TRUE(RepeatsBacklogFailure(Outcome::kSucceeded, "", "phase timed out after 900s").empty());
  // A network timeout in the row is no hang.
  EXPECT_TRUE(
      RepeatsBacklogFailure(Outcome::kTimedOut, "", "TimeoutError: The read operation timed out")
          .empty());
}

TEST_F(DrainPolicyRules, TransientBackoffDoublesFromTenSecondsUpToFiveMinutes) {
  EXPECT_EQ(TransientBackoffMs(1), 10'000);
  EXPECT_EQ(TransientBackoffMs(2), 20'000);
  EXPECT_EQ(TransientBackoffMs(3), 40'000);
  EXPECT_EQ(TransientBackoffMs(5), 160'000);
  EXPECT_EQ(TransientBackoffMs(6), 300'000);
  EXPECT_EQ(TransientBackoffMs(60), 300'000);
}

TEST_F(DrainPolicyRules, TransientBackoffExcludesTheRunUntilItEnds) {
  SessionSettings s;
  s.retry_on = {"connection reset"};
  Observe("r1", Outcome::kFailed, s, "connection reset");
  RunDecision d = DecisionFor("r1", s);
  EXPECT_EQ(d.excluded.code, SkipReason::kBackingOff);
  EXPECT_EQ(d.excluded.detail, "10 s");
  EXPECT_EQ(d.excluded_reason, "backing off after a transient failure for 10 s");
  // A second transient failure in a row doubles it.
  Observe("r1", Outcome::kFailed, s, "connection reset");
  EXPECT_EQ(DecisionFor("r1", s).excluded.detail, "20 s");
  clock_.AdvanceMs(20'000);
  EXPECT_TRUE(DecisionFor("r1", s).excluded.empty());
}

TEST_F(DrainPolicyRules, TransientBackoffEndsWithANonTransientOutcomeButNotACancellation) {
  SessionSettings s;
  s.retry_on = {"connection reset"};
  Observe("r1", Outcome::kFailed, s, "connection reset");
  Observe("r1", Outcome::kCancelled, s, "");
  EXPECT_EQ(DecisionFor("r1", s).excluded.code, SkipReason::kBackingOff);
  Observe("r1", Outcome::kSucceeded, s, "", 3);
  EXPECT_TRUE(DecisionFor("r1", s).excluded.empty());
  // The streak started again: the next transient failure backs off 10 s.
  Observe("r1", Outcome::kFailed, s, "connection reset");
  EXPECT_EQ(DecisionFor("r1", s).excluded.detail, "10 s");
}

TEST_F(DrainPolicyRules, RepeatRuleBlocksEveryRunOfAFingerprintSeenMaxRepeatsTimes) {
  SessionSettings s;
  s.max_fingerprint_repeats = 2;
  const ReportParams p = Observe("r1", Outcome::kFailed, s, "ImportError: no module x");
  EXPECT_TRUE(DecisionFor("r1", s).excluded.empty());
  Observe("r2", Outcome::kFailed, s, "ImportError: no module x");
  const std::vector<RunStats> runs = {Pending("r1"), Pending("r2"), Pending("r3")};
  for (const std::string run : {"r1", "r2"}) {
    const RunDecision d = DecisionFor(run, s, runs);
    EXPECT_EQ(d.excluded.code, SkipReason::kFingerprintRepeats) << run;
    EXPECT_EQ(d.excluded_reason, "blocked by fingerprint " + FingerprintId(p.fingerprint) + " (" +
                                     p.fingerprint.substr(0, 120) + ")");
  }
  EXPECT_TRUE(DecisionFor("r3", s, runs).excluded.empty());
  // Unblocking forgets the occurrences (durably) and the runs come back.
  EXPECT_EQ(policy_.Unblock(FingerprintId(p.fingerprint)).value(), p.fingerprint);
  EXPECT_TRUE(DecisionFor("r1", s, runs).excluded.empty());
  EXPECT_EQ(store_->ListPolicyRecords(kFingerprintUnblockRecord).value().size(), 1u);
  EXPECT_EQ(policy_.Unblock("nope").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(DrainPolicyRules, RepeatRuleIgnoresTransientFailures) {
  SessionSettings s;
  s.max_fingerprint_repeats = 1;
  s.retry_on = {"connection reset"};
  Observe("r1", Outcome::kFailed, s, "connection reset");
  clock_.AdvanceMs(600'000);
  EXPECT_TRUE(DecisionFor("r1", s).excluded.empty());
  EXPECT_THAT(policy_.Fingerprints().value(), IsEmpty());
  // The built-in transient set too, with no --retry-on (issue #13).
  s.retry_on.clear();
  Observe("r2", Outcome::kFailed, s, "TimeoutError: The read operation timed out");
  Observe("r2", Outcome::kFailed, s, "TimeoutError: The read operation timed out");
  clock_.AdvanceMs(600'000);
  EXPECT_TRUE(DecisionFor("r2", s).excluded.empty());
  EXPECT_THAT(policy_.Fingerprints().value(), IsEmpty());
}

// Bug: a phase the worker could not start was a `failed` report: it counted
// as an attempt and fed the repeat rule. start_failed uses the requeue budget
// (the budget rule's start_failed row), never blocks, backs off or ends a
// session.
TEST_F(DrainPolicyRules, StartFailedUsesTheRequeueBudgetAndNeverFeedsTheRepeatRule) {
  store_->ImportPhases({Spec("r1", "p1")}).value();
  SessionSettings s;
  s.max_fingerprint_repeats = 1;
  s.max_consecutive_zero_yield = 2;
  s.retry_on = {"cannot start"};  // a transient rule matching the text changes nothing
  const SessionRecord session = ActiveSession(s);
  for (int i = 0; i < 5; ++i) {
    const ReportParams p = Observe("r1", Outcome::kStartFailed, s,
                                   "cannot start phase: cannot start /x: no such file", 0, session);
    EXPECT_EQ(p.transition.counter, PhaseTransition::Counter::kRequeues);
    EXPECT_EQ(p.transition, TransitionAfterOutcome(
                                PhaseBudget{s.max_attempts_per_phase, s.max_requeues_per_phase},
                                Outcome::kStartFailed, true));
  }
  EXPECT_TRUE(DecisionFor("r1", s).excluded.empty()) << DecisionFor("r1", s).excluded_reason;
  EXPECT_THAT(policy_.Fingerprints().value(), IsEmpty());
  EXPECT_FALSE(policy_.SessionEndFor(session).value().done());
  EXPECT_EQ(policy_.OutcomeTotals().value().at(Outcome::kStartFailed), 5);
}

// Issue #13 changed this rule (it was TimeoutsPerRunExcludesTheRunOnceReached):
// reaching the limit defers the run; only a run with nothing to show is
// excluded, at twice the limit.
TEST_F(DrainPolicyRules, TimeoutsPerRunDefersAtTheLimitAndExcludesAnIdleRunAtTwiceIt) {
  SessionSettings s;
  s.max_timeouts_per_run = 2;
  RunStats run = Pending("slow", 3);
  run.timeouts = 1;
  RunDecision d = DecisionFor("slow", s, {run});
  EXPECT_TRUE(d.excluded.empty());
  EXPECT_TRUE(d.ranking.deferred.empty());
  run.timeouts = 2;
  d = DecisionFor("slow", s, {run});
  EXPECT_TRUE(d.excluded.empty());
  EXPECT_EQ(d.ranking.deferred.code, SkipReason::kDeferredTimeouts);
  EXPECT_EQ(d.ranking.deferred.Text(),
            "deferred: max_timeouts_per_run reached (2 timeouts, 0 successes, 0 events)");
  run.timeouts = 4;
  d = DecisionFor("slow", s, {run});
  EXPECT_EQ(d.excluded.code, SkipReason::kTimeoutsPerRun);
  EXPECT_EQ(d.excluded_reason, "max_timeouts_per_run reached (4 timeouts)");
  s.max_timeouts_per_run = 0;  // off
  d = DecisionFor("slow", s, {run});
  EXPECT_TRUE(d.excluded.empty());
  EXPECT_TRUE(d.ranking.deferred.empty());
}

// A run with 5 pending phases whose `timeouts` attempts all hung (900 s).
RunStats Hanging(const std::string& run, int64_t timeouts) {
  RunStats r = Pending(run, 5);
  r.attempts = timeouts;
  r.timeouts = timeouts;
  r.run_ms = timeouts * 900'000;
  return r;
}

// Hang cost: a run that mixes hangs with productive phases loses priority
// (deferred behind the others) but is never excluded for its hangs.
TEST_F(DrainPolicyRules, HangCostDefersAProductiveRunButNeverExcludesIt) {
  SessionSettings s;
  s.max_timeouts_per_run = 2;
  RunStats hangs = Hanging("mixed", 10);
  hangs.attempts += 2;
  hangs.successes = 2;
  hangs.telemetry_events = 4;
  RunStats other = Pending("plain", 1);
  const std::vector<RunStats> runs = {hangs, other};
  const RunDecision d = DecisionFor("mixed", s, runs);
  EXPECT_TRUE(d.excluded.empty());
  EXPECT_EQ(d.ranking.deferred.code, SkipReason::kDeferredTimeouts);
  const std::vector<RunRanking> ranked = policy_.Rank(runs, s, clock_.NowMs()).value();
  ASSERT_EQ(ranked.size(), 2u);
  EXPECT_EQ(ranked[0].run_id, "plain");
  EXPECT_EQ(ranked[1].run_id, "mixed");
}

// Aging: a deferred run that waited longer than max_deferral_minutes is
// ranked like the others again, so waiting work never starves.
TEST_F(DrainPolicyRules, AgingBringsADeferredRunBackAfterMaxDeferralMinutes) {
  SessionSettings s;
  s.max_timeouts_per_run = 2;
  RunStats hangs = Hanging("mixed", 2);
  RunStats other = Pending("plain", 3);
  std::vector<RunStats> runs = {hangs, other};
  EXPECT_EQ(DecisionFor("mixed", s, runs).ranking.deferred.code, SkipReason::kDeferredTimeouts);
  // "plain" is served all along (a lease in flight each time it is asked):
  // "mixed" waits.
  runs[1].leased = 1;
  clock_.AdvanceMs(119 * 60'000);
  EXPECT_EQ(DecisionFor("mixed", s, runs).ranking.deferred.code, SkipReason::kDeferredTimeouts);
  clock_.AdvanceMs(60'000);
  EXPECT_TRUE(DecisionFor("mixed", s, runs).ranking.deferred.empty());
}

TEST(SchedulerAging, WaitingMultipliesTheScoreByOnePlusWaitedOverAgingMinutes) {
  SchedulerOptions o;
  o.aging_minutes = 60;
  EXPECT_DOUBLE_EQ(AgingFactor(o, 0), 1.0);
  EXPECT_DOUBLE_EQ(AgingFactor(o, 30 * 60'000), 1.5);
  EXPECT_DOUBLE_EQ(AgingFactor(o, 60 * 60'000), 2.0);
  o.aging_minutes = 0;  // off
  EXPECT_DOUBLE_EQ(AgingFactor(o, 60 * 60'000), 1.0);
}

// Aging in the ranking: of two runs with equal estimates, the one that has
// waited longer ranks first.
TEST(SchedulerAging, TheRunThatWaitedLongerRanksFirst) {
  Scheduler scheduler;
  RunStats a;
  a.run_id = "a";
  a.pending = 1;
  a.attempts = 1;
  a.successes = 1;
  a.run_ms = 60'000;
  RunStats b = a;
  b.run_id = "b";
  std::map<std::string, RunPolicyState> state;
  state["a"].waiting_since_ms = 10'000'000;
  state["b"].waiting_since_ms = 10'000'000 - 30 * 60'000;
  const auto ranked = scheduler.Rank({a, b}, SessionSettings{}, state, 10'000'000 + 60'000);
  ASSERT_EQ(ranked.size(), 2u);
  EXPECT_EQ(ranked[0].run_id, "b");
}

TEST_F(DrainPolicyRules, RunFiltersExcludeWithTheirOwnReason) {
  SessionSettings s;
  s.skip_run_prefixes = {"tmp-"};
  EXPECT_EQ(DecisionFor("tmp-1", s).excluded.code, SkipReason::kSkippedByPrefix);
  EXPECT_EQ(DecisionFor("tmp-1", s).excluded_reason, "skipped by --skip-run-prefix");
  s.run_ids = {"keep"};
  EXPECT_EQ(DecisionFor("other", s).excluded.code, SkipReason::kNotSelected);
  EXPECT_EQ(DecisionFor("other", s).excluded_reason, "not selected by --run-id");
  EXPECT_TRUE(DecisionFor("keep", s).excluded.empty());
}

TEST_F(DrainPolicyRules, DeferralOfARunWhoseSampledPhasesFailedDeterministically) {
  SessionSettings s;
  s.max_fingerprint_repeats = 0;
  Observe("bad", Outcome::kFailed, s, "KeyError: x");
  RunStats bad = Pending("bad", 2);
  bad.attempts = 1;
  const RunDecision d = DecisionFor("bad", s, {bad, Pending("fresh")});
  EXPECT_TRUE(d.excluded.empty());
  EXPECT_EQ(d.ranking.deferred.code, SkipReason::kDeferredOwnFailures);
  EXPECT_THAT(d.ranking.deferred.Text(),
              ::testing::StartsWith("deferred: its sampled phases failed deterministically 1 "
                                    "time(s), none succeeded (fingerprint "));
}

TEST_F(DrainPolicyRules, SessionEndDeadlinePassed) {
  SessionSettings s;
  s.max_total_minutes = 1;
  const SessionRecord session = ActiveSession(s);
  EXPECT_FALSE(policy_.DeadlinePassed(session));
  clock_.AdvanceMs(60'000);
  EXPECT_TRUE(policy_.DeadlinePassed(session));
  const SessionEnd end = policy_.SessionEndFor(session).value();
  EXPECT_EQ(end.code, SessionEndReason::kMaxTotalMinutes);
  EXPECT_EQ(end.Text(), "max_total_minutes reached");
  EXPECT_FALSE(policy_.ActiveSession().value().has_value()) << "a session past its deadline";
}

TEST_F(DrainPolicyRules, SessionEndZeroYieldStreak) {
  store_->ImportPhases({Spec("r1", "p1")}).value();
  SessionSettings s;
  s.max_consecutive_zero_yield = 2;
  s.max_fingerprint_repeats = 0;
  const SessionRecord session = ActiveSession(s);
  Observe("r1", Outcome::kSucceeded, s, "", 0, session);
  Observe("r1", Outcome::kCancelled, s, "", 0, session);  // not counted either way
  EXPECT_FALSE(policy_.SessionEndFor(session).value().done());
  Observe("r1", Outcome::kFailed, s, "x", 0, session);
  const SessionEnd end = policy_.SessionEndFor(session).value();
  EXPECT_EQ(end.code, SessionEndReason::kZeroYield);
  EXPECT_EQ(end.Text(),
            "max_consecutive_zero_yield reached (2 attempts in a row without telemetry)");
  // Telemetry resets the streak.
  Observe("r1", Outcome::kSucceeded, s, "", 5, session);
  EXPECT_FALSE(policy_.SessionEndFor(session).value().done());
}

TEST_F(DrainPolicyRules, SessionEndNothingLeftButWaitsForARunBackingOff) {
  store_->ImportPhases({Spec("r1", "p1")}).value();
  SessionSettings s;
  s.retry_on = {"connection reset"};
  const SessionRecord session = ActiveSession(s);
  EXPECT_FALSE(policy_.SessionEndFor(session).value().done());
  Observe("r1", Outcome::kFailed, s, "connection reset");
  // Backing off is not "nothing left": the run comes back by itself.
  EXPECT_FALSE(policy_.SessionEndFor(session).value().done());
  SessionSettings filtered = s;
  filtered.skip_run_prefixes = {"r"};
  SessionRecord other = session;
  other.settings = filtered;
  const SessionEnd end = policy_.SessionEndFor(other).value();
  EXPECT_EQ(end.code, SessionEndReason::kNothingLeft);
  EXPECT_EQ(end.Text(), "nothing left to lease");
}

// The race CI found: the counts show the last phase pending and nothing
// leased, then a worker is granted it before every run's statistics are read.
// Its run then has nothing pending; the session must still wait for it.
TEST_F(DrainPolicyRules, SessionEndWaitsForAPhaseGrantedWhileItDecides) {
  store_->ImportPhases({Spec("r1", "p1")}).value();
  const SessionRecord session = ActiveSession(SessionSettings{});
  bool granted = false;
  policy_.ReadRunStatsFrom([&]() -> absl::StatusOr<std::vector<RunStats>> {
    if (!granted) {
      granted = true;
      LeaseParams lease;
      lease.run_id = "r1";
      lease.worker_id = "w1";
      lease.session_id = session.session_id;
      lease.lease_id = "L1";
      lease.timeout_seconds = 60;
      lease.now_ms = clock_.NowMs();
      lease.ttl_ms = 10'000;
      if (!store_->LeaseNextInRun(lease).value().has_value()) {
        return absl::InternalError("the test's grant found nothing to lease");
      }
    }
    return store_->ListRunStats();
  });
  EXPECT_FALSE(policy_.SessionEndFor(session).value().done());
  EXPECT_TRUE(granted);
}

TEST_F(DrainPolicyRules, StopRuleExcludesRunsExpectedBelowMinExpectedYield) {
  SessionSettings s;
  s.min_expected_yield = 0.5;  // events per worker-minute
  RunStats good = Pending("good", 3);
  good.attempts = good.successes = 4;
  good.telemetry_events = 40;
  good.run_ms = 4 * 60'000;  // 10 events a minute
  RunStats poor = Pending("poor", 3);
  poor.attempts = poor.successes = 4;
  poor.run_ms = 40 * 60'000;  // nothing in 40 minutes
  const std::vector<RunStats> runs = {good, poor};
  EXPECT_TRUE(DecisionFor("good", s, runs).excluded.empty());
  const RunDecision d = DecisionFor("poor", s, runs);
  EXPECT_EQ(d.excluded.code, SkipReason::kBelowMinExpectedYield);
  EXPECT_EQ(SkipKindName(d.excluded.code), "excluded");
  EXPECT_THAT(d.excluded_reason, ::testing::StartsWith("below min_expected_yield (expected 0."));
  EXPECT_THAT(d.excluded_reason, ::testing::EndsWith(" < 0.5 events/min)"));
  // Off (0): the same run is leasable.
  s.min_expected_yield = 0;
  EXPECT_TRUE(DecisionFor("poor", s, runs).excluded.empty());
}

TEST_F(DrainPolicyRules, StopRuleEndsTheSessionWhenNothingLeftIsExpectedToBeatIt) {
  store_->ImportPhases({Spec("r1", "p1"), Spec("r1", "p2")}).value();
  // With no evidence a run is expected at the prior: 0.5 success x 1 event
  // per 1-minute attempt = 0.5 events per worker-minute.
  SessionSettings below;
  below.min_expected_yield = 0.25;
  EXPECT_FALSE(policy_.SessionEndFor(ActiveSession(below, "s1")).value().done());
  store_->EndSession("s1", SessionState::kStopped, clock_.NowMs(), "test").IgnoreError();
  SessionSettings above;
  above.min_expected_yield = 1;
  const SessionEnd end = policy_.SessionEndFor(ActiveSession(above, "s2")).value();
  EXPECT_EQ(end.code, SessionEndReason::kBelowMinExpectedYield);
  EXPECT_EQ(SessionEndReasonName(end.code), "min_expected_yield");
  EXPECT_EQ(end.Text(),
            "nothing left is expected to beat min_expected_yield (1 events/min; 2 pending "
            "phases in 1 runs, the best expected at 0.500)");
}

TEST_F(DrainPolicyRules, StopRuleSettingIsValidatedAndKeptInTheStore) {
  SessionSettings s;
  s.min_expected_yield = -0.1;
  EXPECT_EQ(ValidateSessionSettings(s).code(), absl::StatusCode::kInvalidArgument);
  s.min_expected_yield = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(ValidateSessionSettings(s).code(), absl::StatusCode::kInvalidArgument);
  s.min_expected_yield = 0.125;
  EXPECT_TRUE(ValidateSessionSettings(s).ok());
  ActiveSession(s, "s1");
  EXPECT_EQ(store_->GetSession("s1").value()->settings.min_expected_yield, 0.125);
}

TEST_F(DrainPolicyRules, IdleLimitIsLearntFromAcceptedReportsValidatedAndKeptInTheStore) {
  SessionSettings s;  // idle_timeout_seconds 0: auto
  ASSERT_TRUE(policy_.EnsureLoaded().ok());
  EXPECT_EQ(policy_.IdleTimeoutSeconds(s, 900), 0) << "nothing learnt yet";
  for (int i = 0; i < 5; ++i) {
    AttemptReport report;
    report.lease_id = "L" + std::to_string(i);
    report.outcome = Outcome::kSucceeded;
    report.exit_code = 0;
    report.longest_silence_ms = 75'000;
    ReportResult result;
    result.disposition = ReportDisposition::kAccepted;
    result.run_id = "r1";
    result.phase_id = "p" + std::to_string(i);
    policy_.Observe(policy_.PrepareReport(report, s).value(), result, std::nullopt);
  }
  EXPECT_EQ(policy_.IdleTimeoutSeconds(s, 900), 150);  // twice the longest silence
  policy_.ResetForNewTerm();
  EXPECT_EQ(policy_.IdleTimeoutSeconds(s, 900), 0) << "a new term learns it again";

  s.idle_timeout_seconds = -2;
  EXPECT_EQ(ValidateSessionSettings(s).code(), absl::StatusCode::kInvalidArgument);
  s.idle_timeout_seconds = 300;
  EXPECT_TRUE(ValidateSessionSettings(s).ok());
  ActiveSession(s, "s1");
  EXPECT_EQ(store_->GetSession("s1").value()->settings.idle_timeout_seconds, 300);
}

TEST_F(DrainPolicyRules, SessionEndBatchSizeAndAnEndedSessionKeepsItsStoredReason) {
  SessionSettings s;
  s.batch_size = 0;
  SessionRecord ended;
  ended.session_id = "old";
  ended.state = SessionState::kStopped;
  ended.end_reason = "stopped by operator";
  const SessionEnd end = policy_.SessionEndFor(ended).value();
  EXPECT_EQ(end.code, SessionEndReason::kEnded);
  EXPECT_EQ(end.Text(), "stopped by operator");
  EXPECT_EQ((SessionEnd{SessionEndReason::kBatchSize, ""}.Text()), "batch_size reached");
}

TEST_F(DrainPolicyRules, FailedForGoodNamesBothBudgets) {
  SessionSettings s;
  s.max_attempts_per_phase = 4;
  s.max_requeues_per_phase = 3;
  const PolicyReason r = DrainPolicy::FailedForGood(s);
  EXPECT_EQ(r.code, SkipReason::kFailedForGood);
  EXPECT_EQ(SkipKindName(r.code), "failed");
  EXPECT_EQ(r.Text(),
            "failed for good: attempts exhausted (max_attempts_per_phase 4) or lost too often "
            "(max_requeues_per_phase 3)");
}

TEST_F(DrainPolicyRules, ResetForNewTermForgetsBackoffsAndRebuildsFromTheStore) {
  SessionSettings s;
  s.retry_on = {"connection reset"};
  Observe("r1", Outcome::kFailed, s, "connection reset");
  ASSERT_EQ(DecisionFor("r1", s).excluded.code, SkipReason::kBackingOff);
  policy_.ResetForNewTerm();
  EXPECT_TRUE(DecisionFor("r1", s).excluded.empty());
  // Outcome totals are recounted from the (empty) store history.
  EXPECT_EQ(policy_.OutcomeTotals().value().at(Outcome::kFailed), 0);
}

// Bug: backoffs lived in memory only, so `sluice status --store` never showed
// a run backing off, and a restarted coordinator or a new leader leased a run
// that had just hit a rate limit again at once.
TEST_F(DrainPolicyRules, TransientBackoffIsRebuiltFromTheAttemptHistory) {
  store_->ImportPhases({Spec("r1", "p1"), Spec("r2", "p1"), Spec("r2", "p2")}).value();
  SessionSettings s;
  s.retry_on = {"connection reset"};
  const SessionRecord session = ActiveSession(s);
  // Leases the run's next phase, records `outcome` in the store as the
  // coordinator would, and lets `policy` (that coordinator's) observe it.
  auto record = [&](DrainPolicy& policy, const std::string& run, Outcome outcome,
                    const std::string& error) {
    const AttemptReport report = GrantReport(LeaseFrom(run, session), outcome, error);
    ASSERT_TRUE(policy.EnsureLoaded().ok());
    const ReportParams params = policy.PrepareReport(report, s).value();
    const ReportResult result = store_->RecordReport(params).value();
    ASSERT_EQ(result.disposition, ReportDisposition::kAccepted);
    policy.Observe(params, result, session);
  };
  const int64_t t0 = clock_.NowMs();
  record(policy_, "r1", Outcome::kFailed, "connection reset");
  clock_.AdvanceMs(15'000);                        // the first backoff (10 s) is over
  record(policy_, "r1", Outcome::kCancelled, "");  // neither lengthens nor ends the streak
  record(policy_, "r1", Outcome::kFailed, "connection reset");  // 2nd in a row: 20 s from now
  record(policy_, "r2", Outcome::kFailed, "connection reset");
  record(policy_, "r2", Outcome::kFailed, "boom");  // an own outcome ends r2's backoff
  clock_.AdvanceMs(5'000);

  // A coordinator started now (or a new leader) over the same store.
  DrainPolicy fresh(*store_, clock_, {});
  auto decision = [&](DrainPolicy& policy, const std::string& run) {
    const std::vector<RunStats> runs = store_->ListRunStats().value();
    const std::vector<RunDecision> decisions = policy.Decide(runs, s, clock_.NowMs()).value();
    for (const RunDecision& d : decisions) {
      if (d.ranking.run_id == run) return d;
    }
    throw std::runtime_error("no decision for " + run);
  };
  const RunDecision r1 = decision(fresh, "r1");
  EXPECT_EQ(r1.excluded.code, SkipReason::kBackingOff);
  EXPECT_EQ(r1.excluded.detail, "15 s");                 // until t0 + 15 s + 20 s; now t0 + 20 s
  const RunDecision observed = decision(policy_, "r1");  // the coordinator that saw it happen
  EXPECT_EQ(r1.excluded.code, observed.excluded.code);
  EXPECT_EQ(r1.excluded.detail, observed.excluded.detail);
  EXPECT_TRUE(decision(fresh, "r2").excluded.empty()) << decision(fresh, "r2").excluded_reason;
  EXPECT_FALSE(fresh.SessionEndFor(session).value().done()) << "a run backing off is waited for";

  clock_.SetMs(t0 + 35'000 - 1);
  EXPECT_EQ(decision(fresh, "r1").excluded.code, SkipReason::kBackingOff);
  clock_.SetMs(t0 + 35'000);
  EXPECT_TRUE(decision(fresh, "r1").excluded.empty());
  // The streak was rebuilt too: the next transient failure is r1's 3rd, 40 s.
  record(fresh, "r1", Outcome::kFailed, "connection reset");
  EXPECT_EQ(decision(fresh, "r1").excluded.detail, "40 s");
}

// Bug: the repeat rule's memory was rebuilt counting every failure of the
// history, transient ones too, so after a restart or a takeover a run that
// had hit a rate limit three times was blocked by its fingerprint.
TEST_F(DrainPolicyRules, TransientFailuresDoNotFeedTheRepeatRuleAfterAReload) {
  // Two phase ids in one family (svc): the fingerprint would be run-wide.
  store_->ImportPhases({Spec("svc-a", "p1"), Spec("svc-b", "p2")}).value();
  SessionSettings s;
  s.retry_on = {"connection reset"};
  s.max_fingerprint_repeats = 2;
  const SessionRecord session = ActiveSession(s);
  for (const std::string run : {"svc-a", "svc-b", "svc-a", "svc-b"}) {
    const AttemptReport report = ForGrant(LeaseFrom(run, session), Failure("connection reset"));
    const ReportParams params = policy_.PrepareReport(report, s).value();
    ASSERT_EQ(store_->RecordReport(params).value().disposition, ReportDisposition::kAccepted);
  }
  clock_.AdvanceMs(600'000);  // past any backoff
  DrainPolicy fresh(*store_, clock_, {});
  EXPECT_THAT(fresh.Fingerprints().value(), IsEmpty());
  const std::vector<RunDecision> decisions =
      fresh.Decide(store_->ListRunStats().value(), s, clock_.NowMs()).value();
  ASSERT_EQ(decisions.size(), 2u);
  for (const RunDecision& d : decisions) {
    EXPECT_TRUE(d.excluded.empty()) << d.ranking.run_id << ": " << d.excluded_reason;
  }
}

// The history is read in chunks (so a long one is never held whole): what
// is past the first chunk must count as if it had been read in one piece.
TEST_F(DrainPolicyRules, AHistoryLongerThanOneReadIsReplayedWhole) {
  class CountingStore : public testing::ForwardingStateStore {
   public:
    using ForwardingStateStore::ForwardingStateStore;
    absl::StatusOr<AttemptBatch> ListAttemptsFrom(const std::string& session, int64_t cursor,
                                                  int64_t limit) override {
      ++reads;
      return ForwardingStateStore::ListAttemptsFrom(session, cursor, limit);
    }
    int reads = 0;
  };
  constexpr int kSuccesses = 10'050;
  std::vector<PhaseSpec> phases;
  for (int i = 0; i < kSuccesses; ++i) phases.push_back(Spec("ok", "p" + std::to_string(i)));
  phases.push_back(Spec("bad", "p1"));
  store_->ImportPhases(phases).value();
  SessionSettings s;
  s.max_attempts_per_phase = 5;
  const SessionRecord session = ActiveSession(s);
  auto record = [&](const std::string& run, const AttemptReport& outcome) {
    const AttemptReport report = ForGrant(LeaseFrom(run, session), outcome);
    const ReportParams params = policy_.PrepareReport(report, s).value();
    ASSERT_EQ(store_->RecordReport(params).value().disposition, ReportDisposition::kAccepted);
  };
  AttemptReport success;
  success.outcome = Outcome::kSucceeded;
  success.telemetry_events = 2;
  for (int i = 0; i < kSuccesses; ++i) record("ok", success);
  for (int i = 0; i < 3; ++i) record("bad", Failure("ImportError: no module named x"));

  CountingStore counting(*store_);
  DrainPolicy fresh(counting, clock_, {});
  const std::vector<FingerprintInfo> fps = fresh.Fingerprints().value();
  EXPECT_GE(counting.reads, 2) << "more than one chunk";
  ASSERT_EQ(fps.size(), 1u);
  EXPECT_EQ(fps[0].count, 3) << "the failures after the first chunk";
  const auto totals = fresh.OutcomeTotals().value();
  EXPECT_EQ(totals.at(Outcome::kSucceeded), kSuccesses);
  EXPECT_EQ(totals.at(Outcome::kFailed), 3);
}

TEST_F(DrainPolicyRules, ObserveLostCountsOnlyOnceTheHistoryIsLoaded) {
  policy_.ObserveLost(2);  // before loading: part of the history it will read
  EXPECT_EQ(policy_.OutcomeTotals().value().at(Outcome::kLost), 0);
  policy_.ObserveLost(3);
  EXPECT_EQ(policy_.OutcomeTotals().value().at(Outcome::kLost), 3);
}

TEST(PolicyReasonTest, KindsAndTextsOfEveryReason) {
  EXPECT_EQ(SkipKindName(SkipReason::kBackingOff), "excluded");
  EXPECT_EQ(SkipKindName(SkipReason::kDeferredFamilyFailures), "deferred");
  EXPECT_EQ(SkipKindName(SkipReason::kNeedsLabels), "waiting_for_labels");
  EXPECT_EQ(SkipKindName(SkipReason::kNone), "");
  EXPECT_EQ((PolicyReason{SkipReason::kNeedsLabels, "gpu,big"}.Text()),
            "waiting for a worker with labels gpu,big (no registered worker has them all)");
  EXPECT_EQ((PolicyReason{SkipReason::kNeedsLabelsUnlisted, ""}.Text()),
            "more phases waiting for a worker with their labels (not listed)");
  EXPECT_EQ((PolicyReason{SkipReason::kDeferredFamilyFailures,
                          "'fam' failed deterministically 2 time(s) in its other runs, none "
                          "succeeded"}
                 .Text()),
            "deferred: run family 'fam' failed deterministically 2 time(s) in its other runs, "
            "none succeeded");
  EXPECT_TRUE(PolicyReason{}.empty());
  EXPECT_EQ(PolicyReason{}.Text(), "");
  EXPECT_FALSE(SessionEnd{}.done());
  EXPECT_EQ(SessionEndReasonName(SessionEndReason::kZeroYield), "max_consecutive_zero_yield");
  EXPECT_EQ(SkipReasonName(SkipReason::kFingerprintRepeats), "fingerprint_repeats");
}

}  // namespace
}  // namespace sluice
