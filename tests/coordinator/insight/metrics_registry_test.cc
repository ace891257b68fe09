// The metrics registry alone (no server, no network): counters, gauges and
// cumulative histograms rendered in the text format, checked with the strict
// parser in tests/testing/prometheus_text.h, whose own refusals are tested
// here too. The endpoint over real gRPC and HTTP is in
// tests/integration/metrics_test.cc.
#include <string>

#include "coordinator/insight/metrics.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/prometheus_text.h"

namespace sluice {
namespace {

using ::sluice::testing::Exposition;
using ::sluice::testing::Find;
using ::sluice::testing::ParseExposition;
using ::testing::HasSubstr;

TEST(MetricsParserTest, RejectsMalformedLines) {
  EXPECT_TRUE(ParseExposition("# TYPE a counter\na 1\n").errors.empty());
  EXPECT_FALSE(ParseExposition("a{b=\"1\"} x\n").errors.empty());
  EXPECT_FALSE(ParseExposition("9a 1\n").errors.empty());
  EXPECT_FALSE(ParseExposition("a{b=1} 1\n").errors.empty());
  EXPECT_FALSE(ParseExposition("a{b=\"1\" 1\n").errors.empty());
  EXPECT_FALSE(ParseExposition("# TYPE a countr\n").errors.empty());
  EXPECT_FALSE(ParseExposition("a 1").errors.empty());
}

TEST(MetricsRegistryTest, RendersCountersGaugesAndCumulativeHistograms) {
  MetricsRegistry r;
  r.Declare("t_total", MetricType::kCounter, "A counter with \\ and\nnewline");
  r.Declare("t_gauge", MetricType::kGauge, "A gauge");
  r.Declare("t_seconds", MetricType::kHistogram, "A histogram", {0.1, 1});
  r.Add("t_total", {{"k", "a\"b"}}, 2);
  r.Add("t_total", {{"k", "a\"b"}}, 3);
  r.Set("t_gauge", {}, 0.25);
  r.Observe("t_seconds", {{"m", "x"}}, 0.05);
  r.Observe("t_seconds", {{"m", "x"}}, 0.5);
  r.Observe("t_seconds", {{"m", "x"}}, 7);
  r.Add("undeclared", {}, 1);  // ignored
  const std::string text = r.Render();
  Exposition e = ParseExposition(text);
  EXPECT_TRUE(e.errors.empty()) << ::testing::PrintToString(e.errors) << text;
  EXPECT_EQ(Find(e, "t_total", {{"k", "a\"b"}})->value, 5);
  EXPECT_EQ(Find(e, "t_gauge")->value, 0.25);
  EXPECT_EQ(Find(e, "t_seconds_bucket", {{"m", "x"}, {"le", "0.1"}})->value, 1);
  EXPECT_EQ(Find(e, "t_seconds_bucket", {{"m", "x"}, {"le", "1"}})->value, 2);
  EXPECT_EQ(Find(e, "t_seconds_bucket", {{"m", "x"}, {"le", "+Inf"}})->value, 3);
  EXPECT_EQ(Find(e, "t_seconds_count", {{"m", "x"}})->value, 3);
  EXPECT_DOUBLE_EQ(Find(e, "t_seconds_sum", {{"m", "x"}})->value, 7.55);
  EXPECT_EQ(Find(e, "undeclared"), nullptr);
  EXPECT_THAT(text, HasSubstr("# HELP t_total A counter with \\\\ and\\nnewline\n"));
}

}  // namespace
}  // namespace sluice
