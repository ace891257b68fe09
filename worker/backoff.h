// Retry pacing shared by the worker's retry loops (the retrying client and
// the report delivery).
#pragma once

#include <cstdint>

namespace sluice {

// Full-jitter exponential backoff, capped: a uniform draw from
// [base_ms/2, max(base_ms, min(cap_ms, base_ms * 2^attempt))]. Thread-safe.
int64_t BackoffMs(int attempt, int64_t base_ms, int64_t cap_ms);

}  // namespace sluice
