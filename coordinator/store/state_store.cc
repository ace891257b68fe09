#include "coordinator/store/state_store.h"

#include <algorithm>
#include <optional>
#include <random>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "coordinator/store/active_lease.h"

namespace sluice {
namespace {

// Events per minute of the run time with known telemetry (0 without such
// time): the "yield" sort key. SQLite's ListRunStatsPage sorts by the same.
double RunYield(const RunStats& r) {
  const int64_t known_ms = r.run_ms - r.unknown_telemetry_ms;
  return known_ms > 0
             ? static_cast<double>(r.telemetry_events) * 60000.0 / static_cast<double>(known_ms)
             : 0.0;
}

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

absl::Status CheckRunStatsQuery(const RunStatsQuery& q) {
  static const char* const kSorts[] = {"run_id", "attempts", "successes", "events",
                                       "yield",  "pending",  "failed",    "run_ms"};
  if (std::find_if(std::begin(kSorts), std::end(kSorts),
                   [&](const char* k) { return q.sort == k; }) == std::end(kSorts)) {
    return absl::InvalidArgumentError(absl::StrCat("sort: unknown key \"", q.sort, "\""));
  }
  if (!q.state.empty() && q.state != "active" && q.state != "done" && q.state != "failed") {
    return absl::InvalidArgumentError("state must be active, done or failed");
  }
  if (q.offset < 0 || q.limit < 0) return absl::InvalidArgumentError("offset and limit >= 0");
  return absl::OkStatus();
}

double RunStatsSortKey(const RunStats& r, const std::string& sort) {
  if (sort == "attempts") return static_cast<double>(r.attempts);
  if (sort == "successes") return static_cast<double>(r.successes);
  if (sort == "events") return static_cast<double>(r.telemetry_events);
  if (sort == "yield") return RunYield(r);
  if (sort == "pending") return static_cast<double>(r.pending);
  if (sort == "failed") return static_cast<double>(r.failed);
  return static_cast<double>(r.run_ms);
}

void AddRunStats(RunStats& into, const RunStats& s) {
  into.pending += s.pending;
  into.leased += s.leased;
  into.succeeded += s.succeeded;
  into.failed += s.failed;
  into.attempts += s.attempts;
  into.successes += s.successes;
  into.timeouts += s.timeouts;
  into.telemetry_events += s.telemetry_events;
  into.run_ms += s.run_ms;
  into.unknown_telemetry_ms += s.unknown_telemetry_ms;
}

absl::StatusOr<RunStatsPage> StateStore::ListRunStatsPage(const RunStatsQuery& q) {
  SLUICE_RETURN_IF_ERROR(CheckRunStatsQuery(q));
  SLUICE_ASSIGN_OR_RETURN(std::vector<RunStats> runs, ListRunStats());
  std::erase_if(runs, [&q](const RunStats& r) {
    if (!r.run_id.starts_with(q.run_id_prefix)) return true;
    if (!q.contains.empty() && !absl::StrContains(r.run_id, q.contains)) return true;
    if (q.state == "active") return r.pending + r.leased == 0;
    if (q.state == "done") return r.pending + r.leased > 0;
    if (q.state == "failed") return r.failed == 0;
    return false;
  });
  RunStatsPage page;
  page.total = static_cast<int64_t>(runs.size());
  for (RunStats& r : runs) {
    r.best_pending_priority = 0;
    AddRunStats(page.sum, r);
  }
  std::sort(runs.begin(), runs.end(), [&q](const RunStats& a, const RunStats& b) {
    if (q.sort != "run_id") {
      const double ka = RunStatsSortKey(a, q.sort), kb = RunStatsSortKey(b, q.sort);
      if (ka != kb) return q.descending ? ka > kb : ka < kb;
      return a.run_id < b.run_id;
    }
    return q.descending ? a.run_id > b.run_id : a.run_id < b.run_id;
  });
  const size_t begin = std::min(runs.size(), static_cast<size_t>(q.offset));
  const size_t end = std::min(runs.size(), begin + static_cast<size_t>(q.limit));
  page.rows.assign(std::make_move_iterator(runs.begin() + static_cast<ptrdiff_t>(begin)),
                   std::make_move_iterator(runs.begin() + static_cast<ptrdiff_t>(end)));
  return page;
}

absl::StatusOr<AttemptPage> StateStore::ListPhaseAttempts(const PhaseKey& key, int64_t offset,
                                                          int64_t limit) {
  if (offset < 0 || limit < 0) return absl::InvalidArgumentError("offset and limit >= 0");
  SLUICE_ASSIGN_OR_RETURN(std::vector<AttemptRecord> all, ListAttempts(""));
  AttemptPage page;
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    if (it->run_id != key.run_id || it->phase_id != key.phase_id) continue;
    if (page.total >= offset && page.total < offset + limit) page.rows.push_back(std::move(*it));
    ++page.total;
  }
  return page;
}

absl::Status StateStore::RemoveWorker(const std::string&) {
  return absl::UnimplementedError("this store cannot forget workers");
}

std::string NewClusterId() {
  std::random_device rd;
  const uint64_t bits = (static_cast<uint64_t>(rd()) << 32) | rd();
  return absl::StrFormat("cl-%016x", bits);
}

std::vector<absl::StatusOr<ReportResult>> StateStore::RecordReports(
    const std::vector<ReportParams>& batch) {
  std::vector<absl::StatusOr<ReportResult>> answers;
  answers.reserve(batch.size());
  for (const ReportParams& params : batch) answers.push_back(RecordReport(params));
  return answers;
}

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

absl::StatusOr<bool> StateStore::IsLeaseActive(const std::string& lease_id) {
  SLUICE_ASSIGN_OR_RETURN(std::optional<LeaseGrant> active, FindActiveLease(*this, lease_id));
  return active.has_value();
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

absl::Status CheckAttemptsFromQuery(int64_t cursor, int64_t limit) {
  if (cursor < 0 || limit < 1) {
    return absl::InvalidArgumentError(absl::StrCat("attempts from cursor ", cursor, ", limit ",
                                                   limit, ": need cursor >= 0 and limit >= 1"));
  }
  return absl::OkStatus();
}

absl::StatusOr<AttemptBatch> StateStore::ListAttemptsFrom(const std::string& session_id,
                                                          int64_t cursor, int64_t limit) {
  SLUICE_RETURN_IF_ERROR(CheckAttemptsFromQuery(cursor, limit));
  SLUICE_ASSIGN_OR_RETURN(std::vector<AttemptRecord> all, ListAttemptsWithoutOutput(session_id));
  AttemptBatch batch;
  batch.next_cursor = cursor;  // here: how many were read
  for (auto i = static_cast<size_t>(cursor);
       i < all.size() && batch.rows.size() < static_cast<size_t>(limit); ++i) {
    batch.rows.push_back(std::move(all[i]));
    ++batch.next_cursor;
  }
  return batch;
}

absl::Status ReadAttemptsOn(StateStore& store, const std::string& session_id, int64_t* cursor,
                            absl::FunctionRef<void(const AttemptRecord&)> visit, int64_t chunk) {
  while (true) {
    SLUICE_ASSIGN_OR_RETURN(AttemptBatch batch, store.ListAttemptsFrom(session_id, *cursor, chunk));
    for (const AttemptRecord& a : batch.rows) visit(a);
    *cursor = batch.next_cursor;
    if (static_cast<int64_t>(batch.rows.size()) < chunk) return absl::OkStatus();
  }
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
