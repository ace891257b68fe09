// `sluice recommend`: concrete drain settings derived from the evidence in
// the store (attempt durations, outcomes, fingerprints, retries, timeouts,
// yields and the backlog's composition), each with one line of
// justification and the numbers behind it, ending with a complete
// `sluice drain` command line. With too little evidence it says so and
// proposes a diagnostic batch: one phase from each of the largest runs,
// spread across run families.
//
// Pure over its inputs (RecommendFromStore only reads the store);
// thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model.h"
#include "common/run_family.h"
#include "coordinator/insight/telemetry_alarm.h"
#include "coordinator/store/state_store.h"

namespace sluice {

struct RecommendOptions {
  int64_t target_phases = 0;  // phases the next drain should finish; 0 = the whole backlog
  int32_t workers = 1;        // worker processes the drain will have
  int32_t slots = 1;          // phases each worker runs at once
  // Only used to spell out the drain command line.
  std::string backlog_path = "BACKLOG.jsonl";
  std::string exec = "YOUR-PHASE-COMMAND --run-id {run_id} --phase-id {phase_id}";
  std::vector<std::string> env;  // K=V passed as --env
  // Phase timeout = p95 of successful durations x this, rounded up to a minute.
  double timeout_margin = 1.5;
  // Fewer finished attempts or successes than these: "insufficient data".
  int64_t min_finished_attempts = 5;
  int64_t min_successes = 2;
  // Phases in a diagnostic batch (at least one per slot, at most one per run).
  int32_t diagnostic_phases = 10;
  // How run ids map to families (--family-pattern): the family advice, the
  // fix-first items and the diagnostic batch's spread use it, and the drain
  // command line passes its pattern on, so the drain's scheduler groups the
  // runs the same way. Default: RunFamily.
  RunFamilyRule family_rule;
};

struct RecommendInput {
  std::vector<AttemptRecord> attempts;  // every session's
  std::vector<RunStats> runs;
  PhaseCounts phases;
};

struct RecommendedSetting {
  std::string flag;   // "--phase-timeout-seconds"
  std::string value;  // "300"
  std::string justification;
};

// A deterministic failure (no phase it hit ever succeeded afterwards)
// covering several phases: fix it before draining.
struct FixFirstItem {
  std::string family;  // the run family it hits most
  std::vector<std::string> families;
  std::string fingerprint;
  std::string fingerprint_id;
  std::string example_error;
  int64_t phases_failed = 0;
  int64_t runs_failed = 0;
  int64_t family_runs = 0;  // runs of those families in the backlog
  double worker_minutes_spent = 0;
  int64_t pending_phases_at_risk = 0;  // pending phases in those families
  double minutes_at_risk = 0;          // pending x mean duration of the failure
  std::string justification;
};

struct FamilyAdvice {
  std::string family;
  std::string action;  // "prioritise" or "skip"
  double yield_events_per_minute = 0;
  int64_t attempts = 0;
  int64_t succeeded = 0;
  int64_t pending = 0;
  std::string skip_prefix;  // for --skip-run-prefix (skip only)
  std::string justification;
};

struct Recommendation {
  bool sufficient_data = false;
  std::string evidence;  // one line: what the recommendation rests on
  // Diagnostic batch (insufficient data only): one phase from each run.
  int32_t diagnostic_phases = 0;
  std::vector<std::string> diagnostic_runs;
  std::string diagnostic_justification;
  std::vector<RecommendedSetting> settings;
  // Fingerprints after which a retry of the same phase has succeeded: the
  // only failures worth retrying (--retry-on, anchored to the fingerprint).
  std::vector<std::string> retry_classes;
  std::vector<TelemetryWarning> telemetry_warnings;  // see telemetry_alarm.h
  std::vector<FixFirstItem> fix_first;
  std::vector<FamilyAdvice> families;  // prioritise first, then skip
  std::string api_server;              // whether to share one API server per worker
  std::string drain_command;
};

Recommendation Recommend(const RecommendInput& input, const RecommendOptions& options);
absl::StatusOr<Recommendation> RecommendFromStore(StateStore& store,
                                                  const RecommendOptions& options);

std::string RecommendationJson(const Recommendation& r);
std::string RecommendationText(const Recommendation& r);

}  // namespace sluice
