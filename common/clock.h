// Time source seam. Everything that reads time (lease expiry, deadlines,
// durations in reports) or waits for it (backoff, timeouts, heartbeat
// cadence) takes a Clock, so tests advance a FakeClock instead of sleeping.
// Times are milliseconds since the Unix epoch.
//
// Waiting: a thread blocks in Clock::WaitUntil() until a deadline on that
// clock passes or a Wakeup it waits on is notified, whichever comes first.
// Code that used to poll ("check a flag every 20 ms") instead notifies a
// Wakeup when the thing happens, and the waiting thread runs at once.
#pragma once

#include <atomic>
#include <cstdint>
#include <limits>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace sluice {

// A deadline that never passes: WaitUntil() then waits for the Wakeup only.
inline constexpr int64_t kNoDeadline = std::numeric_limits<int64_t>::max();

// Something a thread waits for besides time. Notify() is thread-safe and
// never lost: a notification given while nobody waits is kept for the next
// wait.
//  - kAutoReset: the wait that returns for a notification consumes it (one
//    waiting thread per Wakeup; e.g. "something changed, look again").
//  - kLatched: once notified it stays notified and releases every wait, for
//    any number of threads (e.g. "stop").
// A Wakeup must outlive every wait on it.
class Wakeup {
 public:
  enum class Mode { kAutoReset, kLatched };
  explicit Wakeup(Mode mode = Mode::kAutoReset) : mode_(mode) {}
  Wakeup(const Wakeup&) = delete;
  Wakeup& operator=(const Wakeup&) = delete;

  void Notify() ABSL_LOCKS_EXCLUDED(mu_);
  // True while a notification is pending (for a latched one: once notified).
  bool notified() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  friend class SystemClock;
  friend class FakeClock;
  // Returns whether a notification was pending and consumes it (auto-reset).
  bool ConsumeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Mode mode_;
  mutable absl::Mutex mu_;
  bool notified_ ABSL_GUARDED_BY(mu_) = false;
};

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock milliseconds since the Unix epoch. Thread-safe.
  virtual int64_t NowMs() const = 0;
  // Milliseconds on a clock that never steps (arbitrary origin), for
  // intervals that must not stretch when the wall clock is set, e.g. the
  // worker's self-fence. Thread-safe. Default: NowMs() (a FakeClock moves
  // both together).
  virtual int64_t MonotonicMs() const { return NowMs(); }
  // Blocks until `wakeup` is notified (true) or NowMs() >= deadline_ms
  // (false; also when the deadline has already passed). A notification
  // that is already pending returns at once. Thread-safe.
  virtual bool WaitUntil(Wakeup& wakeup, int64_t deadline_ms) const = 0;
  // WaitUntil(wakeup, NowMs() + ms).
  bool WaitFor(Wakeup& wakeup, int64_t ms) const;
  // Waits `ms` on this clock with nothing to wake it early.
  void SleepMs(int64_t ms) const;
};

class SystemClock final : public Clock {
 public:
  int64_t NowMs() const override;
  int64_t MonotonicMs() const override;  // std::chrono::steady_clock
  bool WaitUntil(Wakeup& wakeup, int64_t deadline_ms) const override;
  // A process-wide instance; never destroyed.
  static const Clock& Default();
};

// Manually advanced clock for unit tests. Thread-safe. Time moves only in
// AdvanceMs()/SetMs(), which release every WaitUntil() whose deadline they
// pass before returning to the caller's next step; a wait with a deadline in
// the future blocks until then (or its Wakeup), however long that takes in
// real time.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t start_ms = 1'700'000'000'000) : now_ms_(start_ms) {}
  int64_t NowMs() const override { return now_ms_.load(); }
  bool WaitUntil(Wakeup& wakeup, int64_t deadline_ms) const override ABSL_LOCKS_EXCLUDED(mu_);
  void AdvanceMs(int64_t delta_ms) ABSL_LOCKS_EXCLUDED(mu_);
  void SetMs(int64_t now_ms) ABSL_LOCKS_EXCLUDED(mu_);

  // For tests: how many threads are blocked in WaitUntil() right now, and
  // a bounded (real-time) wait until at least `n` are, e.g. "the agent is
  // idle now; advance the clock". False if that did not happen in time.
  size_t waiters() const ABSL_LOCKS_EXCLUDED(mu_);
  bool AwaitWaiters(size_t n, absl::Duration real_timeout = absl::Seconds(10)) const
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // Lets every waiter re-check its deadline.
  void WakeWaiters() const ABSL_LOCKS_EXCLUDED(mu_);

  std::atomic<int64_t> now_ms_;
  // Lock order: mu_ before any Wakeup's mutex.
  mutable absl::Mutex mu_;
  mutable std::vector<Wakeup*> waiters_ ABSL_GUARDED_BY(mu_);  // one entry per waiting thread
};

}  // namespace sluice
