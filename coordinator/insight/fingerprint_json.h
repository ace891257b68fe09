// One fingerprint as JSON, shared by `sluice fingerprints --json` and the web
// view's /api/fingerprints so both say the same thing: keys fingerprint, id,
// count, blocked, runs, example_error, last_seen_ms. Pure.
#pragma once

#include <cstdint>

#include "coordinator/policy/failure_policy.h"
#include "nlohmann/json.hpp"

namespace sluice {

// Whether `f` blocks its runs under a repeat rule of `max_fingerprint_repeats`
// (0: the rule is off, nothing blocks).
bool FingerprintBlocks(const FingerprintInfo& f, int32_t max_fingerprint_repeats);

nlohmann::json FingerprintJson(const FingerprintInfo& f, int32_t max_fingerprint_repeats);

}  // namespace sluice
