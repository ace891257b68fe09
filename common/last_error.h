// What a backlog row's `last_error` (the failure that put the phase in the
// backlog) says about the phase before any attempt of ours. Pure and
// thread-safe.
#pragma once

#include <string_view>

namespace sluice {

// True when `last_error` says the phase itself ran into its time limit and
// was killed: "phase timed out after 900s", "TimeoutExpired: Command ...
// timed out after 900 seconds", "exceeded the phase timeout". Such a phase
// is likely to hang again, so a run's other untried phases go first (#13).
//
// A timeout of a network call inside the phase ("The read operation timed
// out", "httpx.ReadTimeout", "connect timeout") is not one: that is a
// transient error, and the phase is as good as any other.
bool LastErrorIsPhaseTimeout(std::string_view last_error);

}  // namespace sluice
