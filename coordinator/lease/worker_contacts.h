// When each worker last talked to this coordinator: registration, a lease
// poll, a heartbeat or a report. The store keeps only the registration time
// (WorkerInfo::last_seen_ms, written by Register); writing on every heartbeat
// would cost a store write per worker per interval, so the coordinator keeps
// the later contacts in memory and Status reports the later of the two. A
// restarted or newly elected coordinator starts empty and falls back to the
// store's time until the workers' next calls (within one heartbeat interval).
//
// Bounded (issue #14 item 8): a worker unseen for `forget_after_ms` (default
// 24 h) is dropped by Forget, and the map never holds more than `capacity`
// workers (default 100,000): a new worker beyond it first drops the ones
// unseen for that long, then the least recently seen one. A dropped worker
// that calls again is simply seen again.
//
// Thread-safety: every method may be called from many threads.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

namespace sluice {

inline constexpr int64_t kForgetWorkersAfterMs = 24LL * 3600 * 1000;
inline constexpr size_t kMaxWorkerContacts = 100'000;

class WorkerContacts {
 public:
  explicit WorkerContacts(int64_t forget_after_ms = kForgetWorkersAfterMs,
                          size_t capacity = kMaxWorkerContacts)
      : forget_after_ms_(forget_after_ms), capacity_(std::max<size_t>(1, capacity)) {}

  // `worker_id` called at `now_ms` (times only move forward per worker).
  void Seen(const std::string& worker_id, int64_t now_ms) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    auto it = last_ms_.find(worker_id);
    if (it != last_ms_.end()) {
      it->second = std::max(it->second, now_ms);
      return;
    }
    if (last_ms_.size() >= capacity_) {
      ForgetLocked(now_ms);
      // Still full: the least recently seen worker makes room (a scan, only
      // when a fleet this large churns).
      if (last_ms_.size() >= capacity_) {
        last_ms_.erase(std::min_element(last_ms_.begin(), last_ms_.end(),
                                        [](auto& a, auto& b) { return a.second < b.second; }));
      }
    }
    last_ms_.emplace(worker_id, now_ms);
  }

  // The later of `stored_ms` and this coordinator's last contact with
  // `worker_id`.
  int64_t LastSeen(const std::string& worker_id, int64_t stored_ms) const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    auto it = last_ms_.find(worker_id);
    return it == last_ms_.end() ? stored_ms : std::max(stored_ms, it->second);
  }

  // True when a worker last seen at `last_seen_ms` is gone for good at `now_ms`.
  bool Expired(int64_t last_seen_ms, int64_t now_ms) const {
    return last_seen_ms + forget_after_ms_ <= now_ms;
  }

  // Drops the workers unseen for forget_after_ms at `now_ms`.
  void Forget(int64_t now_ms) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    ForgetLocked(now_ms);
  }

  size_t size() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return last_ms_.size();
  }

  int64_t forget_after_ms() const { return forget_after_ms_; }

 private:
  void ForgetLocked(int64_t now_ms) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    absl::erase_if(last_ms_, [&](const auto& e) { return Expired(e.second, now_ms); });
  }

  const int64_t forget_after_ms_;
  const size_t capacity_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, int64_t> last_ms_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sluice
