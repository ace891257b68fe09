#include "coordinator/policy/expected_curve.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace sluice {
namespace {

bool OnCurve(const RunDecision& d) {
  // Deferred runs are leased only once nothing else is eligible: they are
  // not what the policy would spend minutes on, so they are left off too.
  return d.excluded.empty() && d.ranking.deferred.empty() && d.pending > 0;
}

}  // namespace

ExpectedCurve ComputeExpectedCurve(const std::vector<RunDecision>& decisions, int slices) {
  ExpectedCurve curve;
  slices = std::max(slices, 1);
  double total_events = 0;
  int64_t total_phases = 0;
  for (const RunDecision& d : decisions) {
    if (!OnCurve(d)) {
      if (d.pending > 0) {
        ++curve.left_off_runs;
        curve.left_off_phases += d.pending;
      }
      continue;
    }
    ++curve.runs;
    total_phases += d.pending;
    total_events +=
        d.ranking.expected_yield * d.ranking.expected_minutes * static_cast<double>(d.pending);
  }
  if (total_phases == 0) return curve;
  // Slices end at equal shares of the expected events; with none expected
  // (every estimate 0), at equal shares of the phases.
  const bool by_events = total_events > 0;
  const double total = by_events ? total_events : static_cast<double>(total_phases);
  ExpectedCurvePoint at;
  ExpectedCurvePoint slice_start;
  int next = 1;  // the slice whose boundary (next / slices of the total) comes next
  for (const RunDecision& d : decisions) {
    if (!OnCurve(d)) continue;
    const double minutes = d.ranking.expected_minutes;
    const double events = d.ranking.expected_yield * minutes;
    for (int64_t i = 0; i < d.pending; ++i) {
      at.worker_minutes += minutes;
      at.events += events;
      ++at.phases;
      const double reached = by_events ? at.events : static_cast<double>(at.phases);
      const bool last = at.phases == total_phases;
      // Rounding must not leave the whole curve without its last point.
      if (!last && reached * slices < total * next) continue;
      // One phase may cross several boundaries: it closes one slice (slices
      // are never finer than a phase).
      while (next <= slices && reached * slices >= total * next) ++next;
      const double slice_minutes = at.worker_minutes - slice_start.worker_minutes;
      at.slice_yield = slice_minutes > 0 ? (at.events - slice_start.events) / slice_minutes : 0;
      curve.points.push_back(at);
      slice_start = at;
    }
  }
  curve.marginal_yield = curve.points.back().slice_yield;
  return curve;
}

std::string ExpectedCurveText(const ExpectedCurve& curve) {
  std::string left_off;
  if (curve.left_off_runs > 0) {
    left_off = absl::StrFormat("left off the curve: %d run%s (%d phase%s) excluded or deferred\n",
                               curve.left_off_runs, curve.left_off_runs == 1 ? "" : "s",
                               curve.left_off_phases, curve.left_off_phases == 1 ? "" : "s");
  }
  if (curve.points.empty()) {
    return absl::StrCat("expected curve: nothing left that the policy would lease\n", left_off);
  }
  const ExpectedCurvePoint& end = curve.points.back();
  std::string out = absl::StrFormat(
      "expected curve of what is left (%d phase%s in %d run%s, in the policy's order; expected "
      "events against worker-minutes, yield of each slice):\n",
      end.phases, end.phases == 1 ? "" : "s", curve.runs, curve.runs == 1 ? "" : "s");
  absl::StrAppendFormat(&out, "  %10s %10s %7s %11s\n", "worker-min", "events", "phases",
                        "slice yield");
  for (const ExpectedCurvePoint& p : curve.points) {
    absl::StrAppendFormat(&out, "  %10.1f %10.1f %7d %11.3f\n", p.worker_minutes, p.events,
                          p.phases, p.slice_yield);
  }
  absl::StrAppendFormat(&out,
                        "expected yield at the margin (last slice): %.3f events/worker-min; "
                        "--min-expected-yield above a run's estimate leaves the run out\n",
                        curve.marginal_yield);
  return absl::StrCat(out, left_off);
}

}  // namespace sluice
