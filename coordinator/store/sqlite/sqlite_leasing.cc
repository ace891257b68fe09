#include <sqlite3.h>

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/last_error.h"
#include "common/status_macros.h"
#include "coordinator/store/report_limits.h"
#include "coordinator/store/sqlite/sqlite_state_store.h"
#include "coordinator/store/sqlite/sqlite_statements.h"
#include "coordinator/store/store_codec.h"

namespace sluice {
using sqlite_store::ApplyDecision;
using sqlite_store::BumpRun;
using sqlite_store::InsertAttempt;
using sqlite_store::kLeaseColumns;
using sqlite_store::kPhaseColumns;
using sqlite_store::LoadPhase;
using sqlite_store::NextEpoch;
using sqlite_store::Stmt;
using sqlite_store::Transaction;
using sqlite_store::UpdatePhaseState;

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
  std::optional<PhaseRecord> retry;  // retries_last: the best fitting retry
  while (true) {
    SLUICE_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    PhaseRecord p = DecodePhase(s);
    // An untried phase of a lower priority never beats a retry.
    if (retry && p.spec.priority < retry->spec.priority) break;
    const bool fits = std::all_of(p.spec.labels.begin(), p.spec.labels.end(),
                                  [&](const std::string& l) { return have.contains(l); });
    if (!fits) continue;
    if (params.retries_last && (p.attempts > 0 || LastErrorIsPhaseTimeout(p.spec.last_error))) {
      if (!retry) retry = std::move(p);
      continue;
    }
    chosen = std::move(p);
    break;
  }
  if (params.untried_only) retry.reset();
  const bool retry_tier = !chosen && retry;
  if (!chosen) chosen = std::move(retry);
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
  g.retry_tier = retry_tier;
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
      BumpRun(db_, g.run_id, PhaseState::kPending, PhaseState::kLeased, 0, 0, 0, 0, 0, 0));
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
  // Before any write: the running sums must never overflow.
  SLUICE_RETURN_IF_ERROR(CheckReportSums(params.report));
  absl::MutexLock lock(&mu_);
  Transaction tx(db_);
  SLUICE_RETURN_IF_ERROR(tx.status());
  SLUICE_ASSIGN_OR_RETURN(ReportResult result, RecordReportInTransaction(params));
  SLUICE_RETURN_IF_ERROR(tx.Commit());
  return result;
}

std::vector<absl::StatusOr<ReportResult>> SqliteStateStore::RecordReports(
    const std::vector<ReportParams>& batch) {
  std::vector<absl::StatusOr<ReportResult>> answers;
  answers.reserve(batch.size());
  for (const ReportParams& params : batch) {
    absl::Status sums = CheckReportSums(params.report);
    answers.push_back(sums.ok() ? absl::StatusOr<ReportResult>(ReportResult{}) : sums);
  }
  absl::MutexLock lock(&mu_);
  Transaction tx(db_);
  if (!tx.status().ok()) {
    for (auto& answer : answers) answer = tx.status();
    return answers;
  }
  // One transaction, one WAL commit for the batch; a savepoint per report
  // undoes exactly the report that fails, as its own transaction would.
  for (size_t i = 0; i < batch.size(); ++i) {
    if (!answers[i].ok()) continue;
    absl::Status savepoint = Stmt(db_, "SAVEPOINT report").Run();
    if (!savepoint.ok()) {
      answers[i] = savepoint;
      continue;
    }
    answers[i] = RecordReportInTransaction(batch[i]);
    if (answers[i].ok()) {
      (void)Stmt(db_, "RELEASE report").Run();
      continue;
    }
    if (sqlite3_get_autocommit(db_) != 0) {
      // SQLite rolled the whole transaction back (I/O error, disk full):
      // nothing of the batch is recorded, and nothing more may run outside
      // a transaction.
      const absl::Status gone = answers[i].status();
      for (auto& answer : answers) {
        if (answer.ok()) answer = gone;
      }
      return answers;
    }
    (void)Stmt(db_, "ROLLBACK TO report").Run();
    (void)Stmt(db_, "RELEASE report").Run();
  }
  if (absl::Status commit = tx.Commit(); !commit.ok()) {
    for (auto& answer : answers) {
      if (answer.ok()) answer = commit;
    }
  }
  return answers;
}

absl::StatusOr<ReportResult> SqliteStateStore::RecordReportInTransaction(
    const ReportParams& params) {
  const AttemptReport& r = params.report;
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
  a.telemetry_unknown = r.telemetry_unknown;
  a.stdout_tail = r.stdout_tail;
  a.stderr_tail = r.stderr_tail;
  SLUICE_RETURN_IF_ERROR(InsertAttempt(db_, a));
  Stmt del(db_, "DELETE FROM leases WHERE lease_id=?");
  SLUICE_RETURN_IF_ERROR(del.Bind(lease.lease_id).Run());

  const PhaseState from = phase->state;
  ApplyDecision(ApplyTransition(params.transition, {phase->attempts, phase->requeues}), *phase);
  phase->current_lease_id.clear();
  phase->telemetry_events += r.telemetry_events;
  phase->updated_at_ms = params.now_ms;
  SLUICE_RETURN_IF_ERROR(UpdatePhaseState(db_, *phase));
  SLUICE_RETURN_IF_ERROR(BumpRun(db_, lease.run_id, from, phase->state, 1,
                                 r.outcome == Outcome::kSucceeded ? 1 : 0,
                                 r.outcome == Outcome::kTimedOut ? 1 : 0, r.telemetry_events,
                                 r.duration_ms, r.telemetry_unknown ? r.duration_ms : 0));
  // No run_stats: the lease broker reads the run itself (one indexed row).
  return ReportResult{ReportDisposition::kAccepted, phase->state, lease.run_id, lease.phase_id,
                      std::nullopt};
}

absl::StatusOr<std::vector<ExpiredLease>> SqliteStateStore::ExpireLeases(
    int64_t now_ms, const PhaseTransition& lost) {
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
    ApplyDecision(ApplyTransition(lost, {phase->attempts, phase->requeues}), *phase);
    phase->current_lease_id.clear();
    phase->updated_at_ms = now_ms;
    SLUICE_RETURN_IF_ERROR(UpdatePhaseState(db_, *phase));
    SLUICE_RETURN_IF_ERROR(BumpRun(db_, lease.run_id, from, phase->state, 1, 0, 0, 0, 0, 0));
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

absl::StatusOr<bool> SqliteStateStore::IsLeaseActive(const std::string& lease_id) {
  absl::MutexLock lock(&mu_);
  Stmt s(db_, "SELECT 1 FROM leases WHERE lease_id=?");
  s.Bind(lease_id);
  return s.Step();
}

}  // namespace sluice
