// Builders of constructed attempt histories for report, alarm and
// recommendation tests, and of the reports a worker sends for a grant.
#pragma once

#include <cstdint>
#include <string>

#include "common/fingerprint.h"
#include "common/model.h"

namespace sluice::testing {

inline constexpr int64_t kT0 = 1'700'000'000'000;

// One attempt of run/phase ending at kT0 + end_s seconds, with a fingerprint
// computed as the coordinator would.
inline AttemptRecord Attempt(const std::string& run, const std::string& phase, Outcome outcome,
                             int64_t duration_s, int64_t events, int64_t end_s,
                             const std::string& worker = "w1", int32_t attempt = 1,
                             const std::string& error = "") {
  AttemptRecord a;
  a.lease_id = run + "/" + phase + "#" + std::to_string(attempt);
  a.run_id = run;
  a.phase_id = phase;
  a.attempt = attempt;
  a.worker_id = worker;
  a.session_id = "s1";
  a.outcome = outcome;
  a.exit_code = outcome == Outcome::kSucceeded ? 0 : (outcome == Outcome::kFailed ? 1 : -1);
  a.signal = outcome == Outcome::kTimedOut ? 15 : 0;
  a.duration_ms = duration_s * 1000;
  a.error_text = error;
  a.fingerprint = ComputeFingerprint(outcome, a.exit_code, a.signal, error).key;
  a.telemetry_events = events;
  a.ended_at_ms = kT0 + end_s * 1000;
  a.started_at_ms = a.ended_at_ms - a.duration_ms;
  return a;
}

// `report` as the worker holding `grant` sends it: the grant's lease, epoch
// and worker filled in.
inline AttemptReport ForGrant(const LeaseGrant& grant, AttemptReport report = {}) {
  report.lease_id = grant.lease_id;
  report.epoch = grant.epoch;
  report.worker_id = grant.worker_id;
  return report;
}

// `grant`'s attempt ended with `outcome`: exit code 0 for a success, else 1.
inline AttemptReport GrantReport(const LeaseGrant& grant, Outcome outcome,
                                 const std::string& error = "") {
  AttemptReport report = ForGrant(grant);
  report.outcome = outcome;
  report.exit_code = outcome == Outcome::kSucceeded ? 0 : 1;
  report.error_text = error;
  return report;
}

}  // namespace sluice::testing
