#include "coordinator/policy/reasons.h"

#include "absl/strings/str_cat.h"

namespace sluice {

std::string_view SkipReasonName(SkipReason reason) {
  switch (reason) {
    case SkipReason::kNone:
      return "none";
    case SkipReason::kNotSelected:
      return "not_selected";
    case SkipReason::kSkippedByPrefix:
      return "skipped_by_prefix";
    case SkipReason::kFingerprintRepeats:
      return "fingerprint_repeats";
    case SkipReason::kTimeoutsPerRun:
      return "timeouts_per_run";
    case SkipReason::kBackingOff:
      return "backing_off";
    case SkipReason::kDeferredOwnFailures:
      return "deferred_own_failures";
    case SkipReason::kDeferredFamilyFailures:
      return "deferred_family_failures";
    case SkipReason::kNeedsLabels:
      return "needs_labels";
    case SkipReason::kNeedsLabelsUnlisted:
      return "needs_labels_unlisted";
    case SkipReason::kFailedForGood:
      return "failed_for_good";
    case SkipReason::kRetryNotWorthIt:
      return "retry_not_worth_it";
    case SkipReason::kDeferredTimeouts:
      return "deferred_timeouts";
    case SkipReason::kBelowMinExpectedYield:
      return "below_min_expected_yield";
  }
  return "unknown";
}

bool IsExclusion(SkipReason reason) {
  switch (reason) {
    case SkipReason::kNotSelected:
    case SkipReason::kSkippedByPrefix:
    case SkipReason::kFingerprintRepeats:
    case SkipReason::kTimeoutsPerRun:
    case SkipReason::kBackingOff:
    case SkipReason::kBelowMinExpectedYield:
      return true;
    default:
      return false;
  }
}

bool IsDeferral(SkipReason reason) {
  return reason == SkipReason::kDeferredOwnFailures ||
         reason == SkipReason::kDeferredFamilyFailures || reason == SkipReason::kDeferredTimeouts;
}

std::string_view SkipKindName(SkipReason reason) {
  if (IsExclusion(reason)) return "excluded";
  if (IsDeferral(reason)) return "deferred";
  if (reason == SkipReason::kNeedsLabels || reason == SkipReason::kNeedsLabelsUnlisted) {
    return "waiting_for_labels";
  }
  if (reason == SkipReason::kFailedForGood || reason == SkipReason::kRetryNotWorthIt) {
    return "failed";
  }
  return "";
}

// The texts are what status, plan and the report printed before the reasons
// were typed; tests and docs quote them.
std::string PolicyReason::Text() const {
  switch (code) {
    case SkipReason::kNone:
      return "";
    case SkipReason::kNotSelected:
      return "not selected by --run-id";
    case SkipReason::kSkippedByPrefix:
      return "skipped by --skip-run-prefix";
    case SkipReason::kFingerprintRepeats:
      return absl::StrCat("blocked by fingerprint ", detail);
    case SkipReason::kTimeoutsPerRun:
      return absl::StrCat("max_timeouts_per_run reached (", detail, ")");
    case SkipReason::kBackingOff:
      return absl::StrCat("backing off after a transient failure for ", detail);
    case SkipReason::kDeferredOwnFailures:
      return absl::StrCat("deferred: its sampled phases failed deterministically ", detail);
    case SkipReason::kDeferredFamilyFailures:
      return absl::StrCat("deferred: run family ", detail);
    case SkipReason::kNeedsLabels:
      return absl::StrCat("waiting for a worker with labels ", detail,
                          " (no registered worker has them all)");
    case SkipReason::kNeedsLabelsUnlisted:
      return "more phases waiting for a worker with their labels (not listed)";
    case SkipReason::kFailedForGood:
      return absl::StrCat("failed for good: ", detail);
    case SkipReason::kRetryNotWorthIt:
      return absl::StrCat("failed for good: retry not worth it (", detail, ")");
    case SkipReason::kDeferredTimeouts:
      return absl::StrCat("deferred: max_timeouts_per_run reached (", detail, ")");
    case SkipReason::kBelowMinExpectedYield:
      return absl::StrCat("below min_expected_yield (", detail, ")");
  }
  return detail;
}

std::string_view SessionEndReasonName(SessionEndReason reason) {
  switch (reason) {
    case SessionEndReason::kNone:
      return "none";
    case SessionEndReason::kEnded:
      return "ended";
    case SessionEndReason::kMaxTotalMinutes:
      return "max_total_minutes";
    case SessionEndReason::kBatchSize:
      return "batch_size";
    case SessionEndReason::kZeroYield:
      return "max_consecutive_zero_yield";
    case SessionEndReason::kNothingLeft:
      return "nothing_left";
    case SessionEndReason::kBelowMinExpectedYield:
      return "min_expected_yield";
  }
  return "unknown";
}

std::string SessionEnd::Text() const {
  switch (code) {
    case SessionEndReason::kNone:
      return "";
    case SessionEndReason::kEnded:
      return detail;
    case SessionEndReason::kMaxTotalMinutes:
      return "max_total_minutes reached";
    case SessionEndReason::kBatchSize:
      return "batch_size reached";
    case SessionEndReason::kZeroYield:
      return absl::StrCat("max_consecutive_zero_yield reached (", detail,
                          " attempts in a row without telemetry)");
    case SessionEndReason::kNothingLeft:
      // detail: why pending phases are left (all blocked or excluded).
      return detail.empty() ? "nothing left to lease" : detail;
    case SessionEndReason::kBelowMinExpectedYield:
      return absl::StrCat("nothing left is expected to beat min_expected_yield (", detail, ")");
  }
  return detail;
}

}  // namespace sluice
