// TelemetryWatch on its own: the pause cache, when the alarm looks again,
// logging once, pausing and resuming. The attempts are constructed (the
// store's ListAttempts is replaced) and the clock is fake.
#include "coordinator/insight/telemetry_watch.h"

#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "coordinator/store/sqlite/sqlite_state_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/attempts.h"
#include "tests/testing/forwarding_state_store.h"

namespace sluice {
namespace {

using ::sluice::testing::Attempt;
using ::testing::IsEmpty;
using ::testing::SizeIs;

// Answers ListAttempts (and ListAttemptsWithoutOutput, what the watch
// reads) with `attempts` and counts the reads.
class AttemptsStore : public testing::ForwardingStateStore {
 public:
  using ForwardingStateStore::ForwardingStateStore;
  absl::StatusOr<std::vector<AttemptRecord>> ListAttempts(const std::string&) override {
    ++reads;
    return attempts;
  }
  absl::StatusOr<std::vector<AttemptRecord>> ListAttemptsWithoutOutput(
      const std::string& session) override {
    return ListAttempts(session);
  }
  // The default: `attempts` from the cursor on (it only grows at its end,
  // as a store's do).
  absl::StatusOr<AttemptBatch> ListAttemptsFrom(const std::string& session, int64_t cursor,
                                                int64_t limit) override {
    cursors.push_back(cursor);
    return StateStore::ListAttemptsFrom(session, cursor, limit);
  }
  std::vector<AttemptRecord> attempts;
  int reads = 0;
  std::vector<int64_t> cursors;  // asked of ListAttemptsFrom, in order
};

// Successes without a single telemetry event: the alarm's clearest case.
std::vector<AttemptRecord> SilentSuccesses(int n) {
  std::vector<AttemptRecord> out;
  for (int i = 0; i < n; ++i) {
    out.push_back(Attempt("r", "p" + std::to_string(i), Outcome::kSucceeded, 10, 0, 10 + i));
  }
  return out;
}

class TelemetryWatchTest : public ::testing::Test {
 protected:
  TelemetryWatchTest()
      : sqlite_(SqliteStateStore::Open(":memory:").value()),
        store_(*sqlite_),
        watch_(store_, clock_, [this] { ++wakes_; }) {}

  SessionRecord Session(TelemetryLossAction action) {
    SessionRecord s;
    s.session_id = "s1";
    s.settings.on_telemetry_loss = action;
    return s;
  }

  void StorePause(bool paused) {
    LeasingPause p;
    p.session_id = "s1";
    p.paused = paused;
    p.reason = "telemetry loss: test";
    EXPECT_TRUE(store_.PutPolicyRecord(kLeasingPauseRecord, "s1", LeasingPauseToJson(p)).ok());
  }

  FakeClock clock_{sluice::testing::kT0 + 3'600'000};
  std::unique_ptr<SqliteStateStore> sqlite_;
  AttemptsStore store_;
  TelemetryWatch watch_;
  int wakes_ = 0;
};

TEST_F(TelemetryWatchTest, PauseActionPausesLeasingOnTelemetryLossAndSaysWhy) {
  store_.attempts = SilentSuccesses(4);
  EXPECT_TRUE(watch_.Check(Session(TelemetryLossAction::kPause)).ok());
  EXPECT_TRUE(watch_.LeasingPaused("s1").value());
  const LeasingPause pause = watch_.LoadPause("s1").value();
  EXPECT_TRUE(pause.paused);
  EXPECT_THAT(pause.reason, ::testing::StartsWith("telemetry loss: "));
  EXPECT_EQ(pause.paused_at_ms, clock_.NowMs());
  EXPECT_THAT(watch_.WarningsFor("s1"), ::testing::Not(IsEmpty()));
  EXPECT_THAT(watch_.WarningsFor("other"), IsEmpty());
}

TEST_F(TelemetryWatchTest, WarnActionWarnsButNeverPauses) {
  store_.attempts = SilentSuccesses(4);
  EXPECT_TRUE(watch_.Check(Session(TelemetryLossAction::kWarn)).ok());
  EXPECT_FALSE(watch_.LeasingPaused("s1").value());
  EXPECT_THAT(watch_.WarningsFor("s1"), ::testing::Not(IsEmpty()));
}

TEST_F(TelemetryWatchTest, LooksAgainOnlyAfterAReportWasAccepted) {
  store_.attempts = SilentSuccesses(1);
  const SessionRecord s = Session(TelemetryLossAction::kWarn);
  EXPECT_TRUE(watch_.Check(s).ok());  // a new coordinator looks once
  EXPECT_EQ(store_.reads, 1);
  EXPECT_TRUE(watch_.Check(s).ok());
  EXPECT_EQ(store_.reads, 1) << "nothing new to judge";
  watch_.ReportAccepted();
  EXPECT_TRUE(watch_.Check(s).ok());
  EXPECT_EQ(store_.reads, 2);
}

TEST_F(TelemetryWatchTest, ACheckReadsOnlyTheAttemptsRecordedSinceTheLastAndJudgesThemAll) {
  const SessionRecord s = Session(TelemetryLossAction::kPause);
  store_.attempts = SilentSuccesses(2);
  EXPECT_TRUE(watch_.Check(s).ok());
  ASSERT_THAT(watch_.WarningsFor("s1"), SizeIs(1));
  EXPECT_FALSE(watch_.WarningsFor("s1")[0].pauses) << "2 silent successes: an early warning";
  EXPECT_FALSE(watch_.LeasingPaused("s1").value());

  const std::vector<AttemptRecord> more = SilentSuccesses(4);
  store_.attempts.insert(store_.attempts.end(), more.begin() + 2, more.end());
  store_.cursors.clear();
  watch_.ReportAccepted();
  EXPECT_TRUE(watch_.Check(s).ok());
  EXPECT_THAT(store_.cursors, ::testing::ElementsAre(2)) << "read on from the first check's end";
  ASSERT_THAT(watch_.WarningsFor("s1"), SizeIs(1));
  EXPECT_EQ(watch_.WarningsFor("s1")[0].attempts, 4) << "judged on all four";
  EXPECT_TRUE(watch_.LeasingPaused("s1").value());
}

TEST_F(TelemetryWatchTest, ALongSessionIsReadInChunksAndANewTermReadsItAgain) {
  const SessionRecord s = Session(TelemetryLossAction::kWarn);
  store_.attempts = SilentSuccesses(25'000);
  EXPECT_TRUE(watch_.Check(s).ok());
  EXPECT_THAT(store_.cursors, ::testing::ElementsAre(0, 10'000, 20'000));
  ASSERT_THAT(watch_.WarningsFor("s1"), SizeIs(1));
  EXPECT_EQ(watch_.WarningsFor("s1")[0].attempts, 25'000);

  store_.cursors.clear();
  watch_.ResetForNewTerm();
  watch_.ReportAccepted();
  EXPECT_TRUE(watch_.Check(s).ok());
  EXPECT_THAT(store_.cursors, ::testing::ElementsAre(0, 10'000, 20'000));
  EXPECT_EQ(watch_.WarningsFor("s1")[0].attempts, 25'000) << "counted once, not twice";
}

TEST_F(TelemetryWatchTest, PauseIsCachedUntilACheckSeesAResumeFromAnotherProcess) {
  StorePause(true);
  EXPECT_TRUE(watch_.LeasingPaused("s1").value());
  StorePause(false);  // `sluice resume --store` elsewhere
  EXPECT_TRUE(watch_.LeasingPaused("s1").value()) << "the cache holds until the next check";
  EXPECT_TRUE(watch_.Check(Session(TelemetryLossAction::kPause)).ok());
  EXPECT_FALSE(watch_.LeasingPaused("s1").value());
  EXPECT_EQ(wakes_, 1) << "waiting long-polls lease again at once";
}

TEST_F(TelemetryWatchTest, ResumeEndsThePauseClearsWarningsAndWakesPolls) {
  store_.attempts = SilentSuccesses(4);
  const SessionRecord s = Session(TelemetryLossAction::kPause);
  EXPECT_TRUE(watch_.Check(s).ok());
  clock_.AdvanceMs(1000);
  const LeasingPause ended = watch_.Resume(s).value();
  EXPECT_TRUE(ended.paused);
  EXPECT_FALSE(watch_.LeasingPaused("s1").value());
  EXPECT_EQ(watch_.LoadPause("s1").value().resumed_at_ms, clock_.NowMs());
  EXPECT_THAT(watch_.WarningsFor("s1"), IsEmpty());
  EXPECT_EQ(wakes_, 1);
  // The attempts that fired the alarm ended before the resume: no new pause.
  EXPECT_TRUE(watch_.Check(s).ok());
  EXPECT_FALSE(watch_.LeasingPaused("s1").value());
  EXPECT_EQ(watch_.Resume(s).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(TelemetryWatchTest, CorruptPauseRecordIsInternal) {
  EXPECT_TRUE(store_.PutPolicyRecord(kLeasingPauseRecord, "s1", "not json").ok());
  EXPECT_EQ(watch_.LoadPause("s1").status().code(), absl::StatusCode::kInternal);
}

TEST_F(TelemetryWatchTest, ResetForNewTermRereadsThePauseFromTheStore) {
  StorePause(true);
  EXPECT_TRUE(watch_.LeasingPaused("s1").value());
  StorePause(false);
  watch_.ResetForNewTerm();
  EXPECT_FALSE(watch_.LeasingPaused("s1").value());
}

}  // namespace
}  // namespace sluice
