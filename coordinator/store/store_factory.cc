#include "coordinator/store/store_factory.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/bounded_file.h"
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
    if (!options.password_file.empty()) {
      // Its first line, without the line end: `echo PW > file` works.
      SLUICE_ASSIGN_OR_RETURN(
          std::string content,
          ReadBoundedRegularFile("--store password_file", options.password_file, 4096));
      options.password = content.substr(0, content.find_first_of("\r\n"));
      if (options.password.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--store password_file ", options.password_file, ": the first line is empty"));
      }
    }
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
