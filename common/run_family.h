// Run families: runs that differ only by a trailing version, date or letter
// ("research-system-v1", "research-system-v2" -> "research-system";
// "build-2024-01-05" -> "build"; "run-a", "run-b" -> "run"). Reports and
// `sluice recommend` aggregate by family so a failure that hits every
// version of one system shows up once. Pure and thread-safe.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace re2 {
class RE2;
}

namespace sluice {

// The run id with its trailing variant tokens removed. Tokens are separated
// by '-', '_', '.' or ':'; a trailing token is a variant when it is a number
// ("3", "20240105"), a version ("v2", "V10", "rc1"), or a single letter
// ("a"). Variant tokens are removed from the end repeatedly, but the first
// token always stays, so the family is never empty ("v1" -> "v1"). The
// result keeps the run id's spelling (no case folding).
std::string RunFamily(std::string_view run_id);

// The family rule the scheduler uses, configurable with --family-pattern.
// Empty pattern: RunFamily above. Otherwise an RE2 pattern with at least one
// capture group: when it matches the whole run id, the family is the first
// group; a run id it does not match is a family of its own. Example:
// "(.*)-(?:v[0-9]+|[0-9]{8})" keeps "svc-a" apart from "svc-b" but joins
// "svc-v1" and "svc-20240105". Copyable, thread-safe.
class RunFamilyRule {
 public:
  // InvalidArgument when the pattern does not compile or has no group.
  static absl::StatusOr<RunFamilyRule> Compile(const std::string& pattern);
  RunFamilyRule() = default;  // the default rule

  std::string Family(std::string_view run_id) const;
  const std::string& pattern() const { return pattern_; }

 private:
  std::string pattern_;
  std::shared_ptr<const re2::RE2> re_;
};

}  // namespace sluice
