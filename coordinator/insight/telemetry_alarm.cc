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

TelemetryTally::TelemetryTally(const TelemetryAlarmOptions& options) : options_(options) {}

void TelemetryTally::Add(const AttemptRecord& a) {
  if (StoppedFromOutside(a.outcome)) return;
  if (ShouldHaveEmitted(a, options_)) {
    Tally& w = by_worker_[a.worker_id];
    for (Tally* t : {&cluster_, &w}) {
      ++t->considered;
      t->events += a.telemetry_events;
      if (a.telemetry_events == 0) ++t->zero;
    }
  }
  Tally& u = unknown_by_worker_[a.worker_id];
  ++u.considered;
  if (a.telemetry_unknown) {
    ++u.zero;
    return;
  }
  ++finished_;
  finished_events_ += a.telemetry_events;
  recent_.emplace(std::make_pair(a.ended_at_ms, added_++), a.telemetry_events);
  recent_events_ += a.telemetry_events;
  const auto window = static_cast<size_t>(std::max<int64_t>(options_.recent_window, 1));
  if (recent_.size() > window) {  // the earliest leaves the window
    recent_events_ -= recent_.begin()->second;
    recent_.erase(recent_.begin());
  }
}

std::vector<TelemetryWarning> TelemetryTally::Warnings() const {
  const TelemetryAlarmOptions& options = options_;
  const Tally& cluster = cluster_;
  std::vector<TelemetryWarning> warnings;

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
  for (const auto& [worker_id, t] : by_worker_) {
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
  const auto window = static_cast<int64_t>(recent_.size());
  if (finished_ > window && window > 0) {
    const int64_t earlier_events = finished_events_ - recent_events_;
    if (recent_events_ == 0 && earlier_events > 0) {
      TelemetryWarning w;
      w.kind = TelemetryWarningKind::kYieldDroppedToZero;
      w.attempts = window;
      w.zero_event_attempts = window;
      w.message = absl::StrFormat(
          "cluster yield dropped to zero: the last %d finished attempts reported no events, the "
          "%d before them reported %d",
          window, finished_ - window, earlier_events);
      warnings.push_back(std::move(w));
    }
  }

  // (d) A worker that could not count its attempts' telemetry.
  for (const auto& [worker_id, u] : unknown_by_worker_) {
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

std::vector<TelemetryWarning> DetectTelemetryLoss(const std::vector<AttemptRecord>& attempts,
                                                  const TelemetryAlarmOptions& options) {
  TelemetryTally tally(options);
  for (const AttemptRecord& a : attempts) tally.Add(a);
  return tally.Warnings();
}

}  // namespace sluice
