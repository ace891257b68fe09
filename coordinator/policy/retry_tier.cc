#include "coordinator/policy/retry_tier.h"

#include <algorithm>

namespace sluice {

void RetryTier::Granted(const std::string& run_id, const std::string& lease_id, bool retry_tier) {
  if (!retry_tier) {
    runs_.erase(run_id);
    return;
  }
  runs_.insert(run_id);
  if (leases_.size() >= kMaxTrackedLeases) leases_.clear();
  leases_.insert(lease_id);
}

void RetryTier::Observe(const std::string& lease_id, bool phase_verdict, int64_t events,
                        int64_t duration_ms, bool telemetry_unknown) {
  if (leases_.erase(lease_id) == 0 || !phase_verdict) return;
  if (telemetry_unknown) return;  // no evidence either way about its yield
  events_ += static_cast<double>(events);
  minutes_ += static_cast<double>(duration_ms) / 60'000.0;
}

double RetryTier::Factor(double events_per_minute, double minutes_per_attempt) const {
  if (events_per_minute <= 0) return kPriorFactor;
  const double m = std::max(minutes_per_attempt, 1e-3);
  const double tier_yield = (events_ + kPriorWeight * kPriorFactor * events_per_minute * m) /
                            (minutes_ + kPriorWeight * m);
  return std::clamp(tier_yield / events_per_minute, kMinFactor, 1.0);
}

void RetryTier::Reset() {
  runs_.clear();
  leases_.clear();
  events_ = minutes_ = 0;
}

}  // namespace sluice
