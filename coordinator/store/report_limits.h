// Bounds on the counters of one attempt report, checked before anything is
// written: by the coordinator's request checks (CheckReportCounters,
// INVALID_ARGUMENT to the worker) and again by each store at the start of
// RecordReport (CheckReportSums), so no store ever adds an unchecked number
// to its running totals.
//
// Why these bounds: the stores keep per-phase and per-run sums of
// telemetry_events and duration_ms in signed 64-bit integers (SQLite
// INTEGER, Redis HINCRBY). One report may add at most 2^40 to each, so a sum
// can only overflow after 2^23 (8 million) reports at the bound; per-type
// counts are each at most telemetry_events and there are at most
// kMaxReportTelemetryTypes of them, so their sum cannot overflow either.
// The Redis report script checks the same numbers before its first write
// (coordinator/store/redis/scripts/report.lua).
//
// Pure and thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "common/model.h"

namespace sluice {

inline constexpr int64_t kMaxReportTelemetryEvents = int64_t{1} << 40;  // ~1.1e12 events
inline constexpr int64_t kMaxReportDurationMs = int64_t{1} << 40;       // ~34 years
// Distinct telemetry types in one report (the worker sends at most 33).
inline constexpr size_t kMaxReportTelemetryTypes = 256;

// The numbers a store adds to its running sums: InvalidArgument naming the
// field and the bound when telemetry_events or duration_ms is outside
// [0, bound], or telemetry_events is not 0 with telemetry_unknown. Each store
// checks this before its first write (the Redis report script the same two
// numbers); telemetry_by_type is stored as given and never summed by a store.
absl::Status CheckReportSums(const AttemptReport& report);

// CheckReportSums, and InvalidArgument when there are more than
// kMaxReportTelemetryTypes types, a per-type count is negative or over
// telemetry_events, or the per-type counts add up to more than
// telemetry_events.
absl::Status CheckReportCounters(const AttemptReport& report);

}  // namespace sluice
