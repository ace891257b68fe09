// Opens a StateStore from a URL:
//   sqlite://PATH   the embedded store (default: sqlite://.sluice/state.db)
//   sqlite://:memory:
//   redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?namespace=NAME]
//   redis+unix:///PATH[?db=N&password=P&namespace=NAME]   (see docs/redis.md)
// Unknown schemes are InvalidArgument naming the accepted forms.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "coordinator/leadership/leader_lease_store.h"
#include "coordinator/store/state_store.h"

namespace sluice {

inline constexpr const char* kDefaultStoreUrl = "sqlite://.sluice/state.db";

// A store and, when several coordinators may share it, its leadership seam:
// the caller learns what the backend can do from the fields, never by
// probing the store's type.
struct OpenedStore {
  std::unique_ptr<StateStore> store;
  // Shared stores (Redis): the leader lease, on a connection of its own so a
  // renewal never queues behind a long store call (it connects at its first
  // call). Null for SQLite: one coordinator per file, always the leader.
  std::unique_ptr<LeaderLeaseStore> leader_lease;
  // The store's write fence (points into `store`); null exactly when
  // leader_lease is.
  WriteFence* write_fence = nullptr;
};

absl::StatusOr<OpenedStore> OpenStore(const std::string& url);

// Just the store (tools, the CLI, tests): OpenStore(url).store.
absl::StatusOr<std::unique_ptr<StateStore>> OpenStateStore(const std::string& url);

}  // namespace sluice
