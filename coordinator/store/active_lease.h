// One active lease by id, for the rare paths that need it (a store reply
// lost after its commit, a report whose phase must be read). Reads the
// active leases only, which the fleet's slots bound, never the backlog.
#pragma once

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "common/model.h"
#include "coordinator/store/state_store.h"

namespace sluice {

absl::StatusOr<std::optional<LeaseGrant>> FindActiveLease(StateStore& store,
                                                          const std::string& lease_id);

}  // namespace sluice
