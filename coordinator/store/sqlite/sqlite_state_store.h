// The embedded default store: one SQLite file in WAL mode. Every mutating
// call runs in one BEGIN IMMEDIATE transaction, so a crash (even SIGKILL)
// leaves either the old or the new state. synchronous=NORMAL: a process crash
// loses nothing; a power loss may lose the last transactions (documented in
// the README). Thread-safe: one connection behind a mutex.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "coordinator/store/state_store.h"

struct sqlite3;

namespace sluice {

class SqliteStateStore final : public StateStore {
 public:
  // Opens (creating parent directories and the schema when needed) the
  // database at `path`; ":memory:" gives a private in-memory store.
  static absl::StatusOr<std::unique_ptr<SqliteStateStore>> Open(const std::string& path);
  // A private in-memory copy of the store at `path` (empty when the file does
  // not exist), for what-if questions such as --dry-run.
  static absl::StatusOr<std::unique_ptr<SqliteStateStore>> OpenInMemoryCopy(
      const std::string& path);
  ~SqliteStateStore() override;

  absl::StatusOr<ImportResult> ImportPhases(const std::vector<PhaseSpec>& phases) override;
  // One transaction from BeginImport to Commit, holding the store's mutex:
  // every other call on this store waits until the import ends.
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
  std::vector<absl::StatusOr<ReportResult>> RecordReports(
      const std::vector<ReportParams>& batch) override;
  absl::StatusOr<std::vector<ExpiredLease>> ExpireLeases(int64_t now_ms,
                                                         const PhaseTransition& lost) override;
  absl::StatusOr<std::vector<LeaseGrant>> ListActiveLeases() override;
  absl::StatusOr<bool> IsLeaseActive(const std::string& lease_id) override;
  absl::Status UpsertWorker(const WorkerInfo& worker) override;
  absl::StatusOr<std::vector<WorkerInfo>> ListWorkers() override;
  absl::Status RemoveWorker(const std::string& worker_id) override;
  absl::Status CreateSession(const SessionRecord& session) override;
  absl::Status EndSession(const std::string& session_id, SessionState state, int64_t ended_at_ms,
                          const std::string& reason) override;
  absl::StatusOr<std::optional<SessionRecord>> GetSession(const std::string& session_id) override;
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
  absl::StatusOr<RunStatsPage> ListRunStatsPage(const RunStatsQuery& query) override;
  absl::StatusOr<AttemptPage> ListPhaseAttempts(const PhaseKey& key, int64_t offset,
                                                int64_t limit) override;
  absl::Status PutPolicyRecord(const std::string& kind, const std::string& key,
                               const std::string& value) override;
  absl::StatusOr<std::map<std::string, std::string>> ListPolicyRecords(
      const std::string& kind) override;
  std::string ClusterId() const override { return cluster_id_; }

 private:
  friend class SqlitePhaseImport;
  explicit SqliteStateStore(sqlite3* db) : db_(db) {}
  absl::Status InitSchema();
  // RecordReport's reads and writes; the caller holds mu_ and a transaction.
  absl::StatusOr<ReportResult> RecordReportInTransaction(const ReportParams& params)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::vector<AttemptRecord>> ListAttemptRows(const std::string& session_id,
                                                             bool with_output)
      ABSL_LOCKS_EXCLUDED(mu_);

  absl::Mutex mu_;
  sqlite3* const db_;       // owned; used only under mu_
  std::string cluster_id_;  // read by InitSchema, then constant

  // LatestSession is read on every lease, report and status, but the record
  // changes only when a session starts or ends. It is kept with the
  // connection's PRAGMA data_version, which changes when another connection
  // (another process: `sluice session start --store`) commits; this
  // connection's own session writes drop it.
  struct CachedLatestSession {
    int64_t data_version = 0;
    std::optional<SessionRecord> session;
  };
  std::optional<CachedLatestSession> latest_session_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sluice
