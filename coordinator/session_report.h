// The session summary printed by `sluice drain` and `sluice report`, built
// from the store's attempt records. One definition of yield everywhere:
// telemetry events per minute of phase run time (summed attempt durations).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/state_store.h"

namespace sluice {

struct RunReportRow {
  std::string run_id;
  int64_t attempts = 0;
  int64_t succeeded = 0;
  int64_t failed = 0;  // failed, timed out or killed attempts
  int64_t timed_out = 0;
  int64_t telemetry_events = 0;
  int64_t run_ms = 0;
  PhaseCounts phases;  // current phase states of the run
};

struct ErrorReportRow {
  std::string fingerprint;
  std::string fingerprint_id;
  std::string example_error;
  int64_t attempts = 0;
  int64_t runs = 0;
  int64_t run_ms = 0;
};

struct SessionReport {
  std::string session_id;
  std::string state;
  std::string end_reason;
  int64_t started_at_ms = 0;
  int64_t ended_at_ms = 0;
  std::map<std::string, int64_t> outcomes;  // outcome name -> attempts
  int64_t attempts = 0;
  int64_t telemetry_events = 0;
  int64_t run_ms = 0;
  double yield_per_minute = 0;  // telemetry_events / (run_ms / 60000)
  PhaseCounts phases;           // whole store, after the session
  std::vector<ErrorReportRow> top_errors;
  std::vector<RunReportRow> runs;
};

// Events per minute of run time; 0 when no time was spent.
double YieldPerMinute(int64_t events, int64_t run_ms);

absl::StatusOr<SessionReport> BuildSessionReport(StateStore& store, const std::string& session_id);

std::string SessionReportJson(const SessionReport& report);
std::string SessionReportText(const SessionReport& report);
// Inverse of SessionReportJson (the CLI renders reports fetched over gRPC).
absl::StatusOr<SessionReport> SessionReportFromJson(const std::string& json);

}  // namespace sluice
