// The retry worth-it rule: a phase whose own attempt failed (non-transient)
// or timed out gets another attempt only when retries of failures with that
// fingerprint have succeeded often enough, cluster-wide. The evidence is
// shrunk in two levels, like the scheduler's estimates:
//   global      = every observed retry + a prior of kPriorRetrySuccess worth
//                 kPriorRetryWeight retries (a first failure is worth a
//                 second look: that is what a first sample teaches);
//   fingerprint = the retries after a failure with this fingerprint + the
//                 global estimate worth kFingerprintWeight retries.
// A retry is worth it when the fingerprint's estimate reaches
// kMinRetrySuccess, or kMinRetrySuccessAfterTimeout after a timeout (a hang
// costs the whole phase timeout again, so it needs twice the evidence). The
// attempt budget (max_attempts_per_phase) stays the hard cap: this rule only
// ever ends a phase earlier.
//
// A "retry" is a phase's next own outcome (succeeded, failed non-transient,
// timed out) after an own failure or timeout. Transient failures, outside
// kills, cancellations and lost leases are not own outcomes and neither
// count nor break the chain.
//
// Pure and thread-compatible: DrainPolicy serialises access.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/model.h"
#include "coordinator/policy/reasons.h"

namespace sluice {

inline constexpr double kPriorRetrySuccess = 0.5;
inline constexpr double kPriorRetryWeight = 2.0;
inline constexpr double kFingerprintWeight = 2.0;
inline constexpr double kMinRetrySuccess = 0.25;
inline constexpr double kMinRetrySuccessAfterTimeout = 0.5;

class RetryEvidence {
 public:
  // An accepted outcome of `run_id`/`phase_id`. `transient` failures do not
  // count.
  void Observe(const std::string& run_id, const std::string& phase_id, Outcome outcome,
               const std::string& fingerprint, bool transient);

  // Estimated probability that a retry after a failure with `fingerprint`
  // succeeds.
  double RetrySuccess(const std::string& fingerprint) const;

  // Empty when a retry after this own outcome is worth it (or the outcome is
  // not a failure); else kRetryNotWorthIt with the estimate and the bar.
  PolicyReason Decide(Outcome outcome, const std::string& fingerprint) const;

 private:
  struct Tally {
    int64_t retries = 0;
    int64_t successes = 0;
  };
  double GlobalSuccess() const;

  std::map<std::string, std::string> last_failure_;  // "run/phase" -> its last own failure
  std::map<std::string, Tally> by_fingerprint_;
  Tally global_;
};

}  // namespace sluice
