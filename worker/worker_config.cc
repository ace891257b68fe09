#include "worker/worker_config.h"

#include "absl/strings/str_cat.h"
#include "common/ids.h"

namespace sluice {

absl::Status WorkerConfig::Validate() const {
  if (absl::Status st = ValidateId("--worker-id", worker_id); !st.ok()) return st;
  if (slots < 1 || slots > 1024) return absl::InvalidArgumentError("--slots must be 1..1024");
  for (const std::string& label : labels) {
    if (absl::Status st = ValidateId("--label", label); !st.ok()) return st;
  }
  if (!command) return absl::InvalidArgumentError("--exec is required");
  if (grace_ms < 0) return absl::InvalidArgumentError("--grace-seconds must be >= 0");
  if (drain_timeout_ms < 0) return absl::InvalidArgumentError("--drain-timeout must be >= 0");
  if (max_start_failures < 0) {
    return absl::InvalidArgumentError("--max-start-failures must be >= 0 (0 = never stop)");
  }
  if (telemetry_probe_timeout_ms < 1) {
    return absl::InvalidArgumentError("--telemetry-probe-timeout must be > 0 seconds");
  }
  if (log_dir.empty()) return absl::InvalidArgumentError("--log-dir must not be empty");
  for (const auto& [key, value] : env) {
    if (key.empty() || key.find('=') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("--env ", key, ": bad variable name"));
    }
  }
  return absl::OkStatus();
}

}  // namespace sluice
