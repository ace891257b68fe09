// RunTable: when the web view's snapshot of every run is read, with a
// FakeClock and a loader that counts (pure logic; the store side is
// web_api_test's).
#include "coordinator/web/run_table.h"

#include <gtest/gtest.h>

#include <string>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "tests/testing/status_matchers.h"

namespace sluice::testing {
namespace {

class RunTableTest : public ::testing::Test {
 protected:
  RunTable Table(bool background) {
    return RunTable(
        clock_,
        [this]() -> absl::StatusOr<RunTableSnapshot> {
          ++reads_;
          if (load_delay_ > absl::ZeroDuration()) absl::SleepFor(load_delay_);
          if (!fail_.ok()) return fail_;
          RunTableSnapshot s;
          s.runs.push_back(RunStats{});
          s.runs.back().run_id = "r" + std::to_string(reads_);
          return s;
        },
        RunTableOptions{.background = background, .min_refresh_ms = 1'000, .keep_warm_ms = 60'000});
  }

  static std::string RunOf(const std::shared_ptr<const RunTableSnapshot>& s) {
    return s == nullptr ? "none" : s->runs.at(0).run_id;
  }

  FakeClock clock_;
  int reads_ = 0;
  absl::Status fail_;
  absl::Duration load_delay_;
};

TEST_F(RunTableTest, InTheBackgroundAGetNeverReadsAndNobodyLookingCostsNothing) {
  RunTable t = Table(/*background=*/true);
  Ok(t.RefreshIfDue());
  EXPECT_EQ(reads_, 0) << "nobody has looked yet";
  EXPECT_EQ(Ok(t.Get()), nullptr);  // "loading"
  EXPECT_EQ(reads_, 0);
  Ok(t.RefreshIfDue());
  EXPECT_EQ(reads_, 1);
  const auto first = Ok(t.Get());
  EXPECT_EQ(RunOf(first), "r1");
  EXPECT_EQ(first->taken_at_ms, clock_.NowMs());
  Ok(t.RefreshIfDue());
  EXPECT_EQ(reads_, 1) << "younger than min_refresh_ms";
  clock_.AdvanceMs(1'000);
  Ok(t.RefreshIfDue());
  EXPECT_EQ(RunOf(Ok(t.Get())), "r2");
  // Nobody looks for longer than keep_warm_ms: no more reads.
  clock_.AdvanceMs(60'001);
  Ok(t.RefreshIfDue());
  clock_.AdvanceMs(5'000);
  Ok(t.RefreshIfDue());
  EXPECT_EQ(reads_, 2);
  EXPECT_EQ(t.loads(), 2u);
}

TEST_F(RunTableTest, AnInvalidationIsReadAtTheNextCheckWhileSomeoneLooks) {
  RunTable t = Table(true);
  (void)Ok(t.Get());
  Ok(t.RefreshIfDue());
  t.Invalidate();
  Ok(t.RefreshIfDue());  // however young the snapshot
  EXPECT_EQ(reads_, 2);
  EXPECT_EQ(RunOf(Ok(t.Get())), "r2");
}

TEST_F(RunTableTest, AFailedReadKeepsTheLastSnapshotAndTheInvalidation) {
  RunTable t = Table(true);
  (void)Ok(t.Get());
  Ok(t.RefreshIfDue());
  t.Invalidate();
  fail_ = absl::UnavailableError("store down");
  EXPECT_EQ(t.RefreshIfDue().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(RunOf(Ok(t.Get())), "r1");  // still the last good one
  fail_ = absl::OkStatus();
  Ok(t.RefreshIfDue());  // the invalidation was not lost with the failed read
  EXPECT_EQ(RunOf(Ok(t.Get())), "r3");
}

TEST_F(RunTableTest, ASlowReadIsRepeatedLessOften) {
  RunTable t = Table(true);
  load_delay_ = absl::Milliseconds(80);  // real time: 20 x 80 ms = 1.6 s between reads
  (void)Ok(t.Get());
  Ok(t.RefreshIfDue());
  clock_.AdvanceMs(1'200);  // past min_refresh_ms, short of 20 x the read
  (void)Ok(t.Get());
  Ok(t.RefreshIfDue());
  EXPECT_EQ(reads_, 1);
  clock_.AdvanceMs(800);
  Ok(t.RefreshIfDue());
  EXPECT_EQ(reads_, 2);
}

TEST_F(RunTableTest, WithoutABackgroundThreadEveryGetReads) {
  RunTable t = Table(/*background=*/false);
  EXPECT_EQ(RunOf(Ok(t.Get())), "r1");
  EXPECT_EQ(RunOf(Ok(t.Get())), "r2");
  fail_ = absl::UnavailableError("store down");
  EXPECT_EQ(t.Get().status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace sluice::testing
