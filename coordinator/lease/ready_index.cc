#include "coordinator/lease/ready_index.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace sluice {
namespace {

// Raised by exactly one by every grant, report and expiry of the run, lowered
// by nothing (see the header): which of two answers for a run is newer.
int64_t WriteOrder(const RunStats& s) { return 2 * s.attempts + s.leased; }

// Keeps `fresh` in `into[run_id]` unless what is there is as new.
void KeepNewest(std::map<std::string, RunStats>& into, const std::string& run_id, RunStats fresh) {
  auto [it, inserted] = into.try_emplace(run_id, fresh);
  if (!inserted && WriteOrder(fresh) > WriteOrder(it->second)) it->second = std::move(fresh);
}

PhaseCounts CountsOf(const std::map<std::string, RunStats>& runs) {
  PhaseCounts c;
  for (const auto& [id, r] : runs) {
    c.pending += r.pending;
    c.leased += r.leased;
    c.succeeded += r.succeeded;
    c.failed += r.failed;
  }
  return c;
}

}  // namespace

ReadyIndex::ReadyIndex(StateStore& store, const Clock& clock, RankFn rank,
                       ReadyIndexOptions options)
    : store_(store), clock_(clock), rank_(std::move(rank)), options_(options) {}

uint64_t ReadyIndex::rankings() const {
  absl::MutexLock lock(&mu_);
  return rankings_;
}

void ReadyIndex::Touch(const std::string& run_id, std::optional<RunStats> stats) {
  absl::MutexLock lock(&touch_mu_);
  auto [it, inserted] = touched_.try_emplace(run_id, stats);
  if (inserted) return;
  // A change that came without statistics must be read, whatever else came.
  if (!stats || !it->second) {
    it->second.reset();
  } else if (WriteOrder(*stats) > WriteOrder(*it->second)) {
    it->second = std::move(stats);
  }
}

void ReadyIndex::Invalidate() {
  absl::MutexLock lock(&touch_mu_);
  invalidated_ = true;
  touched_.clear();
}

void ReadyIndex::CollectTouched() {
  std::map<std::string, std::optional<RunStats>> touched;
  bool invalidated = false;
  {
    absl::MutexLock lock(&touch_mu_);
    touched.swap(touched_);
    invalidated = invalidated_;
    invalidated_ = false;
  }
  if (invalidated) {
    loaded_ = false;
    ranked_ = false;
  }
  for (auto& [run_id, stats] : touched) Changed(run_id, std::move(stats));
}

void ReadyIndex::Changed(const std::string& run_id, std::optional<RunStats> stats) {
  MarkDirty(run_id);
  if (stats) {
    KeepNewest(answered_, run_id, *std::move(stats));
  } else {
    unanswered_.insert(run_id);
  }
}

void ReadyIndex::MarkDirty(const std::string& run_id) {
  dirty_.insert(run_id);
  stale_.insert(run_id);
  auto it = position_.find(run_id);
  if (it == position_.end()) return;
  clean_.erase(it->second);
  for (auto& [labels, clean] : clean_by_labels_) clean.erase(it->second);
}

void ReadyIndex::Granted(const std::string& run_id, std::optional<RunStats> stats) {
  absl::MutexLock lock(&mu_);
  Changed(run_id, std::move(stats));
}

std::set<uint32_t>& ReadyIndex::CleanFor(const std::vector<std::string>& labels) {
  std::vector<std::string> sorted = labels;
  std::sort(sorted.begin(), sorted.end());
  auto [it, inserted] = clean_by_labels_.try_emplace(absl::StrJoin(sorted, "\n"));
  if (inserted) it->second = clean_;
  return it->second;
}

void ReadyIndex::Missed(const std::string& run_id, const std::vector<std::string>& labels) {
  absl::MutexLock lock(&mu_);
  auto it = position_.find(run_id);
  if (it != position_.end()) CleanFor(labels).erase(it->second);
}

bool ReadyIndex::ReloadDue() const {
  // A whole load that takes long (Redis at 10,000 runs) is repeated less
  // often, so the safety net never costs more than ~5 % of the time.
  return !loaded_ || absl::Now() - loaded_at_ >= std::max(options_.reload_every, 20 * load_took_);
}

absl::Status ReadyIndex::Refresh() {
  if (ReloadDue()) {
    loaded_ = false;
    const absl::Time started = absl::Now();
    SLUICE_ASSIGN_OR_RETURN(std::vector<RunStats> all, store_.ListRunStats());
    load_took_ = absl::Now() - started;
    stats_.clear();
    for (RunStats& r : all) {
      std::string id = r.run_id;
      stats_.emplace(std::move(id), std::move(r));
    }
    loaded_ = true;
    loaded_at_ = absl::Now();
  } else {
    for (const std::string& run_id : stale_) {
      if (auto answered = answered_.find(run_id);
          answered != answered_.end() && !unanswered_.contains(run_id)) {
        // Every change since the last read answered its statistics: no read.
        KeepNewest(stats_, run_id, std::move(answered->second));
        continue;
      }
      absl::StatusOr<std::optional<RunStats>> fresh = store_.GetRunStats(run_id);
      if (!fresh.ok()) {
        loaded_ = false;  // unknown state: start again from the store
        return fresh.status();
      }
      if (*fresh) {
        stats_[run_id] = **std::move(fresh);
      } else {
        stats_.erase(run_id);
      }
    }
  }
  stale_.clear();
  answered_.clear();
  unanswered_.clear();
  return absl::OkStatus();
}

absl::StatusOr<std::vector<RunStats>> ReadyIndex::Snapshot() {
  absl::MutexLock lock(&mu_);
  // The store's phase counters catch what no Touch announced (an import by
  // another process): they are read before the runs, so a write through
  // this process in between only costs a second look. Two looks that
  // disagree with the counters reload the whole set.
  for (int look = 0;; ++look) {
    SLUICE_ASSIGN_OR_RETURN(const PhaseCounts counted, store_.CountPhases());
    CollectTouched();
    if (look == 2) loaded_ = false;
    SLUICE_RETURN_IF_ERROR(Refresh());
    if (look == 2 || CountsOf(stats_) == counted) break;
  }
  std::vector<RunStats> runs;
  runs.reserve(stats_.size());
  for (const auto& [id, stats] : stats_) runs.push_back(stats);
  return runs;
}

absl::Status ReadyIndex::RankNow(const SessionRecord& session, int64_t now_ms) {
  ranked_ = false;
  SLUICE_RETURN_IF_ERROR(Refresh());
  dirty_.clear();
  std::vector<RunStats> runs;
  runs.reserve(stats_.size());
  for (const auto& [id, stats] : stats_) runs.push_back(stats);
  SLUICE_ASSIGN_OR_RETURN(std::vector<RunRanking> ranked, rank_(runs, session.settings, now_ms));
  order_.clear();
  position_.clear();
  clean_.clear();
  clean_by_labels_.clear();
  order_.reserve(ranked.size());
  for (RunRanking& r : ranked) {
    const auto pos = static_cast<uint32_t>(order_.size());
    position_[r.run_id] = pos;
    clean_.insert(clean_.end(), pos);
    std::string id = r.run_id;
    order_.push_back({std::move(id), std::move(r)});
  }
  ranked_ = true;
  ranked_session_ = session.session_id;
  ranked_at_ms_ = now_ms;
  ++rankings_;
  return absl::OkStatus();
}

absl::Status ReadyIndex::RankIfDue(const SessionRecord& session, int64_t now_ms,
                                   bool nothing_left) {
  CollectTouched();
  const size_t changes_allowed = std::max<size_t>(1, stats_.size() / options_.changes_divisor);
  const bool due =
      !ranked_ || !loaded_ || session.session_id != ranked_session_ ||
      stats_.size() < options_.exact_below_runs || now_ms - ranked_at_ms_ >= options_.max_age_ms ||
      dirty_.size() >= changes_allowed || absl::Now() - loaded_at_ >= options_.reload_every ||
      (nothing_left && !dirty_.empty());
  if (!due) return absl::OkStatus();
  return RankNow(session, now_ms);
}

absl::StatusOr<std::optional<ReadyIndex::Candidate>> ReadyIndex::Best(
    const SessionRecord& session, const std::vector<std::string>& labels,
    const std::set<std::string>& skip) {
  absl::MutexLock lock(&mu_);
  const int64_t now_ms = clock_.NowMs();
  for (int round = 0; round < 2; ++round) {
    const uint64_t before = rankings_;
    SLUICE_RETURN_IF_ERROR(RankIfDue(session, now_ms, /*nothing_left=*/round > 0));
    if (round > 0 && rankings_ == before) break;  // nothing changed: nothing to offer
    // A ranking made just now is exact: its runs need no second look.
    const bool fresh = rankings_ != before;
    std::set<uint32_t>& clean = CleanFor(labels);
    auto it = clean.begin();
    while (it != clean.end()) {
      const Entry& entry = order_[*it];
      ++it;  // MarkDirty below erases the position just read, never `it`
      if (skip.contains(entry.run_id)) continue;
      auto stats = stats_.find(entry.run_id);
      if (stats == stats_.end()) {  // vanished since (a reload): rank again
        MarkDirty(entry.run_id);
        continue;
      }
      if (!fresh) {
        // Exclusions are exact at every grant: another run's report may have
        // made a fingerprint run-wide (the repeat rule) since the ranking.
        SLUICE_ASSIGN_OR_RETURN(std::vector<RunRanking> alone,
                                rank_({stats->second}, session.settings, now_ms));
        const bool newly_deferred =
            !alone.empty() && !alone.front().deferred.empty() && entry.ranking.deferred.empty();
        if (alone.empty() || newly_deferred) {
          MarkDirty(entry.run_id);
          continue;
        }
      }
      return std::optional<Candidate>(Candidate{stats->second, entry.ranking});
    }
    if (fresh) break;  // ranked just now and nothing is offerable
  }
  return std::optional<Candidate>();
}

}  // namespace sluice
