// The expected curve of what is left (issue #13, `sluice plan`): the pending
// work the policy would lease, walked in its ranking (Scheduler::Decide's
// order), as cumulative expected worker-minutes against cumulative expected
// telemetry events, with the expected yield of each slice. The last slice's
// yield is what the drain's last minutes are expected to be worth, which an
// operator weighs against --min-expected-yield.
//
// Every number is the scheduler's own estimate (RunRanking): a pending phase
// is one attempt of expected_minutes worker-minutes yielding
// expected_yield x expected_minutes events. It assumes the estimates hold
// (no new evidence arrives) and a run's phases are taken one after another
// in the run's rank. Runs the policy skips (excluded or deferred) are left
// off the curve and counted.
//
// Pure functions; thread-compatible.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "coordinator/policy/scheduler.h"

namespace sluice {

struct ExpectedCurvePoint {
  double worker_minutes = 0;  // cumulative expected worker-minutes at the end of the slice
  double events = 0;          // cumulative expected telemetry events by then
  int64_t phases = 0;         // cumulative pending phases by then
  // Expected events per worker-minute within this slice alone; 0 when the
  // slice is expected to take no worker time.
  double slice_yield = 0;
};

struct ExpectedCurve {
  // At most `slices` points, each closing the slice that reaches the next
  // 1/slices of the expected events (of the phases when no events are
  // expected); the last one is the whole curve. Empty with nothing to lease.
  std::vector<ExpectedCurvePoint> points;
  int64_t runs = 0;  // runs on the curve
  // Expected yield of the last slice (the margin); 0 for an empty curve.
  double marginal_yield = 0;
  int64_t left_off_runs = 0;  // excluded or deferred runs with pending phases
  int64_t left_off_phases = 0;
};

// `decisions` as Scheduler::Decide / DrainPolicy::Decide return them
// (eligible runs best first, then the excluded ones); `slices` >= 1.
ExpectedCurve ComputeExpectedCurve(const std::vector<RunDecision>& decisions, int slices = 10);

// The plan's text block.
std::string ExpectedCurveText(const ExpectedCurve& curve);

}  // namespace sluice
