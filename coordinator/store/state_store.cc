#include "coordinator/store/state_store.h"

#include "common/status_macros.h"

namespace sluice {
namespace {

class BufferedImport final : public PhaseImport {
 public:
  explicit BufferedImport(StateStore& store) : store_(store) {}
  absl::Status Add(const std::vector<PhaseSpec>& phases) override {
    phases_.insert(phases_.end(), phases.begin(), phases.end());
    return absl::OkStatus();
  }
  absl::StatusOr<ImportResult> Commit() override { return store_.ImportPhases(phases_); }

 private:
  StateStore& store_;
  std::vector<PhaseSpec> phases_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<PhaseImport>> StateStore::BeginImport() {
  return std::make_unique<BufferedImport>(*this);
}

absl::StatusOr<std::optional<RunStats>> StateStore::GetRunStats(const std::string& run_id) {
  SLUICE_ASSIGN_OR_RETURN(std::vector<RunStats> runs, ListRunStats());
  for (RunStats& r : runs) {
    if (r.run_id == run_id) return std::optional<RunStats>(std::move(r));
  }
  return std::optional<RunStats>();
}

absl::StatusOr<std::vector<AttemptRecord>> StateStore::ListAttemptsWithoutOutput(
    const std::string& session_id) {
  SLUICE_ASSIGN_OR_RETURN(std::vector<AttemptRecord> attempts, ListAttempts(session_id));
  for (AttemptRecord& a : attempts) {
    a.stdout_tail.clear();
    a.stderr_tail.clear();
  }
  return attempts;
}

absl::StatusOr<std::vector<PhaseRecord>> StateStore::ListPendingLabelledPhases(int64_t limit) {
  std::vector<PhaseRecord> out;
  SLUICE_ASSIGN_OR_RETURN(std::vector<RunStats> runs, ListRunStats());
  for (const RunStats& run : runs) {
    if (run.pending <= 0) continue;
    SLUICE_ASSIGN_OR_RETURN(std::vector<PhaseRecord> pending,
                            ListPendingPhases(run.run_id, run.pending));
    for (PhaseRecord& p : pending) {
      if (static_cast<int64_t>(out.size()) >= limit) return out;
      if (!p.spec.labels.empty()) out.push_back(std::move(p));
    }
  }
  return out;
}

}  // namespace sluice
