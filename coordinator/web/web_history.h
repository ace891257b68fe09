// The drain's shape over time for the web view's charts: a bounded series of
// samples (phases done, attempts by outcome, telemetry events, run time)
// taken from the coordinator's cheap counters while it runs. Kept in memory
// only: the series starts when this coordinator started serving and is lost
// with it (the session report's timeline is the durable view).
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace sluice {

struct WebSample {
  int64_t at_ms = 0;
  int64_t done = 0;                         // phases succeeded or failed for good (whole store)
  int64_t total = 0;                        // phases in the store
  std::map<std::string, int64_t> outcomes;  // attempts by outcome name (whole store)
  int64_t telemetry_events = 0;
  int64_t run_ms = 0;                // summed attempt durations
  int64_t unknown_telemetry_ms = 0;  // part of run_ms with unknown telemetry (not in yield)
};

class WebHistory {
 public:
  // Keeps at most `capacity` samples (>= 4); when full, every other old
  // sample is dropped, so the series always spans the whole history at a
  // coarser step. A sample closer than `min_step_ms` to the one before the
  // last replaces the last (which stays the freshest value) instead of
  // adding a point. A sample older than the last is ignored.
  explicit WebHistory(size_t capacity = 720, int64_t min_step_ms = 1000);

  void Add(const WebSample& sample);
  std::vector<WebSample> Samples() const;
  // Phases done per minute between the oldest sample within `window_ms` of
  // the newest and the newest; 0 with fewer than two samples or no time.
  double DonePerMinute(int64_t window_ms) const;

 private:
  const size_t capacity_;
  const int64_t min_step_ms_;
  mutable absl::Mutex mu_;
  std::vector<WebSample> samples_ ABSL_GUARDED_BY(mu_);  // by at_ms
};

}  // namespace sluice
