#include "coordinator/store/report_limits.h"

#include "absl/strings/str_cat.h"

namespace sluice {

absl::Status CheckReportSums(const AttemptReport& report) {
  if (report.telemetry_events < 0 || report.telemetry_events > kMaxReportTelemetryEvents) {
    return absl::InvalidArgumentError(absl::StrCat("telemetry_events ", report.telemetry_events,
                                                   ": must be between 0 and ",
                                                   kMaxReportTelemetryEvents));
  }
  if (report.telemetry_unknown && report.telemetry_events != 0) {
    // An unknown count is 0 events plus the flag; anything else would be
    // counted by the stores' sums.
    return absl::InvalidArgumentError(absl::StrCat("telemetry_events ", report.telemetry_events,
                                                   " with telemetry_unknown: must be 0"));
  }
  if (report.duration_ms < 0 || report.duration_ms > kMaxReportDurationMs) {
    return absl::InvalidArgumentError(absl::StrCat(
        "duration_ms ", report.duration_ms, ": must be between 0 and ", kMaxReportDurationMs));
  }
  return absl::OkStatus();
}

absl::Status CheckReportCounters(const AttemptReport& report) {
  if (absl::Status sums = CheckReportSums(report); !sums.ok()) return sums;
  if (report.telemetry_by_type.size() > kMaxReportTelemetryTypes) {
    return absl::InvalidArgumentError(
        absl::StrCat("telemetry_by_type has ", report.telemetry_by_type.size(), " types (at most ",
                     kMaxReportTelemetryTypes, ")"));
  }
  // Each count is checked before it is added: the sum stays below
  // kMaxReportTelemetryTypes * 2^40 and cannot overflow.
  int64_t typed = 0;
  for (const auto& [type, count] : report.telemetry_by_type) {
    if (count < 0 || count > report.telemetry_events) {
      return absl::InvalidArgumentError(
          "telemetry_by_type counts must be >= 0 and at most telemetry_events");
    }
    typed += count;
  }
  if (typed > report.telemetry_events) {
    return absl::InvalidArgumentError("telemetry_by_type adds up to more than telemetry_events");
  }
  return absl::OkStatus();
}

}  // namespace sluice
