#include "coordinator/policy/retry_policy.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/fingerprint.h"
#include "coordinator/policy/outcome_evidence.h"

namespace sluice {

void RetryEvidence::Observe(const std::string& run_id, const std::string& phase_id, Outcome outcome,
                            const std::string& fingerprint, bool transient) {
  if (!IsPhaseVerdict(outcome) || (outcome == Outcome::kFailed && transient)) return;
  const std::string key = absl::StrCat(run_id, "/", phase_id);
  if (auto it = last_failure_.find(key); it != last_failure_.end()) {
    Tally& t = by_fingerprint_[it->second];
    ++t.retries;
    ++global_.retries;
    if (outcome == Outcome::kSucceeded) {
      ++t.successes;
      ++global_.successes;
    }
  }
  if (outcome == Outcome::kSucceeded) {
    last_failure_.erase(key);
  } else {
    last_failure_[key] = fingerprint;
  }
}

double RetryEvidence::GlobalSuccess() const {
  return (static_cast<double>(global_.successes) + kPriorRetryWeight * kPriorRetrySuccess) /
         (static_cast<double>(global_.retries) + kPriorRetryWeight);
}

double RetryEvidence::RetrySuccess(const std::string& fingerprint) const {
  Tally t;
  if (auto it = by_fingerprint_.find(fingerprint); it != by_fingerprint_.end()) t = it->second;
  return (static_cast<double>(t.successes) + kFingerprintWeight * GlobalSuccess()) /
         (static_cast<double>(t.retries) + kFingerprintWeight);
}

PolicyReason RetryEvidence::Decide(Outcome outcome, const std::string& fingerprint) const {
  if (outcome != Outcome::kFailed && outcome != Outcome::kTimedOut) return {};
  const double bar =
      outcome == Outcome::kTimedOut ? kMinRetrySuccessAfterTimeout : kMinRetrySuccess;
  const double p = RetrySuccess(fingerprint);
  if (p >= bar) return {};
  return {SkipReason::kRetryNotWorthIt,
          absl::StrFormat("retries of %s succeed %.0f %% < %.0f %%", FingerprintId(fingerprint),
                          100 * p, 100 * bar)};
}

}  // namespace sluice
