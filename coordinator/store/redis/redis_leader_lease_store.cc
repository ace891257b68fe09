#include "coordinator/store/redis/redis_leader_lease_store.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/store/redis/redis_lua_scripts.h"

namespace sluice {
namespace {

// Not fenced: these scripts are the election. Index into the connection's scripts.
enum Script : size_t { kCampaign, kRenewLeader, kResign, kGetLeader };

std::vector<std::string> ScriptSources() {
  return {ComposeRedisScript(ScriptAccess::kWrite, false, redis_lua::kCampaignLua),
          ComposeRedisScript(ScriptAccess::kWrite, false, redis_lua::kRenewLeaderLua),
          ComposeRedisScript(ScriptAccess::kWrite, false, redis_lua::kResignLua),
          ComposeRedisScript(ScriptAccess::kRead, false, redis_lua::kGetLeaderLua)};
}

}  // namespace

RedisLeaderLeaseStore::RedisLeaderLeaseStore(const RedisOptions& options)
    : conn_(options, ScriptSources()) {}

absl::StatusOr<std::unique_ptr<RedisLeaderLeaseStore>> RedisLeaderLeaseStore::Open(
    const RedisOptions& options) {
  SLUICE_RETURN_IF_ERROR(ValidateRedisOptions(options));
  return std::unique_ptr<RedisLeaderLeaseStore>(new RedisLeaderLeaseStore(options));
}

absl::StatusOr<CampaignOutcome> RedisLeaderLeaseStore::Campaign(const std::string& coordinator_id,
                                                                const std::string& address,
                                                                int64_t lease_ms) {
  SLUICE_ASSIGN_OR_RETURN(RedisReply r, conn_.RunScript(kCampaign, {coordinator_id, address,
                                                                    std::to_string(lease_ms)}));
  if (r.type != RedisReply::Type::kArray || r.elements.size() != 4) {
    return absl::InternalError("redis: unexpected reply to campaign");
  }
  CampaignOutcome out;
  out.won = r.elements[0].Int() == 1;
  out.leader = LeaderRecord{r.elements[1].Text(), r.elements[2].Int(), r.elements[3].Text()};
  return out;
}

absl::StatusOr<bool> RedisLeaderLeaseStore::RenewLeadership(const std::string& coordinator_id,
                                                            int64_t epoch, int64_t lease_ms) {
  SLUICE_ASSIGN_OR_RETURN(RedisReply r,
                          conn_.RunScript(kRenewLeader, {coordinator_id, std::to_string(epoch),
                                                         std::to_string(lease_ms)}));
  return r.Int() == 1;
}

absl::Status RedisLeaderLeaseStore::Resign(const std::string& coordinator_id, int64_t epoch) {
  return conn_.RunScript(kResign, {coordinator_id, std::to_string(epoch)}).status();
}

absl::StatusOr<std::optional<LeaderRecord>> RedisLeaderLeaseStore::CurrentLeader() {
  SLUICE_ASSIGN_OR_RETURN(RedisReply r, conn_.RunScript(kGetLeader, {}));
  if (r.nil()) return std::optional<LeaderRecord>();
  if (r.type != RedisReply::Type::kArray || r.elements.size() != 3) {
    return absl::InternalError("redis: unexpected reply to get leader");
  }
  return std::optional<LeaderRecord>(
      LeaderRecord{r.elements[0].Text(), r.elements[1].Int(), r.elements[2].Text()});
}

}  // namespace sluice
