// The SQLite store's bounded reads for the web view: a page of runs sorted
// and cut by SQLite over the `runs` aggregates, and one phase's attempts
// through the attempts_by_phase index.
#include <sqlite3.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/store/sqlite/sqlite_state_store.h"
#include "coordinator/store/sqlite/sqlite_statements.h"
#include "coordinator/store/store_codec.h"

namespace sluice {
using sqlite_store::Stmt;

namespace {

constexpr const char* kRunColumns =
    "run_id, pending, leased, succeeded, failed, attempts, successes, timeouts, "
    "telemetry_events, run_ms, unknown_telemetry_ms";

// The ORDER BY column for a checked sort key.
std::string SortColumn(const std::string& sort) {
  if (sort == "events") return "telemetry_events";
  if (sort == "yield") {
    // RunYield in state_store.cc: over the run time with known telemetry.
    return "(CASE WHEN run_ms - unknown_telemetry_ms > 0 THEN telemetry_events * 60000.0 / "
           "(run_ms - unknown_telemetry_ms) ELSE 0.0 END)";
  }
  return sort;  // run_id, attempts, successes, pending, failed, run_ms: column names
}

// WHERE for the query's filters; binds nothing (BindFilters does, in order).
std::string Where(const RunStatsQuery& q) {
  std::string where = " WHERE 1";
  // A prefix is a range of the primary key, so SQLite seeks instead of scanning.
  if (!q.run_id_prefix.empty()) absl::StrAppend(&where, " AND run_id >= ? AND run_id < ?");
  if (!q.contains.empty()) absl::StrAppend(&where, " AND instr(run_id, ?) > 0");
  if (q.state == "active") absl::StrAppend(&where, " AND pending + leased > 0");
  if (q.state == "done") absl::StrAppend(&where, " AND pending + leased = 0");
  if (q.state == "failed") absl::StrAppend(&where, " AND failed > 0");
  return where;
}

void BindFilters(Stmt& s, const RunStatsQuery& q) {
  if (!q.run_id_prefix.empty()) {
    // Ids are UTF-8 text without NUL; every id starting with the prefix
    // sorts below the prefix followed by the highest byte.
    s.Bind(q.run_id_prefix).Bind(q.run_id_prefix + "\xff");
  }
  if (!q.contains.empty()) s.Bind(q.contains);
}

}  // namespace

absl::StatusOr<RunStatsPage> SqliteStateStore::ListRunStatsPage(const RunStatsQuery& q) {
  SLUICE_RETURN_IF_ERROR(CheckRunStatsQuery(q));
  const std::string where = Where(q);
  absl::MutexLock lock(&mu_);
  RunStatsPage page;
  {
    Stmt s(db_, absl::StrCat("SELECT '', COALESCE(SUM(pending),0), COALESCE(SUM(leased),0), "
                             "COALESCE(SUM(succeeded),0), COALESCE(SUM(failed),0), "
                             "COALESCE(SUM(attempts),0), COALESCE(SUM(successes),0), "
                             "COALESCE(SUM(timeouts),0), COALESCE(SUM(telemetry_events),0), "
                             "COALESCE(SUM(run_ms),0), COALESCE(SUM(unknown_telemetry_ms),0), "
                             "COUNT(*) FROM runs",
                             where)
                    .c_str());
    BindFilters(s, q);
    SLUICE_ASSIGN_OR_RETURN(bool row, s.Step());
    if (row) {
      page.sum = DecodeRunStats(s);
      page.total = s.Int(11);
    }
  }
  const std::string dir = q.descending ? " DESC" : " ASC";
  std::string order = absl::StrCat(" ORDER BY ", SortColumn(q.sort), dir);
  if (q.sort != "run_id") absl::StrAppend(&order, ", run_id ASC");
  Stmt s(db_, absl::StrCat("SELECT ", kRunColumns, " FROM runs", where, order, " LIMIT ? OFFSET ?")
                  .c_str());
  BindFilters(s, q);
  s.Bind(q.limit).Bind(q.offset);
  while (true) {
    SLUICE_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    page.rows.push_back(DecodeRunStats(s));
  }
  return page;
}

absl::StatusOr<AttemptPage> SqliteStateStore::ListPhaseAttempts(const PhaseKey& key, int64_t offset,
                                                                int64_t limit) {
  if (offset < 0 || limit < 0) return absl::InvalidArgumentError("offset and limit >= 0");
  absl::MutexLock lock(&mu_);
  AttemptPage page;
  {
    Stmt s(db_, "SELECT COUNT(*) FROM attempts WHERE run_id=? AND phase_id=?");
    s.Bind(key.run_id).Bind(key.phase_id);
    SLUICE_ASSIGN_OR_RETURN(bool row, s.Step());
    if (row) page.total = s.Int(0);
  }
  Stmt s(db_,
         "SELECT lease_id, run_id, phase_id, attempt, epoch, worker_id, session_id, outcome, "
         "exit_code, signal, duration_ms, error_text, fingerprint, telemetry_events, "
         "telemetry_by_type, stdout_tail, stderr_tail, started_at, ended_at, telemetry_unknown "
         "FROM attempts WHERE run_id=? AND phase_id=? ORDER BY seq DESC LIMIT ? OFFSET ?");
  s.Bind(key.run_id).Bind(key.phase_id).Bind(limit).Bind(offset);
  while (true) {
    SLUICE_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    page.rows.push_back(DecodeAttempt(s));
  }
  return page;
}

absl::Status SqliteStateStore::RemoveWorker(const std::string& worker_id) {
  absl::MutexLock lock(&mu_);
  Stmt s(db_, "DELETE FROM workers WHERE worker_id=?");
  return s.Bind(worker_id).Run();
}

}  // namespace sluice
