// The timings of a real Coordinator that integration tests serve on
// loopback, in one place: a lease TTL long enough that nothing expires by
// accident on a loaded 2-core CI machine, a short heartbeat interval so
// workers renew often, and a short long-poll so a drain (and a test) ends
// quickly. Tests that exercise expiry set their own TTL.
//
// Header-only; the including test links the coordinator library.
#pragma once

#include <cstdint>

#include "coordinator/coordinator.h"

namespace sluice::testing {

inline CoordinatorConfig LoopbackCoordinatorConfig(int64_t max_lease_wait_ms = 1'000) {
  CoordinatorConfig config;
  config.lease_ttl_ms = 10'000;
  config.heartbeat_interval_ms = 500;
  config.max_lease_wait_ms = max_lease_wait_ms;
  return config;
}

}  // namespace sluice::testing
