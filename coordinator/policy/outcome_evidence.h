// What an attempt's outcome is evidence of. The rules that learn from
// outcomes ask here, so they agree on what counts.
#pragma once

#include "common/model.h"

namespace sluice {

// The phase's own verdict: it ran to an end that says something about the
// phase itself (succeeded, failed, timed out). A kill from outside the
// worker, a cancellation, a lost lease or a start failure is not the
// phase's doing. What the retry rules (RetryEvidence, RetryTier) learn from.
constexpr bool IsPhaseVerdict(Outcome o) {
  return o == Outcome::kSucceeded || o == Outcome::kFailed || o == Outcome::kTimedOut;
}

// The attempt ran the phase on a worker (anything but a cancellation or a
// start failure), so it says something about the run's environment: it
// ends a transient backoff streak and counts in the zero-yield streak.
constexpr bool RanThePhase(Outcome o) {
  return o != Outcome::kCancelled && o != Outcome::kStartFailed;
}

// The attempt spends the phase's attempt budget (max_attempts_per_phase)
// rather than its requeue budget: the phase ran and nothing outside it ended
// the attempt early on purpose or by losing it. (A transient failure also
// spends the requeue budget; that is the caller's to decide.)
constexpr bool SpendsAnAttempt(Outcome o) { return RanThePhase(o) && o != Outcome::kLost; }

}  // namespace sluice
