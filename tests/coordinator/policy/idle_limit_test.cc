// IdleLimit on its own: what the idle limit is learnt from and what it says.
#include "coordinator/policy/idle_limit.h"

#include "gtest/gtest.h"

namespace sluice {
namespace {

SessionSettings WithIdle(int32_t idle_timeout_seconds) {
  SessionSettings s;
  s.idle_timeout_seconds = idle_timeout_seconds;
  return s;
}

TEST(IdleLimitTest, AutoIsNoneUntilFiveAttemptsEndedOnTheirOwnThenTwiceTheLongestSilence) {
  IdleLimit limit;
  const SessionSettings auto_limit = WithIdle(0);
  for (int i = 0; i < 4; ++i) limit.Observe(Outcome::kSucceeded, 50'000 + i * 10'000);
  EXPECT_EQ(limit.SecondsFor(auto_limit, 900), 0) << "4 samples: not learnt yet";
  limit.Observe(Outcome::kFailed, 95'500);  // a failure that ended itself counts too
  EXPECT_EQ(limit.LearntSeconds(), 191);    // 2 x 95.5 s, rounded up
  EXPECT_EQ(limit.SecondsFor(auto_limit, 900), 191);
}

TEST(IdleLimitTest, AutoNeverGoesUnderTheFloorNorReachesTheTimeout) {
  IdleLimit quiet;
  for (int i = 0; i < 5; ++i) quiet.Observe(Outcome::kSucceeded, 1'000);
  EXPECT_EQ(quiet.SecondsFor(WithIdle(0), 900), IdleLimit::kFloorSeconds);
  // A limit at or over the grant's timeout would never act: none.
  EXPECT_EQ(quiet.SecondsFor(WithIdle(0), IdleLimit::kFloorSeconds), 0);

  IdleLimit slow;
  for (int i = 0; i < 5; ++i) slow.Observe(Outcome::kSucceeded, 600'000);
  EXPECT_EQ(slow.SecondsFor(WithIdle(0), 900), 0) << "2 x 600 s is past the 900 s timeout";
}

TEST(IdleLimitTest, StoppedKilledCancelledLostAndUnmeasuredAttemptsTeachNothing) {
  IdleLimit limit;
  for (Outcome o : {Outcome::kTimedOut, Outcome::kKilled, Outcome::kCancelled, Outcome::kLost,
                    Outcome::kStartFailed}) {
    for (int i = 0; i < 5; ++i) limit.Observe(o, 800'000);
  }
  for (int i = 0; i < 10; ++i) limit.Observe(Outcome::kSucceeded, -1);  // not measured
  EXPECT_EQ(limit.LearntSeconds(), 0);
  for (int i = 0; i < 5; ++i) limit.Observe(Outcome::kSucceeded, 70'000);
  EXPECT_EQ(limit.LearntSeconds(), 140) << "a hang's silence must not widen the limit";
}

TEST(IdleLimitTest, FixedAndOffSettingsOverrideWhatWasLearnt) {
  IdleLimit limit;
  for (int i = 0; i < 5; ++i) limit.Observe(Outcome::kSucceeded, 70'000);
  EXPECT_EQ(limit.SecondsFor(WithIdle(300), 900), 300);
  EXPECT_EQ(limit.SecondsFor(WithIdle(300), 200), 0) << "never at or over the timeout";
  EXPECT_EQ(limit.SecondsFor(WithIdle(-1), 900), 0);
  limit.Reset();
  EXPECT_EQ(limit.SecondsFor(WithIdle(0), 900), 0);
  EXPECT_EQ(limit.SecondsFor(WithIdle(45), 900), 45) << "a fixed limit needs no samples";
}

}  // namespace
}  // namespace sluice
