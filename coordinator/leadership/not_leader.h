// "Not the leader": the error a coordinator answers while it is a standby,
// and the error the Redis store returns when a write carries a stale leader
// epoch (a fenced write). Both are Unavailable, so workers retry (elsewhere),
// and carry a payload so that the coordinator can tell them apart from
// "Redis unreachable" and step down at once.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/strings/cord.h"

namespace sluice {

inline constexpr const char* kNotLeaderPayloadUrl = "type.sluice.dev/not-leader";

inline absl::Status NotLeaderError(const std::string& message) {
  absl::Status s = absl::UnavailableError(message);
  s.SetPayload(kNotLeaderPayloadUrl, absl::Cord("not-leader"));
  return s;
}

inline bool IsNotLeader(const absl::Status& status) {
  return !status.ok() && status.GetPayload(kNotLeaderPayloadUrl).has_value();
}

}  // namespace sluice
