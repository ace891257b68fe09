// gMock matchers for absl::Status and absl::StatusOr<T>, after
// google-cloud-cpp's testing_util/status_matchers.h, and Ok(), the unwrap
// that fixtures use to build state they do not test.
//
//   EXPECT_THAT(store.ImportPhases(specs), IsOk());
//   EXPECT_THAT(coord.Lease(...), StatusIs(absl::StatusCode::kFailedPrecondition,
//                                          HasSubstr("no active session")));
//   EXPECT_THAT(store.CountPhases(), IsOkAndHolds(Field(&PhaseCounts::pending, 2)));
//   const PhaseCounts counts = Ok(store.CountPhases());  // throws when not OK
//
// On a mismatch the matchers print the whole status (code and message).
#pragma once

#include <ostream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"

namespace sluice::testing {
namespace status_internal {

inline const absl::Status& GetStatus(const absl::Status& status) { return status; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

// Status or StatusOr<T>: the code and the message each match.
class StatusIsMatcher {
 public:
  StatusIsMatcher(::testing::Matcher<absl::StatusCode> code,
                  ::testing::Matcher<const std::string&> message)
      : code_(std::move(code)), message_(std::move(message)) {}

  template <typename StatusType>
  bool MatchAndExplain(const StatusType& value, ::testing::MatchResultListener* listener) const {
    const absl::Status& status = GetStatus(value);
    *listener << "whose status is " << status;
    return code_.Matches(status.code()) && message_.Matches(std::string(status.message()));
  }
  void DescribeTo(std::ostream* os) const {
    *os << "has a status code that ";
    code_.DescribeTo(os);
    *os << " and a message that ";
    message_.DescribeTo(os);
  }
  void DescribeNegationTo(std::ostream* os) const {
    *os << "has a status code that ";
    code_.DescribeNegationTo(os);
    *os << " or a message that ";
    message_.DescribeNegationTo(os);
  }

 private:
  ::testing::Matcher<absl::StatusCode> code_;
  ::testing::Matcher<const std::string&> message_;
};

// StatusOr<T> that is OK and holds a value matching `value`.
template <typename StatusOrType>
class IsOkAndHoldsImpl : public ::testing::MatcherInterface<StatusOrType> {
 public:
  using Value = typename std::remove_cv_t<std::remove_reference_t<StatusOrType>>::value_type;

  template <typename InnerMatcher>
  explicit IsOkAndHoldsImpl(InnerMatcher&& value)
      : value_(::testing::SafeMatcherCast<const Value&>(std::forward<InnerMatcher>(value))) {}

  bool MatchAndExplain(StatusOrType actual,
                       ::testing::MatchResultListener* listener) const override {
    if (!actual.ok()) {
      *listener << "whose status is " << actual.status();
      return false;
    }
    ::testing::StringMatchResultListener inner;
    const bool matched = value_.MatchAndExplain(*actual, &inner);
    const std::string explanation = inner.str();
    *listener << "whose value " << ::testing::PrintToString(*actual)
              << (matched ? " matches" : " doesn't match");
    if (!explanation.empty()) *listener << ", " << explanation;
    return matched;
  }
  void DescribeTo(std::ostream* os) const override {
    *os << "is OK and holds a value that ";
    value_.DescribeTo(os);
  }
  void DescribeNegationTo(std::ostream* os) const override {
    *os << "is not OK, or holds a value that ";
    value_.DescribeNegationTo(os);
  }

 private:
  ::testing::Matcher<const Value&> value_;
};

template <typename InnerMatcher>
class IsOkAndHoldsMatcher {
 public:
  explicit IsOkAndHoldsMatcher(InnerMatcher value) : value_(std::move(value)) {}
  template <typename StatusOrType>
  operator ::testing::Matcher<StatusOrType>() const {  // NOLINT: implicit by design (gMock)
    return ::testing::Matcher<StatusOrType>(new IsOkAndHoldsImpl<const StatusOrType&>(value_));
  }

 private:
  InnerMatcher value_;
};

}  // namespace status_internal

// Matches an OK absl::Status or absl::StatusOr<T>.
inline auto IsOk() {
  return ::testing::MakePolymorphicMatcher(
      status_internal::StatusIsMatcher(absl::StatusCode::kOk, ::testing::A<const std::string&>()));
}

// Matches a Status or StatusOr<T> whose code is `code` and, when given,
// whose message matches `message` (a string or a matcher such as HasSubstr).
inline auto StatusIs(absl::StatusCode code) {
  return ::testing::MakePolymorphicMatcher(
      status_internal::StatusIsMatcher(code, ::testing::A<const std::string&>()));
}
template <typename MessageMatcher>
auto StatusIs(absl::StatusCode code, MessageMatcher message) {
  return ::testing::MakePolymorphicMatcher(status_internal::StatusIsMatcher(
      code, ::testing::MatcherCast<const std::string&>(std::move(message))));
}

// Matches an OK StatusOr<T> whose value matches `value` (a value or a matcher).
template <typename ValueMatcher>
auto IsOkAndHolds(ValueMatcher value) {
  return status_internal::IsOkAndHoldsMatcher<ValueMatcher>(std::move(value));
}

// The value of an OK StatusOr; a status that is not OK is thrown as
// std::runtime_error carrying its text, which gtest reports as a failure of
// the running test ("C++ exception ... thrown in the test body"). For
// fixtures and set-up steps whose success is not what the test is about.
template <typename T>
T Ok(absl::StatusOr<T> result) {
  if (!result.ok()) throw std::runtime_error(result.status().ToString());
  return *std::move(result);
}
inline void Ok(const absl::Status& status) {
  if (!status.ok()) throw std::runtime_error(status.ToString());
}

}  // namespace sluice::testing
