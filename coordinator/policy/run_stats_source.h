// Where a reader of every run's statistics gets them (issue #12). By default
// the store (StateStore::ListRunStats: every run read, ~100 ms on Redis at
// 10,000 runs); inside a coordinator, the lease broker's ready index, which
// keeps the same statistics up to date in memory (ReadyIndex::Snapshot), so
// status, its skip explanations and the session's end read no table.
#pragma once

#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model.h"

namespace sluice {

using RunStatsSource = std::function<absl::StatusOr<std::vector<RunStats>>()>;

}  // namespace sluice
