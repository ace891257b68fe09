// WebHistory: the web view's bounded in-memory series.
#include "coordinator/web/web_history.h"

#include <gtest/gtest.h>

namespace sluice {
namespace {

WebSample At(int64_t ms, int64_t done) {
  WebSample s;
  s.at_ms = ms;
  s.done = done;
  return s;
}

TEST(WebHistoryTest, StaysBoundedAndSpansTheWholeHistory) {
  WebHistory h(/*capacity=*/8, /*min_step_ms=*/0);
  for (int64_t i = 0; i < 100; ++i) h.Add(At(i * 1000, i));
  const std::vector<WebSample> s = h.Samples();
  EXPECT_LE(s.size(), 8u);
  EXPECT_EQ(s.front().at_ms, 0);
  EXPECT_EQ(s.back().at_ms, 99'000);
  for (size_t i = 1; i < s.size(); ++i) EXPECT_LT(s[i - 1].at_ms, s[i].at_ms);
}

TEST(WebHistoryTest, ASampleTooCloseToTheOneBeforeReplacesTheLast) {
  WebHistory h(8, /*min_step_ms=*/1000);
  h.Add(At(0, 0));
  h.Add(At(500, 1));
  h.Add(At(900, 2));  // within 1000 of the sample before the last: replaces the last
  ASSERT_EQ(h.Samples().size(), 2u);
  EXPECT_EQ(h.Samples().back().done, 2);
  h.Add(At(800, 9));  // the clock went back: ignored
  EXPECT_EQ(h.Samples().back().done, 2);
  h.Add(At(2000, 3));
  EXPECT_EQ(h.Samples().size(), 3u);
}

TEST(WebHistoryTest, DonePerMinuteLooksAtTheWindowOnly) {
  WebHistory h(64, 0);
  EXPECT_EQ(h.DonePerMinute(60'000), 0);
  h.Add(At(0, 0));
  h.Add(At(60'000, 100));   // fast first minute
  h.Add(At(120'000, 110));  // slow second
  EXPECT_DOUBLE_EQ(h.DonePerMinute(60'000), 10.0);
  EXPECT_DOUBLE_EQ(h.DonePerMinute(120'000), 55.0);
  // Older than the window on both sides: the last step still gives a rate.
  EXPECT_DOUBLE_EQ(h.DonePerMinute(1), 10.0);
}

}  // namespace
}  // namespace sluice
