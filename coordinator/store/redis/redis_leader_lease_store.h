// The leader lease on Redis, for an active and standby coordinators sharing
// one namespace (LeaderLeaseStore; docs/redis.md, "Leadership"). The lease is
// the key "<namespace>:leader" = {id, epoch, address} with a PX TTL; the epoch
// "<namespace>:leader_epoch" is durable and only grows, one INCR per takeover.
// RedisStateStore's writes compare their fencing epoch with it (WriteFence).
//
// Thread-safe. Has its own connection (redis_connection.h), so a renewal
// never queues behind a long store call; it connects at the first call.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "coordinator/leadership/leader_lease_store.h"
#include "coordinator/store/redis/redis_connection.h"
#include "coordinator/store/redis/redis_url.h"

namespace sluice {

class RedisLeaderLeaseStore final : public LeaderLeaseStore {
 public:
  // InvalidArgument for bad options; does not connect.
  static absl::StatusOr<std::unique_ptr<RedisLeaderLeaseStore>> Open(const RedisOptions& options);

  absl::StatusOr<CampaignOutcome> Campaign(const std::string& coordinator_id,
                                           const std::string& address, int64_t lease_ms) override;
  absl::StatusOr<bool> RenewLeadership(const std::string& coordinator_id, int64_t epoch,
                                       int64_t lease_ms) override;
  absl::Status Resign(const std::string& coordinator_id, int64_t epoch) override;
  absl::StatusOr<std::optional<LeaderRecord>> CurrentLeader() override;

 private:
  explicit RedisLeaderLeaseStore(const RedisOptions& options);

  RedisConnection conn_;
};

}  // namespace sluice
