// The session summary printed by `sluice drain` and `sluice report`, built
// from the store's attempt records. One definition of yield everywhere:
// telemetry events per minute of phase run time (summed attempt durations),
// aggregated the same way by run, run family, fingerprint and worker. Time
// spent by attempts whose telemetry is unknown (AttemptRecord::
// telemetry_unknown) is counted as worker time but left out of yield: such an
// attempt is no evidence of zero yield, nor of any other.
// The JSON form is documented in docs/report.md; its keys are stable.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/run_family.h"
#include "coordinator/insight/telemetry_alarm.h"
#include "coordinator/policy/reasons.h"
#include "coordinator/store/state_store.h"

namespace sluice {

struct RunReportRow {
  std::string run_id;
  std::string family;  // the report's RunFamilyRule applied to run_id
  int64_t attempts = 0;
  int64_t succeeded = 0;
  int64_t failed = 0;  // failed, timed out or killed attempts
  int64_t timed_out = 0;
  int64_t telemetry_events = 0;
  int64_t run_ms = 0;
  int64_t unknown_telemetry_attempts = 0;  // attempts whose events could not be counted
  int64_t unknown_telemetry_ms = 0;        // their part of run_ms
  PhaseCounts phases;                      // current phase states of the run
  int64_t telemetry_ms() const { return run_ms - unknown_telemetry_ms; }  // yield's time
};

// Attempts and yield of one group: a run family, a worker or a fingerprint.
struct GroupReportRow {
  std::string key;   // family name, worker id or fingerprint
  int64_t runs = 0;  // distinct runs among the attempts
  int64_t attempts = 0;
  int64_t succeeded = 0;
  int64_t failed = 0;  // failed, timed out or killed attempts
  int64_t timed_out = 0;
  int64_t zero_event_successes = 0;  // succeeded with no telemetry: see telemetry_warnings
  int64_t telemetry_events = 0;
  int64_t run_ms = 0;
  int64_t unknown_telemetry_attempts = 0;
  int64_t unknown_telemetry_ms = 0;
  PhaseCounts phases;  // families only: current phase states of the family's runs
  int64_t telemetry_ms() const { return run_ms - unknown_telemetry_ms; }
};

struct ErrorReportRow {
  std::string fingerprint;
  std::string fingerprint_id;
  std::string example_error;
  int64_t attempts = 0;
  int64_t runs = 0;
  int64_t run_ms = 0;                 // worker time spent on it; worker-minutes = run_ms / 60000
  int64_t phases = 0;                 // distinct phases it hit
  std::vector<std::string> families;  // run families it hit, sorted
};

// Nearest-rank percentiles of attempt durations.
struct DurationStats {
  int64_t count = 0;
  int64_t p50_ms = 0;
  int64_t p90_ms = 0;
  int64_t p95_ms = 0;
  int64_t max_ms = 0;
};

// Attempts that ended in one time bucket of the session.
struct TimelineBucket {
  int64_t start_ms = 0;  // bucket covers [start_ms, start_ms + timeline_bucket_ms)
  int64_t finished = 0;  // attempts that ended in it (every outcome)
  int64_t succeeded = 0;
  int64_t failed = 0;  // failed, timed out or killed
  int64_t telemetry_events = 0;
  int64_t run_ms = 0;
  int64_t unknown_telemetry_ms = 0;
  int64_t telemetry_ms() const { return run_ms - unknown_telemetry_ms; }
};

// Why pending work is not leased now, or waits (status and the report).
struct SkipRow {
  // "excluded"           the run is not leased (filters, blocked fingerprint,
  //                      max timeouts per run, backoff)
  // "deferred"           leased only when nothing else is eligible
  // "waiting_for_labels" the phase needs labels no registered worker has
  // "failed"             phases of the run that failed for good
  std::string kind;
  std::string run_id;
  std::string phase_id;  // waiting_for_labels only
  int64_t phases = 0;    // phases concerned (pending ones, or failed ones)
  std::string reason;    // code's text (PolicyReason::Text): what operators read
  // The policy's typed reason; kNone for rows read back from JSON or the
  // operator API, which carry the text only.
  SkipReason code = SkipReason::kNone;
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
  int64_t unknown_telemetry_attempts = 0;  // attempts whose events could not be counted
  int64_t unknown_telemetry_ms = 0;        // their part of run_ms
  double yield_per_minute = 0;             // telemetry_events / (telemetry_ms() / 60000)
  PhaseCounts phases;                      // whole store, after the session
  std::vector<ErrorReportRow> top_errors;  // non-successful fingerprints, most attempts first
  std::vector<RunReportRow> runs;          // by run id
  // Added for issue 5. Rates are derived from `outcomes` / `attempts`.
  DurationStats success_durations;
  DurationStats failure_durations;           // failed, timed out or killed
  std::vector<GroupReportRow> families;      // by family name
  std::vector<GroupReportRow> workers;       // by worker id
  std::vector<GroupReportRow> fingerprints;  // every fingerprint (successes too), by yield
  int64_t timeline_bucket_ms = 60'000;
  std::vector<TimelineBucket> timeline;  // consecutive buckets from the session start
  std::vector<TelemetryWarning> telemetry_warnings;
  // The coordinator's current decisions; filled for the latest session only
  // (Coordinator::Report), empty when built from the store alone.
  std::vector<SkipRow> skipped;
  // Late reports (StateStore::ListLateReports) for leases of this session's
  // attempts: workers that came back after their lease expired.
  int64_t late_reports = 0;
  int64_t telemetry_ms() const { return run_ms - unknown_telemetry_ms; }
};

// The text block status and the report print for `rows` ("" when empty).
std::string SkipRowsText(const std::vector<SkipRow>& rows);

// Events per minute of run time; 0 when no time was spent. `run_ms` is the
// time with known telemetry (the rows' telemetry_ms()): time spent by
// attempts whose events could not be counted never enters yield.
double YieldPerMinute(int64_t events, int64_t run_ms);
// The one way yield is shown (drain progress, watch, report): YieldPerMinute
// with `decimals` digits, or "-" when no run time with known telemetry was
// recorded (no evidence, which is not zero yield).
std::string YieldText(int64_t events, int64_t run_ms, int decimals = 2);
// `count` / `whole`, 0 when whole is 0.
double Rate(int64_t count, int64_t whole);
// Nearest-rank percentiles (p in (0, 100]) of the given durations.
DurationStats ComputeDurationStats(std::vector<int64_t> durations_ms);

// Pure core of BuildSessionReport: everything but the store reads.
// `run_stats` gives the current phase states per run; `phases` the store's.
// `family_rule` groups runs into the families table (and error rows'
// families): pass the coordinator's (--family-pattern) so the report calls a
// family what the scheduler and the web view do.
SessionReport ComputeSessionReport(const SessionRecord& session,
                                   const std::vector<AttemptRecord>& attempts,
                                   const std::vector<RunStats>& run_stats,
                                   const PhaseCounts& phases,
                                   const TelemetryAlarmOptions& alarm_options = {},
                                   const RunFamilyRule& family_rule = RunFamilyRule());

// How many of `late` are for leases of `attempts`.
int64_t CountLateReportsOf(const std::vector<AttemptRecord>& attempts,
                           const std::vector<LateReportRecord>& late);

absl::StatusOr<SessionReport> BuildSessionReport(
    StateStore& store, const std::string& session_id,
    const RunFamilyRule& family_rule = RunFamilyRule());

std::string SessionReportJson(const SessionReport& report);
std::string SessionReportText(const SessionReport& report);
// Inverse of SessionReportJson (the CLI renders reports fetched over gRPC).
// Keys added after the first release are optional when parsing; a run row
// without "family" (an older coordinator's) gets the default rule's.
absl::StatusOr<SessionReport> SessionReportFromJson(const std::string& json);

}  // namespace sluice
