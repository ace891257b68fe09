// The shared store: Redis (>= 7.0) through hiredis. Selected with
//   --store redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?namespace=NAME]
//   --store redis+unix:///path/to/redis.sock[?db=N&password=P&namespace=NAME]
// (key schema and operators' guidance: docs/redis.md).
//
// Contract, beyond StateStore's:
// - Every mutating call is ONE Lua script run with EVALSHA (loaded with SCRIPT
//   LOAD on connect, reloaded on NOSCRIPT). A script validates everything
//   before its first write, so an error reply leaves Redis untouched; Redis
//   runs the script atomically, so no other client sees a half-made
//   transition. Reads of related keys are scripts too (one consistent view).
// - Scripts declare `#!lua flags=no-cluster`: Redis Cluster is not supported
//   (a script touches keys it computes itself). Mutating scripts are denied
//   as a whole when Redis is out of memory, never part-way.
// - Lease and report touch O(1) keys (plus the labels walk of one run's
//   pending set); nothing ever calls KEYS or SCAN.
// - Connection: one hiredis connection behind a mutex (calls are serialized;
//   Redis is single-threaded anyway). Connect and command timeouts default to
//   2 s. A broken connection is dropped; the next call reconnects (with AUTH
//   and SELECT), retrying a failed connect no sooner than an exponential
//   backoff (50 ms doubling to 2 s) allows. A connection the server closed
//   while idle (Redis restarted) is detected before sending and replaced.
// - Errors: Unavailable while Redis cannot be reached, times out, or refuses
//   (LOADING, BUSY, READONLY, OOM, NOAUTH). When a reply is lost after the
//   command was sent the call returns Unavailable although the script may
//   have run whole: callers treat Unavailable as "unknown outcome" and retry
//   with the same lease/report ids, which the store answers idempotently.
//   Internal for a corrupt keyspace or an unexpected reply.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "coordinator/leadership/leader_lease_store.h"
#include "coordinator/store/state_store.h"

struct redisContext;

namespace sluice {

struct RedisOptions {
  // Where Redis listens: a Unix socket when unix_socket is set, else host:port.
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string unix_socket;
  // AUTH: sent when password is non-empty (with username when that is set,
  // Redis 6 ACL users). Empty: no AUTH.
  std::string username;
  std::string password;
  int db = 0;  // SELECT db (0..15 on a default Redis); 0 sends nothing
  // Every key starts with "<key_namespace>:". [A-Za-z0-9_-]{1,64}, so two
  // namespaces can never produce the same key. Default "sluice".
  std::string key_namespace = "sluice";
  // Applies to each connect attempt.
  absl::Duration connect_timeout = absl::Seconds(2);
  // Applies to each command; ImportPhases uses import_timeout instead because
  // one script imports the whole backlog (about 0.3 s per 10k phases).
  absl::Duration command_timeout = absl::Seconds(2);
  absl::Duration import_timeout = absl::Seconds(60);
  // Reconnect backoff after a failed connect: first delay, doubled to max.
  absl::Duration reconnect_backoff_initial = absl::Milliseconds(50);
  absl::Duration reconnect_backoff_max = absl::Seconds(2);
};

// Parses the two URL forms above. Query parameters: namespace, db (unix
// form; the TCP form takes /DB), password (unix form; the TCP form takes the
// userinfo). InvalidArgument naming the accepted forms on anything else.
absl::StatusOr<RedisOptions> ParseRedisUrl(const std::string& url);

// Thread-safe; see the file comment. Also the leader lease for an active and
// standby coordinators on one namespace (LeaderLeaseStore; docs/redis.md).
class RedisStateStore final : public StateStore, public LeaderLeaseStore {
 public:
  // Connects, loads the scripts and checks (or writes) the schema version.
  // Unavailable when Redis cannot be reached, InvalidArgument for bad options,
  // FailedPrecondition when the namespace holds another schema version.
  static absl::StatusOr<std::unique_ptr<RedisStateStore>> Open(const RedisOptions& options);
  ~RedisStateStore() override;

  absl::StatusOr<ImportResult> ImportPhases(const std::vector<PhaseSpec>& phases) override;
  absl::StatusOr<std::optional<PhaseRecord>> GetPhase(const PhaseKey& key) override;
  absl::StatusOr<std::vector<RunStats>> ListRunStats() override;
  absl::StatusOr<PhaseCounts> CountPhases() override;
  absl::StatusOr<std::optional<LeaseGrant>> LeaseNextInRun(const LeaseParams& params) override;
  absl::StatusOr<std::vector<std::string>> RenewLeases(const std::string& worker_id,
                                                       const std::vector<std::string>& lease_ids,
                                                       int64_t now_ms, int64_t ttl_ms) override;
  absl::StatusOr<ReportResult> RecordReport(const ReportParams& params) override;
  absl::StatusOr<std::vector<ExpiredLease>> ExpireLeases(int64_t now_ms,
                                                         int32_t max_requeues_per_phase) override;
  absl::StatusOr<std::vector<LeaseGrant>> ListActiveLeases() override;
  absl::Status UpsertWorker(const WorkerInfo& worker) override;
  absl::StatusOr<std::vector<WorkerInfo>> ListWorkers() override;
  absl::Status CreateSession(const SessionRecord& session) override;
  absl::Status EndSession(const std::string& session_id, SessionState state, int64_t ended_at_ms,
                          const std::string& reason) override;
  absl::StatusOr<std::optional<SessionRecord>> GetSession(const std::string& session_id) override;
  absl::StatusOr<std::optional<SessionRecord>> LatestSession() override;
  absl::StatusOr<std::vector<AttemptRecord>> ListAttempts(const std::string& session_id) override;
  absl::StatusOr<int64_t> CountSessionAttempts(const std::string& session_id) override;
  absl::StatusOr<std::vector<LateReportRecord>> ListLateReports() override;
  absl::StatusOr<int64_t> CountLateReports() override;
  absl::StatusOr<std::vector<PhaseRecord>> ListPendingPhases(const std::string& run_id,
                                                             int64_t limit) override;
  absl::Status PutPolicyRecord(const std::string& kind, const std::string& key,
                               const std::string& value) override;
  absl::StatusOr<std::map<std::string, std::string>> ListPolicyRecords(
      const std::string& kind) override;

  // Fencing: every mutating StateStore call carries `epoch` and Redis refuses
  // it (Unavailable, IsNotLeader) unless epoch is the current leader epoch.
  // kUnfenced (the default) sends no epoch: one coordinator per namespace.
  // kNeverLeader refuses every write (a standby before its first win).
  static constexpr int64_t kUnfenced = 0;
  static constexpr int64_t kNeverLeader = -1;
  void SetFencingEpoch(int64_t epoch);

  absl::StatusOr<CampaignOutcome> Campaign(const std::string& coordinator_id,
                                           const std::string& address, int64_t lease_ms) override;
  absl::StatusOr<bool> RenewLeadership(const std::string& coordinator_id, int64_t epoch,
                                       int64_t lease_ms) override;
  absl::Status Resign(const std::string& coordinator_id, int64_t epoch) override;
  absl::StatusOr<std::optional<LeaderRecord>> CurrentLeader() override;

  // A parsed reply (exposed for the implementation's helpers; not an API).
  struct Reply;

 private:
  explicit RedisStateStore(RedisOptions options);

  // Runs script `index` (see kScripts in the .cc) with ARGV = {prefix, args...}.
  absl::StatusOr<Reply> RunScript(size_t index, const std::vector<std::string>& args,
                                  absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_);
  // Runs one plain command.
  absl::StatusOr<Reply> Command(const std::vector<std::string>& argv) ABSL_LOCKS_EXCLUDED(mu_);

  absl::Status EnsureConnectedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status ConnectLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // AUTH or SELECT on a fresh connection; drops it on an error reply.
  absl::Status SetupCommandLocked(const std::vector<std::string>& argv, const char* what)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DropLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // One round trip on the current connection; an I/O error drops it.
  absl::StatusOr<Reply> RawLocked(const std::vector<std::string>& argv)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<Reply> SendLocked(const std::vector<std::string>& argv, absl::Duration timeout)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string Where() const;

  const RedisOptions options_;
  const std::string prefix_;  // "<namespace>:"
  std::atomic<int64_t> fencing_epoch_{kUnfenced};

  absl::Mutex mu_;
  std::vector<std::string> shas_ ABSL_GUARDED_BY(mu_);  // per script, from SCRIPT LOAD
  redisContext* ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
  absl::Time next_connect_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Duration backoff_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();
  std::string last_error_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sluice
