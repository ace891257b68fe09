// The lease broker's copy of the store's per-run statistics, so that
// choosing the next phase does not list every run from the store at every
// grant. Loaded whole on first use, after Invalidate() (an import, a new
// leadership term) and at most kMaxAge after the last whole load (a safety
// net for writes this process did not make, e.g. `sluice import --store` on
// the same file); in between only the runs a grant, report or expiry touched
// are read again, one StateStore::GetRunStats each.
//
// Thread-safety: every method may be called from many threads.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/model.h"
#include "coordinator/store/state_store.h"

namespace sluice {

class RunStatsCache {
 public:
  static constexpr absl::Duration kMaxAge = absl::Seconds(2);

  // `store` must outlive the cache.
  explicit RunStatsCache(StateStore& store) : store_(store) {}

  // Every run's statistics, by run id, as ListRunStats would return them.
  // Store errors as the store returns them (the cache is then left to
  // reload whole).
  absl::StatusOr<std::vector<RunStats>> Snapshot() ABSL_LOCKS_EXCLUDED(mu_);

  // This run's statistics changed in the store (a grant, report or expiry).
  void Touch(const std::string& run_id) ABSL_LOCKS_EXCLUDED(mu_);
  // Runs may have appeared or changed anywhere: reload whole on next use.
  void Invalidate() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  StateStore& store_;
  absl::Mutex mu_;
  bool loaded_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time loaded_at_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, RunStats> runs_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> touched_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sluice
