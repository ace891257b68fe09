// The drain policy: every rule that decides whether work is retried, failed
// for good, excluded, deferred or backed off, and why a session ends. One
// home, so the gRPC adapters, status, plan and the report never re-derive a
// rule, and every decision carries a typed reason (reasons.h).
//
// The rules, each with a test named after it (tests/coordinator/policy/
// drain_policy_rules_test.cc, DrainPolicyRules.*):
//   - attempt budget: a phase fails for good after max_attempts_per_phase own
//     outcomes; requeue budget: after max_requeues_per_phase lost, cancelled
//     or transient attempts. The rule is DecideAfterOutcome (phase_budget.h);
//     PrepareReport and ExpiryTransition hand its transition to the store,
//     which applies it inside its atomic write.
//   - transient failures (the built-in set of failure_policy.h unless
//     --no-default-transient, plus --retry-on): use the requeue budget, never feed the
//     repeat rule, and back the run off 10 s, 20 s, ... 5 min; a
//     non-transient, non-cancelled outcome ends the backoff. EnsureLoaded
//     rebuilds backoffs from the history (from each attempt's end).
//   - retry worth-it rule (RetryEvidence, retry_policy.h): an own failure or
//     timeout whose fingerprint's retries rarely succeed, cluster-wide, fails
//     the phase for good at once (the store gets an attempt budget of 1);
//     the attempt budget stays the hard cap.
//   - backlog history (backlog_history.h): an own failure or timeout that
//     repeats the failure the phase's backlog row records (last_error) is
//     not retried either; a phase whose row says it timed out goes behind
//     its run's other untried phases (the stores' retries_last order).
//   - retry tier (retry_tier.h): a run whose last grant came from its retry
//     tier is ranked by what retry-tier attempts yield cluster-wide.
//   - repeat rule (FailurePolicy): a fingerprint seen max_fingerprint_repeats
//     times blocks its runs until an operator unblocks it.
//   - timeouts per run, run filters, deferral, aging: the Scheduler's
//     exclusions, deferrals and ranking, fed the policy state of each run
//     (Decide).
//   - session end: deadline, batch size, zero-yield streak, nothing left
//     (runs backing off are waited for).
//
// State (the repeat rule's memory, transient streaks and backoffs, outcome
// totals) lives in memory and is rebuilt from the store's attempt history on
// first use and after ResetForNewTerm; the zero-yield streak and the aging
// clocks start again.
//
// Thread-safety: every method may be called from many threads; one mutex
// guards the state and is never held across a store call.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/model.h"
#include "coordinator/policy/failure_policy.h"
#include "coordinator/policy/idle_limit.h"
#include "coordinator/policy/phase_budget.h"
#include "coordinator/policy/reasons.h"
#include "coordinator/policy/retry_policy.h"
#include "coordinator/policy/retry_tier.h"
#include "coordinator/policy/run_stats_source.h"
#include "coordinator/policy/scheduler.h"
#include "coordinator/store/state_store.h"

namespace sluice {

// InvalidArgument naming the first bad setting (also compiles --retry-on).
absl::Status ValidateSessionSettings(const SessionSettings& settings);

// Backoff of a run after its `streak`-th transient failure in a row:
// 10 s, 20 s, 40 s, ... capped at 5 min.
int64_t TransientBackoffMs(int streak);

// The budget that failed a phase for good.
enum class FailedBudget {
  kAttempts,  // max_attempts_per_phase own outcomes
  kRequeues,  // max_requeues_per_phase lost, cancelled or transient attempts
};

// Another reader of the whole attempt history (the planner's spent
// attempts), fed by the policy's replay so that a coordinator walks the
// history once at start instead of once per reader (at 1M attempts each
// walk is seconds).
class HistoryFollower {
 public:
  virtual ~HistoryFollower() = default;
  // Every attempt of the history, in end order.
  virtual void Observe(const AttemptRecord& attempt) = 0;
  // The replay read the history up to `cursor` (StateStore::ListAttemptsFrom
  // of every session) without error. Not called after a failed read.
  virtual void Done(int64_t cursor) = 0;
};

class DrainPolicy {
 public:
  // `store` and `clock` must outlive the policy.
  DrainPolicy(StateStore& store, const Clock& clock, SchedulerOptions options);

  // Loads the repeat rule's memory, the runs' transient streaks and backoffs
  // and the outcome totals from the store (once; again after
  // ResetForNewTerm). Unavailable on a store failure. Callers that come
  // while a load is in flight wait for it (the server's tick thread loads it
  // at start-up and after a new term: Coordinator::LoadPolicy).
  absl::Status EnsureLoaded() ABSL_LOCKS_EXCLUDED(mu_);
  // Forgets everything cached: a new leadership term rebuilds from the store.
  void ResetForNewTerm() ABSL_LOCKS_EXCLUDED(mu_);
  // Where SessionEndFor reads every run's statistics (default: the store).
  // Set before the policy is used from other threads.
  void ReadRunStatsFrom(RunStatsSource source) { run_stats_ = std::move(source); }
  // Each history replay (EnsureLoaded) also feeds a follower `start` makes
  // for it. Set before the policy is used from other threads.
  using HistoryFollowerFactory = std::function<std::unique_ptr<HistoryFollower>()>;
  void AlsoReplayInto(HistoryFollowerFactory start) { follower_factory_ = std::move(start); }

  // Session deadline rule: true once max_total_minutes have passed.
  bool DeadlinePassed(const SessionRecord& session) const;
  // The latest session if it is active and its deadline has not passed.
  absl::StatusOr<std::optional<SessionRecord>> ActiveSession();

  // The store write for `report` under `settings`: fingerprint and the budget
  // rule's transition (a transient failure spends the requeue budget; the
  // attempt budget is 1 when the retry worth-it rule or the backlog history
  // declines a retry). Reads the phase's backlog row only for an own
  // failure that would otherwise be retried.
  absl::StatusOr<ReportParams> PrepareReport(const AttemptReport& report,
                                             const SessionSettings& settings) const;
  // The backlog history's verdict on retrying after `report` (an own
  // failure or timeout): empty, or why not.
  absl::StatusOr<PolicyReason> BacklogHistoryDeclines(const AttemptReport& report) const;
  // An accepted report (after the store's write): outcome totals, the repeat
  // rule, backoff and transient streak of the run, the zero-yield streak of
  // `session`. Call EnsureLoaded first.
  void Observe(const ReportParams& params, const ReportResult& result,
               const std::optional<SessionRecord>& session) ABSL_LOCKS_EXCLUDED(mu_);
  // Attempts in a row without telemetry reported in `session_id` so far (0
  // for another session). The broker leases no more once this plus the
  // leases in flight reaches max_consecutive_zero_yield.
  int64_t ZeroYieldStreak(const std::string& session_id) ABSL_LOCKS_EXCLUDED(mu_);
  // The requeue budget lease expiry applies (the latest session's).
  static int32_t RequeueBudget(const std::optional<SessionRecord>& latest);
  // The transition the store applies to the phase of each expired lease.
  static PhaseTransition ExpiryTransition(const std::optional<SessionRecord>& latest);
  static PhaseBudget BudgetOf(const SessionSettings& settings);
  // The broker granted `grant` (its retry_tier as the store said).
  void Granted(const LeaseGrant& grant) ABSL_LOCKS_EXCLUDED(mu_);
  // The idle limit (IdleLimit) for a grant with `timeout_seconds`; 0 = none.
  int32_t IdleTimeoutSeconds(const SessionSettings& settings, int32_t timeout_seconds) const
      ABSL_LOCKS_EXCLUDED(mu_);
  // Retry tier (RetryTier): whether `run_id` is in it, and that the store
  // had no untried phase of it.
  bool InRetryTier(const std::string& run_id) const ABSL_LOCKS_EXCLUDED(mu_);
  void UntriedDone(const std::string& run_id) ABSL_LOCKS_EXCLUDED(mu_);
  // `count` leases expired and were recorded as lost.
  void ObserveLost(int64_t count) ABSL_LOCKS_EXCLUDED(mu_);

  // Every run with pending phases: eligible ones best first, then the
  // excluded ones, each with its typed reason (Scheduler::Decide).
  absl::StatusOr<std::vector<RunDecision>> Decide(const std::vector<RunStats>& runs,
                                                  const SessionSettings& settings, int64_t now_ms)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The eligible runs only, best first.
  absl::StatusOr<std::vector<RunRanking>> Rank(const std::vector<RunStats>& runs,
                                               const SessionSettings& settings, int64_t now_ms)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Failed-for-good rule, as the operator reads it for a run with failed
  // phases under `settings`: both budgets, or the one that ran out.
  static PolicyReason FailedForGood(const SessionSettings& settings);
  static PolicyReason FailedForGood(const SessionSettings& settings, FailedBudget budget);

  // Why `session` is over (kNone while it is not), from store counts. With
  // nothing leased this decides every run (reads every run's aggregates),
  // unless the last such verdict is still good: same session and settings, same phase
  // counters and finished attempts, no policy change since, and younger than
  // kEndVerdictMaxAgeMs on the Clock.
  // `reuse_for_ms`: the age up to which a verdict is reused.
  absl::StatusOr<SessionEnd> SessionEndFor(const SessionRecord& session,
                                           int64_t reuse_for_ms = kEndVerdictMaxAgeMs)
      ABSL_LOCKS_EXCLUDED(mu_);
  // How long an unchanged "nothing leased" verdict is reused. Time alone
  // moves it little (a backoff ending makes a waited-for run eligible: not
  // done either way).
  static constexpr int64_t kEndVerdictMaxAgeMs = 2'000;
  // The tick's: it decides again at half the age readers accept, so with a
  // tick every 500 ms a poll finds a verdict young enough and never decides.
  static constexpr int64_t kTickEndVerdictMaxAgeMs = kEndVerdictMaxAgeMs / 2;
  // Verdicts decided over every run so far, not reused (tests).
  uint64_t end_decisions() const { return end_decisions_.load(); }

  // Attempts by outcome, every outcome present.
  absl::StatusOr<std::map<Outcome, int64_t>> OutcomeTotals() ABSL_LOCKS_EXCLUDED(mu_);
  // Every attempt's telemetry events and duration added up (all sessions):
  // counted from the history once per term, then kept as reports arrive, so
  // /metrics and the web view's history read no table. Lost attempts add 0.
  struct EffortTotals {
    int64_t telemetry_events = 0;
    int64_t run_ms = 0;
    int64_t unknown_telemetry_ms = 0;  // part of run_ms with unknown telemetry: not in yield
  };
  absl::StatusOr<EffortTotals> Effort() ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::vector<FingerprintInfo>> Fingerprints() ABSL_LOCKS_EXCLUDED(mu_);
  // Resolves `key_or_id`, records the unblock in the store and forgets the
  // fingerprint's occurrences. NotFound for an unknown fingerprint.
  absl::StatusOr<std::string> Unblock(const std::string& key_or_id) ABSL_LOCKS_EXCLUDED(mu_);

  const Scheduler& scheduler() const { return scheduler_; }

 private:
  absl::StatusOr<std::map<std::string, RunPolicyState>> StateOf(const std::vector<RunStats>& runs,
                                                                const SessionSettings& settings)
      ABSL_LOCKS_EXCLUDED(mu_);
  // RetryTier's factor from the effort totals.
  double RetryTierFactor() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // EnsureLoaded's read of the whole history.
  absl::Status LoadHistory() ABSL_LOCKS_EXCLUDED(mu_);
  // The part of SessionEndFor that decides every run (nothing leased).
  absl::StatusOr<SessionEnd> SessionEndWithNothingLeased(const SessionRecord& session)
      ABSL_LOCKS_EXCLUDED(mu_);

  // SessionEndFor's last verdict with nothing leased and what it was made
  // from. Status asks for it on every web view poll, /metrics scrape and
  // `sluice status`, as often as the tick: at 10,000 runs deciding costs
  // 66-136 ms on SQLite and about 1 s on Redis, and would be paid by each.
  struct EndVerdict {
    std::string session_id;
    SessionSettings settings;  // a caller may ask under other settings (plan, tests)
    PhaseCounts counts;
    int64_t finished = 0;
    uint64_t generation = 0;
    int64_t at_ms = 0;
    SessionEnd end;
  };

  StateStore& store_;
  const Clock& clock_;
  const Scheduler scheduler_;
  RunStatsSource run_stats_;
  HistoryFollowerFactory follower_factory_;
  std::atomic<uint64_t> end_decisions_{0};

  mutable absl::Mutex mu_;
  bool loaded_ ABSL_GUARDED_BY(mu_) = false;
  bool loading_ ABSL_GUARDED_BY(mu_) = false;  // a LoadHistory in flight
  FailurePolicy failure_policy_ ABSL_GUARDED_BY(mu_);
  RetryEvidence retry_evidence_ ABSL_GUARDED_BY(mu_);
  RetryTier retry_tier_ ABSL_GUARDED_BY(mu_);
  IdleLimit idle_limit_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t> run_backoff_until_ ABSL_GUARDED_BY(mu_);
  // Aging: since when each pending run has waited without a lease in flight
  // (first seen pending, or its last lease seen in flight). In memory: a new
  // term starts the clocks again.
  std::map<std::string, int64_t> run_waiting_since_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> run_transient_streak_ ABSL_GUARDED_BY(mu_);
  std::map<Outcome, int64_t> outcome_totals_ ABSL_GUARDED_BY(mu_);
  EffortTotals effort_ ABSL_GUARDED_BY(mu_);
  // Attempts in a row without telemetry in zero_yield_session_; in memory
  // only, so a coordinator restart starts the count again.
  std::string zero_yield_session_ ABSL_GUARDED_BY(mu_);
  int64_t zero_yield_streak_ ABSL_GUARDED_BY(mu_) = 0;
  // Bumped by every change above that can change a run's decision (a
  // report, a lost lease, an unblock, a reload).
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<EndVerdict> end_verdict_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sluice
