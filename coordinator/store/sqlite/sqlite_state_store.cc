#include "coordinator/store/sqlite/sqlite_state_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "coordinator/store/store_codec.h"
#include "nlohmann/json.hpp"

namespace sluice {
namespace {

constexpr int kSchemaVersion = 1;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS phases(
  run_id TEXT NOT NULL, phase_id TEXT NOT NULL,
  phase_index INTEGER NOT NULL, priority INTEGER NOT NULL,
  last_error TEXT NOT NULL, labels TEXT NOT NULL, metadata TEXT NOT NULL,
  state TEXT NOT NULL, attempts INTEGER NOT NULL, requeues INTEGER NOT NULL,
  current_lease_id TEXT NOT NULL, final_outcome TEXT NOT NULL,
  telemetry_events INTEGER NOT NULL, updated_at INTEGER NOT NULL,
  PRIMARY KEY(run_id, phase_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS phases_by_rank ON phases(run_id, state, priority DESC, phase_index, phase_id);
CREATE TABLE IF NOT EXISTS runs(
  run_id TEXT PRIMARY KEY, pending INTEGER NOT NULL, leased INTEGER NOT NULL,
  succeeded INTEGER NOT NULL, failed INTEGER NOT NULL, attempts INTEGER NOT NULL,
  successes INTEGER NOT NULL, timeouts INTEGER NOT NULL, telemetry_events INTEGER NOT NULL,
  run_ms INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases(
  lease_id TEXT PRIMARY KEY, run_id TEXT NOT NULL, phase_id TEXT NOT NULL, attempt INTEGER NOT NULL,
  epoch INTEGER NOT NULL, worker_id TEXT NOT NULL, session_id TEXT NOT NULL,
  timeout_seconds INTEGER NOT NULL, leased_at INTEGER NOT NULL, expires_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS leases_by_expiry ON leases(expires_at);
CREATE TABLE IF NOT EXISTS attempts(
  seq INTEGER PRIMARY KEY AUTOINCREMENT, lease_id TEXT NOT NULL UNIQUE,
  run_id TEXT NOT NULL, phase_id TEXT NOT NULL, attempt INTEGER NOT NULL, epoch INTEGER NOT NULL,
  worker_id TEXT NOT NULL, session_id TEXT NOT NULL, outcome TEXT NOT NULL,
  exit_code INTEGER NOT NULL, signal INTEGER NOT NULL, duration_ms INTEGER NOT NULL,
  error_text TEXT NOT NULL, fingerprint TEXT NOT NULL, telemetry_events INTEGER NOT NULL,
  telemetry_by_type TEXT NOT NULL, stdout_tail TEXT NOT NULL, stderr_tail TEXT NOT NULL,
  started_at INTEGER NOT NULL, ended_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS attempts_by_session ON attempts(session_id, seq);
CREATE TABLE IF NOT EXISTS late_reports(
  lease_id TEXT PRIMARY KEY, worker_id TEXT NOT NULL, outcome TEXT NOT NULL,
  telemetry_events INTEGER NOT NULL, error_text TEXT NOT NULL, received_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS workers(
  worker_id TEXT PRIMARY KEY, host TEXT NOT NULL, slots INTEGER NOT NULL, labels TEXT NOT NULL,
  version TEXT NOT NULL, last_seen INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sessions(
  session_id TEXT PRIMARY KEY, settings TEXT NOT NULL, state TEXT NOT NULL,
  started_at INTEGER NOT NULL, ended_at INTEGER NOT NULL, end_reason TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS sessions_by_start ON sessions(started_at);
CREATE TABLE IF NOT EXISTS policy(
  kind TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY(kind, key)) WITHOUT ROWID;
)sql";

absl::Status SqlError(sqlite3* db, const std::string& what) {
  const int code = sqlite3_errcode(db);
  std::string msg = absl::StrCat("sqlite ", what, ": ", sqlite3_errmsg(db));
  if (code == SQLITE_BUSY || code == SQLITE_LOCKED || code == SQLITE_CANTOPEN ||
      code == SQLITE_IOERR || code == SQLITE_FULL) {
    return absl::UnavailableError(msg);
  }
  return absl::InternalError(msg);
}

// A prepared statement with positional binding; finalized on destruction.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    status_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) == SQLITE_OK ? absl::OkStatus()
                                                                            : SqlError(db, sql);
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  const absl::Status& status() const { return status_; }

  Stmt& Bind(std::string_view v) {
    // An empty view may have a null data(), which SQLite would bind as NULL.
    sqlite3_bind_text(stmt_, ++bound_, v.data() == nullptr ? "" : v.data(),
                      static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& Bind(const std::string& v) { return Bind(std::string_view(v)); }
  Stmt& Bind(const char* v) { return Bind(std::string_view(v)); }
  Stmt& Bind(int64_t v) {
    sqlite3_bind_int64(stmt_, ++bound_, v);
    return *this;
  }
  Stmt& Bind(int32_t v) { return Bind(static_cast<int64_t>(v)); }

  // SQLITE_ROW -> true, SQLITE_DONE -> false, error -> status.
  absl::StatusOr<bool> Step() {
    if (!status_.ok()) return status_;
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return SqlError(db_, "step");
  }
  absl::Status Run() {
    auto r = Step();
    return r.ok() ? absl::OkStatus() : r.status();
  }

  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  int32_t Int32(int col) const { return static_cast<int32_t>(sqlite3_column_int64(stmt_, col)); }
  std::string Text(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    return p == nullptr ? std::string()
                        : std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int bound_ = 0;
  absl::Status status_;
};

absl::Status Exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err != nullptr ? err : "unknown error";
    sqlite3_free(err);
    return absl::InternalError(absl::StrCat("sqlite: ", msg, " in: ", sql));
  }
  return absl::OkStatus();
}

// BEGIN IMMEDIATE ... COMMIT, rolled back unless Commit() succeeds.
class Transaction {
 public:
  explicit Transaction(sqlite3* db) : db_(db) {
    begin_ = sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK
                 ? absl::OkStatus()
                 : SqlError(db, "begin");
  }
  ~Transaction() {
    if (begin_.ok() && !committed_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  const absl::Status& status() const { return begin_; }
  absl::Status Commit() {
    if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
      return SqlError(db_, "commit");
    }
    committed_ = true;
    return absl::OkStatus();
  }

 private:
  sqlite3* db_;
  absl::Status begin_;
  bool committed_ = false;
};

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

// Adds deltas to a run's aggregate row, creating it when needed.
absl::Status BumpRun(sqlite3* db, const std::string& run_id, PhaseState from, PhaseState to,
                     int64_t attempts, int64_t successes, int64_t timeouts, int64_t events,
                     int64_t run_ms) {
  Stmt ins(db, "INSERT OR IGNORE INTO runs VALUES(?,0,0,0,0,0,0,0,0,0)");
  SLUICE_RETURN_IF_ERROR(ins.Bind(run_id).Run());
  int64_t d[4] = {0, 0, 0, 0};
  if (from != to) {
    d[static_cast<int>(from)] -= 1;
    d[static_cast<int>(to)] += 1;
  }
  Stmt upd(db,
           "UPDATE runs SET pending=pending+?, leased=leased+?, succeeded=succeeded+?, "
           "failed=failed+?, attempts=attempts+?, successes=successes+?, timeouts=timeouts+?, "
           "telemetry_events=telemetry_events+?, run_ms=run_ms+? WHERE run_id=?");
  return upd.Bind(d[0])
      .Bind(d[1])
      .Bind(d[2])
      .Bind(d[3])
      .Bind(attempts)
      .Bind(successes)
      .Bind(timeouts)
      .Bind(events)
      .Bind(run_ms)
      .Bind(run_id)
      .Run();
}

absl::StatusOr<int64_t> NextEpoch(sqlite3* db) {
  Stmt upd(db, "UPDATE meta SET value=value+1 WHERE key='epoch' RETURNING value");
  SLUICE_ASSIGN_OR_RETURN(bool row, upd.Step());
  if (!row) return absl::InternalError("meta row 'epoch' missing");
  return upd.Int(0);
}

constexpr const char* kPhaseColumns =
    "run_id, phase_id, phase_index, priority, last_error, labels, metadata, state, attempts, "
    "requeues, current_lease_id, final_outcome, telemetry_events, updated_at";

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

constexpr const char* kLeaseColumns =
    "lease_id, run_id, phase_id, attempt, epoch, worker_id, session_id, timeout_seconds, "
    "leased_at, expires_at";

absl::Status InsertAttempt(sqlite3* db, const AttemptRecord& a) {
  Stmt s(db,
         "INSERT INTO attempts(lease_id, run_id, phase_id, attempt, epoch, worker_id, session_id, "
         "outcome, exit_code, signal, duration_ms, error_text, fingerprint, telemetry_events, "
         "telemetry_by_type, stdout_tail, stderr_tail, started_at, ended_at) "
         "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
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
      .Run();
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

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteStateStore>> SqliteStateStore::Open(const std::string& path) {
  if (path != ":memory:") {
    const std::filesystem::path parent = std::filesystem::path(path).parent_path();
    std::error_code ec;
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    if (ec) {
      return absl::UnavailableError(
          absl::StrCat("cannot create directory ", parent.string(), ": ", ec.message()));
    }
  }
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db != nullptr ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return absl::UnavailableError(absl::StrCat("cannot open sqlite store ", path, ": ", msg));
  }
  std::unique_ptr<SqliteStateStore> store(new SqliteStateStore(db));
  SLUICE_RETURN_IF_ERROR(store->InitSchema());
  return store;
}

absl::StatusOr<std::unique_ptr<SqliteStateStore>> SqliteStateStore::OpenInMemoryCopy(
    const std::string& path) {
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<SqliteStateStore> copy, Open(":memory:"));
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return copy;
  sqlite3* source = nullptr;
  if (sqlite3_open_v2(path.c_str(), &source, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    std::string msg = source != nullptr ? sqlite3_errmsg(source) : "out of memory";
    sqlite3_close(source);
    return absl::UnavailableError(absl::StrCat("cannot open sqlite store ", path, ": ", msg));
  }
  absl::Status status;
  {
    absl::MutexLock lock(&copy->mu_);
    sqlite3_backup* backup = sqlite3_backup_init(copy->db_, "main", source, "main");
    if (backup == nullptr) {
      status = SqlError(copy->db_, "backup");
    } else {
      sqlite3_busy_timeout(source, 10'000);
      const int rc = sqlite3_backup_step(backup, -1);
      sqlite3_backup_finish(backup);
      if (rc != SQLITE_DONE) status = SqlError(copy->db_, "backup step");
    }
  }
  sqlite3_close(source);
  if (!status.ok()) return status;
  return copy;
}

SqliteStateStore::~SqliteStateStore() { sqlite3_close(db_); }

absl::Status SqliteStateStore::InitSchema() {
  absl::MutexLock lock(&mu_);
  sqlite3_busy_timeout(db_, 10'000);
  // Two processes opening a new file at once (a drain and `sluice status
  // --store`) can race on the switch to WAL, which SQLite answers with
  // SQLITE_BUSY without calling the busy handler: retry it for a while.
  for (int tries = 0;; ++tries) {
    absl::Status wal = Exec(db_, "PRAGMA journal_mode=WAL");
    if (wal.ok()) break;
    const int code = sqlite3_errcode(db_);
    if ((code != SQLITE_BUSY && code != SQLITE_LOCKED) || tries >= 200) return wal;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  SLUICE_RETURN_IF_ERROR(Exec(db_, "PRAGMA synchronous=NORMAL"));
  Transaction tx(db_);
  SLUICE_RETURN_IF_ERROR(tx.status());
  SLUICE_RETURN_IF_ERROR(Exec(db_, kSchema));
  SLUICE_RETURN_IF_ERROR(Exec(db_, "INSERT OR IGNORE INTO meta VALUES('epoch', 0)"));
  {
    Stmt v(db_, "INSERT OR IGNORE INTO meta VALUES('schema_version', ?)");
    SLUICE_RETURN_IF_ERROR(v.Bind(kSchemaVersion).Run());
    Stmt check(db_, "SELECT value FROM meta WHERE key='schema_version'");
    SLUICE_ASSIGN_OR_RETURN(bool row, check.Step());
    if (!row || check.Int(0) != kSchemaVersion) {
      return absl::FailedPreconditionError(absl::StrCat(
          "store schema version ", row ? check.Int(0) : 0, ", this build knows ", kSchemaVersion));
    }
  }
  return tx.Commit();
}

absl::StatusOr<ImportResult> SqliteStateStore::ImportPhases(const std::vector<PhaseSpec>& phases) {
  absl::MutexLock lock(&mu_);
  Transaction tx(db_);
  SLUICE_RETURN_IF_ERROR(tx.status());
  ImportResult result;
  for (const PhaseSpec& spec : phases) {
    SLUICE_ASSIGN_OR_RETURN(std::optional<PhaseRecord> existing,
                            LoadPhase(db_, spec.run_id, spec.phase_id));
    const std::string labels = JoinLabels(spec.labels);
    if (!existing) {
      Stmt ins(db_, "INSERT INTO phases VALUES(?,?,?,?,?,?,?,'pending',0,0,'','',0,0)");
      SLUICE_RETURN_IF_ERROR(ins.Bind(spec.run_id)
                                 .Bind(spec.phase_id)
                                 .Bind(spec.phase_index)
                                 .Bind(spec.priority)
                                 .Bind(spec.last_error)
                                 .Bind(labels)
                                 .Bind(spec.metadata_json)
                                 .Run());
      SLUICE_RETURN_IF_ERROR(
          BumpRun(db_, spec.run_id, PhaseState::kPending, PhaseState::kPending, 0, 0, 0, 0, 0));
      Stmt pend(db_, "UPDATE runs SET pending=pending+1 WHERE run_id=?");
      SLUICE_RETURN_IF_ERROR(pend.Bind(spec.run_id).Run());
      ++result.inserted;
      continue;
    }
    const PhaseSpec& old = existing->spec;
    if (old.phase_index == spec.phase_index && old.priority == spec.priority &&
        old.last_error == spec.last_error && JoinLabels(old.labels) == labels &&
        old.metadata_json == spec.metadata_json) {
      ++result.unchanged;
      continue;
    }
    Stmt upd(db_,
             "UPDATE phases SET phase_index=?, priority=?, last_error=?, labels=?, metadata=? "
             "WHERE run_id=? AND phase_id=?");
    SLUICE_RETURN_IF_ERROR(upd.Bind(spec.phase_index)
                               .Bind(spec.priority)
                               .Bind(spec.last_error)
                               .Bind(labels)
                               .Bind(spec.metadata_json)
                               .Bind(spec.run_id)
                               .Bind(spec.phase_id)
                               .Run());
    ++result.updated;
  }
  SLUICE_RETURN_IF_ERROR(tx.Commit());
  return result;
}

absl::StatusOr<std::optional<PhaseRecord>> SqliteStateStore::GetPhase(const PhaseKey& key) {
  absl::MutexLock lock(&mu_);
  return LoadPhase(db_, key.run_id, key.phase_id);
}

absl::StatusOr<std::vector<RunStats>> SqliteStateStore::ListRunStats() {
  absl::MutexLock lock(&mu_);
  // One row per run; the best pending priority comes from the rank index.
  Stmt s(db_,
         "SELECT r.run_id, r.pending, r.leased, r.succeeded, r.failed, r.attempts, r.successes, "
         "r.timeouts, r.telemetry_events, r.run_ms, "
         "COALESCE((SELECT p.priority FROM phases p WHERE p.run_id=r.run_id AND "
         "p.state='pending' ORDER BY p.priority DESC LIMIT 1), 0) "
         "FROM runs r ORDER BY r.run_id");
  std::vector<RunStats> out;
  while (true) {
    SLUICE_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    RunStats r = DecodeRunStats(s);
    r.best_pending_priority = s.Int(10);
    out.push_back(std::move(r));
  }
  return out;
}

absl::StatusOr<PhaseCounts> SqliteStateStore::CountPhases() {
  absl::MutexLock lock(&mu_);
  Stmt s(db_, "SELECT SUM(pending), SUM(leased), SUM(succeeded), SUM(failed) FROM runs");
  SLUICE_ASSIGN_OR_RETURN(bool row, s.Step());
  PhaseCounts c;
  if (row) {
    c.pending = s.Int(0);
    c.leased = s.Int(1);
    c.succeeded = s.Int(2);
    c.failed = s.Int(3);
  }
  return c;
}

absl::StatusOr<std::optional<LeaseGrant>> SqliteStateStore::LeaseNextInRun(
    const LeaseParams& params) {
  absl::MutexLock lock(&mu_);
  Transaction tx(db_);
  SLUICE_RETURN_IF_ERROR(tx.status());
  const std::set<std::string> have(params.worker_labels.begin(), params.worker_labels.end());
  // Walks the rank index of this run only; phases whose labels the worker
  // lacks are passed over.
  const std::string sql = absl::StrCat("SELECT ", kPhaseColumns,
                                       " FROM phases WHERE run_id=? AND state='pending' "
                                       "ORDER BY priority DESC, phase_index, phase_id");
  Stmt s(db_, sql.c_str());
  s.Bind(params.run_id);
  std::optional<PhaseRecord> chosen;
  while (true) {
    SLUICE_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    PhaseRecord p = DecodePhase(s);
    const bool fits = std::all_of(p.spec.labels.begin(), p.spec.labels.end(),
                                  [&](const std::string& l) { return have.contains(l); });
    if (fits) {
      chosen = std::move(p);
      break;
    }
  }
  if (!chosen) return std::optional<LeaseGrant>();

  SLUICE_ASSIGN_OR_RETURN(int64_t epoch, NextEpoch(db_));
  LeaseGrant g;
  g.lease_id = params.lease_id;
  g.run_id = chosen->spec.run_id;
  g.phase_id = chosen->spec.phase_id;
  g.attempt = chosen->attempts + chosen->requeues + 1;
  g.epoch = epoch;
  g.worker_id = params.worker_id;
  g.session_id = params.session_id;
  g.timeout_seconds = params.timeout_seconds;
  g.leased_at_ms = params.now_ms;
  g.expires_at_ms = params.now_ms + params.ttl_ms;
  Stmt ins(db_, "INSERT INTO leases VALUES(?,?,?,?,?,?,?,?,?,?)");
  SLUICE_RETURN_IF_ERROR(ins.Bind(g.lease_id)
                             .Bind(g.run_id)
                             .Bind(g.phase_id)
                             .Bind(g.attempt)
                             .Bind(g.epoch)
                             .Bind(g.worker_id)
                             .Bind(g.session_id)
                             .Bind(g.timeout_seconds)
                             .Bind(g.leased_at_ms)
                             .Bind(g.expires_at_ms)
                             .Run());
  chosen->state = PhaseState::kLeased;
  chosen->current_lease_id = g.lease_id;
  chosen->updated_at_ms = params.now_ms;
  SLUICE_RETURN_IF_ERROR(UpdatePhaseState(db_, *chosen));
  SLUICE_RETURN_IF_ERROR(
      BumpRun(db_, g.run_id, PhaseState::kPending, PhaseState::kLeased, 0, 0, 0, 0, 0));
  SLUICE_RETURN_IF_ERROR(tx.Commit());
  return std::optional<LeaseGrant>(std::move(g));
}

absl::StatusOr<std::vector<std::string>> SqliteStateStore::RenewLeases(
    const std::string& worker_id, const std::vector<std::string>& lease_ids, int64_t now_ms,
    int64_t ttl_ms) {
  absl::MutexLock lock(&mu_);
  Transaction tx(db_);
  SLUICE_RETURN_IF_ERROR(tx.status());
  std::vector<std::string> gone;
  for (const std::string& id : lease_ids) {
    Stmt s(db_, "UPDATE leases SET expires_at=? WHERE lease_id=? AND worker_id=? AND expires_at>?");
    SLUICE_RETURN_IF_ERROR(s.Bind(now_ms + ttl_ms).Bind(id).Bind(worker_id).Bind(now_ms).Run());
    if (sqlite3_changes(db_) == 0) gone.push_back(id);
  }
  SLUICE_RETURN_IF_ERROR(tx.Commit());
  return gone;
}

absl::StatusOr<ReportResult> SqliteStateStore::RecordReport(const ReportParams& params) {
  absl::MutexLock lock(&mu_);
  const AttemptReport& r = params.report;
  Transaction tx(db_);
  SLUICE_RETURN_IF_ERROR(tx.status());

  const std::string lease_sql =
      absl::StrCat("SELECT ", kLeaseColumns, " FROM leases WHERE lease_id=?");
  Stmt ls(db_, lease_sql.c_str());
  ls.Bind(r.lease_id);
  SLUICE_ASSIGN_OR_RETURN(bool have_lease, ls.Step());
  if (!have_lease || ls.Int(4) != r.epoch || ls.Text(5) != r.worker_id) {
    // Not the current holder. Either this exact report was already applied
    // (duplicate), the lease expired or moved on (late), or it never existed.
    Stmt prior(db_,
               "SELECT outcome, worker_id, epoch, run_id, phase_id FROM attempts WHERE lease_id=?");
    prior.Bind(r.lease_id);
    SLUICE_ASSIGN_OR_RETURN(bool have_attempt, prior.Step());
    ReportResult result;
    if (!have_attempt && !have_lease) {
      result.disposition = ReportDisposition::kUnknownLease;
      return result;
    }
    const bool reported_by_worker = have_attempt && prior.Text(0) != OutcomeName(Outcome::kLost);
    if (reported_by_worker && prior.Text(1) == r.worker_id && prior.Int(2) == r.epoch) {
      result.disposition = ReportDisposition::kDuplicate;
    } else {
      result.disposition = ReportDisposition::kLate;
      Stmt late(db_, "INSERT OR IGNORE INTO late_reports VALUES(?,?,?,?,?,?)");
      SLUICE_RETURN_IF_ERROR(late.Bind(r.lease_id)
                                 .Bind(r.worker_id)
                                 .Bind(OutcomeName(r.outcome))
                                 .Bind(r.telemetry_events)
                                 .Bind(r.error_text)
                                 .Bind(params.now_ms)
                                 .Run());
    }
    const std::string run_id = have_attempt ? prior.Text(3) : ls.Text(1);
    const std::string phase_id = have_attempt ? prior.Text(4) : ls.Text(2);
    SLUICE_ASSIGN_OR_RETURN(std::optional<PhaseRecord> phase, LoadPhase(db_, run_id, phase_id));
    if (phase) result.phase_state = phase->state;
    SLUICE_RETURN_IF_ERROR(tx.Commit());
    return result;
  }

  const LeaseGrant lease = DecodeLease(ls);
  SLUICE_ASSIGN_OR_RETURN(std::optional<PhaseRecord> phase,
                          LoadPhase(db_, lease.run_id, lease.phase_id));
  if (!phase) return absl::InternalError(absl::StrCat("lease ", lease.lease_id, " has no phase"));

  AttemptRecord a = AttemptOfLease(lease, params.now_ms);
  a.outcome = r.outcome;
  a.exit_code = r.exit_code;
  a.signal = r.signal;
  a.duration_ms = r.duration_ms;
  a.error_text = r.error_text;
  a.fingerprint = params.fingerprint;
  a.telemetry_events = r.telemetry_events;
  a.telemetry_by_type = r.telemetry_by_type;
  a.stdout_tail = r.stdout_tail;
  a.stderr_tail = r.stderr_tail;
  SLUICE_RETURN_IF_ERROR(InsertAttempt(db_, a));
  Stmt del(db_, "DELETE FROM leases WHERE lease_id=?");
  SLUICE_RETURN_IF_ERROR(del.Bind(lease.lease_id).Run());

  // Cancelled attempts were stopped by us (deadline, drain), and start_failed
  // ones never started (the worker's fault), not by the phase: they use the
  // requeue budget, not the attempt budget.
  const PhaseState from = phase->state;
  phase->current_lease_id.clear();
  phase->telemetry_events += r.telemetry_events;
  phase->updated_at_ms = params.now_ms;
  if (r.outcome == Outcome::kSucceeded) {
    ++phase->attempts;
    phase->state = PhaseState::kSucceeded;
    phase->final_outcome = Outcome::kSucceeded;
  } else if (r.outcome == Outcome::kCancelled || r.outcome == Outcome::kStartFailed ||
             !params.counts_as_attempt) {
    ++phase->requeues;
    if (phase->requeues > params.max_requeues_per_phase) {
      phase->state = PhaseState::kFailed;
      phase->final_outcome = r.outcome;
    } else {
      phase->state = PhaseState::kPending;
    }
  } else {
    ++phase->attempts;
    if (phase->attempts >= params.max_attempts_per_phase) {
      phase->state = PhaseState::kFailed;
      phase->final_outcome = r.outcome;
    } else {
      phase->state = PhaseState::kPending;
    }
  }
  SLUICE_RETURN_IF_ERROR(UpdatePhaseState(db_, *phase));
  SLUICE_RETURN_IF_ERROR(
      BumpRun(db_, lease.run_id, from, phase->state, 1, r.outcome == Outcome::kSucceeded ? 1 : 0,
              r.outcome == Outcome::kTimedOut ? 1 : 0, r.telemetry_events, r.duration_ms));
  SLUICE_RETURN_IF_ERROR(tx.Commit());
  return ReportResult{ReportDisposition::kAccepted, phase->state, lease.run_id, lease.phase_id};
}

absl::StatusOr<std::vector<ExpiredLease>> SqliteStateStore::ExpireLeases(
    int64_t now_ms, int32_t max_requeues_per_phase) {
  absl::MutexLock lock(&mu_);
  Transaction tx(db_);
  SLUICE_RETURN_IF_ERROR(tx.status());
  std::vector<LeaseGrant> expired;
  {
    const std::string sql = absl::StrCat("SELECT ", kLeaseColumns,
                                         " FROM leases WHERE expires_at<=? ORDER BY expires_at");
    Stmt s(db_, sql.c_str());
    s.Bind(now_ms);
    while (true) {
      SLUICE_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      expired.push_back(DecodeLease(s));
    }
  }
  std::vector<ExpiredLease> out;
  for (LeaseGrant& lease : expired) {
    SLUICE_ASSIGN_OR_RETURN(std::optional<PhaseRecord> phase,
                            LoadPhase(db_, lease.run_id, lease.phase_id));
    if (!phase) return absl::InternalError(absl::StrCat("lease ", lease.lease_id, " has no phase"));
    SLUICE_RETURN_IF_ERROR(InsertAttempt(db_, LostAttempt(lease, now_ms)));
    Stmt del(db_, "DELETE FROM leases WHERE lease_id=?");
    SLUICE_RETURN_IF_ERROR(del.Bind(lease.lease_id).Run());
    const PhaseState from = phase->state;
    ++phase->requeues;
    phase->current_lease_id.clear();
    phase->updated_at_ms = now_ms;
    if (phase->requeues > max_requeues_per_phase) {
      phase->state = PhaseState::kFailed;
      phase->final_outcome = Outcome::kLost;
    } else {
      phase->state = PhaseState::kPending;
    }
    SLUICE_RETURN_IF_ERROR(UpdatePhaseState(db_, *phase));
    SLUICE_RETURN_IF_ERROR(BumpRun(db_, lease.run_id, from, phase->state, 1, 0, 0, 0, 0));
    out.push_back(ExpiredLease{std::move(lease), phase->state});
  }
  SLUICE_RETURN_IF_ERROR(tx.Commit());
  return out;
}

absl::StatusOr<std::vector<LeaseGrant>> SqliteStateStore::ListActiveLeases() {
  absl::MutexLock lock(&mu_);
  const std::string sql = absl::StrCat("SELECT ", kLeaseColumns, " FROM leases ORDER BY leased_at");
  Stmt s(db_, sql.c_str());
  std::vector<LeaseGrant> out;
  while (true) {
    SLUICE_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back(DecodeLease(s));
  }
  return out;
}

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
  const std::string sql = absl::StrCat(
      "SELECT ", kSessionColumns,
      " FROM sessions ORDER BY (state='active') DESC, started_at DESC, rowid DESC LIMIT 1");
  Stmt s(db_, sql.c_str());
  SLUICE_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return std::optional<SessionRecord>();
  return std::optional<SessionRecord>(DecodeSession(s));
}

absl::StatusOr<std::vector<AttemptRecord>> SqliteStateStore::ListAttempts(
    const std::string& session_id) {
  absl::MutexLock lock(&mu_);
  constexpr const char* kCols =
      "SELECT lease_id, run_id, phase_id, attempt, epoch, worker_id, session_id, outcome, "
      "exit_code, signal, duration_ms, error_text, fingerprint, telemetry_events, "
      "telemetry_by_type, stdout_tail, stderr_tail, started_at, ended_at FROM attempts ";
  const std::string sql = session_id.empty()
                              ? absl::StrCat(kCols, "ORDER BY seq")
                              : absl::StrCat(kCols, "WHERE session_id=? ORDER BY seq");
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
  Stmt s(db_,
         "SELECT COUNT(*) FROM attempts WHERE session_id=? AND outcome NOT IN "
         "('lost','cancelled','start_failed')");
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

absl::StatusOr<std::vector<PhaseRecord>> SqliteStateStore::ListPendingPhases(
    const std::string& run_id, int64_t limit) {
  absl::MutexLock lock(&mu_);
  const std::string sql = absl::StrCat("SELECT ", kPhaseColumns,
                                       " FROM phases WHERE run_id=? AND state='pending' "
                                       "ORDER BY priority DESC, phase_index, phase_id LIMIT ?");
  Stmt s(db_, sql.c_str());
  s.Bind(run_id).Bind(limit);
  std::vector<PhaseRecord> out;
  while (true) {
    SLUICE_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back(DecodePhase(s));
  }
  return out;
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
