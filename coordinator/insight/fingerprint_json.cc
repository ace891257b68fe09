#include "coordinator/insight/fingerprint_json.h"

#include <string>
#include <vector>

namespace sluice {

bool FingerprintBlocks(const FingerprintInfo& f, int32_t max_fingerprint_repeats) {
  return max_fingerprint_repeats > 0 && f.count >= max_fingerprint_repeats;
}

nlohmann::json FingerprintJson(const FingerprintInfo& f, int32_t max_fingerprint_repeats) {
  return {{"fingerprint", f.fingerprint},
          {"id", f.id},
          {"count", f.count},
          {"blocked", FingerprintBlocks(f, max_fingerprint_repeats)},
          {"runs", std::vector<std::string>(f.runs.begin(), f.runs.end())},
          {"example_error", f.example_error},
          {"last_seen_ms", f.last_seen_ms}};
}

}  // namespace sluice
