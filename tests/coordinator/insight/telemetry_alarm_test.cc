// Telemetry-loss detection over constructed attempt histories.
#include "coordinator/insight/telemetry_alarm.h"

#include <algorithm>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/attempts.h"

namespace sluice {
namespace {

using ::sluice::testing::Attempt;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

std::vector<TelemetryWarningKind> Kinds(const std::vector<TelemetryWarning>& warnings) {
  std::vector<TelemetryWarningKind> kinds;
  for (const TelemetryWarning& w : warnings) kinds.push_back(w.kind);
  return kinds;
}

// The reference's incident: phases emit telemetry only when
// TELEMETRY_DB_ENABLED=1 is in their environment. Worker A was started
// without `--env TELEMETRY_DB_ENABLED=1`, worker B with it: A's phases all
// succeed with zero events, B's report events.
TEST(TelemetryAlarmTest, WorkerWithoutTelemetryEnvFiresTheAlarm) {
  std::vector<AttemptRecord> h;
  for (int i = 0; i < 5; ++i) {
    h.push_back(Attempt("run-a", "p" + std::to_string(i), Outcome::kSucceeded, 120, 0, 100 * i,
                        "worker-a"));
    h.push_back(Attempt("run-b", "p" + std::to_string(i), Outcome::kSucceeded, 120, 40, 100 * i + 1,
                        "worker-b"));
  }
  std::vector<TelemetryWarning> w = DetectTelemetryLoss(h);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].kind, TelemetryWarningKind::kSilentWorker);
  EXPECT_EQ(w[0].worker_id, "worker-a");
  EXPECT_EQ(w[0].attempts, 5);
  EXPECT_EQ(w[0].zero_event_attempts, 5);
  EXPECT_THAT(w[0].message, HasSubstr("worker-a"));
  EXPECT_EQ(TelemetryWarningKindName(w[0].kind), "silent_worker");
}

// The same drain where no worker passes the variable: every phase succeeds
// silently. No worker stands out, but the cluster-wide check fires.
TEST(TelemetryAlarmTest, DrainWithoutTelemetryEnvAnywhereFiresTheAlarm) {
  std::vector<AttemptRecord> h;
  for (int i = 0; i < 6; ++i) {
    h.push_back(Attempt("run", "p" + std::to_string(i), Outcome::kSucceeded, 300, 0, 10 * i,
                        i % 2 == 0 ? "worker-a" : "worker-b"));
  }
  std::vector<TelemetryWarning> w = DetectTelemetryLoss(h);
  EXPECT_THAT(Kinds(w), ::testing::ElementsAre(TelemetryWarningKind::kZeroEventPhases));
  EXPECT_EQ(w[0].attempts, 6);
  EXPECT_EQ(w[0].zero_event_attempts, 6);
  EXPECT_THAT(w[0].message, HasSubstr("6 of 6"));
}

TEST(TelemetryAlarmTest, LongFailedAttemptsWithoutEventsCount) {
  TelemetryAlarmOptions o;
  o.long_run_ms = 60'000;
  std::vector<AttemptRecord> h = {
      Attempt("r", "a", Outcome::kFailed, 120, 0, 1, "w", 1, "x"),
      Attempt("r", "b", Outcome::kTimedOut, 900, 0, 2, "w", 1, "t"),
      Attempt("r", "c", Outcome::kFailed, 61, 0, 3, "w", 1, "x"),
      Attempt("r", "d", Outcome::kFailed, 5, 0, 4, "w", 1, "x"),  // short: not considered
  };
  std::vector<TelemetryWarning> w = DetectTelemetryLoss(h, o);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].kind, TelemetryWarningKind::kZeroEventPhases);
  EXPECT_EQ(w[0].attempts, 3);
}

TEST(TelemetryAlarmTest, BelowTheFractionOrTooFewAttemptsStaysQuiet) {
  std::vector<AttemptRecord> h = {
      Attempt("r", "a", Outcome::kSucceeded, 60, 0, 1),
      Attempt("r", "b", Outcome::kSucceeded, 60, 3, 2),
      Attempt("r", "c", Outcome::kSucceeded, 60, 3, 3),
  };
  EXPECT_THAT(DetectTelemetryLoss(h), IsEmpty());  // 1 of 3 silent
  // Below the warning threshold (the default warns from the first attempt:
  // FirstSilentSuccessWarnsButPausesOnlyAtMinAttempts).
  TelemetryAlarmOptions late;
  late.min_attempts_to_warn = 3;
  EXPECT_THAT(DetectTelemetryLoss({Attempt("r", "a", Outcome::kSucceeded, 60, 0, 1)}, late),
              IsEmpty());
  // Lost and cancelled attempts were stopped from outside: never judged.
  std::vector<AttemptRecord> stopped;
  for (int i = 0; i < 5; ++i) {
    stopped.push_back(Attempt("r", "l" + std::to_string(i), Outcome::kLost, 600, 0, i));
    stopped.push_back(Attempt("r", "c" + std::to_string(i), Outcome::kCancelled, 600, 0, i));
  }
  EXPECT_THAT(DetectTelemetryLoss(stopped), IsEmpty());
}

TEST(TelemetryAlarmTest, FirstSilentSuccessWarnsButPausesOnlyAtMinAttempts) {
  // Issue #16 item 9: a zero-event success raised the warning only after
  // three, because min_attempts gated both the warning and the pause.
  std::vector<AttemptRecord> h = {Attempt("r", "a", Outcome::kSucceeded, 60, 0, 1)};
  std::vector<TelemetryWarning> w = DetectTelemetryLoss(h);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].kind, TelemetryWarningKind::kZeroEventPhases);
  EXPECT_FALSE(w[0].pauses) << "one silent success must not pause leasing";
  EXPECT_THAT(w[0].message, HasSubstr("1 of 1 phases"));
  EXPECT_THAT(w[0].message, HasSubstr("a pause needs 3"));
  h.push_back(Attempt("r", "b", Outcome::kSucceeded, 60, 0, 2));
  w = DetectTelemetryLoss(h);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_FALSE(w[0].pauses);
  h.push_back(Attempt("r", "c", Outcome::kSucceeded, 60, 0, 3));
  w = DetectTelemetryLoss(h);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_TRUE(w[0].pauses) << "the pause keeps its threshold of 3";
  EXPECT_THAT(w[0].message, Not(HasSubstr("early warning")));
}

TEST(TelemetryAlarmTest, ClusterYieldDroppingToZeroFires) {
  TelemetryAlarmOptions o;
  o.recent_window = 4;
  o.zero_event_fraction = 0.9;  // keep the cluster-wide check out of the way
  std::vector<AttemptRecord> h;
  for (int i = 0; i < 6; ++i) {
    h.push_back(Attempt("r", "early" + std::to_string(i), Outcome::kSucceeded, 60, 5, i));
  }
  for (int i = 0; i < 4; ++i) {
    h.push_back(Attempt("r", "late" + std::to_string(i), Outcome::kFailed, 10, 0, 100 + i, "w1", 1,
                        "oops"));
  }
  std::vector<TelemetryWarning> w = DetectTelemetryLoss(h, o);
  EXPECT_THAT(Kinds(w), ::testing::ElementsAre(TelemetryWarningKind::kYieldDroppedToZero));
  EXPECT_THAT(w[0].message, HasSubstr("last 4"));
  // One event in the window: no alarm.
  h.back().telemetry_events = 1;
  EXPECT_THAT(DetectTelemetryLoss(h, o), IsEmpty());
}

// The yield-drop rule as first written, over the whole list: the finished
// attempts with counted telemetry sorted by end (stable: ties keep their
// order), the last `window` of them against the rest. The events before the
// window when the rule fires.
std::optional<int64_t> YieldDropBySorting(const std::vector<AttemptRecord>& attempts,
                                          size_t window) {
  std::vector<const AttemptRecord*> finished;
  for (const AttemptRecord& a : attempts) {
    const bool outside = a.outcome == Outcome::kLost || a.outcome == Outcome::kCancelled ||
                         a.outcome == Outcome::kStartFailed;
    if (!outside && !a.telemetry_unknown) finished.push_back(&a);
  }
  std::stable_sort(finished.begin(), finished.end(),
                   [](const auto* x, const auto* y) { return x->ended_at_ms < y->ended_at_ms; });
  if (finished.size() <= window) return std::nullopt;
  int64_t recent = 0;
  int64_t earlier = 0;
  for (size_t i = 0; i < finished.size(); ++i) {
    (i + window >= finished.size() ? recent : earlier) += finished[i]->telemetry_events;
  }
  if (recent != 0 || earlier == 0) return std::nullopt;
  return earlier;
}

TEST(TelemetryAlarmTest, TheTallysWindowIsTheLastAttemptsByEndWhateverTheOrderTheyArrive) {
  // Attempts arrive out of end order (workers report late, ends tie to the
  // second), some lost or with unknown telemetry; after each one the tally
  // must agree with sorting everything so far.
  TelemetryAlarmOptions o;
  o.recent_window = 5;
  std::mt19937 rng(12);
  std::vector<AttemptRecord> so_far;
  TelemetryTally tally(o);
  int fired = 0;
  int quiet = 0;
  for (int i = 0; i < 1'500; ++i) {
    const int64_t end_s = i / 3 + static_cast<int64_t>(rng() % 20);  // roughly later, with ties
    const bool emitting_era = (i / 200) % 2 == 0;
    const int64_t events = rng() % (emitting_era ? 3 : 40) == 0 ? 1 + rng() % 4 : 0;
    const Outcome outcome = rng() % 10 == 0  ? Outcome::kLost
                            : rng() % 4 == 0 ? Outcome::kFailed
                                             : Outcome::kSucceeded;
    AttemptRecord a =
        Attempt("r", absl::StrCat("p", i), outcome, 1, events, end_s, absl::StrCat("w", rng() % 3));
    a.telemetry_unknown = rng() % 15 == 0;
    so_far.push_back(a);
    tally.Add(a);
    SCOPED_TRACE(i);
    const std::optional<int64_t> expected = YieldDropBySorting(so_far, 5);
    std::vector<TelemetryWarning> got;
    for (const TelemetryWarning& w : tally.Warnings()) {
      if (w.kind == TelemetryWarningKind::kYieldDroppedToZero) got.push_back(w);
    }
    ASSERT_EQ(got.size(), expected ? 1u : 0u);
    if (expected) {
      ++fired;
      EXPECT_THAT(got[0].message, ::testing::EndsWith(absl::StrCat("reported ", *expected)));
    } else {
      ++quiet;
    }
  }
  EXPECT_GT(fired, 50) << "the sequence must exercise the rule both ways";
  EXPECT_GT(quiet, 50);
}

TEST(TelemetryAlarmTest, HealthyDrainHasNoWarnings) {
  std::vector<AttemptRecord> h;
  for (int i = 0; i < 20; ++i) {
    h.push_back(Attempt("r", "p" + std::to_string(i), Outcome::kSucceeded, 60, 10 + i, i,
                        i % 3 == 0 ? "w1" : "w2"));
  }
  EXPECT_THAT(DetectTelemetryLoss(h), IsEmpty());
}

}  // namespace
}  // namespace sluice

namespace sluice {
namespace {

TEST(TelemetryAlarmTest, UnknownTelemetryIsNotSilenceButWarnsWithoutPausing) {
  // Issue #16 item 6: attempts whose probe failed were zero-event successes
  // to the alarm.
  std::vector<AttemptRecord> h;
  for (int i = 0; i < 4; ++i) {
    AttemptRecord a = ::sluice::testing::Attempt("run-a", "p" + std::to_string(i),
                                                 Outcome::kSucceeded, 60, 0, 100 * i, "worker-a");
    a.telemetry_unknown = true;
    h.push_back(a);
    h.push_back(::sluice::testing::Attempt("run-b", "p" + std::to_string(i), Outcome::kSucceeded,
                                           60, 10, 100 * i + 1, "worker-b"));
  }
  std::vector<TelemetryWarning> w = DetectTelemetryLoss(h);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].kind, TelemetryWarningKind::kTelemetryUnknown);
  EXPECT_EQ(w[0].worker_id, "worker-a");
  EXPECT_EQ(w[0].attempts, 4);
  EXPECT_EQ(w[0].zero_event_attempts, 4);
  EXPECT_FALSE(w[0].pauses);
  EXPECT_THAT(w[0].message, ::testing::HasSubstr("--telemetry-probe"));
  EXPECT_EQ(ParseTelemetryWarningKind(TelemetryWarningKindName(w[0].kind)), w[0].kind);
  // Two unknown attempts are not yet a pattern.
  h.erase(h.begin(), h.begin() + 4);
  EXPECT_TRUE(DetectTelemetryLoss(h).empty());
}

}  // namespace
}  // namespace sluice
