#include "coordinator/policy/idle_limit.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace sluice {

void IdleLimit::Observe(Outcome outcome, int64_t longest_silence_ms) {
  // Only attempts that ended on their own show how quiet a working phase
  // gets: a timed-out one was stopped (a hang's silence is what the limit
  // is for), killed, cancelled and lost ones were ended from outside.
  if (outcome != Outcome::kSucceeded && outcome != Outcome::kFailed) return;
  if (longest_silence_ms < 0) return;
  ++samples_;
  longest_ms_ = std::max(longest_ms_, longest_silence_ms);
}

int32_t IdleLimit::LearntSeconds() const {
  if (samples_ < kMinSamples) return 0;
  const double seconds = std::ceil(kFactor * static_cast<double>(longest_ms_) / 1000.0);
  return static_cast<int32_t>(
      std::clamp<double>(seconds, kFloorSeconds, std::numeric_limits<int32_t>::max()));
}

int32_t IdleLimit::SecondsFor(const SessionSettings& settings, int32_t timeout_seconds) const {
  int32_t limit = 0;
  if (settings.idle_timeout_seconds > 0) {
    limit = settings.idle_timeout_seconds;
  } else if (settings.idle_timeout_seconds == 0) {
    limit = LearntSeconds();
  }
  return limit > 0 && limit < timeout_seconds ? limit : 0;
}

}  // namespace sluice
