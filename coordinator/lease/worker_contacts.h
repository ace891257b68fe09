// When each worker last talked to this coordinator: registration, a lease
// poll, a heartbeat or a report. The store keeps only the registration time
// (WorkerInfo::last_seen_ms, written by Register); writing on every heartbeat
// would cost a store write per worker per interval, so the coordinator keeps
// the later contacts in memory and Status reports the later of the two. A
// restarted or newly elected coordinator starts empty and falls back to the
// store's time until the workers' next calls (within one heartbeat interval).
//
// Thread-safety: every method may be called from many threads.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

namespace sluice {

class WorkerContacts {
 public:
  // `worker_id` called at `now_ms` (times only move forward per worker).
  void Seen(const std::string& worker_id, int64_t now_ms) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    int64_t& last = last_ms_[worker_id];
    last = std::max(last, now_ms);
  }

  // The later of `stored_ms` and this coordinator's last contact with
  // `worker_id`.
  int64_t LastSeen(const std::string& worker_id, int64_t stored_ms) const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    auto it = last_ms_.find(worker_id);
    return it == last_ms_.end() ? stored_ms : std::max(stored_ms, it->second);
  }

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, int64_t> last_ms_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sluice
