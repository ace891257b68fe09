#include "coordinator/store/store_factory.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/store/redis/redis_leader_lease_store.h"
#include "coordinator/store/redis/redis_state_store.h"
#include "coordinator/store/sqlite/sqlite_state_store.h"

namespace sluice {

absl::StatusOr<OpenedStore> OpenStore(const std::string& url) {
  const std::string kSqlite = "sqlite://";
  if (absl::StartsWith(url, kSqlite)) {
    const std::string path = url.substr(kSqlite.size());
    if (path.empty()) return absl::InvalidArgumentError("--store sqlite:// needs a path");
    SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<SqliteStateStore> store, SqliteStateStore::Open(path));
    OpenedStore opened;
    opened.store = std::move(store);
    return opened;
  }
  if (absl::StartsWith(url, "redis://") || absl::StartsWith(url, "redis+unix://")) {
    SLUICE_ASSIGN_OR_RETURN(RedisOptions options, ParseRedisUrl(url));
    SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<RedisStateStore> store, RedisStateStore::Open(options));
    SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<RedisLeaderLeaseStore> lease,
                            RedisLeaderLeaseStore::Open(options));
    OpenedStore opened;
    opened.write_fence = store.get();
    opened.store = std::move(store);
    opened.leader_lease = std::move(lease);
    return opened;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--store ", url,
                   ": unknown store URL (expected sqlite://PATH, "
                   "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?namespace=NAME] or "
                   "redis+unix:///PATH[?db=N&password=P&namespace=NAME])"));
}

absl::StatusOr<std::unique_ptr<StateStore>> OpenStateStore(const std::string& url) {
  SLUICE_ASSIGN_OR_RETURN(OpenedStore opened, OpenStore(url));
  return std::move(opened.store);
}

}  // namespace sluice
