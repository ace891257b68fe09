// What a phase's backlog row (its last_error: the failure that put it in
// the backlog) adds to the drain policy's decisions, phase by phase (#13).
// The row is the phase's attempt zero:
//  - a phase whose row says it ran into its time limit goes behind its
//    run's other untried phases (the stores order it so, see
//    LastErrorIsPhaseTimeout and LeaseParams::retries_last);
//  - a phase whose own outcome now repeats the row's failure (the same
//    failure text again, or a timeout again) has been retried once already
//    and failed the same way: it is not retried again.
//
// Pure and thread-safe.
#pragma once

#include <string>

#include "common/model.h"
#include "coordinator/policy/reasons.h"

namespace sluice {

// Empty unless `outcome` (an own failure or timeout with `error_text`)
// repeats the failure `last_error` recorded; then kRetryNotWorthIt with why.
PolicyReason RepeatsBacklogFailure(Outcome outcome, const std::string& error_text,
                                   const std::string& last_error);

}  // namespace sluice
