// Every run's aggregates and run-level skip reasons, for the runs views that
// need all runs at once: grouped by family, sorted by family, filtered to
// skipped runs. Those views read the last snapshot; a page load never reads
// the store for them (issue #15: at 10,000 runs a read of every run costs
// 100-650 ms on SQLite and over a second on Redis).
//
// When a snapshot is taken (RefreshIfDue, called by a background thread,
// CoordinatorHost's, a few times a second):
//   - at the first check after the first Get: until it is read, such a page
//     answers "loading" and polls (not at start: the first read decides
//     every run, which loads the drain policy's history, and the tick may be
//     loading it at that moment);
//   - while someone looks (a Get in the last `keep_warm_ms`), every
//     max(`min_refresh_ms`, 20 x the last load's duration): a slow store
//     (Redis at 10,000 runs, ~1 s a load) costs at most ~5 % of a core, and
//     nothing at all while nobody looks;
//   - right after Invalidate (an unblock from the web view) when someone looks.
// Pages say how old their snapshot is (taken_at_ms).
//
// Without a background thread (`background` false: tests and tools that
// build a WebApi alone) every Get loads, as those views did before.
//
// Thread-safety: every method may be called from any thread. Loads are
// serialised among themselves and never block a Get in background mode.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/model.h"
#include "coordinator/insight/session_report.h"

namespace sluice {

struct RunTableSnapshot {
  std::vector<RunStats> runs;
  // Why runs are not leased now (excluded or deferred), under the latest
  // session's settings: the run-level part of `sluice status`'s skips.
  std::vector<SkipRow> skips;
  int64_t taken_at_ms = 0;  // on the Clock, when the load started
};

struct RunTableOptions {
  bool background = false;
  int64_t min_refresh_ms = 1'000;
  int64_t keep_warm_ms = 60'000;
};

class RunTable {
 public:
  using Loader = std::function<absl::StatusOr<RunTableSnapshot>()>;

  // `clock` must outlive the table. `loader` reads the store (and sets no
  // taken_at_ms: the table does).
  RunTable(const Clock& clock, Loader loader, RunTableOptions options = {});

  // The latest snapshot, and someone looks. Background mode: nullptr until
  // the first load after the first Get has finished; never a store read.
  // Otherwise a new load.
  absl::StatusOr<std::shared_ptr<const RunTableSnapshot>> Get() ABSL_LOCKS_EXCLUDED(mu_, load_mu_);
  // Loads when due (see the file comment); the load's error otherwise OK.
  absl::Status RefreshIfDue() ABSL_LOCKS_EXCLUDED(mu_, load_mu_);
  // What the snapshot shows changed (an unblock): load again soon.
  void Invalidate() ABSL_LOCKS_EXCLUDED(mu_);

  // Loads so far, failed ones included (tests, benchmarks).
  uint64_t loads() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::StatusOr<std::shared_ptr<const RunTableSnapshot>> Load() ABSL_LOCKS_EXCLUDED(mu_, load_mu_);
  bool Due(int64_t now_ms) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Clock& clock_;
  const Loader loader_;
  const RunTableOptions options_;

  absl::Mutex load_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable absl::Mutex mu_;
  std::shared_ptr<const RunTableSnapshot> snapshot_ ABSL_GUARDED_BY(mu_);
  bool invalidated_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<int64_t> wanted_at_ms_ ABSL_GUARDED_BY(mu_);  // the last Get
  int64_t last_load_at_ms_ ABSL_GUARDED_BY(mu_) = 0;          // started, failed or not
  int64_t last_load_took_ms_ ABSL_GUARDED_BY(mu_) = 0;        // real time
  uint64_t loads_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace sluice
