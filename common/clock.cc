#include "common/clock.h"

#include <algorithm>
#include <chrono>

namespace sluice {

void Wakeup::Notify() {
  absl::MutexLock lock(&mu_);
  notified_ = true;
}

bool Wakeup::notified() const {
  absl::MutexLock lock(&mu_);
  return notified_;
}

bool Wakeup::ConsumeLocked() {
  const bool was = notified_;
  if (mode_ == Mode::kAutoReset) notified_ = false;
  return was;
}

bool Clock::WaitFor(Wakeup& wakeup, int64_t ms) const {
  const int64_t now = NowMs();
  return WaitUntil(wakeup, ms >= kNoDeadline - now ? kNoDeadline : now + ms);
}

void Clock::SleepMs(int64_t ms) const {
  Wakeup never;
  WaitFor(never, ms);
}

int64_t SystemClock::MonotonicMs() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int64_t SystemClock::NowMs() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool SystemClock::WaitUntil(Wakeup& wakeup, int64_t deadline_ms) const {
  absl::MutexLock lock(&wakeup.mu_);
  const absl::Condition notified(&wakeup.notified_);
  if (deadline_ms == kNoDeadline) {
    wakeup.mu_.Await(notified);
  } else {
    // absl::Now() is the same wall clock as NowMs().
    wakeup.mu_.AwaitWithDeadline(notified, absl::FromUnixMillis(deadline_ms));
  }
  return wakeup.ConsumeLocked();
}

const Clock& SystemClock::Default() {
  static const SystemClock* const kClock = new SystemClock();
  return *kClock;
}

bool FakeClock::WaitUntil(Wakeup& wakeup, int64_t deadline_ms) const {
  {
    absl::MutexLock lock(&mu_);
    waiters_.push_back(&wakeup);
  }
  bool notified = false;
  {
    struct Args {
      Wakeup* wakeup;
      const FakeClock* clock;
      int64_t deadline_ms;
    } args{&wakeup, this, deadline_ms};
    absl::MutexLock lock(&wakeup.mu_);
    // Re-evaluated whenever the Wakeup's mutex is released: by Notify(), or
    // by WakeWaiters() after the time moved.
    wakeup.mu_.Await(absl::Condition(
        +[](Args* a) ABSL_NO_THREAD_SAFETY_ANALYSIS {
          return a->wakeup->notified_ || a->clock->NowMs() >= a->deadline_ms;
        },
        &args));
    notified = wakeup.ConsumeLocked();
  }
  absl::MutexLock lock(&mu_);
  waiters_.erase(std::find(waiters_.begin(), waiters_.end(), &wakeup));
  return notified;
}

void FakeClock::AdvanceMs(int64_t delta_ms) {
  now_ms_ += delta_ms;
  WakeWaiters();
}

void FakeClock::SetMs(int64_t now_ms) {
  now_ms_ = now_ms;
  WakeWaiters();
}

void FakeClock::WakeWaiters() const {
  // Holding mu_ keeps every registered Wakeup alive (its waiter cannot
  // unregister meanwhile); locking and unlocking its mutex makes absl
  // re-evaluate the waiter's condition against the new time.
  absl::MutexLock lock(&mu_);
  for (Wakeup* wakeup : waiters_) {
    wakeup->mu_.Lock();
    wakeup->mu_.Unlock();
  }
}

size_t FakeClock::waiters() const {
  absl::MutexLock lock(&mu_);
  return waiters_.size();
}

bool FakeClock::AwaitWaiters(size_t n, absl::Duration real_timeout) const {
  absl::MutexLock lock(&mu_);
  struct Args {
    const FakeClock* clock;
    size_t n;
  } args{this, n};
  return mu_.AwaitWithTimeout(
      absl::Condition(
          +[](Args* a) ABSL_NO_THREAD_SAFETY_ANALYSIS { return a->clock->waiters_.size() >= a->n; },
          &args),
      real_timeout);
}

}  // namespace sluice
