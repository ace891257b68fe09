#include "common/last_error.h"

#include "gtest/gtest.h"

namespace sluice {
namespace {

TEST(LastErrorTest, APhaseKilledAtItsTimeLimitIsAPhaseTimeout) {
  EXPECT_TRUE(LastErrorIsPhaseTimeout("phase timed out after 900s (no output for 612s)"));
  EXPECT_TRUE(LastErrorIsPhaseTimeout("phase timed out after 900 s"));  // sluice's own text
  EXPECT_TRUE(LastErrorIsPhaseTimeout(
      "subprocess.TimeoutExpired: Command '['pytest']' timed out after 1800 seconds"));
  EXPECT_TRUE(LastErrorIsPhaseTimeout("Phase exceeded its time limit"));
  EXPECT_TRUE(LastErrorIsPhaseTimeout("killed: exceeded the phase timeout"));
  EXPECT_TRUE(LastErrorIsPhaseTimeout("Timed out after 15 min"));
}

TEST(LastErrorTest, ANetworkTimeoutInsideThePhaseIsNot) {
  EXPECT_FALSE(LastErrorIsPhaseTimeout("TimeoutError: The read operation timed out"));
  EXPECT_FALSE(LastErrorIsPhaseTimeout("httpx.ReadTimeout: timeout reading from server"));
  EXPECT_FALSE(LastErrorIsPhaseTimeout("connect timeout to 10.0.0.5:5432"));
  EXPECT_FALSE(LastErrorIsPhaseTimeout("requests timed out after retries"));
  EXPECT_FALSE(LastErrorIsPhaseTimeout(""));
  EXPECT_FALSE(LastErrorIsPhaseTimeout("ModuleNotFoundError: No module named 'x'"));
}

}  // namespace
}  // namespace sluice
