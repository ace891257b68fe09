// Counts telemetry events a phase wrote to its per-attempt file
// ($SLUICE_TELEMETRY_FILE): one JSON object per line, with an optional
// string "type" field. Blank lines are ignored; lines that are not a JSON
// object count as "invalid" (reported, not counted as events).
//
// Everything is bounded, so the report built from a count always fits the
// coordinator's checks and the gRPC message limit whatever the phase wrote:
// a line longer than kMaxTelemetryLineBytes is skipped without being held in
// memory (an invalid, "oversized" line); a type longer than
// kMaxTelemetryTypeBytes, and every type after the first kMaxTelemetryTypes
// distinct ones, is counted under "other" (a "folded" event).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"

namespace sluice {

inline constexpr size_t kMaxTelemetryLineBytes = 64 * 1024;
inline constexpr size_t kMaxTelemetryTypeBytes = 64;  // the coordinator accepts up to 128
inline constexpr size_t kMaxTelemetryTypes = 32;      // distinct names besides "other"
inline constexpr char kOtherTelemetryType[] = "other";

struct TelemetryCount {
  int64_t events = 0;
  std::map<std::string, int64_t> by_type;  // events without "type" count as "untyped"
  int64_t invalid_lines = 0;               // oversized lines included
  int64_t oversized_lines = 0;             // lines over kMaxTelemetryLineBytes, skipped
  int64_t folded_events = 0;               // events counted under "other" by the bounds
  bool file_written = false;               // the file exists and is non-empty

  // True when a bound changed what the phase wrote (the worker logs it).
  bool bounded() const { return oversized_lines > 0 || folded_events > 0; }
};

// A missing file is zero events, not an error; an unreadable one, or one that
// is not a regular file (a FIFO is never opened for a blocking read), is an
// error.
absl::StatusOr<TelemetryCount> CountTelemetryFile(const std::string& path);

}  // namespace sluice
