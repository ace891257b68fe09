// The Clock's waiting seam: FakeClock waits end when the time is advanced
// past their deadline or their Wakeup is notified, never on real time.
#include "common/clock.h"

#include <thread>

#include "gtest/gtest.h"

namespace sluice {
namespace {

TEST(FakeClockWaitTest, WaitEndsWhenTheClockPassesTheDeadline) {
  FakeClock clock;
  Wakeup wakeup;
  bool notified = true;
  std::thread waiter([&] { notified = clock.WaitFor(wakeup, 1'000); });
  ASSERT_TRUE(clock.AwaitWaiters(1));
  clock.AdvanceMs(999);
  EXPECT_EQ(clock.waiters(), 1u);  // AdvanceMs re-checked it: not yet due
  clock.AdvanceMs(1);
  waiter.join();
  EXPECT_FALSE(notified);
  EXPECT_EQ(clock.waiters(), 0u);
}

TEST(FakeClockWaitTest, NotifyEndsTheWaitWithoutTimePassing) {
  FakeClock clock;
  const int64_t start = clock.NowMs();
  Wakeup wakeup;
  bool notified = false;
  std::thread waiter([&] { notified = clock.WaitUntil(wakeup, kNoDeadline); });
  ASSERT_TRUE(clock.AwaitWaiters(1));
  wakeup.Notify();
  waiter.join();
  EXPECT_TRUE(notified);
  EXPECT_EQ(clock.NowMs(), start);
}

TEST(FakeClockWaitTest, ANotificationBeforeTheWaitIsNotLostAndIsConsumed) {
  FakeClock clock;
  Wakeup wakeup;
  wakeup.Notify();
  EXPECT_TRUE(clock.WaitUntil(wakeup, kNoDeadline));
  EXPECT_FALSE(wakeup.notified());
  EXPECT_FALSE(clock.WaitUntil(wakeup, clock.NowMs()));  // due already, nothing pending
}

TEST(FakeClockWaitTest, ALatchedWakeupReleasesEveryWaitForGood) {
  FakeClock clock;
  Wakeup stop(Wakeup::Mode::kLatched);
  int released = 0;
  std::thread a([&] { released += clock.WaitUntil(stop, kNoDeadline) ? 1 : 0; });
  ASSERT_TRUE(clock.AwaitWaiters(1));
  stop.Notify();
  a.join();
  EXPECT_TRUE(clock.WaitUntil(stop, kNoDeadline));
  EXPECT_TRUE(clock.WaitFor(stop, 10));
  EXPECT_EQ(released, 1);
}

TEST(FakeClockWaitTest, SetMsAlsoWakesDueWaiters) {
  FakeClock clock(1'000);
  std::thread sleeper([&] { clock.SleepMs(500); });
  ASSERT_TRUE(clock.AwaitWaiters(1));
  clock.SetMs(2'000);
  sleeper.join();
  EXPECT_EQ(clock.waiters(), 0u);
}

TEST(SystemClockWaitTest, NotifiedWaitReturnsTrueAndAPastDeadlineReturnsAtOnce) {
  const Clock& clock = SystemClock::Default();
  Wakeup wakeup;
  wakeup.Notify();
  EXPECT_TRUE(clock.WaitFor(wakeup, 60'000));
  EXPECT_FALSE(clock.WaitUntil(wakeup, clock.NowMs() - 1));
}

}  // namespace
}  // namespace sluice
