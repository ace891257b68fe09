// The leader lease that lets two (or more) coordinators share one store, one
// active and the others standing by (docs/redis.md, "Leadership"). The lease
// is a record {coordinator id, epoch, advertised address} with a TTL; the
// epoch is durable and grows by one on every takeover, and the store refuses
// writes carrying an older epoch (fencing), so a leader that lost the lease
// without noticing can no longer change anything.
//
// The embedded SQLite store does not implement this: one SQLite file has
// exactly one coordinator, which is always the leader.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace sluice {

struct LeaderRecord {
  std::string coordinator_id;  // empty: nobody holds the lease
  int64_t epoch = 0;
  std::string address;  // where workers should connect (--advertise)
};

struct CampaignOutcome {
  bool won = false;
  LeaderRecord leader;  // the holder after the call: this caller when won
};

class LeaderLeaseStore {
 public:
  virtual ~LeaderLeaseStore() = default;
  // Takes the lease for lease_ms when nobody holds it, or this same id holds
  // it (a leader that stepped down rejoins); each take increments the epoch.
  virtual absl::StatusOr<CampaignOutcome> Campaign(const std::string& coordinator_id,
                                                   const std::string& address,
                                                   int64_t lease_ms) = 0;
  // Compare-and-extend: true when the lease is still (id, epoch) and epoch is
  // still the current one, now extended to lease_ms; false when it is lost.
  virtual absl::StatusOr<bool> RenewLeadership(const std::string& coordinator_id, int64_t epoch,
                                               int64_t lease_ms) = 0;
  // Gives the lease up when it is still (id, epoch), so a standby takes over
  // at its next campaign instead of after the TTL.
  virtual absl::Status Resign(const std::string& coordinator_id, int64_t epoch) = 0;
  virtual absl::StatusOr<std::optional<LeaderRecord>> CurrentLeader() = 0;
};

// The other half of a shared store: its writes are fenced by the leader
// epoch. The coordinator sets the epoch it won (LeaderElectionOptions::
// on_elected); the store then refuses, inside each atomic write, every write
// once another coordinator took over with a newer epoch (Unavailable,
// IsNotLeader). Thread-safe: may be set while other threads write.
class WriteFence {
 public:
  // Sends no epoch: one coordinator per store (tests, tools). The default.
  static constexpr int64_t kUnfenced = 0;
  // Refuses every write: a standby before its first win.
  static constexpr int64_t kNeverLeader = -1;

  virtual ~WriteFence() = default;
  virtual void SetFencingEpoch(int64_t epoch) = 0;
};

}  // namespace sluice
