// Statement helpers shared by the SQLite store's files (sqlite_state_store.cc:
// schema and reads; sqlite_leasing.cc: leases and reports; sqlite_records.cc:
// workers, sessions, history and policy records). Internal to the store: every
// function expects the caller to hold the store's mutex.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/model.h"
#include "coordinator/policy/phase_budget.h"

namespace sluice::sqlite_store {

// Unavailable for what a retry may fix (busy, locked, I/O, full), else Internal.
absl::Status SqlError(sqlite3* db, const std::string& what);

// Prepared statements kept for reuse, per connection. Preparing (parsing and
// planning the SQL) was a quarter of the coordinator's CPU on the lease and
// report path (perf around bench/fleet_bench cycles on SQLite): every Stmt
// prepared its text again. SQLite before 3.44 (Debian 12 ships 3.40) has no
// per-connection user data, so the cache is keyed by connection; whoever
// closes a connection that Stmt used calls Forget(db) first, because
// sqlite3_close refuses a connection with live statements.
class StatementCache {
 public:
  // A statement prepared from exactly `sql` on `db`, taken out of the cache
  // (so two live Stmts never share one), or nullptr when none is kept.
  static sqlite3_stmt* Take(sqlite3* db, std::string_view sql);
  // Hands a statement back after use: reset, bindings cleared, and kept
  // unless the connection already keeps kMaxPerConnection texts.
  static void Give(sqlite3* db, std::string_view sql, sqlite3_stmt* stmt);
  // Finalizes every statement kept for `db`.
  static void Forget(sqlite3* db);
  // Statements kept for `db` now (tests).
  static size_t Kept(sqlite3* db);

  // Every SQL text the store runs is a fixed shape with bound parameters, so
  // the distinct texts are few (under a hundred); the cap only guards
  // against a future caller that builds values into its SQL.
  static constexpr size_t kMaxPerConnection = 512;
};

// A prepared statement with positional binding. It comes from the
// connection's StatementCache when one is kept, else it is prepared, and it
// goes back to the cache on destruction.
class Stmt {
 public:
  Stmt(sqlite3* db, std::string_view sql) : db_(db), sql_(sql) {
    stmt_ = StatementCache::Take(db, sql_);
    if (stmt_ != nullptr) return;
    status_ = sqlite3_prepare_v3(db, sql_.data(), static_cast<int>(sql_.size()),
                                 SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr) == SQLITE_OK
                  ? absl::OkStatus()
                  : SqlError(db, sql_);
  }
  Stmt(sqlite3* db, const std::string& sql) : Stmt(db, std::string_view(sql)) {}
  Stmt(sqlite3* db, const char* sql) : Stmt(db, std::string_view(sql)) {}
  ~Stmt() {
    if (stmt_ == nullptr) return;
    if (status_.ok()) {
      StatementCache::Give(db_, sql_, stmt_);
    } else {
      sqlite3_finalize(stmt_);
    }
  }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  const absl::Status& status() const { return status_; }

  // Ready to run again: bindings cleared, the next Bind is parameter 1.
  void Reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    bound_ = 0;
  }

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
  std::string sql_;  // the cache's key
  sqlite3_stmt* stmt_ = nullptr;
  int bound_ = 0;
  absl::Status status_;
};

absl::Status Exec(sqlite3* db, const char* sql);

// BEGIN IMMEDIATE ... COMMIT, rolled back unless Commit() succeeds. The three
// statements are cached like any other (sqlite3_exec would parse them on
// every transaction).
class Transaction {
 public:
  explicit Transaction(sqlite3* db) : db_(db) {
    begin_ = Stmt(db, "BEGIN IMMEDIATE").Run().ok() ? absl::OkStatus() : SqlError(db, "begin");
  }
  ~Transaction() {
    if (begin_.ok() && !committed_) (void)Stmt(db_, "ROLLBACK").Run();
  }
  const absl::Status& status() const { return begin_; }
  absl::Status Commit() {
    if (!Stmt(db_, "COMMIT").Run().ok()) return SqlError(db_, "commit");
    committed_ = true;
    return absl::OkStatus();
  }

 private:
  sqlite3* db_;
  absl::Status begin_;
  bool committed_ = false;
};

const char* StateColumn(PhaseState s);

// Adds deltas to a run's aggregate row, creating it when needed, and moves
// the phase between the store's phase counters (meta 'phases_<state>'). A
// move into or out of pending also refreshes the run's best pending priority,
// so the caller writes the phase row first.
absl::Status BumpRun(sqlite3* db, const std::string& run_id, PhaseState from, PhaseState to,
                     int64_t attempts, int64_t successes, int64_t timeouts, int64_t events,
                     int64_t run_ms, int64_t unknown_telemetry_ms);

// Sets every run's best_pending_priority from its pending phases (0 without
// any): a seek of phases_by_rank per run. The store's schema migration runs
// it whole; RefreshBestPending for one run.
inline constexpr const char* kSetBestPendingPriority =
    "UPDATE runs SET best_pending_priority=COALESCE((SELECT p.priority FROM phases p "
    "WHERE p.run_id=runs.run_id AND p.state='pending' ORDER BY p.priority DESC LIMIT 1), 0)";

// kSetBestPendingPriority for one run.
absl::Status RefreshBestPending(sqlite3* db, const std::string& run_id);

absl::StatusOr<int64_t> NextEpoch(sqlite3* db);

inline constexpr const char* kPhaseColumns =
    "run_id, phase_id, phase_index, priority, last_error, labels, metadata, state, attempts, "
    "requeues, current_lease_id, final_outcome, telemetry_events, updated_at";

absl::StatusOr<std::optional<PhaseRecord>> LoadPhase(sqlite3* db, const std::string& run_id,
                                                     const std::string& phase_id);

inline constexpr const char* kLeaseColumns =
    "lease_id, run_id, phase_id, attempt, epoch, worker_id, session_id, timeout_seconds, "
    "leased_at, expires_at";

absl::Status InsertAttempt(sqlite3* db, const AttemptRecord& a);

// The budget rule's decision, as the phase record takes it.
void ApplyDecision(const PhaseDecision& d, PhaseRecord& p);

absl::Status UpdatePhaseState(sqlite3* db, const PhaseRecord& p);

}  // namespace sluice::sqlite_store
