#include "coordinator/coordinator.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/status_macros.h"
#include "coordinator/leadership/not_leader.h"
#include "coordinator/request_checks.h"
#include "spdlog/spdlog.h"

namespace sluice {
namespace {

SchedulerOptions SchedulerOptionsFor(const CoordinatorConfig& config) {
  SchedulerOptions options;
  // Validate() reports a bad pattern; a coordinator built without calling it
  // falls back to the default rule rather than failing every lease.
  if (auto rule = RunFamilyRule::Compile(config.family_pattern); rule.ok()) {
    options.family_rule = *std::move(rule);
  } else {
    spdlog::error("{}; using the default family rule", rule.status().ToString());
  }
  return options;
}

}  // namespace

absl::Status CoordinatorConfig::Validate() const {
  if (lease_ttl_ms < 100) return absl::InvalidArgumentError("--lease-ttl-ms must be >= 100");
  if (heartbeat_interval_ms <= 0 || heartbeat_interval_ms >= lease_ttl_ms) {
    return absl::InvalidArgumentError(
        "--heartbeat-interval-ms must be > 0 and below --lease-ttl-ms");
  }
  if (max_lease_wait_ms < 0) return absl::InvalidArgumentError("--max-lease-wait-ms must be >= 0");
  if (auto rule = RunFamilyRule::Compile(family_pattern); !rule.ok()) return rule.status();
  return absl::OkStatus();
}

Coordinator::Coordinator(StateStore& store, const Clock& clock, CoordinatorConfig config)
    : store_(store),
      clock_(clock),
      config_(std::move(config)),
      policy_(store, clock, SchedulerOptionsFor(config_)),
      watch_(store, clock, [this] { broker_.Notify(); }),
      broker_(store, clock, policy_, watch_,
              LeaseBrokerOptions{config_.lease_ttl_ms, config_.max_lease_wait_ms},
              // Asks the Leadership directly: CheckLeader would reset the
              // parts of a poll that is still running.
              [this]() -> absl::Status {
                Leadership* leadership = leadership_.load();
                return leadership == nullptr ? absl::OkStatus()
                                             : leadership->CurrentTerm().status();
              }),
      contacts_(config_.forget_workers_after_ms),
      started_ms_(clock.NowMs()),
      planner_(store, clock, policy_) {
  // Status, its skip explanations and the session's end read the ready
  // index's statistics: no store read of every run per call (issue #12).
  const RunStatsSource from_index = [this] { return broker_.RunStatsSnapshot(); };
  policy_.ReadRunStatsFrom(from_index);
  planner_.ReadRunStatsFrom(from_index);
  // One walk of the history at start (and per term) serves both.
  policy_.AlsoReplayInto([this] { return planner_.FollowHistory(); });
}

absl::Status Coordinator::CheckLeader() {
  Leadership* leadership = leadership_.load();
  if (leadership == nullptr) return absl::OkStatus();
  SLUICE_ASSIGN_OR_RETURN(const int64_t term, leadership->CurrentTerm());
  absl::MutexLock term_lock(&term_mu_);
  if (term == cached_term_) return absl::OkStatus();
  // A new term: whatever this process cached while it led before (or stood
  // by) may be stale; the store is the truth.
  policy_.ResetForNewTerm();
  watch_.ResetForNewTerm();
  planner_.ResetForNewTerm();
  broker_.ResetForNewTerm();
  spdlog::info("coordinator term started term={} previous_term={}", term, cached_term_);
  cached_term_ = term;
  return absl::OkStatus();
}

absl::StatusOr<RegisterResult> Coordinator::Register(const WorkerInfo& worker) {
  SLUICE_RETURN_IF_ERROR(CheckLeader());
  SLUICE_RETURN_IF_ERROR(CheckWorker(worker));
  const std::string& expected_cluster_id = worker.cluster_id;
  SLUICE_RETURN_IF_ERROR(CheckBytes("cluster_id", expected_cluster_id, 128));
  const std::string cluster_id = store_.ClusterId();
  if (!expected_cluster_id.empty() && expected_cluster_id != cluster_id) {
    spdlog::warn("worker refused worker={} host={}: it expects cluster {}, this store is {}",
                 worker.worker_id, worker.host, expected_cluster_id, cluster_id);
    return absl::FailedPreconditionError(absl::StrCat(
        "cluster id mismatch: the worker expects cluster ", expected_cluster_id,
        ", this coordinator's store is cluster ", cluster_id.empty() ? "(none)" : cluster_id,
        "; check --cluster-id and the coordinator's --store"));
  }
  WorkerInfo w = worker;
  w.last_seen_ms = clock_.NowMs();
  SLUICE_RETURN_IF_ERROR(store_.UpsertWorker(w));
  broker_.SetWorkerLabels(w.worker_id, w.labels);
  contacts_.Seen(w.worker_id, w.last_seen_ms);
  spdlog::info("worker registered worker={} host={} slots={}", w.worker_id, w.host, w.slots);
  return RegisterResult{config_.lease_ttl_ms, config_.heartbeat_interval_ms,
                        config_.max_lease_wait_ms, cluster_id};
}

absl::StatusOr<LeaseResult> Coordinator::Lease(const std::string& worker_id,
                                               const std::string& request_id, int32_t max_phases,
                                               int64_t wait_ms,
                                               const std::vector<std::string>& after_lease_ids) {
  SLUICE_RETURN_IF_ERROR(CheckLeader());
  SLUICE_RETURN_IF_ERROR(ValidateId("worker_id", worker_id));
  SLUICE_RETURN_IF_ERROR(ValidateId("request_id", request_id));
  if (max_phases <= 0 || max_phases > config_.max_phases_per_lease) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_phases must be between 1 and ", config_.max_phases_per_lease));
  }
  if (wait_ms < 0) return absl::InvalidArgumentError("wait_ms must be >= 0");
  if (after_lease_ids.size() > config_.max_heartbeat_lease_ids) {
    return absl::InvalidArgumentError(absl::StrCat("after_lease_ids: ", after_lease_ids.size(),
                                                   " in one lease request, at most ",
                                                   config_.max_heartbeat_lease_ids));
  }
  for (const std::string& id : after_lease_ids) {
    SLUICE_RETURN_IF_ERROR(ValidateId("after_lease_ids", id));
  }
  contacts_.Seen(worker_id, clock_.NowMs());
  return broker_.Lease(worker_id, request_id, max_phases, wait_ms, after_lease_ids);
}

absl::StatusOr<std::vector<std::string>> Coordinator::Heartbeat(
    const std::string& worker_id, const std::vector<std::string>& lease_ids) {
  SLUICE_RETURN_IF_ERROR(CheckLeader());
  SLUICE_RETURN_IF_ERROR(ValidateId("worker_id", worker_id));
  if (lease_ids.size() > config_.max_heartbeat_lease_ids) {
    return absl::InvalidArgumentError(absl::StrCat("lease_ids: ", lease_ids.size(),
                                                   " in one heartbeat, at most ",
                                                   config_.max_heartbeat_lease_ids));
  }
  for (const std::string& id : lease_ids) SLUICE_RETURN_IF_ERROR(ValidateId("lease_id", id));
  contacts_.Seen(worker_id, clock_.NowMs());
  // Nothing to renew or cancel: an idle worker's heartbeat costs no store call.
  if (lease_ids.empty()) return std::vector<std::string>();
  SLUICE_ASSIGN_OR_RETURN(
      std::vector<std::string> cancel,
      store_.RenewLeases(worker_id, lease_ids, clock_.NowMs(), config_.lease_ttl_ms));
  SLUICE_ASSIGN_OR_RETURN(std::optional<SessionRecord> session, policy_.ActiveSession());
  if (!session) {
    // No active session (stopped, finished, deadline passed): every running
    // phase is cancelled. The leases stay renewed so the worker can report
    // the cancellation instead of the attempt being counted as lost.
    for (const std::string& id : lease_ids) {
      if (std::find(cancel.begin(), cancel.end(), id) == cancel.end()) cancel.push_back(id);
    }
  }
  return cancel;
}

absl::StatusOr<ReportAnswer> Coordinator::Report(const AttemptReport& report) {
  SLUICE_RETURN_IF_ERROR(CheckLeader());
  SLUICE_RETURN_IF_ERROR(CheckReport(report, config_));
  contacts_.Seen(report.worker_id, clock_.NowMs());
  SLUICE_ASSIGN_OR_RETURN(std::optional<SessionRecord> session, store_.LatestSession());
  SLUICE_RETURN_IF_ERROR(policy_.EnsureLoaded());
  SLUICE_ASSIGN_OR_RETURN(
      ReportParams params,
      policy_.PrepareReport(report, session ? session->settings : SessionSettings{}));
  SLUICE_ASSIGN_OR_RETURN(ReportResult result, store_.RecordReport(params));
  AfterRecorded(params, result, session);
  broker_.Notify();
  return ReportAnswer{result, params.fingerprint};
}

absl::StatusOr<std::vector<absl::StatusOr<ReportAnswer>>> Coordinator::ReportBatch(
    const std::vector<AttemptReport>& reports) {
  SLUICE_RETURN_IF_ERROR(CheckLeader());
  SLUICE_RETURN_IF_ERROR(CheckReportBatchSize(reports.size()));
  std::vector<absl::StatusOr<ReportAnswer>> answers(reports.size(),
                                                    absl::InternalError("not recorded"));
  SLUICE_ASSIGN_OR_RETURN(std::optional<SessionRecord> session, store_.LatestSession());
  SLUICE_RETURN_IF_ERROR(policy_.EnsureLoaded());
  const SessionSettings settings = session ? session->settings : SessionSettings{};
  std::vector<ReportParams> batch;
  std::vector<size_t> index_of;  // batch position -> position in `reports`
  for (size_t i = 0; i < reports.size(); ++i) {
    const AttemptReport& report = reports[i];
    if (absl::Status valid = CheckReport(report, config_); !valid.ok()) {
      answers[i] = valid;
      continue;
    }
    contacts_.Seen(report.worker_id, clock_.NowMs());
    absl::StatusOr<ReportParams> params = policy_.PrepareReport(report, settings);
    if (!params.ok()) {
      answers[i] = params.status();
      continue;
    }
    batch.push_back(*std::move(params));
    index_of.push_back(i);
  }
  if (!batch.empty()) {
    std::vector<absl::StatusOr<ReportResult>> results = store_.RecordReports(batch);
    for (size_t k = 0; k < batch.size(); ++k) {
      if (!results[k].ok()) {
        answers[index_of[k]] = results[k].status();
        continue;
      }
      AfterRecorded(batch[k], *results[k], session);
      answers[index_of[k]] = ReportAnswer{*results[k], batch[k].fingerprint};
    }
  }
  broker_.Notify();
  return answers;
}

void Coordinator::AfterRecorded(const ReportParams& params, const ReportResult& result,
                                const std::optional<SessionRecord>& session) {
  const AttemptReport& report = params.report;
  const bool accepted = result.disposition == ReportDisposition::kAccepted;
  if (accepted) {
    broker_.RunChanged(result.run_id, result.run_stats);
    watch_.ReportAccepted();
    policy_.Observe(params, result, session);
  }
  spdlog::log(
      accepted ? spdlog::level::info : spdlog::level::warn,
      "report lease={} worker={} outcome={} disposition={} events={}", report.lease_id,
      report.worker_id, OutcomeName(report.outcome), ReportDispositionName(result.disposition),
      report.telemetry_unknown ? std::string("unknown") : std::to_string(report.telemetry_events));
}

namespace {

// What every import ends with, whether it worked or not.
absl::StatusOr<ImportResult> AfterImport(LeaseBroker& broker,
                                         absl::StatusOr<ImportResult> imported) {
  // Even a failed import may have reached the store (a lost reply).
  broker.BacklogChanged();
  SLUICE_ASSIGN_OR_RETURN(ImportResult result, std::move(imported));
  spdlog::info("imported backlog inserted={} updated={} unchanged={}", result.inserted,
               result.updated, result.unchanged);
  broker.Notify();
  return result;
}

}  // namespace

absl::StatusOr<ImportResult> Coordinator::ImportBacklog(const std::vector<PhaseSpec>& phases) {
  SLUICE_RETURN_IF_ERROR(CheckLeader());
  SLUICE_RETURN_IF_ERROR(CheckBacklog(phases, config_));
  return AfterImport(broker_, store_.ImportPhases(phases));
}

absl::StatusOr<ImportResult> Coordinator::ImportBacklogChunks(
    const std::function<absl::Status(std::vector<PhaseSpec>*)>& next) {
  SLUICE_RETURN_IF_ERROR(CheckLeader());
  std::vector<PhaseSpec> chunk;
  SLUICE_RETURN_IF_ERROR(next(&chunk));
  SLUICE_RETURN_IF_ERROR(CheckBacklog(chunk, config_));  // refuses an empty backlog
  absl::StatusOr<ImportResult> imported;
  {
    // The store may make its other callers wait while the import is open.
    SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<PhaseImport> import, store_.BeginImport());
    size_t number = 1;
    while (!chunk.empty()) {
      SLUICE_RETURN_IF_ERROR(CheckBacklog(chunk, config_, number));
      SLUICE_RETURN_IF_ERROR(import->Add(chunk));
      number += chunk.size();
      SLUICE_RETURN_IF_ERROR(next(&chunk));
    }
    imported = import->Commit();
  }
  return AfterImport(broker_, std::move(imported));
}

absl::StatusOr<SessionRecord> Coordinator::StartSession(const SessionSettings& settings,
                                                        std::string session_id, bool allow_empty) {
  SLUICE_RETURN_IF_ERROR(CheckLeader());
  SLUICE_RETURN_IF_ERROR(ValidateSessionSettings(settings));
  if (session_id.empty()) {
    session_id = broker_.NewId("S");
  } else {
    SLUICE_RETURN_IF_ERROR(ValidateId("session_id", session_id));
  }
  if (!allow_empty) {
    SLUICE_ASSIGN_OR_RETURN(PhaseCounts counts, store_.CountPhases());
    if (counts.total() == 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("the store (cluster ", store_.ClusterId(),
                       ") holds no phases: check the store path, import a backlog first, or pass "
                       "--allow-empty to start a session on an empty store"));
    }
  }
  SessionRecord record;
  record.session_id = session_id;
  record.settings = settings;
  record.state = SessionState::kActive;
  record.started_at_ms = clock_.NowMs();
  SLUICE_RETURN_IF_ERROR(store_.CreateSession(record));
  spdlog::info("session started session={} batch_size={} phase_timeout_s={} max_total_minutes={}",
               session_id, settings.batch_size, settings.phase_timeout_seconds,
               settings.max_total_minutes);
  broker_.Notify();
  return record;
}

absl::StatusOr<SessionRecord> Coordinator::StopSession(const std::string& session_id,
                                                       const std::string& reason) {
  SLUICE_RETURN_IF_ERROR(CheckLeader());
  std::string id = session_id;
  if (id.empty()) {
    SLUICE_ASSIGN_OR_RETURN(std::optional<SessionRecord> latest, store_.LatestSession());
    if (!latest || latest->state != SessionState::kActive) {
      return absl::FailedPreconditionError("no active session");
    }
    id = latest->session_id;
  } else {
    SLUICE_RETURN_IF_ERROR(ValidateId("session_id", id));
  }
  SLUICE_RETURN_IF_ERROR(CheckBytes("reason", reason, 1024));
  SLUICE_RETURN_IF_ERROR(store_.EndSession(id, SessionState::kStopped, clock_.NowMs(),
                                           reason.empty() ? "stopped by operator" : reason));
  spdlog::info("session stopped session={} reason={}", id, reason);
  SLUICE_ASSIGN_OR_RETURN(std::optional<SessionRecord> record, store_.GetSession(id));
  if (!record) return absl::InternalError("stopped session vanished");
  return *record;
}

absl::StatusOr<CoordinatorStatus> Coordinator::Status(bool explain_skips) {
  SLUICE_RETURN_IF_ERROR(CheckLeader());
  CoordinatorStatus status;
  SLUICE_ASSIGN_OR_RETURN(status.phases, store_.CountPhases());
  status.cluster_id = store_.ClusterId();
  SLUICE_ASSIGN_OR_RETURN(status.workers, store_.ListWorkers());
  const int64_t now_ms = clock_.NowMs();
  for (WorkerInfo& w : status.workers) {
    w.last_seen_ms = contacts_.LastSeen(w.worker_id, w.last_seen_ms);
    if (now_ms - std::max(w.last_seen_ms, started_ms_) > GoneAfterMs()) {
      status.gone_workers.insert(w.worker_id);
    }
  }
  SLUICE_ASSIGN_OR_RETURN(status.active_leases, store_.ListActiveLeases());
  for (const LeaseGrant& l : status.active_leases) ++status.active_leases_by_worker[l.worker_id];
  SLUICE_ASSIGN_OR_RETURN(status.late_reports, store_.CountLateReports());
  SLUICE_ASSIGN_OR_RETURN(status.session, store_.LatestSession());
  if (status.session) {
    const SessionRecord& session = *status.session;
    SLUICE_ASSIGN_OR_RETURN(status.session_finished,
                            store_.CountSessionAttempts(session.session_id));
    SLUICE_ASSIGN_OR_RETURN(SessionEnd end, policy_.SessionEndFor(session));
    status.session_done = end.done() && status.active_leases.empty();
    SLUICE_ASSIGN_OR_RETURN(LeasingPause pause, watch_.LoadPause(session.session_id));
    if (pause.paused && session.state == SessionState::kActive) status.pause = pause;
    status.telemetry_warnings = watch_.WarningsFor(session.session_id);
  }
  if (explain_skips) {
    SLUICE_ASSIGN_OR_RETURN(
        status.skipped,
        planner_.ExplainSkips(status.session ? status.session->settings : SessionSettings{}));
  }
  return status;
}

absl::StatusOr<LeasingPause> Coordinator::ResumeLeasing(const std::string& session_id) {
  SLUICE_RETURN_IF_ERROR(CheckLeader());
  std::optional<SessionRecord> session;
  if (session_id.empty()) {
    SLUICE_ASSIGN_OR_RETURN(session, store_.LatestSession());
  } else {
    SLUICE_RETURN_IF_ERROR(ValidateId("session_id", session_id));
    SLUICE_ASSIGN_OR_RETURN(session, store_.GetSession(session_id));
  }
  if (!session || session->state != SessionState::kActive) {
    return absl::FailedPreconditionError(
        session_id.empty() ? std::string("no active session")
                           : absl::StrCat("session ", session_id, " is not active"));
  }
  return watch_.Resume(*session);
}

absl::StatusOr<std::vector<FingerprintInfo>> Coordinator::ListFingerprints() {
  SLUICE_RETURN_IF_ERROR(CheckLeader());
  return policy_.Fingerprints();
}

absl::StatusOr<std::string> Coordinator::UnblockFingerprint(const std::string& key_or_id) {
  SLUICE_RETURN_IF_ERROR(CheckLeader());
  if (key_or_id.empty() || key_or_id.size() > 1024) {
    return absl::InvalidArgumentError("fingerprint must be 1..1024 bytes");
  }
  SLUICE_ASSIGN_OR_RETURN(std::string fp, policy_.Unblock(key_or_id));
  broker_.BacklogChanged();  // the runs it blocked are eligible again
  broker_.Notify();
  return fp;
}

absl::StatusOr<LeasePlan> Coordinator::Plan(const SessionSettings& settings, int64_t limit) {
  SLUICE_RETURN_IF_ERROR(CheckLeader());
  SLUICE_RETURN_IF_ERROR(ValidateSessionSettings(settings));
  return planner_.Plan(settings, limit);
}

absl::Status Coordinator::Tick() {
  // The leadership this tick acted under: a fenced write must step down that
  // one, not one installed while the tick ran.
  Leadership* leadership = leadership_.load();
  if (absl::Status st = CheckLeader(); !st.ok()) return st;
  absl::Status st = TickAsLeader();
  // The store refused a write as fenced: someone else took over while this
  // process still believed it led. Stop at once rather than at the next renewal.
  if (IsNotLeader(st) && leadership != nullptr) leadership->OnFenced(st);
  return st;
}

absl::Status Coordinator::LoadPolicy() {
  SLUICE_RETURN_IF_ERROR(CheckLeader());
  return policy_.EnsureLoaded();
}

absl::Status Coordinator::TickAsLeader() {
  SLUICE_ASSIGN_OR_RETURN(std::optional<SessionRecord> session, store_.LatestSession());
  SLUICE_ASSIGN_OR_RETURN(
      std::vector<ExpiredLease> expired,
      store_.ExpireLeases(clock_.NowMs(), DrainPolicy::ExpiryTransition(session)));
  if (!expired.empty()) policy_.ObserveLost(static_cast<int64_t>(expired.size()));
  for (const ExpiredLease& e : expired) {
    broker_.RunChanged(e.lease.run_id);
    spdlog::warn("lease expired run={} phase={} attempt={} lease={} worker={} phase_state={}",
                 e.lease.run_id, e.lease.phase_id, e.lease.attempt, e.lease.lease_id,
                 e.lease.worker_id, PhaseStateName(e.phase_state));
  }
  if (session && session->state == SessionState::kActive) {
    SLUICE_ASSIGN_OR_RETURN(SessionEnd end,
                            policy_.SessionEndFor(*session, DrainPolicy::kTickEndVerdictMaxAgeMs));
    if (end.done()) {
      const std::string reason = end.Text();
      SLUICE_RETURN_IF_ERROR(
          store_.EndSession(session->session_id, SessionState::kFinished, clock_.NowMs(), reason));
      spdlog::info("session finished session={} reason={}", session->session_id, reason);
    } else {
      SLUICE_RETURN_IF_ERROR(watch_.Check(*session));
    }
  }
  if (!expired.empty()) broker_.Notify();
  return ForgetGoneWorkers();
}

absl::Status Coordinator::ForgetGoneWorkers() {
  const int64_t now = clock_.NowMs();
  int64_t due = next_forget_ms_.load();
  if (due == 0) {
    // A coordinator that just started (or took over) has heard from nobody
    // yet: give live workers two long-polls' time to call before judging.
    next_forget_ms_.compare_exchange_strong(
        due, now + std::max<int64_t>(60'000, 2 * config_.max_lease_wait_ms));
    return absl::OkStatus();
  }
  if (now < due || !next_forget_ms_.compare_exchange_strong(due, now + 60'000)) {
    return absl::OkStatus();
  }
  contacts_.Forget(now);
  SLUICE_ASSIGN_OR_RETURN(std::vector<WorkerInfo> workers, store_.ListWorkers());
  SLUICE_ASSIGN_OR_RETURN(std::vector<LeaseGrant> leases, store_.ListActiveLeases());
  std::set<std::string> busy;
  for (const LeaseGrant& l : leases) busy.insert(l.worker_id);
  for (const WorkerInfo& w : workers) {
    if (busy.contains(w.worker_id) ||
        !contacts_.Expired(contacts_.LastSeen(w.worker_id, w.last_seen_ms), now)) {
      continue;
    }
    absl::Status removed = store_.RemoveWorker(w.worker_id);
    if (absl::IsUnimplemented(removed)) return absl::OkStatus();  // a store that cannot
    SLUICE_RETURN_IF_ERROR(removed);
    spdlog::info("worker forgotten worker={} (unseen for {} s)", w.worker_id,
                 config_.forget_workers_after_ms / 1000);
  }
  return absl::OkStatus();
}

}  // namespace sluice
