// Logging set-up shared by every binary: spdlog to stderr, human-readable by
// default, one JSON object per line with --log-format json. Messages carry
// key=value identifiers (run=, phase=, lease=, worker=).
#pragma once

#include <string>

#include "absl/status/status.h"

namespace sluice {

// format: "human" or "json"; level: trace|debug|info|warn|error|off.
absl::Status SetupLogging(const std::string& format, const std::string& level);

// JSON string escaping (exposed for tests).
std::string JsonEscape(std::string_view text);

}  // namespace sluice
