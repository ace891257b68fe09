#include "coordinator/store/active_lease.h"

#include <utility>
#include <vector>

#include "common/status_macros.h"

namespace sluice {

absl::StatusOr<std::optional<LeaseGrant>> FindActiveLease(StateStore& store,
                                                          const std::string& lease_id) {
  SLUICE_ASSIGN_OR_RETURN(std::vector<LeaseGrant> active, store.ListActiveLeases());
  for (LeaseGrant& grant : active) {
    if (grant.lease_id == lease_id) return std::move(grant);
  }
  return std::nullopt;
}

}  // namespace sluice
