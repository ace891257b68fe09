// SessionSettings on the wire (proto/convert.cc): the fields the drain
// policy's settings travel in, old and new clients alike.
#include "gtest/gtest.h"
#include "proto/convert.h"

namespace sluice {
namespace {

TEST(SessionSettingsConvertTest, NoDefaultTransientTravelsAsItsOwnField) {
  SessionSettings s;
  s.retry_on = {"quota exceeded", kNoDefaultTransient};
  v1::SessionSettings wire;
  ToProto(s, &wire);
  EXPECT_TRUE(wire.no_default_transient());
  ASSERT_EQ(wire.retry_on_size(), 1) << "the marker is not a pattern on the wire";
  EXPECT_EQ(wire.retry_on(0), "quota exceeded");
  EXPECT_EQ(FromProto(wire).retry_on, s.retry_on);
}

TEST(SessionSettingsConvertTest, AnOlderClientsMarkerInRetryOnIsStillUnderstood) {
  v1::SessionSettings wire;
  wire.add_retry_on(kNoDefaultTransient);  // how clients before field 13 sent it
  EXPECT_EQ(FromProto(wire).retry_on, std::vector<std::string>{kNoDefaultTransient});
  wire.set_no_default_transient(true);  // both: still one marker
  EXPECT_EQ(FromProto(wire).retry_on, std::vector<std::string>{kNoDefaultTransient});
}

TEST(SessionSettingsConvertTest, MinExpectedYieldRoundTrips) {
  SessionSettings s;
  s.min_expected_yield = 0.75;
  v1::SessionSettings wire;
  ToProto(s, &wire);
  EXPECT_EQ(wire.min_expected_yield(), 0.75);
  EXPECT_EQ(FromProto(wire).min_expected_yield, 0.75);
  EXPECT_EQ(FromProto(v1::SessionSettings{}).min_expected_yield, 0) << "unset means off";
}

TEST(SessionSettingsConvertTest, IdleTimeoutAndTheGrantsLimitAndTheMeasuredSilenceTravel) {
  SessionSettings s;
  s.idle_timeout_seconds = -1;  // off
  v1::SessionSettings wire;
  ToProto(s, &wire);
  EXPECT_EQ(FromProto(wire).idle_timeout_seconds, -1);
  EXPECT_EQ(FromProto(v1::SessionSettings{}).idle_timeout_seconds, 0) << "unset means auto";

  LeaseGrant g;
  g.idle_timeout_seconds = 240;
  v1::Lease lease;
  ToProto(g, &lease);
  EXPECT_EQ(FromProto(lease).idle_timeout_seconds, 240);

  AttemptReport r;
  r.outcome = Outcome::kSucceeded;
  r.longest_silence_ms = 0;  // measured: never silent (not "unknown")
  v1::ReportRequest report;
  ToProto(r, &report);
  EXPECT_TRUE(report.has_longest_silence_ms());
  EXPECT_EQ(FromProto(report)->longest_silence_ms, 0);
  r.longest_silence_ms = -1;
  v1::ReportRequest unmeasured;
  ToProto(r, &unmeasured);
  EXPECT_FALSE(unmeasured.has_longest_silence_ms());
  EXPECT_EQ(FromProto(unmeasured)->longest_silence_ms, -1) << "an older worker's report";
}

}  // namespace
}  // namespace sluice
