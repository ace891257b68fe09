#include "coordinator/store/store_factory.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "coordinator/store/redis/redis_state_store.h"
#include "coordinator/store/sqlite/sqlite_state_store.h"

namespace sluice {

absl::StatusOr<std::unique_ptr<StateStore>> OpenStateStore(const std::string& url) {
  const std::string kSqlite = "sqlite://";
  if (absl::StartsWith(url, kSqlite)) {
    const std::string path = url.substr(kSqlite.size());
    if (path.empty()) return absl::InvalidArgumentError("--store sqlite:// needs a path");
    auto store = SqliteStateStore::Open(path);
    if (!store.ok()) return store.status();
    return std::unique_ptr<StateStore>(std::move(*store));
  }
  if (absl::StartsWith(url, "redis://") || absl::StartsWith(url, "redis+unix://")) {
    auto options = ParseRedisUrl(url);
    if (!options.ok()) return options.status();
    auto store = RedisStateStore::Open(*options);
    if (!store.ok()) return store.status();
    return std::unique_ptr<StateStore>(std::move(*store));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--store ", url,
                   ": unknown store URL (expected sqlite://PATH, "
                   "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?namespace=NAME] or "
                   "redis+unix:///PATH[?db=N&password=P&namespace=NAME])"));
}

}  // namespace sluice
