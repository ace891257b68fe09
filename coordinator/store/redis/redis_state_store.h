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
// - Connection: one RedisConnection (redis_connection.h: serialized calls,
//   lazy reconnect with backoff, 2 s default timeouts).
// - Errors: Unavailable while Redis cannot be reached, times out, or refuses.
//   When a reply is lost after the command was sent the call returns
//   Unavailable although the script may have run whole: callers treat
//   Unavailable as "unknown outcome" and retry with the same lease/report
//   ids, which the store answers idempotently.
//   Internal for a corrupt keyspace or an unexpected reply.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/leadership/leader_lease_store.h"
#include "coordinator/store/redis/latest_session_cache.h"
#include "coordinator/store/redis/redis_connection.h"
#include "coordinator/store/redis/redis_url.h"
#include "coordinator/store/state_store.h"

namespace sluice {

// Thread-safe; see the file comment. Its writes are fenced by the leader
// epoch of the namespace's leader lease (RedisLeaderLeaseStore, WriteFence).
class RedisStateStore final : public StateStore, public WriteFence {
 public:
  // Connects, loads the scripts and checks (or writes) the schema version.
  // Unavailable when Redis cannot be reached, InvalidArgument for bad options,
  // FailedPrecondition when the namespace holds another schema version.
  static absl::StatusOr<std::unique_ptr<RedisStateStore>> Open(const RedisOptions& options);
  ~RedisStateStore() override;

  absl::StatusOr<ImportResult> ImportPhases(const std::vector<PhaseSpec>& phases) override;
  // NOT all or nothing, unlike StateStore's contract (so is ImportPhases):
  // Add stages chunks in a list (one RPUSH each, nothing else touched) that
  // Commit applies in slices of at most RedisOptions::import_slice_phases
  // phases, one script each, so no script blocks Redis for long. Each slice
  // is atomic and keeps every counter exact, but other clients may see the
  // slices applied so far, and a Commit that fails part-way (Redis lost, not
  // the leader any more, the importer killed) leaves them applied: importing
  // the same phases again completes it (they count as unchanged). Commit
  // retries a slice whose reply was lost (a retry never applies a chunk
  // twice) and sums the counts over the slices. The list expires an hour
  // after the last chunk or slice if the import is never committed (the
  // importer died); a Commit that finds chunks missing is refused whole.
  absl::StatusOr<std::unique_ptr<PhaseImport>> BeginImport() override;
  absl::StatusOr<std::optional<PhaseRecord>> GetPhase(const PhaseKey& key) override;
  absl::StatusOr<std::vector<RunStats>> ListRunStats() override;
  absl::StatusOr<PhaseCounts> CountPhases() override;
  absl::StatusOr<std::optional<RunStats>> GetRunStats(const std::string& run_id) override;
  absl::StatusOr<std::optional<LeaseGrant>> LeaseNextInRun(const LeaseParams& params) override;
  absl::StatusOr<std::vector<std::string>> RenewLeases(const std::string& worker_id,
                                                       const std::vector<std::string>& lease_ids,
                                                       int64_t now_ms, int64_t ttl_ms) override;
  absl::StatusOr<ReportResult> RecordReport(const ReportParams& params) override;
  // report.lua once per report, pipelined: one round trip for the batch.
  std::vector<absl::StatusOr<ReportResult>> RecordReports(
      const std::vector<ReportParams>& batch) override;
  absl::StatusOr<std::vector<ExpiredLease>> ExpireLeases(int64_t now_ms,
                                                         const PhaseTransition& lost) override;
  absl::StatusOr<std::vector<LeaseGrant>> ListActiveLeases() override;
  absl::StatusOr<bool> IsLeaseActive(const std::string& lease_id) override;
  absl::Status UpsertWorker(const WorkerInfo& worker) override;
  absl::StatusOr<std::vector<WorkerInfo>> ListWorkers() override;
  absl::Status RemoveWorker(const std::string& worker_id) override;
  absl::StatusOr<AttemptPage> ListPhaseAttempts(const PhaseKey& key, int64_t offset,
                                                int64_t limit) override;
  absl::Status CreateSession(const SessionRecord& session) override;
  absl::Status EndSession(const std::string& session_id, SessionState state, int64_t ended_at_ms,
                          const std::string& reason) override;
  absl::StatusOr<std::optional<SessionRecord>> GetSession(const std::string& session_id) override;
  // Served from a cache while the session generation that the lease and
  // report replies carry is unchanged (latest_session_cache.h): a session
  // written by another process is seen at this store's next lease or report,
  // or after RedisOptions::session_cache_max_age.
  absl::StatusOr<std::optional<SessionRecord>> LatestSession() override;
  absl::StatusOr<std::vector<AttemptRecord>> ListAttempts(const std::string& session_id) override;
  absl::StatusOr<std::vector<AttemptRecord>> ListAttemptsWithoutOutput(
      const std::string& session_id) override;
  absl::StatusOr<AttemptBatch> ListAttemptsFrom(const std::string& session_id, int64_t cursor,
                                                int64_t limit) override;
  absl::StatusOr<std::vector<PhaseRecord>> ListPendingLabelledPhases(int64_t limit) override;
  absl::StatusOr<int64_t> CountSessionAttempts(const std::string& session_id) override;
  absl::StatusOr<std::vector<LateReportRecord>> ListLateReports() override;
  absl::StatusOr<int64_t> CountLateReports() override;
  absl::StatusOr<std::vector<PhaseRecord>> ListPendingPhases(const std::string& run_id,
                                                             int64_t limit) override;
  absl::Status PutPolicyRecord(const std::string& kind, const std::string& key,
                               const std::string& value) override;
  absl::StatusOr<std::map<std::string, std::string>> ListPolicyRecords(
      const std::string& kind) override;
  std::string ClusterId() const override { return cluster_id_; }

  // Every mutating StateStore call carries this epoch and Redis refuses it
  // (Unavailable, IsNotLeader) unless it is the current leader epoch;
  // kUnfenced (the default) sends no epoch, kNeverLeader refuses every write.
  // A new epoch also drops the cached latest session (another leader may
  // have written sessions meanwhile).
  void SetFencingEpoch(int64_t epoch) override;

  // Test seam: called after each slice of an import's commit that Redis
  // applied, with the chunks left; an error it returns is taken as the
  // slice's outcome, as if the reply had been lost or the importer had died
  // right after the script ran. Set before any import, from the thread that
  // imports.
  using ImportSliceHook = std::function<absl::Status(int64_t chunks_left)>;
  void SetImportSliceHookForTesting(ImportSliceHook hook) { import_slice_hook_ = std::move(hook); }

 private:
  friend class RedisPhaseImport;
  explicit RedisStateStore(const RedisOptions& options);
  // Applies the next slice of the `chunks` chunks staged under import id `id`
  // (import.lua): `chunks_left` after it, and the counts over every slice so far.
  struct ImportSlice {
    int64_t chunks_left = 0;
    ImportResult total;
  };
  absl::StatusOr<ImportSlice> ApplyImportSlice(const std::string& id, int64_t chunks,
                                               int64_t ttl_seconds);
  // One staged chunk as import.lua reads it: a msgpack array of 8 strings
  // per phase.
  static std::string EncodeImportChunk(const std::vector<PhaseSpec>& phases);

  // Runs one of this store's scripts (kScripts in the .cc); fenced scripts
  // get the fencing epoch in front of `args`.
  absl::StatusOr<RedisReply> Run(size_t script, std::vector<std::string> args);
  absl::StatusOr<RedisReply> Run(size_t script, std::vector<std::string> args,
                                 absl::Duration timeout);
  // `args` with the fencing epoch in front when `script` is fenced.
  std::vector<std::string> FencedArgs(size_t script, std::vector<std::string> args) const;
  // Appends the attempts at positions [first, first + count) of the
  // session's end-order list (every attempt's for "") to `out`: an LRANGE,
  // then one pipeline of HMGETs; returns how many there were. Callers read
  // in ranges of at most kAttemptRangeMax, so what is held and what one
  // round trip carries stay bounded however long the history.
  static constexpr int64_t kAttemptRangeMax = 5'000;
  absl::StatusOr<int64_t> AppendAttemptRange(const std::string& session_id, bool with_output,
                                             int64_t first, int64_t count,
                                             std::vector<AttemptRecord>* out);
  absl::StatusOr<std::vector<AttemptRecord>> ListAttemptRows(const std::string& session_id,
                                                             bool with_output);

  RedisConnection conn_;
  const std::string prefix_;  // conn_.prefix(), "<namespace>:"
  std::string cluster_id_;    // read by Open, then constant
  std::atomic<int64_t> fencing_epoch_{kUnfenced};
  LatestSessionCache latest_session_;
  ImportSliceHook import_slice_hook_;
};

}  // namespace sluice
