// Explains the drain policy's decisions without changing anything: the order
// in which phases would be leased now (`sluice plan`, --dry-run) and why
// pending work is not leased (status and the report's "not leased now"
// block). Every row carries the typed reason the policy decided with.
//
// Thread-safety: every method may be called from many threads (the
// DrainPolicy and the store synchronise; the planner's own count of spent
// attempts has its own mutex, held while it reads on).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/model.h"
#include "coordinator/insight/session_report.h"
#include "coordinator/policy/drain_policy.h"
#include "coordinator/policy/expected_curve.h"
#include "coordinator/policy/run_stats_source.h"
#include "coordinator/policy/scheduler.h"
#include "coordinator/store/state_store.h"

namespace sluice {

// The order in which phases would be leased now (--dry-run).
struct PlannedLease {
  std::string run_id;
  std::string phase_id;
  int32_t attempt = 0;
  std::string why;
  double expected_yield = 0;
};

struct LeasePlan {
  std::vector<PlannedLease> leases;
  std::vector<RunDecision> excluded;    // runs with pending phases that will not be leased, and why
  std::vector<PhaseSpec> needs_labels;  // phases a label-less worker cannot take
  // All pending work the policy would lease, not just the first `limit`
  // phases: what is left is expected to be worth this much.
  ExpectedCurve curve;
};

class Planner {
 public:
  // The references must outlive the planner.
  Planner(StateStore& store, const Clock& clock, DrainPolicy& policy)
      : store_(store),
        clock_(clock),
        policy_(policy),
        run_stats_([&store] { return store.ListRunStats(); }) {}

  // Where Plan and ExplainSkips read every run's statistics (default: the
  // store). Set before the planner is used from other threads.
  void ReadRunStatsFrom(RunStatsSource source) { run_stats_ = std::move(source); }

  // What a session with `settings` would lease now, up to `limit` phases, in
  // order, and why the other runs would not be leased. Settings are not
  // validated here.
  absl::StatusOr<LeasePlan> Plan(const SessionSettings& settings, int64_t limit);

  // Why pending work is not leased now under `settings`: excluded and
  // deferred runs, phases waiting for a worker with their labels (at most
  // 100 rows, then one summary row), runs with phases that failed for good.
  // Reads every pending labelled phase: for status and reports, never for
  // leasing.
  absl::StatusOr<std::vector<SkipRow>> ExplainSkips(const SessionSettings& settings);
  // The run-level rows of ExplainSkips (excluded and deferred runs) for
  // `runs` only: reads nothing per phase (the web view's page of runs).
  absl::StatusOr<std::vector<SkipRow>> ExplainRunSkips(const std::vector<RunStats>& runs,
                                                       const SessionSettings& settings);

  // A new leadership term: the next ExplainSkips counts the spent attempts
  // from the start of the history (a failed-over Redis may have lost what
  // was read).
  void ResetForNewTerm() { ++term_; }

  // A follower of the policy's history replay (DrainPolicy::AlsoReplayInto)
  // that counts the spent attempts in the same walk, so the first status
  // after a start or a takeover reads only what was recorded since.
  std::unique_ptr<HistoryFollower> FollowHistory();

  // The session report (session_id "" = the latest); for the latest session
  // it carries ExplainSkips under that session's settings. NotFound without
  // any session.
  absl::StatusOr<SessionReport> ReportFor(const std::string& session_id);

 private:
  // One row per run with failed phases and budget that ended them (the
  // attempt budget or the requeue budget), counted per phase.
  absl::Status AddFailedForGoodRows(const std::vector<RunStats>& runs,
                                    const SessionSettings& settings, std::vector<SkipRow>* rows)
      ABSL_LOCKS_EXCLUDED(spent_mu_);
  using SpentByPhase = std::map<PhaseKey, int64_t>;
  class SpentFollower;
  // Brings spent_ up to the history's end.
  absl::Status ReadOnSpentAttempts() ABSL_EXCLUSIVE_LOCKS_REQUIRED(spent_mu_);
  // Takes counts of the history up to `cursor` if they reach further than
  // spent_ (the history only grows at its end, so either is a true count of
  // its prefix) and were read in this term (`term`: term_ when the read
  // began; a failed-over Redis may have lost what an older read saw).
  void AdoptSpent(SpentByPhase spent, int64_t cursor, uint64_t term) ABSL_LOCKS_EXCLUDED(spent_mu_);
  // Starts spent_ over if it was counted in an earlier term.
  void DropSpentIfStale() ABSL_EXCLUSIVE_LOCKS_REQUIRED(spent_mu_);

  StateStore& store_;
  const Clock& clock_;
  DrainPolicy& policy_;
  RunStatsSource run_stats_;

  // Per phase, the attempts that spent its budget (SpendsAnAttempt), from
  // the history read up to spent_cursor_ (StateStore::ListAttemptsFrom): a
  // status reads only the attempts recorded since the last one. A phase
  // that succeeded is dropped (a success is final, so it is never a failed
  // row): what is held is the phases attempted without success.
  absl::Mutex spent_mu_;
  SpentByPhase spent_ ABSL_GUARDED_BY(spent_mu_);
  int64_t spent_cursor_ ABSL_GUARDED_BY(spent_mu_) = 0;
  uint64_t spent_term_ ABSL_GUARDED_BY(spent_mu_) = 0;  // the term_ spent_ was counted in
  std::atomic<uint64_t> term_{0};                       // ResetForNewTerm calls so far
};

}  // namespace sluice
