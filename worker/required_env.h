// `sluice-worker --require-env NAME[=VALUE]`: the worker refuses to start
// when a variable its phases need is missing from the environment they will
// get (the worker's own environment overlaid with --env), or has another
// value. A drain whose phases silently lost their telemetry because one
// variable (TELEMETRY_DB_ENABLED=1) was missing is caught before the first
// lease instead of after hundreds of attempts.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace sluice {

// Looks a variable up in the worker's own environment.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
EnvLookup ProcessEnvLookup();

// OK when every requirement holds in `own` overlaid with `overrides` (--env,
// which wins). InvalidArgument naming every requirement that does not hold
// (and every malformed one: an empty or '='-free-but-empty name).
absl::Status CheckRequiredEnv(const std::vector<std::string>& requirements,
                              const std::map<std::string, std::string>& overrides,
                              const EnvLookup& own);

}  // namespace sluice
