#include "cli/drain_progress.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sluice {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

DrainProgress Halfway() {
  DrainProgress p;
  p.phases = PhaseCounts{/*pending=*/48, /*leased=*/2, /*succeeded=*/40, /*failed=*/10};
  p.session_finished = 50;
  p.running = 2;
  p.telemetry_events = 100;
  p.run_ms = 50 * 60'000;     // 50 worker-minutes
  p.elapsed_ms = 5 * 60'000;  // 10 phases a minute
  return p;
}

TEST(DrainProgressTest, BarShowsDoneTotalRateEtaAndYield) {
  const std::string line = ProgressBarLine(Halfway(), 120);
  EXPECT_THAT(line, StartsWith("[###############---------------]"));  // 50 of 100 in 30 columns
  EXPECT_THAT(line, HasSubstr(" 50/100 phases"));
  EXPECT_THAT(line, HasSubstr("10.0/min"));
  EXPECT_THAT(line, HasSubstr("ETA 5m00s"));         // 50 left at 10 a minute
  EXPECT_THAT(line, HasSubstr("yield 2.0 ev/min"));  // events per worker-minute
  EXPECT_THAT(line, HasSubstr("2 running"));
}

TEST(DrainProgressTest, BarFitsTheTerminalAndSaysPausedAndDone) {
  DrainProgress p = Halfway();
  p.paused_reason = "telemetry loss: 3 of 3 phases reported zero events";
  const std::string paused = ProgressBarLine(p, 80);
  EXPECT_LE(paused.size(), 80u);
  EXPECT_THAT(paused, HasSubstr("PAUSED"));
  EXPECT_THAT(ProgressLogLine(p), HasSubstr("leasing paused: telemetry loss"));

  DrainProgress start;
  EXPECT_THAT(ProgressBarLine(start, 100), HasSubstr("0/0 phases"));
  EXPECT_THAT(ProgressBarLine(start, 100), HasSubstr("yield -"));
  start.phases.succeeded = 3;
  EXPECT_THAT(ProgressBarLine(start, 100), HasSubstr("done"));
}

TEST(DrainProgressTest, PlainLineKeepsTheExistingFormat) {
  EXPECT_EQ(ProgressLogLine(Halfway()),
            "progress: 50 finished this session, 2 running | phases: 48 pending, 40 succeeded, 10 "
            "failed");
}

}  // namespace
}  // namespace sluice
