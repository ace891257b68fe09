#include "coordinator/web/run_table.h"

#include <algorithm>
#include <utility>

#include "absl/time/clock.h"

namespace sluice {

RunTable::RunTable(const Clock& clock, Loader loader, RunTableOptions options)
    : clock_(clock), loader_(std::move(loader)), options_(options) {}

uint64_t RunTable::loads() const {
  absl::MutexLock lock(&mu_);
  return loads_;
}

void RunTable::Invalidate() {
  absl::MutexLock lock(&mu_);
  invalidated_ = true;
}

absl::StatusOr<std::shared_ptr<const RunTableSnapshot>> RunTable::Get() {
  if (!options_.background) return Load();
  absl::MutexLock lock(&mu_);
  wanted_at_ms_ = clock_.NowMs();
  return snapshot_;
}

bool RunTable::Due(int64_t now_ms) const {
  // Only someone looking makes a snapshot worth its read.
  if (!wanted_at_ms_ || now_ms - *wanted_at_ms_ > options_.keep_warm_ms) return false;
  if (snapshot_ == nullptr)
    return loads_ == 0 || now_ms - last_load_at_ms_ >= options_.min_refresh_ms;
  if (invalidated_) return true;
  // A slow load is repeated less often, so it never takes more than ~5 % of
  // the time.
  const int64_t every = std::max(options_.min_refresh_ms, 20 * last_load_took_ms_);
  return now_ms - last_load_at_ms_ >= every;
}

absl::Status RunTable::RefreshIfDue() {
  {
    absl::MutexLock lock(&mu_);
    if (!Due(clock_.NowMs())) return absl::OkStatus();
  }
  return Load().status();
}

absl::StatusOr<std::shared_ptr<const RunTableSnapshot>> RunTable::Load() {
  absl::MutexLock load_lock(&load_mu_);
  const int64_t started_ms = clock_.NowMs();
  const absl::Time started = absl::Now();
  bool was_invalidated = false;
  {
    absl::MutexLock lock(&mu_);
    // Cleared before reading: an invalidation that arrives during the read
    // asks for another one.
    was_invalidated = std::exchange(invalidated_, false);
    last_load_at_ms_ = started_ms;
    ++loads_;
  }
  absl::StatusOr<RunTableSnapshot> loaded = loader_();
  absl::MutexLock lock(&mu_);
  last_load_took_ms_ = absl::ToInt64Milliseconds(absl::Now() - started);
  if (!loaded.ok()) {
    invalidated_ = invalidated_ || was_invalidated;
    return loaded.status();
  }
  loaded->taken_at_ms = started_ms;
  snapshot_ = std::make_shared<const RunTableSnapshot>(*std::move(loaded));
  return snapshot_;
}

}  // namespace sluice
