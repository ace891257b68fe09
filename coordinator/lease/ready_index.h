// The lease broker's ready index (issue #12): which run the next grant should
// come from, without ranking every run and without reading the backlog on
// every grant.
//
// What it holds. Every run's statistics (RunStats, as the store aggregates
// them) and the last full ranking of them: the eligible runs, best first, as
// the ranking function (the Scheduler, through DrainPolicy::Rank) orders
// them. A grant walks that order from the top, skipping
//   - dirty runs: granted from, reported on, expired or found changed since
//     the ranking (their statistics are re-read and the run is ranked again
//     at the next full ranking), and
//   - runs that had nothing leasable for the worker's label set (kept per
//     label set, so a worker without a GPU does not retry every GPU run on
//     every grant).
// So a run is only offered while its ranking is newer than its last change
// made through this process, and a grant costs O(log runs).
//
// When it ranks again (whole, from the statistics):
//   - small backlogs (fewer than `exact_below_runs` runs): on every Best, so
//     the order is exactly the ranking from scratch, as before the index;
//   - otherwise after max(1, runs / changes_divisor) changes (grants,
//     reports, expiries), after `max_age_ms` on the Clock (aging, backoffs and
//     deferrals that move with time), when nothing clean is left to offer
//     and something changed, on Invalidate (an import, an unblock, a new
//     leadership term) and when the session changes.
//   Amortised, that is O(changes_divisor x log runs) per change.
// Exclusions are exact at every grant: the offered run is ranked again on
// its own (`rank` on {run}), and a run that is now excluded (blocked by a
// fingerprint another run's report made run-wide, backing off, ...) or
// newly deferred is dropped until the next full ranking.
//
// Statistics come from the store: whole (ListRunStats) on first use, after
// Invalidate and at most max(`reload_every`, 20 x the last whole load's
// duration) (real time) after the last whole load, a safety net for writes
// this process did not make (`sluice import --store` on the same file) that
// costs at most ~5 % of the time even where a whole load is slow (Redis,
// 10,000 runs: ~0.4 s); in between only the dirty runs are read again
// (GetRunStats), once per full ranking however often they changed, unless
// every change to the run since the ranking came with the statistics the
// store answered with its write (Granted and Touch with `stats`; the Redis
// store's lease and report replies): then the newest of those is the read.
// "Newest" is by 2 x attempts + leased, which every grant, report and expiry
// raises by exactly one (a grant moves a phase to leased; a report or expiry
// moves it out and records an attempt) and nothing lowers, so answers that
// reach the index out of order (grants on this thread, reports on others)
// never replace newer statistics.
//
// Thread-safety: Touch and Invalidate may be called from any thread at any
// time and never wait for a store call. Best, Granted, Missed and Drop are
// called by one granting thread at a time (the broker's grant lock).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/model.h"
#include "coordinator/policy/scheduler.h"
#include "coordinator/store/state_store.h"

namespace sluice {

struct ReadyIndexOptions {
  // Below this many runs every Best ranks from scratch (cheap there, and
  // exactly the behaviour small drains and the policy bench were tuned on).
  size_t exact_below_runs = 100;
  // Above it: rank again after runs / changes_divisor changes...
  size_t changes_divisor = 16;
  // ... or once the ranking is this old on the Clock.
  int64_t max_age_ms = 1000;
  // Whole reload of the statistics from the store, real time (at least; see
  // the class comment).
  absl::Duration reload_every = absl::Seconds(2);
};

class ReadyIndex {
 public:
  // The ranking: eligible runs of `runs`, best first (DrainPolicy::Rank).
  // Called with every run's statistics for a full ranking and with one run's
  // to check that run's exclusion and deferral.
  using RankFn = std::function<absl::StatusOr<std::vector<RunRanking>>(
      const std::vector<RunStats>& runs, const SessionSettings& settings, int64_t now_ms)>;

  struct Candidate {
    RunStats stats;
    RunRanking ranking;
  };

  // `store` and `clock` must outlive the index.
  ReadyIndex(StateStore& store, const Clock& clock, RankFn rank, ReadyIndexOptions options = {});

  // The best-ranked clean run for a worker with `labels` under `session`'s
  // settings, not in `skip` (the runs this grant already found empty),
  // ranking again first when due; nullopt when no eligible run is left.
  // Store and ranking errors as returned (the index then ranks again).
  absl::StatusOr<std::optional<Candidate>> Best(const SessionRecord& session,
                                                const std::vector<std::string>& labels,
                                                const std::set<std::string>& skip = {})
      ABSL_LOCKS_EXCLUDED(mu_, touch_mu_);
  // A phase of `run_id` was granted (or the run is to be ranked again): the
  // run is dirty until the next ranking. `stats`: the run's statistics as
  // the store answered them with the grant; nullopt: read them.
  void Granted(const std::string& run_id, std::optional<RunStats> stats = std::nullopt)
      ABSL_LOCKS_EXCLUDED(mu_);
  // `run_id` has nothing leasable for `labels` (LeaseNextInRun said so).
  void Missed(const std::string& run_id, const std::vector<std::string>& labels)
      ABSL_LOCKS_EXCLUDED(mu_);

  // This run's statistics changed in the store (a report, an expiry).
  // `stats`: as the store answered them with that write; nullopt: read them.
  void Touch(const std::string& run_id, std::optional<RunStats> stats = std::nullopt)
      ABSL_LOCKS_EXCLUDED(touch_mu_);
  // Runs may have appeared or changed anywhere (an import, an unblock, a new
  // term): reload whole and rank again before the next offer.
  void Invalidate() ABSL_LOCKS_EXCLUDED(touch_mu_);

  // Every run's statistics, by run id, for readers other than the grant path
  // (status and its skip explanations, the session's end, plan): the index's
  // copy brought up to date the way a ranking brings it, without ranking:
  // the runs changed through this process since their last read are read
  // again (or taken from the statistics their writes answered), and the
  // whole set is reloaded when a reload is due, or when the runs' phases do
  // not add up to the store's phase counters (StateStore::CountPhases): so a
  // write through this process shows at once, and one by another process
  // that moved phases (an import) too; one that moved none (a re-import that
  // changed priorities) within the reload period. Store errors as returned.
  absl::StatusOr<std::vector<RunStats>> Snapshot() ABSL_LOCKS_EXCLUDED(mu_, touch_mu_);

  // Full rankings so far (tests and benchmarks).
  uint64_t rankings() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Entry {
    std::string run_id;
    RunRanking ranking;
  };

  // Ranks again when due; `nothing_left`: nothing clean is left to offer.
  absl::Status RankIfDue(const SessionRecord& session, int64_t now_ms, bool nothing_left)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) ABSL_LOCKS_EXCLUDED(touch_mu_);
  absl::Status RankNow(const SessionRecord& session, int64_t now_ms)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) ABSL_LOCKS_EXCLUDED(touch_mu_);
  // Brings stats_ up to date: a whole reload when due, else the stale runs.
  absl::Status Refresh() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Pulls the runs touched from other threads into dirty_.
  void CollectTouched() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) ABSL_LOCKS_EXCLUDED(touch_mu_);
  void MarkDirty(const std::string& run_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // MarkDirty, and keeps `stats` (newest wins) or notes that the run must be
  // read.
  void Changed(const std::string& run_id, std::optional<RunStats> stats)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // True when the statistics are due a whole reload.
  bool ReloadDue() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::set<uint32_t>& CleanFor(const std::vector<std::string>& labels)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  StateStore& store_;
  const Clock& clock_;
  const RankFn rank_;
  const ReadyIndexOptions options_;

  absl::Mutex touch_mu_ ABSL_ACQUIRED_AFTER(mu_);
  // Touched runs, with the newest statistics answered (nullopt: read it).
  std::map<std::string, std::optional<RunStats>> touched_ ABSL_GUARDED_BY(touch_mu_);
  bool invalidated_ ABSL_GUARDED_BY(touch_mu_) = true;

  mutable absl::Mutex mu_;
  bool loaded_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time loaded_at_ ABSL_GUARDED_BY(mu_);
  absl::Duration load_took_ ABSL_GUARDED_BY(mu_);  // the last whole load
  std::map<std::string, RunStats> stats_ ABSL_GUARDED_BY(mu_);
  // The last full ranking and what it was made for.
  bool ranked_ ABSL_GUARDED_BY(mu_) = false;
  std::string ranked_session_ ABSL_GUARDED_BY(mu_);
  int64_t ranked_at_ms_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t rankings_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<Entry> order_ ABSL_GUARDED_BY(mu_);  // best first
  std::unordered_map<std::string, uint32_t> position_ ABSL_GUARDED_BY(mu_);
  // Positions not dirty (`clean_`), and per label set (sorted labels
  // joined; "" for none) those without the runs that missed for it.
  std::set<uint32_t> clean_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::set<uint32_t>> clean_by_labels_ ABSL_GUARDED_BY(mu_);
  // Runs changed since the ranking (not offered until the next one)...
  std::set<std::string> dirty_ ABSL_GUARDED_BY(mu_);
  // ... and since stats_ last read them (re-read by Refresh, before the next
  // ranking or snapshot) ...
  std::set<std::string> stale_ ABSL_GUARDED_BY(mu_);
  // ... unless every change came with its statistics: the newest of them.
  std::map<std::string, RunStats> answered_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> unanswered_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sluice
