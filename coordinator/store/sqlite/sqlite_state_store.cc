#include "coordinator/store/sqlite/sqlite_state_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>
#include <unordered_set>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/store/sqlite/sqlite_statements.h"
#include "coordinator/store/store_codec.h"

namespace sluice {
using sqlite_store::BumpRun;
using sqlite_store::Exec;
using sqlite_store::LoadPhase;
using sqlite_store::RefreshBestPending;
using sqlite_store::SqlError;
using sqlite_store::Stmt;
using sqlite_store::Transaction;

namespace {

constexpr int kSchemaVersion = 1;

// Columns added after version 1, each at the end of its table with a
// default that describes every older row, or a backfill that computes it:
// {table, column, definition, backfill}. A store from before them gets them
// in InitSchema, in its transaction.
struct AddedColumn {
  const char* table;
  const char* column;
  const char* definition;
  const char* backfill = nullptr;  // SQL run once, right after the column is added
};
constexpr AddedColumn kAddedColumns[] = {
    // Attempts recorded before the flag had their telemetry counted.
    {"attempts", "telemetry_unknown", "INTEGER NOT NULL DEFAULT 0"},
    {"runs", "unknown_telemetry_ms", "INTEGER NOT NULL DEFAULT 0"},
    // Kept by every write that moves a phase into or out of pending
    // (sqlite_store::BumpRun, the import's RefreshBestPending), so listing
    // the runs' statistics reads the runs table alone: one index seek per
    // run into a million phases was most of `sluice status` (issue #12).
    {"runs", "best_pending_priority", "INTEGER NOT NULL DEFAULT 0",
     sqlite_store::kSetBestPendingPriority},
};

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
CREATE INDEX IF NOT EXISTS phases_pending_labelled ON phases(run_id, priority DESC, phase_index, phase_id)
  WHERE state='pending' AND labels<>'';
CREATE TABLE IF NOT EXISTS runs(
  run_id TEXT PRIMARY KEY, pending INTEGER NOT NULL, leased INTEGER NOT NULL,
  succeeded INTEGER NOT NULL, failed INTEGER NOT NULL, attempts INTEGER NOT NULL,
  successes INTEGER NOT NULL, timeouts INTEGER NOT NULL, telemetry_events INTEGER NOT NULL,
  run_ms INTEGER NOT NULL, unknown_telemetry_ms INTEGER NOT NULL DEFAULT 0,
  best_pending_priority INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
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
  started_at INTEGER NOT NULL, ended_at INTEGER NOT NULL,
  telemetry_unknown INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS attempts_by_session ON attempts(session_id, seq);
CREATE INDEX IF NOT EXISTS attempts_by_phase ON attempts(run_id, phase_id, seq);
CREATE TABLE IF NOT EXISTS session_attempts(
  session_id TEXT PRIMARY KEY, finished INTEGER NOT NULL) WITHOUT ROWID;
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
  if (path != ":memory:") {
    // SQLite creates a new database 0644 (less the umask), and its -wal and
    // -shm files copy the database's mode: create it 0600 first, so the
    // store (phase outputs, fingerprints, worker ids) is this user's only.
    // An existing file keeps its mode.
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) ::close(fd);
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

SqliteStateStore::~SqliteStateStore() {
  sqlite_store::StatementCache::Forget(db_);
  sqlite3_close(db_);
}

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
  bool had_session_attempts = false;
  {
    Stmt has(db_, "SELECT COUNT(*) FROM sqlite_master WHERE type='table' AND name=?");
    has.Bind(std::string_view("session_attempts"));
    SLUICE_ASSIGN_OR_RETURN(bool row, has.Step());
    had_session_attempts = row && has.Int(0) > 0;
  }
  SLUICE_RETURN_IF_ERROR(Exec(db_, kSchema));
  if (!had_session_attempts) {
    // Kept by InsertAttempt from now on; a store made before the table
    // existed counts its history once, in this same transaction. The
    // outcomes are those CountsTowardSessionProgress leaves out.
    SLUICE_RETURN_IF_ERROR(
        Exec(db_,
             "INSERT INTO session_attempts SELECT session_id, COUNT(*) FROM attempts WHERE "
             "outcome NOT IN ('lost','cancelled','start_failed') GROUP BY session_id"));
  }
  for (const AddedColumn& c : kAddedColumns) {
    Stmt has(db_, "SELECT COUNT(*) FROM pragma_table_info(?) WHERE name=?");
    has.Bind(c.table).Bind(c.column);
    SLUICE_ASSIGN_OR_RETURN(bool row, has.Step());
    if (row && has.Int(0) > 0) continue;
    SLUICE_RETURN_IF_ERROR(
        Exec(db_, absl::StrCat("ALTER TABLE ", c.table, " ADD COLUMN ", c.column, " ", c.definition)
                      .c_str()));
    if (c.backfill != nullptr) SLUICE_RETURN_IF_ERROR(Exec(db_, c.backfill));
  }
  SLUICE_RETURN_IF_ERROR(Exec(db_, "INSERT OR IGNORE INTO meta VALUES('epoch', 0)"));
  // Phases by state, kept by BumpCounts in every write that moves a phase; a
  // store made before the counters existed gets them from its runs once.
  SLUICE_RETURN_IF_ERROR(Exec(db_,
                              "INSERT OR IGNORE INTO meta SELECT 'phases_pending', "
                              "COALESCE(SUM(pending),0) FROM runs;"
                              "INSERT OR IGNORE INTO meta SELECT 'phases_leased', "
                              "COALESCE(SUM(leased),0) FROM runs;"
                              "INSERT OR IGNORE INTO meta SELECT 'phases_succeeded', "
                              "COALESCE(SUM(succeeded),0) FROM runs;"
                              "INSERT OR IGNORE INTO meta SELECT 'phases_failed', "
                              "COALESCE(SUM(failed),0) FROM runs;"));
  {
    // Created with the store; a store from before cluster ids gets one here,
    // inside the same transaction as the rest of the schema. An existing id
    // is never replaced.
    Stmt id(db_, "INSERT OR IGNORE INTO meta VALUES('cluster_id', ?)");
    SLUICE_RETURN_IF_ERROR(id.Bind(NewClusterId()).Run());
    Stmt read(db_, "SELECT value FROM meta WHERE key='cluster_id'");
    SLUICE_ASSIGN_OR_RETURN(bool row, read.Step());
    if (!row) return absl::InternalError("meta row 'cluster_id' missing");
    cluster_id_ = read.Text(0);
  }
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

namespace {

// Inserts or updates phases inside the caller's transaction, with statements
// prepared once for the whole import (preparing per phase was most of an
// import's time).
class PhaseUpserter {
 public:
  explicit PhaseUpserter(sqlite3* db)
      : db_(db),
        find_(db,
              "SELECT phase_index, priority, last_error, labels, metadata FROM phases "
              "WHERE run_id=? AND phase_id=?"),
        ins_(db, "INSERT INTO phases VALUES(?,?,?,?,?,?,?,'pending',0,0,'','',0,0)"),
        run_(db,
             "INSERT INTO runs VALUES(?,1,0,0,0,0,0,0,0,0,0,0) "
             "ON CONFLICT(run_id) DO UPDATE SET pending=pending+1"),
        upd_(db,
             "UPDATE phases SET phase_index=?, priority=?, last_error=?, labels=?, metadata=? "
             "WHERE run_id=? AND phase_id=?") {}

  absl::Status Upsert(const PhaseSpec& spec, ImportResult* result) {
    const std::string labels = JoinLabels(spec.labels);
    find_.Reset();
    SLUICE_ASSIGN_OR_RETURN(bool known, find_.Bind(spec.run_id).Bind(spec.phase_id).Step());
    if (!known) {
      ins_.Reset();
      SLUICE_RETURN_IF_ERROR(ins_.Bind(spec.run_id)
                                 .Bind(spec.phase_id)
                                 .Bind(spec.phase_index)
                                 .Bind(spec.priority)
                                 .Bind(spec.last_error)
                                 .Bind(labels)
                                 .Bind(spec.metadata_json)
                                 .Run());
      run_.Reset();
      SLUICE_RETURN_IF_ERROR(run_.Bind(spec.run_id).Run());
      changed_runs_.insert(spec.run_id);
      ++result->inserted;
      return absl::OkStatus();
    }
    if (find_.Int(0) == spec.phase_index && find_.Int(1) == spec.priority &&
        find_.Text(2) == spec.last_error && find_.Text(3) == labels &&
        find_.Text(4) == spec.metadata_json) {
      ++result->unchanged;
      return absl::OkStatus();
    }
    upd_.Reset();
    SLUICE_RETURN_IF_ERROR(upd_.Bind(spec.phase_index)
                               .Bind(spec.priority)
                               .Bind(spec.last_error)
                               .Bind(labels)
                               .Bind(spec.metadata_json)
                               .Bind(spec.run_id)
                               .Bind(spec.phase_id)
                               .Run());
    if (find_.Int(1) != spec.priority) changed_runs_.insert(spec.run_id);
    ++result->updated;
    return absl::OkStatus();
  }

  // The phase counter and the changed runs' best pending priority, once
  // per import.
  absl::Status Finish(const ImportResult& result) {
    for (const std::string& run_id : changed_runs_) {
      SLUICE_RETURN_IF_ERROR(RefreshBestPending(db_, run_id));
    }
    if (result.inserted == 0) return absl::OkStatus();
    Stmt count(db_, "UPDATE meta SET value=value+? WHERE key='phases_pending'");
    return count.Bind(result.inserted).Run();
  }

 private:
  sqlite3* db_;
  Stmt find_;
  Stmt ins_;
  Stmt run_;
  Stmt upd_;
  // Runs that gained a pending phase or whose phases' priorities changed:
  // O(runs), not O(phases), however long the file.
  std::unordered_set<std::string> changed_runs_;
};

}  // namespace

// Holds the store's mutex and one write transaction from BeginImport to
// Commit or destruction: the store's other callers wait meanwhile.
class SqlitePhaseImport final : public PhaseImport {
 public:
  explicit SqlitePhaseImport(SqliteStateStore& store) ABSL_NO_THREAD_SAFETY_ANALYSIS
      : store_(store) {
    store_.mu_.Lock();
    tx_.emplace(store_.db_);
    if (tx_->status().ok()) upserter_.emplace(store_.db_);
  }
  ~SqlitePhaseImport() override ABSL_NO_THREAD_SAFETY_ANALYSIS {
    upserter_.reset();
    tx_.reset();  // rolls back unless committed
    store_.mu_.Unlock();
  }

  const absl::Status& status() const { return tx_->status(); }

  absl::Status Add(const std::vector<PhaseSpec>& phases) override {
    SLUICE_RETURN_IF_ERROR(Usable());
    for (const PhaseSpec& spec : phases) {
      if (absl::Status s = upserter_->Upsert(spec, &result_); !s.ok()) return Fail(s);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<ImportResult> Commit() override {
    SLUICE_RETURN_IF_ERROR(Usable());
    if (absl::Status s = upserter_->Finish(result_); !s.ok()) return Fail(s);
    upserter_.reset();
    if (absl::Status s = tx_->Commit(); !s.ok()) return Fail(s);
    failed_ = absl::FailedPreconditionError("import already committed");
    return result_;
  }

 private:
  absl::Status Usable() const {
    SLUICE_RETURN_IF_ERROR(tx_->status());
    return failed_;
  }
  // After an error the import can only be dropped (and rolled back).
  absl::Status Fail(absl::Status s) {
    failed_ = absl::FailedPreconditionError(absl::StrCat("import failed earlier: ", s.message()));
    return s;
  }

  SqliteStateStore& store_;
  std::optional<Transaction> tx_;
  std::optional<PhaseUpserter> upserter_;
  ImportResult result_;
  absl::Status failed_;
};

absl::StatusOr<std::unique_ptr<PhaseImport>> SqliteStateStore::BeginImport() {
  auto import = std::make_unique<SqlitePhaseImport>(*this);
  SLUICE_RETURN_IF_ERROR(import->status());
  return import;
}

absl::StatusOr<ImportResult> SqliteStateStore::ImportPhases(const std::vector<PhaseSpec>& phases) {
  absl::MutexLock lock(&mu_);
  Transaction tx(db_);
  SLUICE_RETURN_IF_ERROR(tx.status());
  ImportResult result;
  PhaseUpserter upserter(db_);
  for (const PhaseSpec& spec : phases) {
    SLUICE_RETURN_IF_ERROR(upserter.Upsert(spec, &result));
  }
  SLUICE_RETURN_IF_ERROR(upserter.Finish(result));
  SLUICE_RETURN_IF_ERROR(tx.Commit());
  return result;
}

absl::StatusOr<std::optional<PhaseRecord>> SqliteStateStore::GetPhase(const PhaseKey& key) {
  absl::MutexLock lock(&mu_);
  return LoadPhase(db_, key.run_id, key.phase_id);
}

namespace {

// One row per run; the best pending priority comes from the rank index.
constexpr const char* kRunStatsSelect =
    "SELECT r.run_id, r.pending, r.leased, r.succeeded, r.failed, r.attempts, r.successes, "
    "r.timeouts, r.telemetry_events, r.run_ms, r.unknown_telemetry_ms, "
    "r.best_pending_priority FROM runs r ";

}  // namespace

absl::StatusOr<std::vector<RunStats>> SqliteStateStore::ListRunStats() {
  absl::MutexLock lock(&mu_);
  Stmt s(db_, absl::StrCat(kRunStatsSelect, "ORDER BY r.run_id").c_str());
  std::vector<RunStats> out;
  while (true) {
    SLUICE_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    RunStats r = DecodeRunStats(s);
    r.best_pending_priority = s.Int(11);
    out.push_back(std::move(r));
  }
  return out;
}

absl::StatusOr<std::optional<RunStats>> SqliteStateStore::GetRunStats(const std::string& run_id) {
  absl::MutexLock lock(&mu_);
  Stmt s(db_, absl::StrCat(kRunStatsSelect, "WHERE r.run_id=?").c_str());
  s.Bind(run_id);
  SLUICE_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return std::optional<RunStats>();
  RunStats r = DecodeRunStats(s);
  r.best_pending_priority = s.Int(11);
  return std::optional<RunStats>(std::move(r));
}

absl::StatusOr<PhaseCounts> SqliteStateStore::CountPhases() {
  absl::MutexLock lock(&mu_);
  Stmt s(db_,
         "SELECT (SELECT value FROM meta WHERE key='phases_pending'), "
         "(SELECT value FROM meta WHERE key='phases_leased'), "
         "(SELECT value FROM meta WHERE key='phases_succeeded'), "
         "(SELECT value FROM meta WHERE key='phases_failed')");
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

}  // namespace sluice
