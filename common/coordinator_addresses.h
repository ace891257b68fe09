// The coordinator address list shared by sluice-worker and the operator CLI
// (--coordinator HOST:PORT[,HOST:PORT...]) and the leader hint a standby's
// not-leader error carries, so both follow the leader the same way.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace sluice {

// "a:1, b:2" -> {"a:1", "b:2"}; InvalidArgument for an empty list or entry,
// or an entry without ":PORT".
absl::StatusOr<std::vector<std::string>> ParseCoordinatorAddresses(const std::string& list);

// The leader address named in a not-leader error ("leader_address=HOST:PORT"),
// or "".
std::string LeaderAddressHint(const absl::Status& status);

}  // namespace sluice
