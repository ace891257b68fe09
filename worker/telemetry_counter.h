// Counts telemetry events a phase wrote to its per-attempt file
// ($SLUICE_TELEMETRY_FILE): one JSON object per line, with an optional
// string "type" field. Blank lines are ignored; lines that are not a JSON
// object count as "invalid" (reported, not counted as events).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"

namespace sluice {

struct TelemetryCount {
  int64_t events = 0;
  std::map<std::string, int64_t> by_type;  // events without "type" count as "untyped"
  int64_t invalid_lines = 0;
  bool file_written = false;  // the file exists and is non-empty
};

// A missing file is zero events, not an error; an unreadable one is an error.
absl::StatusOr<TelemetryCount> CountTelemetryFile(const std::string& path);

}  // namespace sluice
