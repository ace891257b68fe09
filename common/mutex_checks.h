// Whether absl::Mutex checks lock ordering in this process.
#pragma once

namespace sluice {

// Names the environment variable that keeps the checks on ("1").
inline constexpr char kMutexDeadlockChecksEnv[] = "SLUICE_MUTEX_DEADLOCK_CHECKS";

// Debian's abseil is built without NDEBUG, so every absl::Mutex lock (ours
// and gRPC's) updates a global lock-ordering graph, and an order that could
// deadlock aborts the process even when it never does. The product's
// binaries call this first in main(): it turns the checks off unless
// $SLUICE_MUTEX_DEADLOCK_CHECKS is "1". ctest sets it, so tests keep the
// checks in the binaries they start as in their own process.
void ConfigureMutexDeadlockChecks();

}  // namespace sluice
