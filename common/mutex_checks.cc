#include "common/mutex_checks.h"

#include <cstdlib>
#include <string_view>

#include "absl/synchronization/mutex.h"

namespace sluice {

void ConfigureMutexDeadlockChecks() {
  const char* keep = std::getenv(kMutexDeadlockChecksEnv);
  if (keep != nullptr && std::string_view(keep) == "1") return;
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

}  // namespace sluice
