// Telemetry-loss detection. People drain backlogs to collect telemetry; the
// drain sluice replaces lost all of it unnoticed because one environment
// variable (TELEMETRY_DB_ENABLED=1) was missing from the phases' environment.
// These checks look at finished attempts and say when telemetry looks lost:
//
// - kZeroEventPhases: too many phases succeeded (or ran a long time) yet
//   reported zero telemetry events;
// - kSilentWorker: one worker's phases never produce events while other
//   workers' phases do (a worker-local environment problem);
// - kYieldDroppedToZero: the cluster produced events before, but the last N
//   attempts produced none;
// - kTelemetryUnknown: a worker could not count the telemetry of several
//   attempts (its --telemetry-probe failed or hung). Shown, never pauses:
//   the phases may well be emitting, only the count is missing.
//
// Attempts with unknown telemetry are no evidence of silence: the first three
// checks leave them out.
//
// DetectTelemetryLoss is pure and thread-safe: a function of its arguments.
// A TelemetryTally is a value, not thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/model.h"

namespace sluice {

enum class TelemetryWarningKind {
  kZeroEventPhases,
  kSilentWorker,
  kYieldDroppedToZero,
  kTelemetryUnknown,
};
std::string_view TelemetryWarningKindName(TelemetryWarningKind kind);  // "zero_event_phases", ...
// Inverse of TelemetryWarningKindName; kZeroEventPhases for a name this
// build does not know (a newer coordinator's).
TelemetryWarningKind ParseTelemetryWarningKind(std::string_view name);

struct TelemetryAlarmOptions {
  // kZeroEventPhases fires when more than this fraction of the considered
  // attempts (successes, and attempts that ran at least long_run_ms) reported
  // zero events. 0.5: half the phases being silent is never normal; lower it
  // when every phase is expected to emit.
  double zero_event_fraction = 0.5;
  // An attempt this long counts even when it failed: it ran long enough to
  // have emitted something.
  int64_t long_run_ms = 5 * 60'000;
  // kZeroEventPhases warns from this many considered attempts: the first
  // silent success is worth a look at once (a missing telemetry variable
  // shows on the first phase).
  int64_t min_attempts_to_warn = 1;
  // No warning that pauses leasing (TelemetryWarning::pauses) on fewer
  // considered attempts than this, cluster-wide and per worker: one silent
  // success is not a pattern worth stopping a drain for.
  int64_t min_attempts = 3;
  // kYieldDroppedToZero looks at the last this-many finished attempts.
  int64_t recent_window = 10;
  // kTelemetryUnknown fires for a worker with this many finished attempts
  // whose telemetry it could not count.
  int64_t min_unknown_attempts = 3;
};

struct TelemetryWarning {
  TelemetryWarningKind kind = TelemetryWarningKind::kZeroEventPhases;
  std::string worker_id;            // kSilentWorker and kTelemetryUnknown only
  int64_t attempts = 0;             // attempts the check looked at
  int64_t zero_event_attempts = 0;  // of which reported no events (kTelemetryUnknown: unknown)
  std::string message;              // one line for operators, with the numbers
  // Enough evidence to pause leasing (--on-telemetry-loss pause): at least
  // min_attempts considered attempts. An early kZeroEventPhases warning
  // (from min_attempts_to_warn) is shown and logged but pauses nothing.
  bool pauses = true;
};

// What the checks need to know of a set of attempts, kept as attempts are
// added: counts per worker and cluster-wide, and the last recent_window
// finished attempts by end time. Its memory grows with the workers, not the
// attempts, so a session of a million attempts is judged by adding only the
// ones recorded since the last look (TelemetryWatch). Warnings() after any
// sequence of Adds equals DetectTelemetryLoss over the same attempts in the
// same order.
class TelemetryTally {
 public:
  explicit TelemetryTally(const TelemetryAlarmOptions& options = {});

  // Lost, cancelled and start_failed attempts are ignored: they were stopped
  // from outside.
  void Add(const AttemptRecord& attempt);
  // Empty when telemetry looks fine.
  std::vector<TelemetryWarning> Warnings() const;

 private:
  struct Tally {
    int64_t considered = 0;
    int64_t zero = 0;
    int64_t events = 0;
  };
  TelemetryAlarmOptions options_;
  Tally cluster_;                                   // attempts that should have emitted
  std::map<std::string, Tally> by_worker_;          // the same, per worker
  std::map<std::string, Tally> unknown_by_worker_;  // considered: finished; zero: unknown
  // Finished attempts with counted telemetry: their number and events, and
  // the last recent_window of them ordered by (end time, order added): the
  // order a stable sort by end time gives.
  int64_t finished_ = 0;
  int64_t finished_events_ = 0;
  std::map<std::pair<int64_t, uint64_t>, int64_t> recent_;  // -> telemetry events
  int64_t recent_events_ = 0;
  uint64_t added_ = 0;
};

// Warnings for `attempts` (any order; lost and cancelled attempts are
// ignored: they were stopped from outside). Empty when telemetry looks fine.
std::vector<TelemetryWarning> DetectTelemetryLoss(const std::vector<AttemptRecord>& attempts,
                                                  const TelemetryAlarmOptions& options = {});

}  // namespace sluice
