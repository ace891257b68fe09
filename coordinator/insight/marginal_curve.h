// The marginal curve of a drain (issue #13): telemetry events collected
// against worker-minutes spent, in steps of equal worker time, with the yield
// of each step. The last steps' yield is what the drain's latest minutes were
// worth, which is what an operator weighs against --min-expected-yield.
//
// Built from the report's timeline (attempts by the time they ended), so it
// needs no store read of its own; a step ends at a bucket end, so its
// worker-minutes are as fine as the timeline's buckets.
//
// Pure functions; thread-compatible.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "coordinator/insight/session_report.h"

namespace sluice {

struct MarginalStep {
  double worker_minutes = 0;  // cumulative, at the end of the step
  int64_t events = 0;         // cumulative telemetry events by then
  // Events per worker-minute within this step alone (not cumulative); 0 when
  // the step spent no worker time.
  double step_yield = 0;
};

// At most `steps` (>= 1) steps of about equal worker time; empty when no
// worker time was spent. The last step always ends at the whole session.
std::vector<MarginalStep> ComputeMarginalCurve(const std::vector<TimelineBucket>& timeline,
                                               int steps = 10);

// The report's text block ("" when the curve is empty).
std::string MarginalCurveText(const std::vector<MarginalStep>& curve);

}  // namespace sluice
