// The report both lease+report benchmarks send for a grant: succeeded, exit 0,
// one telemetry event. Header-only.
#pragma once

#include <string>

#include "common/model.h"

namespace sluice::bench {

inline AttemptReport SucceededReport(const LeaseGrant& grant, const std::string& worker_id) {
  AttemptReport report;
  report.lease_id = grant.lease_id;
  report.epoch = grant.epoch;
  report.worker_id = worker_id;
  report.outcome = Outcome::kSucceeded;
  report.exit_code = 0;
  report.duration_ms = 1;
  report.telemetry_events = 1;
  report.telemetry_by_type = {{"llm_call", 1}};
  return report;
}

}  // namespace sluice::bench
