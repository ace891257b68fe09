#include "coordinator/insight/telemetry_alarm.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_format.h"

namespace sluice {
namespace {

bool StoppedFromOutside(Outcome o) {
  return o == Outcome::kLost || o == Outcome::kCancelled || o == Outcome::kStartFailed;
}

// Succeeded, or ran long enough that it should have emitted something, and
// its events were counted.
bool ShouldHaveEmitted(const AttemptRecord& a, const TelemetryAlarmOptions& options) {
  if (StoppedFromOutside(a.outcome) || a.telemetry_unknown) return false;
  return a.outcome == Outcome::kSucceeded || a.duration_ms >= options.long_run_ms;
}

struct Tally {
  int64_t considered = 0;
  int64_t zero = 0;
  int64_t events = 0;
};

}  // namespace

std::string_view TelemetryWarningKindName(TelemetryWarningKind kind) {
  switch (kind) {
    case TelemetryWarningKind::kZeroEventPhases:
      return "zero_event_phases";
    case TelemetryWarningKind::kSilentWorker:
      return "silent_worker";
    case TelemetryWarningKind::kYieldDroppedToZero:
      return "yield_dropped_to_zero";
    case TelemetryWarningKind::kTelemetryUnknown:
      return "telemetry_unknown";
  }
  return "unknown";
}

TelemetryWarningKind ParseTelemetryWarningKind(std::string_view name) {
  for (TelemetryWarningKind kind :
       {TelemetryWarningKind::kZeroEventPhases, TelemetryWarningKind::kSilentWorker,
        TelemetryWarningKind::kYieldDroppedToZero, TelemetryWarningKind::kTelemetryUnknown}) {
    if (TelemetryWarningKindName(kind) == name) return kind;
  }
  return TelemetryWarningKind::kZeroEventPhases;
}

std::vector<TelemetryWarning> DetectTelemetryLoss(const std::vector<AttemptRecord>& attempts,
                                                  const TelemetryAlarmOptions& options) {
  std::vector<TelemetryWarning> warnings;
  Tally cluster;
  std::map<std::string, Tally> by_worker;
  for (const AttemptRecord& a : attempts) {
    if (!ShouldHaveEmitted(a, options)) continue;
    Tally& w = by_worker[a.worker_id];
    for (Tally* t : {&cluster, &w}) {
      ++t->considered;
      t->events += a.telemetry_events;
      if (a.telemetry_events == 0) ++t->zero;
    }
  }

  // (a) Silent phases cluster-wide.
  // Warned from the first silent success; pausing waits for min_attempts.
  if (cluster.considered >= std::min(options.min_attempts_to_warn, options.min_attempts) &&
      static_cast<double>(cluster.zero) >
          options.zero_event_fraction * static_cast<double>(cluster.considered)) {
    TelemetryWarning w;
    w.kind = TelemetryWarningKind::kZeroEventPhases;
    w.attempts = cluster.considered;
    w.zero_event_attempts = cluster.zero;
    w.pauses = cluster.considered >= options.min_attempts;
    w.message = absl::StrFormat(
        "telemetry looks lost: %d of %d phases that succeeded or ran >= %ds reported zero events "
        "(threshold %.0f%%); check that phases get the environment that enables telemetry%s",
        cluster.zero, cluster.considered, options.long_run_ms / 1000,
        100.0 * options.zero_event_fraction,
        w.pauses ? ""
                 : absl::StrFormat(" (early warning: a pause needs %d such phases)",
                                   options.min_attempts));
    warnings.push_back(std::move(w));
  }

  // (b) A worker whose phases never emit while other workers' phases do.
  for (const auto& [worker_id, t] : by_worker) {
    if (t.considered < options.min_attempts || t.events > 0) continue;
    const bool others_emit = cluster.events > 0;  // this worker contributed none of them
    if (!others_emit) continue;
    TelemetryWarning w;
    w.kind = TelemetryWarningKind::kSilentWorker;
    w.worker_id = worker_id;
    w.attempts = t.considered;
    w.zero_event_attempts = t.zero;
    w.message = absl::StrFormat(
        "worker %s: none of its %d phases that succeeded or ran long reported telemetry, while "
        "other workers' phases reported %d events; compare its --env with theirs",
        worker_id, t.considered, cluster.events);
    warnings.push_back(std::move(w));
  }

  // (c) The cluster emitted before, but the last N finished attempts (with
  // counted telemetry) did not.
  std::vector<const AttemptRecord*> finished;
  std::map<std::string, Tally> unknown_by_worker;  // considered: finished; zero: unknown
  for (const AttemptRecord& a : attempts) {
    if (StoppedFromOutside(a.outcome)) continue;
    Tally& u = unknown_by_worker[a.worker_id];
    ++u.considered;
    if (a.telemetry_unknown) {
      ++u.zero;
    } else {
      finished.push_back(&a);
    }
  }
  std::stable_sort(finished.begin(), finished.end(),
                   [](const AttemptRecord* x, const AttemptRecord* y) {
                     return x->ended_at_ms < y->ended_at_ms;
                   });
  const auto window = static_cast<size_t>(std::max<int64_t>(options.recent_window, 1));
  if (finished.size() > window) {
    int64_t recent_events = 0;
    int64_t earlier_events = 0;
    for (size_t i = 0; i < finished.size(); ++i) {
      (i + window >= finished.size() ? recent_events : earlier_events) +=
          finished[i]->telemetry_events;
    }
    if (recent_events == 0 && earlier_events > 0) {
      TelemetryWarning w;
      w.kind = TelemetryWarningKind::kYieldDroppedToZero;
      w.attempts = static_cast<int64_t>(window);
      w.zero_event_attempts = static_cast<int64_t>(window);
      w.message = absl::StrFormat(
          "cluster yield dropped to zero: the last %d finished attempts reported no events, the "
          "%d before them reported %d",
          window, finished.size() - window, earlier_events);
      warnings.push_back(std::move(w));
    }
  }

  // (d) A worker that could not count its attempts' telemetry.
  for (const auto& [worker_id, u] : unknown_by_worker) {
    if (u.zero < std::max<int64_t>(options.min_unknown_attempts, 1)) continue;
    TelemetryWarning w;
    w.kind = TelemetryWarningKind::kTelemetryUnknown;
    w.worker_id = worker_id;
    w.attempts = u.considered;
    w.zero_event_attempts = u.zero;
    w.pauses = false;  // the count is missing, not (necessarily) the telemetry
    w.message = absl::StrFormat(
        "worker %s: telemetry unknown for %d of its %d finished attempts (its --telemetry-probe "
        "failed or hung; its log says why); they are left out of yield",
        worker_id, u.zero, u.considered);
    warnings.push_back(std::move(w));
  }
  return warnings;
}

}  // namespace sluice
