#include "common/ids.h"

#include <string>

#include "absl/status/status.h"
#include "common/model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sluice {
namespace {

using ::testing::HasSubstr;

TEST(IdsTest, AcceptsIdentifierCharacters) {
  EXPECT_TRUE(IsValidId("run-1"));
  EXPECT_TRUE(IsValidId("Phase_07.a:b-c"));
  EXPECT_TRUE(IsValidId("x"));
  EXPECT_TRUE(IsValidId("..."));
  EXPECT_TRUE(IsValidId(std::string(kMaxIdLength, 'a')));
}

TEST(IdsTest, RejectsEmpty) {
  EXPECT_FALSE(IsValidId(""));
  const absl::Status status = ValidateId("run_id", "");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("run_id is empty"));
}

TEST(IdsTest, RejectsTooLong) {
  const std::string value(kMaxIdLength + 1, 'a');
  EXPECT_FALSE(IsValidId(value));
  const absl::Status status = ValidateId("phase_id", value);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("phase_id"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("129"));
}

TEST(IdsTest, RejectsDotAndDotDot) {
  EXPECT_FALSE(IsValidId("."));
  EXPECT_FALSE(IsValidId(".."));
  EXPECT_EQ(ValidateId("run_id", "..").code(), absl::StatusCode::kInvalidArgument);
}

// Bug: an id could start with '-'; substituted into a positional word of a
// worker's command template ("tool {phase_id}") it was read as an option.
TEST(IdsTest, RejectsALeadingDash) {
  for (const char* bad : {"-", "-rf", "--config=/etc/x", "-1"}) {
    EXPECT_FALSE(IsValidId(bad)) << bad;
  }
  EXPECT_THAT(std::string(ValidateId("phase_id", "-rf").message()),
              HasSubstr("phase_id must not start with '-'"));
  EXPECT_TRUE(IsValidId("a-"));
  EXPECT_TRUE(IsValidId("a--b"));
}

TEST(IdsTest, RejectsPathAndShellCharacters) {
  for (const char* bad : {"a/b", "a\\b", "a b", "a;b", "$(x)", "a\nb", "a'b", "a\"b", "*", "ü"}) {
    EXPECT_FALSE(IsValidId(bad)) << bad;
  }
}

TEST(IdsTest, ErrorNamesFieldCharacterAndPosition) {
  const absl::Status status = ValidateId("run_id", "ab/c");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("run_id"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("'/'"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("position 3"));
}

TEST(IdsTest, ErrorShowsControlBytesEscaped) {
  const absl::Status status = ValidateId("phase_id", std::string("a\x01", 2));
  EXPECT_THAT(std::string(status.message()), HasSubstr("\\x01"));
}

TEST(IdsTest, ValidIdIsOk) { EXPECT_TRUE(ValidateId("run_id", "run-42").ok()); }

TEST(ModelNamesTest, OutcomeNamesRoundTrip) {
  for (Outcome o : {Outcome::kSucceeded, Outcome::kFailed, Outcome::kTimedOut, Outcome::kKilled,
                    Outcome::kCancelled, Outcome::kLost, Outcome::kStartFailed}) {
    EXPECT_EQ(ParseOutcome(OutcomeName(o)), o);
  }
  EXPECT_EQ(OutcomeName(Outcome::kStartFailed), "start_failed");
  EXPECT_EQ(OutcomeName(Outcome::kSucceeded), "succeeded");
  EXPECT_EQ(OutcomeName(Outcome::kFailed), "failed");
  EXPECT_EQ(OutcomeName(Outcome::kTimedOut), "timed_out");
  EXPECT_EQ(OutcomeName(Outcome::kKilled), "killed");
  EXPECT_EQ(OutcomeName(Outcome::kCancelled), "cancelled");
  EXPECT_EQ(OutcomeName(Outcome::kLost), "lost");
}

TEST(ModelNamesTest, ParseOutcomeRejectsUnknownNames) {
  EXPECT_EQ(ParseOutcome(""), std::nullopt);
  EXPECT_EQ(ParseOutcome("Failed"), std::nullopt);
  EXPECT_EQ(ParseOutcome("timeout"), std::nullopt);
}

TEST(ModelNamesTest, PhaseStateNamesRoundTrip) {
  EXPECT_EQ(PhaseStateName(PhaseState::kPending), "pending");
  EXPECT_EQ(PhaseStateName(PhaseState::kLeased), "leased");
  EXPECT_EQ(PhaseStateName(PhaseState::kSucceeded), "succeeded");
  EXPECT_EQ(PhaseStateName(PhaseState::kFailed), "failed");
  for (PhaseState s :
       {PhaseState::kPending, PhaseState::kLeased, PhaseState::kSucceeded, PhaseState::kFailed}) {
    EXPECT_EQ(ParsePhaseState(PhaseStateName(s)), s);
  }
  EXPECT_EQ(ParsePhaseState("done"), std::nullopt);
}

TEST(ModelNamesTest, ReportDispositionNames) {
  EXPECT_EQ(ReportDispositionName(ReportDisposition::kAccepted), "accepted");
  EXPECT_EQ(ReportDispositionName(ReportDisposition::kDuplicate), "duplicate");
  EXPECT_EQ(ReportDispositionName(ReportDisposition::kLate), "late");
  EXPECT_EQ(ReportDispositionName(ReportDisposition::kUnknownLease), "unknown_lease");
}

TEST(ModelNamesTest, SessionStateNamesRoundTrip) {
  EXPECT_EQ(SessionStateName(SessionState::kActive), "active");
  EXPECT_EQ(SessionStateName(SessionState::kStopped), "stopped");
  EXPECT_EQ(SessionStateName(SessionState::kFinished), "finished");
  for (SessionState s : {SessionState::kActive, SessionState::kStopped, SessionState::kFinished}) {
    EXPECT_EQ(ParseSessionState(SessionStateName(s)), s);
  }
  EXPECT_EQ(ParseSessionState("running"), std::nullopt);
}

}  // namespace
}  // namespace sluice
