#include <sqlite3.h>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/store/sqlite/sqlite_state_store.h"
#include "coordinator/store/sqlite/sqlite_statements.h"
#include "coordinator/store/store_codec.h"

namespace sluice {
using sqlite_store::kPhaseColumns;
using sqlite_store::Stmt;
using sqlite_store::Transaction;

absl::Status SqliteStateStore::UpsertWorker(const WorkerInfo& w) {
  absl::MutexLock lock(&mu_);
  Stmt s(db_, "INSERT OR REPLACE INTO workers VALUES(?,?,?,?,?,?)");
  return s.Bind(w.worker_id)
      .Bind(w.host)
      .Bind(w.slots)
      .Bind(JoinLabels(w.labels))
      .Bind(w.version)
      .Bind(w.last_seen_ms)
      .Run();
}

absl::StatusOr<std::vector<WorkerInfo>> SqliteStateStore::ListWorkers() {
  absl::MutexLock lock(&mu_);
  Stmt s(
      db_,
      "SELECT worker_id, host, slots, labels, version, last_seen FROM workers ORDER BY worker_id");
  std::vector<WorkerInfo> out;
  while (true) {
    SLUICE_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back(DecodeWorker(s));
  }
  return out;
}

absl::Status SqliteStateStore::CreateSession(const SessionRecord& session) {
  absl::MutexLock lock(&mu_);
  latest_session_.reset();
  Transaction tx(db_);
  SLUICE_RETURN_IF_ERROR(tx.status());
  Stmt active(db_, "SELECT session_id FROM sessions WHERE state='active' LIMIT 1");
  SLUICE_ASSIGN_OR_RETURN(bool row, active.Step());
  if (row) {
    return absl::FailedPreconditionError(
        absl::StrCat("session ", active.Text(0), " is still active; stop it first"));
  }
  Stmt dup(db_, "SELECT 1 FROM sessions WHERE session_id=?");
  dup.Bind(session.session_id);
  SLUICE_ASSIGN_OR_RETURN(bool exists, dup.Step());
  if (exists) {
    return absl::AlreadyExistsError(absl::StrCat("session ", session.session_id, " exists"));
  }
  Stmt s(db_, "INSERT INTO sessions VALUES(?,?,?,?,?,?)");
  SLUICE_RETURN_IF_ERROR(s.Bind(session.session_id)
                             .Bind(SettingsToJson(session.settings))
                             .Bind(SessionStateName(session.state))
                             .Bind(session.started_at_ms)
                             .Bind(session.ended_at_ms)
                             .Bind(session.end_reason)
                             .Run());
  return tx.Commit();
}

absl::Status SqliteStateStore::EndSession(const std::string& session_id, SessionState state,
                                          int64_t ended_at_ms, const std::string& reason) {
  absl::MutexLock lock(&mu_);
  latest_session_.reset();
  Stmt s(db_,
         "UPDATE sessions SET state=?, ended_at=?, end_reason=? WHERE session_id=? AND "
         "state='active'");
  SLUICE_RETURN_IF_ERROR(
      s.Bind(SessionStateName(state)).Bind(ended_at_ms).Bind(reason).Bind(session_id).Run());
  if (sqlite3_changes(db_) == 0) {
    return absl::FailedPreconditionError(absl::StrCat("session ", session_id, " is not active"));
  }
  return absl::OkStatus();
}

namespace {
constexpr const char* kSessionColumns =
    "session_id, settings, state, started_at, ended_at, end_reason";
}  // namespace

absl::StatusOr<std::optional<SessionRecord>> SqliteStateStore::GetSession(
    const std::string& session_id) {
  absl::MutexLock lock(&mu_);
  const std::string sql =
      absl::StrCat("SELECT ", kSessionColumns, " FROM sessions WHERE session_id=?");
  Stmt s(db_, sql.c_str());
  s.Bind(session_id);
  SLUICE_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return std::optional<SessionRecord>();
  return std::optional<SessionRecord>(DecodeSession(s));
}

absl::StatusOr<std::optional<SessionRecord>> SqliteStateStore::LatestSession() {
  absl::MutexLock lock(&mu_);
  Stmt version(db_, "PRAGMA data_version");
  SLUICE_ASSIGN_OR_RETURN(bool have_version, version.Step());
  const int64_t data_version = have_version ? version.Int(0) : -1;
  if (latest_session_ && have_version && latest_session_->data_version == data_version) {
    return latest_session_->session;
  }
  const std::string sql = absl::StrCat(
      "SELECT ", kSessionColumns,
      " FROM sessions ORDER BY (state='active') DESC, started_at DESC, rowid DESC LIMIT 1");
  Stmt s(db_, sql.c_str());
  SLUICE_ASSIGN_OR_RETURN(bool row, s.Step());
  std::optional<SessionRecord> latest;
  if (row) latest = DecodeSession(s);
  if (have_version) latest_session_ = CachedLatestSession{data_version, latest};
  return latest;
}

absl::StatusOr<std::vector<AttemptRecord>> SqliteStateStore::ListAttempts(
    const std::string& session_id) {
  return ListAttemptRows(session_id, /*with_output=*/true);
}

absl::StatusOr<std::vector<AttemptRecord>> SqliteStateStore::ListAttemptsWithoutOutput(
    const std::string& session_id) {
  return ListAttemptRows(session_id, /*with_output=*/false);
}

namespace {

// The columns DecodeAttempt reads, then `seq` (column 20).
std::string AttemptColumns(bool with_output) {
  return absl::StrCat(
      "SELECT lease_id, run_id, phase_id, attempt, epoch, worker_id, session_id, outcome, "
      "exit_code, signal, duration_ms, error_text, fingerprint, telemetry_events, "
      "telemetry_by_type, ",
      with_output ? "stdout_tail, stderr_tail" : "'', ''",
      ", started_at, ended_at, telemetry_unknown, seq FROM attempts ");
}

}  // namespace

absl::StatusOr<AttemptBatch> SqliteStateStore::ListAttemptsFrom(const std::string& session_id,
                                                                int64_t cursor, int64_t limit) {
  SLUICE_RETURN_IF_ERROR(CheckAttemptsFromQuery(cursor, limit));
  absl::MutexLock lock(&mu_);
  // The cursor is the last `seq` read: AUTOINCREMENT only grows, and one
  // writer at a time commits, so a later attempt never gets a smaller one.
  // attempts_by_session(session_id, seq) makes this a range of the index.
  const std::string sql =
      absl::StrCat(AttemptColumns(/*with_output=*/false),
                   session_id.empty() ? "WHERE seq>? ORDER BY seq LIMIT ?"
                                      : "WHERE session_id=? AND seq>? ORDER BY seq LIMIT ?");
  Stmt s(db_, sql.c_str());
  if (!session_id.empty()) s.Bind(session_id);
  s.Bind(cursor);
  s.Bind(limit);
  AttemptBatch batch;
  batch.next_cursor = cursor;
  while (true) {
    SLUICE_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    batch.rows.push_back(DecodeAttempt(s));
    batch.next_cursor = s.Int(20);
  }
  return batch;
}

absl::StatusOr<std::vector<AttemptRecord>> SqliteStateStore::ListAttemptRows(
    const std::string& session_id, bool with_output) {
  absl::MutexLock lock(&mu_);
  const std::string cols = AttemptColumns(with_output);
  const std::string sql = session_id.empty()
                              ? absl::StrCat(cols, "ORDER BY seq")
                              : absl::StrCat(cols, "WHERE session_id=? ORDER BY seq");
  Stmt s(db_, sql.c_str());
  if (!session_id.empty()) s.Bind(session_id);
  std::vector<AttemptRecord> out;
  while (true) {
    SLUICE_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back(DecodeAttempt(s));
  }
  return out;
}

absl::StatusOr<int64_t> SqliteStateStore::CountSessionAttempts(const std::string& session_id) {
  absl::MutexLock lock(&mu_);
  // Kept by InsertAttempt (sqlite_statements.cc): no scan of the attempts.
  Stmt s(db_, "SELECT finished FROM session_attempts WHERE session_id=?");
  s.Bind(session_id);
  SLUICE_ASSIGN_OR_RETURN(bool row, s.Step());
  return row ? s.Int(0) : 0;
}

absl::StatusOr<std::vector<LateReportRecord>> SqliteStateStore::ListLateReports() {
  absl::MutexLock lock(&mu_);
  Stmt s(db_,
         "SELECT lease_id, worker_id, outcome, telemetry_events, error_text, received_at "
         "FROM late_reports ORDER BY received_at, lease_id");
  std::vector<LateReportRecord> out;
  while (true) {
    SLUICE_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    LateReportRecord r;
    r.lease_id = s.Text(0);
    r.worker_id = s.Text(1);
    const std::optional<Outcome> outcome = ParseOutcome(s.Text(2));
    if (!outcome) {
      return absl::InternalError(
          absl::StrCat("late report ", r.lease_id, " has outcome '", s.Text(2), "'"));
    }
    r.outcome = *outcome;
    r.telemetry_events = s.Int(3);
    r.error_text = s.Text(4);
    r.received_at_ms = s.Int(5);
    out.push_back(std::move(r));
  }
  return out;
}

absl::StatusOr<int64_t> SqliteStateStore::CountLateReports() {
  absl::MutexLock lock(&mu_);
  Stmt s(db_, "SELECT COUNT(*) FROM late_reports");
  SLUICE_ASSIGN_OR_RETURN(bool row, s.Step());
  return row ? s.Int(0) : 0;
}

namespace {

absl::StatusOr<std::vector<PhaseRecord>> CollectPhases(Stmt& s) {
  std::vector<PhaseRecord> out;
  while (true) {
    SLUICE_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back(DecodePhase(s));
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<PhaseRecord>> SqliteStateStore::ListPendingPhases(
    const std::string& run_id, int64_t limit) {
  absl::MutexLock lock(&mu_);
  const std::string sql = absl::StrCat("SELECT ", kPhaseColumns,
                                       " FROM phases WHERE run_id=? AND state='pending' "
                                       "ORDER BY priority DESC, phase_index, phase_id LIMIT ?");
  Stmt s(db_, sql.c_str());
  s.Bind(run_id).Bind(limit);
  return CollectPhases(s);
}

absl::StatusOr<std::vector<PhaseRecord>> SqliteStateStore::ListPendingLabelledPhases(
    int64_t limit) {
  absl::MutexLock lock(&mu_);
  // Walks the partial index phases_pending_labelled: only labelled phases.
  const std::string sql = absl::StrCat("SELECT ", kPhaseColumns,
                                       " FROM phases WHERE state='pending' AND labels<>'' "
                                       "ORDER BY run_id, priority DESC, phase_index, phase_id "
                                       "LIMIT ?");
  Stmt s(db_, sql.c_str());
  s.Bind(limit);
  return CollectPhases(s);
}

absl::Status SqliteStateStore::PutPolicyRecord(const std::string& kind, const std::string& key,
                                               const std::string& value) {
  absl::MutexLock lock(&mu_);
  Stmt s(db_, "INSERT OR REPLACE INTO policy VALUES(?,?,?)");
  return s.Bind(kind).Bind(key).Bind(value).Run();
}

absl::StatusOr<std::map<std::string, std::string>> SqliteStateStore::ListPolicyRecords(
    const std::string& kind) {
  absl::MutexLock lock(&mu_);
  Stmt s(db_, "SELECT key, value FROM policy WHERE kind=? ORDER BY key");
  s.Bind(kind);
  std::map<std::string, std::string> out;
  while (true) {
    SLUICE_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out[s.Text(0)] = s.Text(1);
  }
  return out;
}

}  // namespace sluice
