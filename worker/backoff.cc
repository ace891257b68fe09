#include "worker/backoff.h"

#include <algorithm>
#include <random>

namespace sluice {

int64_t BackoffMs(int attempt, int64_t base_ms, int64_t cap_ms) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  const int64_t ceiling = std::min(cap_ms, base_ms << std::min(attempt, 16));
  return std::uniform_int_distribution<int64_t>(base_ms / 2, std::max(base_ms, ceiling))(rng);
}

}  // namespace sluice
