#include "coordinator/lease/run_stats_cache.h"

#include <utility>

#include "common/status_macros.h"

namespace sluice {

absl::StatusOr<std::vector<RunStats>> RunStatsCache::Snapshot() {
  absl::MutexLock lock(&mu_);
  // The store is read under mu_: a Touch arriving meanwhile waits, so no
  // change is marked between the read and the clearing of touched_.
  if (!loaded_ || absl::Now() - loaded_at_ >= kMaxAge) {
    loaded_ = false;
    SLUICE_ASSIGN_OR_RETURN(std::vector<RunStats> all, store_.ListRunStats());
    runs_.clear();
    for (RunStats& r : all) {
      std::string id = r.run_id;
      runs_.emplace(std::move(id), std::move(r));
    }
    touched_.clear();
    loaded_ = true;
    loaded_at_ = absl::Now();
  } else {
    while (!touched_.empty()) {
      const std::string run_id = *touched_.begin();
      absl::StatusOr<std::optional<RunStats>> fresh = store_.GetRunStats(run_id);
      if (!fresh.ok()) {
        loaded_ = false;  // unknown state: start again from the store
        return fresh.status();
      }
      if (*fresh) {
        runs_[run_id] = **std::move(fresh);
      } else {
        runs_.erase(run_id);
      }
      touched_.erase(touched_.begin());
    }
  }
  std::vector<RunStats> out;
  out.reserve(runs_.size());
  for (const auto& [id, stats] : runs_) out.push_back(stats);
  return out;
}

void RunStatsCache::Touch(const std::string& run_id) {
  absl::MutexLock lock(&mu_);
  if (loaded_) touched_.insert(run_id);
}

void RunStatsCache::Invalidate() {
  absl::MutexLock lock(&mu_);
  loaded_ = false;
  touched_.clear();
}

}  // namespace sluice
