// A StateStore that forwards every call to another store, like LevelDB's
// EnvWrapper: a test decorator overrides only the calls it cares about.
// Thread-safe when the wrapped store is.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "coordinator/store/state_store.h"

namespace sluice::testing {

class ForwardingStateStore : public StateStore {
 public:
  // Forwards to `target`, which must outlive this object.
  explicit ForwardingStateStore(StateStore& target) : target_(&target) {}
  // Forwards to `owned` and destroys it with this object.
  explicit ForwardingStateStore(std::unique_ptr<StateStore> owned)
      : owned_(std::move(owned)), target_(owned_.get()) {}

  StateStore& target() { return *target_; }

  absl::StatusOr<ImportResult> ImportPhases(const std::vector<PhaseSpec>& phases) override {
    return target_->ImportPhases(phases);
  }
  absl::StatusOr<std::optional<PhaseRecord>> GetPhase(const PhaseKey& key) override {
    return target_->GetPhase(key);
  }
  absl::StatusOr<std::vector<RunStats>> ListRunStats() override { return target_->ListRunStats(); }
  // Reads with a default in StateStore (which reads every run or every
  // attempt) are forwarded too: a wrapped store reads what the real one
  // does. BeginImport keeps the default, which imports through ImportPhases
  // (where a decorator such as FailingStateStore injects its faults).
  absl::StatusOr<std::optional<RunStats>> GetRunStats(const std::string& run_id) override {
    return target_->GetRunStats(run_id);
  }
  absl::StatusOr<std::vector<AttemptRecord>> ListAttemptsWithoutOutput(
      const std::string& session) override {
    return target_->ListAttemptsWithoutOutput(session);
  }
  absl::StatusOr<AttemptBatch> ListAttemptsFrom(const std::string& session, int64_t cursor,
                                                int64_t limit) override {
    return target_->ListAttemptsFrom(session, cursor, limit);
  }
  absl::StatusOr<std::vector<PhaseRecord>> ListPendingLabelledPhases(int64_t limit) override {
    return target_->ListPendingLabelledPhases(limit);
  }
  absl::StatusOr<PhaseCounts> CountPhases() override { return target_->CountPhases(); }
  absl::StatusOr<std::optional<LeaseGrant>> LeaseNextInRun(const LeaseParams& params) override {
    return target_->LeaseNextInRun(params);
  }
  absl::StatusOr<std::vector<std::string>> RenewLeases(const std::string& worker_id,
                                                       const std::vector<std::string>& lease_ids,
                                                       int64_t now_ms, int64_t ttl_ms) override {
    return target_->RenewLeases(worker_id, lease_ids, now_ms, ttl_ms);
  }
  absl::StatusOr<ReportResult> RecordReport(const ReportParams& params) override {
    return target_->RecordReport(params);
  }
  std::vector<absl::StatusOr<ReportResult>> RecordReports(
      const std::vector<ReportParams>& batch) override {
    return target_->RecordReports(batch);
  }
  absl::StatusOr<std::vector<ExpiredLease>> ExpireLeases(int64_t now_ms,
                                                         const PhaseTransition& lost) override {
    return target_->ExpireLeases(now_ms, lost);
  }
  absl::StatusOr<std::vector<LeaseGrant>> ListActiveLeases() override {
    return target_->ListActiveLeases();
  }
  absl::StatusOr<bool> IsLeaseActive(const std::string& lease_id) override {
    return target_->IsLeaseActive(lease_id);
  }
  absl::Status UpsertWorker(const WorkerInfo& worker) override {
    return target_->UpsertWorker(worker);
  }
  absl::StatusOr<std::vector<WorkerInfo>> ListWorkers() override { return target_->ListWorkers(); }
  absl::Status RemoveWorker(const std::string& worker_id) override {
    return target_->RemoveWorker(worker_id);
  }
  absl::StatusOr<RunStatsPage> ListRunStatsPage(const RunStatsQuery& query) override {
    return target_->ListRunStatsPage(query);
  }
  absl::StatusOr<AttemptPage> ListPhaseAttempts(const PhaseKey& key, int64_t offset,
                                                int64_t limit) override {
    return target_->ListPhaseAttempts(key, offset, limit);
  }
  absl::Status CreateSession(const SessionRecord& session) override {
    return target_->CreateSession(session);
  }
  absl::Status EndSession(const std::string& session_id, SessionState state, int64_t ended_at_ms,
                          const std::string& reason) override {
    return target_->EndSession(session_id, state, ended_at_ms, reason);
  }
  absl::StatusOr<std::optional<SessionRecord>> GetSession(const std::string& session_id) override {
    return target_->GetSession(session_id);
  }
  absl::StatusOr<std::optional<SessionRecord>> LatestSession() override {
    return target_->LatestSession();
  }
  absl::StatusOr<std::vector<AttemptRecord>> ListAttempts(const std::string& session_id) override {
    return target_->ListAttempts(session_id);
  }
  absl::StatusOr<int64_t> CountSessionAttempts(const std::string& session_id) override {
    return target_->CountSessionAttempts(session_id);
  }
  absl::StatusOr<std::vector<PhaseRecord>> ListPendingPhases(const std::string& run_id,
                                                             int64_t limit) override {
    return target_->ListPendingPhases(run_id, limit);
  }
  absl::Status PutPolicyRecord(const std::string& kind, const std::string& key,
                               const std::string& value) override {
    return target_->PutPolicyRecord(kind, key, value);
  }
  absl::StatusOr<std::vector<LateReportRecord>> ListLateReports() override {
    return target_->ListLateReports();
  }
  absl::StatusOr<int64_t> CountLateReports() override { return target_->CountLateReports(); }
  absl::StatusOr<std::map<std::string, std::string>> ListPolicyRecords(
      const std::string& kind) override {
    return target_->ListPolicyRecords(kind);
  }
  std::string ClusterId() const override { return target_->ClusterId(); }

 private:
  std::unique_ptr<StateStore> owned_;  // null when forwarding to a borrowed store
  StateStore* const target_;
};

}  // namespace sluice::testing
