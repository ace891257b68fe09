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
#include "coordinator/store/state_store.h"

namespace sluice {

inline constexpr const char* kDefaultStoreUrl = "sqlite://.sluice/state.db";

absl::StatusOr<std::unique_ptr<StateStore>> OpenStateStore(const std::string& url);

}  // namespace sluice
