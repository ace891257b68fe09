#include "coordinator/policy/backlog_history.h"

#include "common/fingerprint.h"
#include "common/last_error.h"
#include "coordinator/policy/failure_policy.h"

namespace sluice {
namespace {

// Shorter normalised texts ("error", "failed <n>") say too little to call
// two failures the same.
constexpr size_t kMinComparableChars = 16;

// The same failure: one normalised text holds the other. A worker's error
// text is often longer than the row's (a traceback around the same last
// line), and volatile parts (paths' numbers, request ids, durations) are
// masked on both sides.
bool SameFailureText(const std::string& error_text, const std::string& last_error) {
  const std::string now = NormalizeErrorText(error_text);
  const std::string before = NormalizeErrorText(last_error);
  if (now.size() < kMinComparableChars || before.size() < kMinComparableChars) return false;
  return now.find(before) != std::string::npos || before.find(now) != std::string::npos;
}

}  // namespace

PolicyReason RepeatsBacklogFailure(Outcome outcome, const std::string& error_text,
                                   const std::string& last_error) {
  if (last_error.empty()) return {};
  if (outcome == Outcome::kTimedOut && LastErrorIsPhaseTimeout(last_error)) {
    return {SkipReason::kRetryNotWorthIt, "timed out again, as its backlog row says it did before"};
  }
  // A transient-looking failure (the built-in set, whatever the session's
  // settings) that happened twice says nothing about the third try.
  static const TransientMatcher* const kBuiltIn =
      new TransientMatcher(TransientMatcher::ForSettings({}).value());
  if (outcome == Outcome::kFailed && SameFailureText(error_text, last_error) &&
      !kBuiltIn->Matches("", error_text)) {
    return {SkipReason::kRetryNotWorthIt, "failed as its backlog row says it did before"};
  }
  return {};
}

}  // namespace sluice
