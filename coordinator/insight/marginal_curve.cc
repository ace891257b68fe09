#include "coordinator/insight/marginal_curve.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace sluice {

std::vector<MarginalStep> ComputeMarginalCurve(const std::vector<TimelineBucket>& timeline,
                                               int steps) {
  std::vector<MarginalStep> curve;
  int64_t total_ms = 0;
  // Worker time with known telemetry: an attempt whose events could not be
  // counted says nothing about what its minutes were worth.
  for (const TimelineBucket& b : timeline) total_ms += b.telemetry_ms();
  if (total_ms <= 0) return curve;
  steps = std::max(steps, 1);
  int64_t ms = 0, events = 0, step_start_ms = 0, step_start_events = 0;
  int next = 1;  // the step whose boundary (next / steps of the total) comes next
  for (const TimelineBucket& b : timeline) {
    ms += b.telemetry_ms();
    events += b.telemetry_events;
    // A bucket may cross several boundaries: it closes one step (the steps
    // are never finer than a bucket).
    if (ms * steps < total_ms * next) continue;
    while (next <= steps && ms * steps >= total_ms * next) ++next;
    const int64_t step_ms = ms - step_start_ms;
    curve.push_back({static_cast<double>(ms) / 60'000.0, events,
                     step_ms > 0 ? static_cast<double>(events - step_start_events) /
                                       (static_cast<double>(step_ms) / 60'000.0)
                                 : 0});
    step_start_ms = ms;
    step_start_events = events;
  }
  return curve;
}

std::string MarginalCurveText(const std::vector<MarginalStep>& curve) {
  if (curve.empty()) return "";
  std::string out =
      "marginal curve (events collected against worker-minutes spent; yield of each step):\n";
  absl::StrAppendFormat(&out, "  %10s %8s %10s\n", "worker-min", "events", "step yield");
  for (const MarginalStep& s : curve) {
    absl::StrAppendFormat(&out, "  %10.1f %8d %10.3f\n", s.worker_minutes, s.events, s.step_yield);
  }
  return out;
}

}  // namespace sluice
