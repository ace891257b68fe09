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
  std::vector<AttemptRecord> attempts;
  int reads = 0;
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
