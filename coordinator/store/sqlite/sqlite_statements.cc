#include "coordinator/store/sqlite/sqlite_statements.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/status_macros.h"
#include "coordinator/store/store_codec.h"

namespace sluice::sqlite_store {

absl::Status SqlError(sqlite3* db, const std::string& what) {
  const int code = sqlite3_errcode(db);
  std::string msg = absl::StrCat("sqlite ", what, ": ", sqlite3_errmsg(db));
  if (code == SQLITE_BUSY || code == SQLITE_LOCKED || code == SQLITE_CANTOPEN ||
      code == SQLITE_IOERR || code == SQLITE_FULL) {
    return absl::UnavailableError(msg);
  }
  return absl::InternalError(msg);
}

namespace {

// Per connection: the idle statements of each SQL text (usually one; more
// when a caller had two of the same text live at once).
using TextStatements = absl::flat_hash_map<std::string, std::vector<sqlite3_stmt*>>;

struct Registry {
  absl::Mutex mu;
  absl::flat_hash_map<sqlite3*, TextStatements> by_connection ABSL_GUARDED_BY(mu);
};

Registry& TheRegistry() {
  static Registry* registry = new Registry();  // never destroyed: used at exit
  return *registry;
}

}  // namespace

sqlite3_stmt* StatementCache::Take(sqlite3* db, std::string_view sql) {
  Registry& r = TheRegistry();
  absl::MutexLock lock(&r.mu);
  auto conn = r.by_connection.find(db);
  if (conn == r.by_connection.end()) return nullptr;
  auto text = conn->second.find(absl::string_view(sql.data(), sql.size()));
  if (text == conn->second.end() || text->second.empty()) return nullptr;
  sqlite3_stmt* stmt = text->second.back();
  text->second.pop_back();
  return stmt;
}

void StatementCache::Give(sqlite3* db, std::string_view sql, sqlite3_stmt* stmt) {
  // A statement left mid-step would hold its read transaction open.
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
  Registry& r = TheRegistry();
  {
    absl::MutexLock lock(&r.mu);
    TextStatements& texts = r.by_connection[db];
    auto text = texts.find(absl::string_view(sql.data(), sql.size()));
    if (text != texts.end()) {
      text->second.push_back(stmt);
      return;
    }
    if (texts.size() < kMaxPerConnection) {
      texts[std::string(sql)].push_back(stmt);
      return;
    }
  }
  sqlite3_finalize(stmt);
}

void StatementCache::Forget(sqlite3* db) {
  TextStatements texts;
  {
    Registry& r = TheRegistry();
    absl::MutexLock lock(&r.mu);
    auto conn = r.by_connection.find(db);
    if (conn == r.by_connection.end()) return;
    texts = std::move(conn->second);
    r.by_connection.erase(conn);
  }
  for (auto& [sql, statements] : texts) {
    for (sqlite3_stmt* stmt : statements) sqlite3_finalize(stmt);
  }
}

size_t StatementCache::Kept(sqlite3* db) {
  Registry& r = TheRegistry();
  absl::MutexLock lock(&r.mu);
  auto conn = r.by_connection.find(db);
  if (conn == r.by_connection.end()) return 0;
  size_t n = 0;
  for (const auto& [sql, statements] : conn->second) n += statements.size();
  return n;
}

absl::Status Exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err != nullptr ? err : "unknown error";
    sqlite3_free(err);
    return absl::InternalError(absl::StrCat("sqlite: ", msg, " in: ", sql));
  }
  return absl::OkStatus();
}

const char* StateColumn(PhaseState s) {
  switch (s) {
    case PhaseState::kPending:
      return "pending";
    case PhaseState::kLeased:
      return "leased";
    case PhaseState::kSucceeded:
      return "succeeded";
    case PhaseState::kFailed:
      return "failed";
  }
  return "pending";
}

absl::Status BumpRun(sqlite3* db, const std::string& run_id, PhaseState from, PhaseState to,
                     int64_t attempts, int64_t successes, int64_t timeouts, int64_t events,
                     int64_t run_ms, int64_t unknown_telemetry_ms) {
  Stmt ins(db, "INSERT OR IGNORE INTO runs VALUES(?,0,0,0,0,0,0,0,0,0,0,0)");
  SLUICE_RETURN_IF_ERROR(ins.Bind(run_id).Run());
  int64_t d[4] = {0, 0, 0, 0};
  if (from != to) {
    d[static_cast<int>(from)] -= 1;
    d[static_cast<int>(to)] += 1;
  }
  if (from != to) {
    Stmt counts(db,
                "UPDATE meta SET value=value+(CASE key WHEN ? THEN -1 ELSE 1 END) "
                "WHERE key IN (?, ?)");
    const std::string f = absl::StrCat("phases_", StateColumn(from));
    const std::string t = absl::StrCat("phases_", StateColumn(to));
    SLUICE_RETURN_IF_ERROR(counts.Bind(f).Bind(f).Bind(t).Run());
  }
  Stmt upd(db,
           "UPDATE runs SET pending=pending+?, leased=leased+?, succeeded=succeeded+?, "
           "failed=failed+?, attempts=attempts+?, successes=successes+?, timeouts=timeouts+?, "
           "telemetry_events=telemetry_events+?, run_ms=run_ms+?, "
           "unknown_telemetry_ms=unknown_telemetry_ms+? WHERE run_id=?");
  SLUICE_RETURN_IF_ERROR(upd.Bind(d[0])
                             .Bind(d[1])
                             .Bind(d[2])
                             .Bind(d[3])
                             .Bind(attempts)
                             .Bind(successes)
                             .Bind(timeouts)
                             .Bind(events)
                             .Bind(run_ms)
                             .Bind(unknown_telemetry_ms)
                             .Bind(run_id)
                             .Run());
  if (from != to && (from == PhaseState::kPending || to == PhaseState::kPending)) {
    return RefreshBestPending(db, run_id);
  }
  return absl::OkStatus();
}

absl::Status RefreshBestPending(sqlite3* db, const std::string& run_id) {
  static const std::string sql = absl::StrCat(kSetBestPendingPriority, " WHERE run_id=?");
  Stmt s(db, sql);
  return s.Bind(run_id).Run();
}

absl::StatusOr<int64_t> NextEpoch(sqlite3* db) {
  Stmt upd(db, "UPDATE meta SET value=value+1 WHERE key='epoch' RETURNING value");
  SLUICE_ASSIGN_OR_RETURN(bool row, upd.Step());
  if (!row) return absl::InternalError("meta row 'epoch' missing");
  return upd.Int(0);
}

absl::StatusOr<std::optional<PhaseRecord>> LoadPhase(sqlite3* db, const std::string& run_id,
                                                     const std::string& phase_id) {
  const std::string sql =
      absl::StrCat("SELECT ", kPhaseColumns, " FROM phases WHERE run_id=? AND phase_id=?");
  Stmt s(db, sql.c_str());
  s.Bind(run_id).Bind(phase_id);
  SLUICE_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return std::optional<PhaseRecord>();
  return std::optional<PhaseRecord>(DecodePhase(s));
}

namespace {

absl::Status InsertAttemptRow(sqlite3* db, const AttemptRecord& a) {
  Stmt s(db,
         "INSERT INTO attempts(lease_id, run_id, phase_id, attempt, epoch, worker_id, session_id, "
         "outcome, exit_code, signal, duration_ms, error_text, fingerprint, telemetry_events, "
         "telemetry_by_type, stdout_tail, stderr_tail, started_at, ended_at, telemetry_unknown) "
         "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
  return s.Bind(a.lease_id)
      .Bind(a.run_id)
      .Bind(a.phase_id)
      .Bind(a.attempt)
      .Bind(a.epoch)
      .Bind(a.worker_id)
      .Bind(a.session_id)
      .Bind(OutcomeName(a.outcome))
      .Bind(a.exit_code)
      .Bind(a.signal)
      .Bind(a.duration_ms)
      .Bind(a.error_text)
      .Bind(a.fingerprint)
      .Bind(a.telemetry_events)
      .Bind(TypesToJson(a.telemetry_by_type))
      .Bind(a.stdout_tail)
      .Bind(a.stderr_tail)
      .Bind(a.started_at_ms)
      .Bind(a.ended_at_ms)
      .Bind(int64_t{a.telemetry_unknown ? 1 : 0})
      .Run();
}

}  // namespace

absl::Status InsertAttempt(sqlite3* db, const AttemptRecord& a) {
  SLUICE_RETURN_IF_ERROR(InsertAttemptRow(db, a));
  if (!CountsTowardSessionProgress(a.outcome)) return absl::OkStatus();
  // The session's progress, read by every status and, with a batch size, by
  // every lease: kept here rather than counted over the session's attempts.
  Stmt count(db,
             "INSERT INTO session_attempts(session_id, finished) VALUES(?, 1) "
             "ON CONFLICT(session_id) DO UPDATE SET finished=finished+1");
  return count.Bind(a.session_id).Run();
}

void ApplyDecision(const PhaseDecision& d, PhaseRecord& p) {
  p.state = d.next;
  p.attempts = static_cast<int32_t>(d.counters.attempts);
  p.requeues = static_cast<int32_t>(d.counters.requeues);
  if (d.final_outcome) p.final_outcome = d.final_outcome;
}

absl::Status UpdatePhaseState(sqlite3* db, const PhaseRecord& p) {
  Stmt s(db,
         "UPDATE phases SET state=?, attempts=?, requeues=?, current_lease_id=?, final_outcome=?, "
         "telemetry_events=?, updated_at=? WHERE run_id=? AND phase_id=?");
  return s.Bind(StateColumn(p.state))
      .Bind(p.attempts)
      .Bind(p.requeues)
      .Bind(p.current_lease_id)
      .Bind(p.final_outcome ? OutcomeName(*p.final_outcome) : std::string_view())
      .Bind(p.telemetry_events)
      .Bind(p.updated_at_ms)
      .Bind(p.spec.run_id)
      .Bind(p.spec.phase_id)
      .Run();
}
}  // namespace sluice::sqlite_store
