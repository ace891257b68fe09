// The shared status matchers and Ok(): what they accept, what they refuse,
// and that a refusal names the status it saw.
#include "tests/testing/status_matchers.h"

#include <stdexcept>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sluice::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(StatusMatchersTest, IsOkAcceptsOkStatusAndStatusOr) {
  EXPECT_THAT(absl::OkStatus(), IsOk());
  EXPECT_THAT(absl::StatusOr<int>(3), IsOk());
  EXPECT_THAT(absl::NotFoundError("x"), Not(IsOk()));
  EXPECT_THAT(absl::StatusOr<int>(absl::InternalError("x")), Not(IsOk()));
}

TEST(StatusMatchersTest, StatusIsMatchesTheCodeAndOptionallyTheMessage) {
  const absl::Status status = absl::InvalidArgumentError("backlog.jsonl:17: field missing");
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(":17:")));
  EXPECT_THAT(status,
              StatusIs(absl::StatusCode::kInvalidArgument, "backlog.jsonl:17: field missing"));
  EXPECT_THAT(status, Not(StatusIs(absl::StatusCode::kNotFound)));
  EXPECT_THAT(status, Not(StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(":18:"))));
  EXPECT_THAT(absl::StatusOr<std::string>(absl::UnavailableError("down")),
              StatusIs(absl::StatusCode::kUnavailable, "down"));
  EXPECT_THAT(absl::OkStatus(), StatusIs(absl::StatusCode::kOk));
}

TEST(StatusMatchersTest, IsOkAndHoldsMatchesTheValueOfAnOkStatusOr) {
  EXPECT_THAT(absl::StatusOr<int>(3), IsOkAndHolds(3));
  EXPECT_THAT(absl::StatusOr<std::string>("sluice"), IsOkAndHolds(HasSubstr("lui")));
  EXPECT_THAT(absl::StatusOr<int>(3), Not(IsOkAndHolds(4)));
  EXPECT_THAT(absl::StatusOr<int>(absl::AbortedError("x")), Not(IsOkAndHolds(::testing::_)));
}

// What gMock prints after "Actual: ..." when `matcher` refuses `value`.
template <typename Matcher, typename T>
std::string Explain(const Matcher& matcher, const T& value) {
  ::testing::StringMatchResultListener listener;
  EXPECT_FALSE(::testing::ExplainMatchResult(matcher, value, &listener));
  return listener.str();
}

TEST(StatusMatchersTest, AMismatchNamesTheStatusItSaw) {
  const absl::Status status = absl::FailedPreconditionError("no active session");
  EXPECT_THAT(Explain(IsOk(), status), HasSubstr("FAILED_PRECONDITION: no active session"));
  EXPECT_THAT(Explain(StatusIs(absl::StatusCode::kNotFound), status),
              HasSubstr("FAILED_PRECONDITION: no active session"));
  EXPECT_THAT(Explain(IsOkAndHolds(1), absl::StatusOr<int>(status)),
              HasSubstr("FAILED_PRECONDITION: no active session"));
}

TEST(StatusMatchersTest, OkUnwrapsOrThrowsTheStatusText) {
  EXPECT_EQ(Ok(absl::StatusOr<int>(7)), 7);
  EXPECT_NO_THROW(Ok(absl::OkStatus()));
  try {
    Ok(absl::StatusOr<int>(absl::NotFoundError("phase r/p")));
    ADD_FAILURE() << "Ok() did not throw";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("NOT_FOUND: phase r/p"));
  }
  EXPECT_THROW(Ok(absl::InternalError("x")), std::runtime_error);
}

}  // namespace
}  // namespace sluice::testing
