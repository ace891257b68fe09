#include "coordinator/coordinator.h"

#include <algorithm>
#include <random>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "common/fingerprint.h"
#include "common/ids.h"
#include "common/status_macros.h"
#include "coordinator/leadership/not_leader.h"
#include "spdlog/spdlog.h"

namespace sluice {
namespace {

constexpr size_t kRecentGrantsKept = 4096;

absl::Status CheckBytes(const std::string& field, const std::string& value, size_t max) {
  if (value.size() > max) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " is ", value.size(), " bytes (at most ", max, ")"));
  }
  return absl::OkStatus();
}

absl::Status ValidateSettings(const SessionSettings& s) {
  if (s.batch_size < 0) return absl::InvalidArgumentError("batch_size must be >= 0");
  if (s.phase_timeout_seconds <= 0) {
    return absl::InvalidArgumentError("phase_timeout_seconds must be > 0");
  }
  if (s.max_total_minutes < 0) return absl::InvalidArgumentError("max_total_minutes must be >= 0");
  if (s.max_attempts_per_phase <= 0) {
    return absl::InvalidArgumentError("max_attempts_per_phase must be > 0");
  }
  if (s.max_requeues_per_phase < 0) {
    return absl::InvalidArgumentError("max_requeues_per_phase must be >= 0");
  }
  for (const std::string& run : s.run_ids) SLUICE_RETURN_IF_ERROR(ValidateId("run_id", run));
  for (const std::string& prefix : s.skip_run_prefixes) {
    SLUICE_RETURN_IF_ERROR(ValidateId("skip_run_prefix", prefix));
  }
  if (s.max_fingerprint_repeats < 0) {
    return absl::InvalidArgumentError("max_fingerprint_repeats must be >= 0 (0 = off)");
  }
  if (s.max_timeouts_per_run < 0) {
    return absl::InvalidArgumentError("max_timeouts_per_run must be >= 0 (0 = off)");
  }
  if (s.max_consecutive_zero_yield < 0) {
    return absl::InvalidArgumentError("max_consecutive_zero_yield must be >= 0 (0 = off)");
  }
  if (auto m = TransientMatcher::Compile(s.retry_on); !m.ok()) return m.status();
  return absl::OkStatus();
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

Coordinator::Coordinator(StateStore& store, const Clock& clock, CoordinatorConfig config)
    : store_(store), clock_(clock), config_(config), scheduler_(SchedulerOptionsFor(config_)) {}

std::string Coordinator::NewId(std::string_view prefix) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  const uint64_t counter = ++id_counter_;
  return absl::StrCat(std::string(prefix), "-", absl::Hex(clock_.NowMs()), "-",
                      absl::Hex(rng() & 0xffffffffff), "-", counter);
}

absl::StatusOr<RegisterResult> Coordinator::Register(const WorkerInfo& worker) {
  SLUICE_RETURN_IF_ERROR(CheckLeader());
  SLUICE_RETURN_IF_ERROR(ValidateId("worker_id", worker.worker_id));
  if (worker.slots <= 0 || worker.slots > 1024) {
    return absl::InvalidArgumentError("slots must be between 1 and 1024");
  }
  SLUICE_RETURN_IF_ERROR(CheckBytes("host", worker.host, 256));
  SLUICE_RETURN_IF_ERROR(CheckBytes("version", worker.version, 128));
  for (const std::string& label : worker.labels) SLUICE_RETURN_IF_ERROR(ValidateId("label", label));
  WorkerInfo w = worker;
  w.last_seen_ms = clock_.NowMs();
  SLUICE_RETURN_IF_ERROR(store_.UpsertWorker(w));
  {
    absl::MutexLock lock(&lease_mu_);
    worker_labels_[w.worker_id] = w.labels;
  }
  spdlog::info("worker registered worker={} host={} slots={}", w.worker_id, w.host, w.slots);
  return RegisterResult{config_.lease_ttl_ms, config_.heartbeat_interval_ms,
                        config_.max_lease_wait_ms};
}

absl::StatusOr<std::optional<SessionRecord>> Coordinator::CurrentSession() {
  SLUICE_ASSIGN_OR_RETURN(std::optional<SessionRecord> s, store_.LatestSession());
  if (!s || s->state != SessionState::kActive || DeadlinePassed(*s)) {
    return std::optional<SessionRecord>();
  }
  return s;
}

bool Coordinator::DeadlinePassed(const SessionRecord& session) const {
  return session.settings.max_total_minutes > 0 &&
         clock_.NowMs() >=
             session.started_at_ms + int64_t{session.settings.max_total_minutes} * 60'000;
}

absl::StatusOr<std::vector<LeaseGrant>> Coordinator::TryLease(
    const std::string& worker_id, const std::vector<std::string>& labels,
    const SessionRecord& session, int32_t max_phases) {
  std::vector<LeaseGrant> grants;
  // Grants already made are committed in the store. On a later store error
  // hand them out (Lease records them for a retried request) rather than
  // strand their phases as leased until the leases expire and count as lost.
  auto stop = [&grants](const absl::Status& error) -> absl::StatusOr<std::vector<LeaseGrant>> {
    if (grants.empty()) return error;
    spdlog::warn("lease stopped after {} grant(s): {}", grants.size(), error.ToString());
    return grants;
  };
  const SessionSettings& settings = session.settings;
  if (settings.batch_size > 0) {
    SLUICE_ASSIGN_OR_RETURN(int64_t finished, store_.CountSessionAttempts(session.session_id));
    SLUICE_ASSIGN_OR_RETURN(PhaseCounts counts, store_.CountPhases());
    // Leases in flight count toward the batch, so it is not overshot.
    const int64_t room = settings.batch_size - finished - counts.leased;
    if (room <= 0) return grants;
    max_phases = static_cast<int32_t>(std::min<int64_t>(max_phases, room));
  }
  while (static_cast<int32_t>(grants.size()) < max_phases) {
    absl::StatusOr<std::vector<RunStats>> runs = store_.ListRunStats();
    if (!runs.ok()) return stop(runs.status());
    absl::StatusOr<std::map<std::string, RunPolicyState>> policy = PolicyFor(*runs, settings);
    if (!policy.ok()) return stop(policy.status());
    const std::vector<RunRanking> ranked =
        scheduler_.Rank(*runs, settings, *policy, clock_.NowMs());
    bool leased_one = false;
    for (const RunRanking& run : ranked) {
      LeaseParams params;
      params.run_id = run.run_id;
      params.worker_id = worker_id;
      params.session_id = session.session_id;
      params.lease_id = NewId("L");
      params.timeout_seconds = settings.phase_timeout_seconds;
      if (settings.max_total_minutes > 0) {
        // The worker enforces the session deadline too: no phase may run past
        // it (plus the worker's grace period) even if heartbeats are slow.
        const int64_t left_ms =
            session.started_at_ms + int64_t{settings.max_total_minutes} * 60'000 - clock_.NowMs();
        params.timeout_seconds = static_cast<int32_t>(
            std::clamp<int64_t>((left_ms + 999) / 1000, 1, params.timeout_seconds));
      }
      params.now_ms = clock_.NowMs();
      params.ttl_ms = config_.lease_ttl_ms;
      params.worker_labels = labels;
      absl::StatusOr<std::optional<LeaseGrant>> leased = store_.LeaseNextInRun(params);
      if (!leased.ok()) return stop(leased.status());
      std::optional<LeaseGrant> grant = *std::move(leased);
      if (grant) {
        grant->timeout_is_session_deadline =
            params.timeout_seconds < settings.phase_timeout_seconds;
        spdlog::info("leased run={} phase={} attempt={} lease={} worker={}", grant->run_id,
                     grant->phase_id, grant->attempt, grant->lease_id, worker_id);
        grants.push_back(std::move(*grant));
        leased_one = true;
        break;  // re-rank: the run just leased from is now sampled
      }
    }
    if (!leased_one) break;
  }
  return grants;
}

absl::StatusOr<LeaseResult> Coordinator::Lease(const std::string& worker_id,
                                               const std::string& request_id, int32_t max_phases,
                                               int64_t wait_ms) {
  SLUICE_RETURN_IF_ERROR(CheckLeader());
  SLUICE_RETURN_IF_ERROR(ValidateId("worker_id", worker_id));
  SLUICE_RETURN_IF_ERROR(ValidateId("request_id", request_id));
  if (max_phases <= 0 || max_phases > config_.max_phases_per_lease) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_phases must be between 1 and ", config_.max_phases_per_lease));
  }
  if (wait_ms < 0) return absl::InvalidArgumentError("wait_ms must be >= 0");
  // The long-poll waits in real time (not on clock_, which tests fake).
  const absl::Time deadline =
      absl::Now() + absl::Milliseconds(std::min(wait_ms, config_.max_lease_wait_ms));

  absl::MutexLock lock(&lease_mu_);
  const auto key = std::make_pair(worker_id, request_id);
  if (auto it = recent_grants_.find(key); it != recent_grants_.end()) {
    return LeaseResult{it->second, true};
  }
  auto labels_it = worker_labels_.find(worker_id);
  if (labels_it == worker_labels_.end()) {
    return absl::FailedPreconditionError(
        absl::StrCat("worker ", worker_id, " is not registered (call Register first)"));
  }
  const std::vector<std::string> labels = labels_it->second;
  LeaseResult result;
  while (true) {
    const uint64_t seen = generation_;
    // Leadership may have ended while this poll waited (WakeLeasePolls wakes
    // it then): the worker must go to the new leader, not wait here. Asks
    // the Leadership directly: CheckLeader would take lease_mu_ again.
    if (Leadership* leadership = leadership_.load(); leadership != nullptr) {
      SLUICE_RETURN_IF_ERROR(leadership->CurrentTerm().status());
    }
    SLUICE_ASSIGN_OR_RETURN(std::optional<SessionRecord> session, CurrentSession());
    result.session_active = session.has_value();
    if (session) {
      // A paused session grants nothing; its workers keep long-polling and
      // lease again once an operator resumes.
      SLUICE_ASSIGN_OR_RETURN(bool paused, LeasingPaused(session->session_id));
      if (!paused) {
        SLUICE_ASSIGN_OR_RETURN(result.leases, TryLease(worker_id, labels, *session, max_phases));
        if (!result.leases.empty()) break;
      }
    }
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration() || shutting_down_) break;
    // Wait for a report, expiry, import or session start; re-check at least
    // every second because session deadlines move on their own.
    if (generation_ == seen) {
      work_changed_.WaitWithTimeout(&lease_mu_, std::min(left, absl::Seconds(1)));
    }
  }
  if (!result.leases.empty()) {
    recent_grants_[key] = result.leases;
    recent_order_.push_back(key);
    while (recent_order_.size() > kRecentGrantsKept) {
      recent_grants_.erase(recent_order_.front());
      recent_order_.pop_front();
    }
  }
  return result;
}

absl::StatusOr<std::vector<std::string>> Coordinator::Heartbeat(
    const std::string& worker_id, const std::vector<std::string>& lease_ids) {
  SLUICE_RETURN_IF_ERROR(CheckLeader());
  SLUICE_RETURN_IF_ERROR(ValidateId("worker_id", worker_id));
  for (const std::string& id : lease_ids) SLUICE_RETURN_IF_ERROR(ValidateId("lease_id", id));
  const int64_t now = clock_.NowMs();
  SLUICE_ASSIGN_OR_RETURN(std::vector<std::string> cancel,
                          store_.RenewLeases(worker_id, lease_ids, now, config_.lease_ttl_ms));
  SLUICE_ASSIGN_OR_RETURN(std::optional<SessionRecord> session, CurrentSession());
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
  SLUICE_RETURN_IF_ERROR(ValidateId("worker_id", report.worker_id));
  SLUICE_RETURN_IF_ERROR(ValidateId("lease_id", report.lease_id));
  if (report.outcome == Outcome::kLost) {
    return absl::InvalidArgumentError("outcome 'lost' is recorded by the coordinator only");
  }
  if (report.telemetry_events < 0) {
    return absl::InvalidArgumentError("telemetry_events must be >= 0");
  }
  if (report.duration_ms < 0) return absl::InvalidArgumentError("duration_ms must be >= 0");
  int64_t typed = 0;
  for (const auto& [type, count] : report.telemetry_by_type) {
    SLUICE_RETURN_IF_ERROR(CheckBytes("telemetry type", type, 128));
    if (count < 0) return absl::InvalidArgumentError("telemetry_by_type counts must be >= 0");
    typed += count;
  }
  if (typed > report.telemetry_events) {
    return absl::InvalidArgumentError("telemetry_by_type adds up to more than telemetry_events");
  }
  SLUICE_RETURN_IF_ERROR(CheckBytes("stdout_tail", report.stdout_tail, config_.max_tail_bytes));
  SLUICE_RETURN_IF_ERROR(CheckBytes("stderr_tail", report.stderr_tail, config_.max_tail_bytes));
  SLUICE_RETURN_IF_ERROR(CheckBytes("error_text", report.error_text, config_.max_error_text_bytes));

  SLUICE_ASSIGN_OR_RETURN(std::optional<SessionRecord> session, store_.LatestSession());
  const SessionSettings settings = session ? session->settings : SessionSettings{};
  SLUICE_RETURN_IF_ERROR(EnsurePolicyLoaded());
  ReportParams params;
  params.report = report;
  params.fingerprint =
      ComputeFingerprint(report.outcome, report.exit_code, report.signal, report.error_text).key;
  params.now_ms = clock_.NowMs();
  params.max_attempts_per_phase = settings.max_attempts_per_phase;
  params.max_requeues_per_phase = settings.max_requeues_per_phase;
  bool transient = false;
  if (report.outcome == Outcome::kFailed && !settings.retry_on.empty()) {
    SLUICE_ASSIGN_OR_RETURN(TransientMatcher matcher, TransientMatcher::Compile(settings.retry_on));
    transient = matcher.Matches(params.fingerprint, report.error_text);
  }
  params.counts_as_attempt = !transient;
  SLUICE_ASSIGN_OR_RETURN(ReportResult result, store_.RecordReport(params));
  if (result.disposition == ReportDisposition::kAccepted) {
    reports_accepted_.fetch_add(1);
    absl::MutexLock lock(&policy_mu_);
    ++outcome_totals_[report.outcome];
    failure_policy_.Observe(result.run_id, report.outcome, params.fingerprint, report.error_text,
                            params.now_ms, transient);
    if (transient) {
      // Full-jitter-free exponential backoff of the run: 10 s, 20 s, ... 5 min.
      const int streak = ++run_transient_streak_[result.run_id];
      run_backoff_until_[result.run_id] =
          params.now_ms + std::min<int64_t>(int64_t{10'000} << std::min(streak - 1, 5), 300'000);
      spdlog::info("transient failure run={} phase={}: run backs off", result.run_id,
                   result.phase_id);
    } else if (report.outcome != Outcome::kCancelled) {
      run_transient_streak_.erase(result.run_id);
      run_backoff_until_.erase(result.run_id);
    }
    if (session && report.outcome != Outcome::kCancelled) {
      if (zero_yield_session_ != session->session_id) {
        zero_yield_session_ = session->session_id;
        zero_yield_streak_ = 0;
      }
      zero_yield_streak_ = report.telemetry_events == 0 ? zero_yield_streak_ + 1 : 0;
    }
  }
  spdlog::log(result.disposition == ReportDisposition::kAccepted ? spdlog::level::info
                                                                 : spdlog::level::warn,
              "report lease={} worker={} outcome={} disposition={} events={}", report.lease_id,
              report.worker_id, OutcomeName(report.outcome),
              ReportDispositionName(result.disposition), report.telemetry_events);
  {
    absl::MutexLock lock(&lease_mu_);
    ++generation_;
    work_changed_.SignalAll();
  }
  return ReportAnswer{result, params.fingerprint};
}

absl::StatusOr<ImportResult> Coordinator::ImportBacklog(const std::vector<PhaseSpec>& phases) {
  SLUICE_RETURN_IF_ERROR(CheckLeader());
  if (phases.empty()) return absl::InvalidArgumentError("backlog has no phases");
  for (size_t i = 0; i < phases.size(); ++i) {
    const PhaseSpec& p = phases[i];
    absl::Status st = ValidateId("run_id", p.run_id);
    if (st.ok()) st = ValidateId("phase_id", p.phase_id);
    for (const std::string& label : p.labels) {
      if (st.ok()) st = ValidateId("label", label);
    }
    if (st.ok()) st = CheckBytes("last_error", p.last_error, config_.max_error_text_bytes);
    if (st.ok()) st = CheckBytes("metadata_json", p.metadata_json, 64 * 1024);
    if (!st.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("phase #", i + 1, ": ", st.message()));
    }
  }
  SLUICE_ASSIGN_OR_RETURN(ImportResult result, store_.ImportPhases(phases));
  spdlog::info("imported backlog inserted={} updated={} unchanged={}", result.inserted,
               result.updated, result.unchanged);
  absl::MutexLock lock(&lease_mu_);
  ++generation_;
  work_changed_.SignalAll();
  return result;
}

absl::StatusOr<SessionRecord> Coordinator::StartSession(const SessionSettings& settings,
                                                        std::string session_id) {
  SLUICE_RETURN_IF_ERROR(CheckLeader());
  SLUICE_RETURN_IF_ERROR(ValidateSettings(settings));
  if (session_id.empty()) {
    session_id = NewId("S");
  } else {
    SLUICE_RETURN_IF_ERROR(ValidateId("session_id", session_id));
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
  absl::MutexLock lock(&lease_mu_);
  ++generation_;
  work_changed_.SignalAll();
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

absl::StatusOr<std::string> Coordinator::SessionDoneReason(const SessionRecord& session) {
  if (session.state != SessionState::kActive) return session.end_reason;
  if (DeadlinePassed(session)) return std::string("max_total_minutes reached");
  SLUICE_ASSIGN_OR_RETURN(int64_t finished, store_.CountSessionAttempts(session.session_id));
  if (session.settings.batch_size > 0 && finished >= session.settings.batch_size) {
    return std::string("batch_size reached");
  }
  SLUICE_ASSIGN_OR_RETURN(PhaseCounts counts, store_.CountPhases());
  if (counts.leased > 0) return std::string();
  {
    absl::MutexLock lock(&policy_mu_);
    if (session.settings.max_consecutive_zero_yield > 0 &&
        zero_yield_session_ == session.session_id &&
        zero_yield_streak_ >= session.settings.max_consecutive_zero_yield) {
      return absl::StrCat("max_consecutive_zero_yield reached (", zero_yield_streak_,
                          " attempts in a row without telemetry)");
    }
  }
  SLUICE_ASSIGN_OR_RETURN(std::vector<RunStats> runs, store_.ListRunStats());
  SLUICE_ASSIGN_OR_RETURN(auto policy, PolicyFor(runs, session.settings));
  const std::vector<RunDecision> decisions =
      scheduler_.Decide(runs, session.settings, policy, clock_.NowMs());
  const bool waiting_on_backoff = std::any_of(
      decisions.begin(), decisions.end(),
      [](const RunDecision& d) { return d.excluded_reason.starts_with("backing off"); });
  const bool any_eligible =
      std::any_of(decisions.begin(), decisions.end(),
                  [](const RunDecision& d) { return d.excluded_reason.empty(); });
  if (!any_eligible && !waiting_on_backoff) return std::string("nothing left to lease");
  return std::string();
}

absl::Status Coordinator::EnsurePolicyLoaded() {
  {
    absl::MutexLock lock(&policy_mu_);
    if (policy_loaded_) return absl::OkStatus();
  }
  // Rebuilt from the whole history once per coordinator (start or takeover).
  SLUICE_ASSIGN_OR_RETURN(std::vector<AttemptRecord> history, store_.ListAttempts(""));
  SLUICE_ASSIGN_OR_RETURN(auto records, store_.ListPolicyRecords(kFingerprintUnblockRecord));
  std::map<std::string, int64_t> unblocks;
  for (const auto& [fp, value] : records) {
    int64_t at = 0;
    if (absl::SimpleAtoi(value, &at)) unblocks[fp] = at;
  }
  absl::MutexLock lock(&policy_mu_);
  if (!policy_loaded_) {
    failure_policy_.Load(history, unblocks);
    outcome_totals_.clear();  // a new term recounts from the store
    for (const AttemptRecord& a : history) ++outcome_totals_[a.outcome];
    policy_loaded_ = true;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::map<std::string, RunPolicyState>> Coordinator::PolicyFor(
    const std::vector<RunStats>& runs, const SessionSettings& settings) {
  SLUICE_RETURN_IF_ERROR(EnsurePolicyLoaded());
  std::map<std::string, RunPolicyState> out;
  absl::MutexLock lock(&policy_mu_);
  for (const RunStats& run : runs) {
    RunPolicyState state;
    if (auto fp =
            failure_policy_.BlockingFingerprint(run.run_id, settings.max_fingerprint_repeats)) {
      state.blocked_by_fingerprint = *fp;
    }
    if (auto it = run_backoff_until_.find(run.run_id); it != run_backoff_until_.end()) {
      state.backoff_until_ms = it->second;
    }
    const RunFailures failures = failure_policy_.FailuresOf(run.run_id);
    state.deterministic_failures = failures.count;
    state.failure_fingerprint = failures.top_fingerprint;
    if (!state.blocked_by_fingerprint.empty() || state.backoff_until_ms > 0 ||
        state.deterministic_failures > 0) {
      out[run.run_id] = std::move(state);
    }
  }
  return out;
}

absl::StatusOr<std::vector<FingerprintInfo>> Coordinator::ListFingerprints() {
  SLUICE_RETURN_IF_ERROR(CheckLeader());
  SLUICE_RETURN_IF_ERROR(EnsurePolicyLoaded());
  absl::MutexLock lock(&policy_mu_);
  return failure_policy_.Fingerprints();
}

absl::StatusOr<std::string> Coordinator::UnblockFingerprint(const std::string& key_or_id) {
  SLUICE_RETURN_IF_ERROR(CheckLeader());
  if (key_or_id.empty() || key_or_id.size() > 1024) {
    return absl::InvalidArgumentError("fingerprint must be 1..1024 bytes");
  }
  SLUICE_RETURN_IF_ERROR(EnsurePolicyLoaded());
  std::optional<std::string> fp;
  {
    absl::MutexLock lock(&policy_mu_);
    fp = failure_policy_.Resolve(key_or_id);
  }
  if (!fp) return absl::NotFoundError(absl::StrCat("no fingerprint ", key_or_id));
  const int64_t now = clock_.NowMs();
  SLUICE_RETURN_IF_ERROR(
      store_.PutPolicyRecord(kFingerprintUnblockRecord, *fp, std::to_string(now)));
  {
    absl::MutexLock lock(&policy_mu_);
    failure_policy_.Unblock(*fp, now);
  }
  spdlog::info("fingerprint unblocked fingerprint={} id={}", *fp, FingerprintId(*fp));
  absl::MutexLock lock(&lease_mu_);
  ++generation_;
  work_changed_.SignalAll();
  return *fp;
}

absl::StatusOr<LeasePlan> Coordinator::Plan(const SessionSettings& settings, int64_t limit) {
  SLUICE_RETURN_IF_ERROR(CheckLeader());
  SLUICE_RETURN_IF_ERROR(ValidateSettings(settings));
  SLUICE_ASSIGN_OR_RETURN(std::vector<RunStats> runs, store_.ListRunStats());
  SLUICE_ASSIGN_OR_RETURN(auto policy, PolicyFor(runs, settings));
  const int64_t now = clock_.NowMs();
  LeasePlan plan;
  for (const RunDecision& d : scheduler_.Decide(runs, settings, policy, now)) {
    if (!d.excluded_reason.empty()) plan.excluded.push_back(d);
  }
  // Simulates one label-less worker leasing one phase at a time with no
  // outcome arriving: each lease marks its run as sampled and in flight,
  // exactly as TryLease's re-ranking sees it.
  std::map<std::string, std::vector<PhaseRecord>> queues;
  std::map<std::string, size_t> next;
  while (static_cast<int64_t>(plan.leases.size()) < limit) {
    const std::vector<RunRanking> ranked = scheduler_.Rank(runs, settings, policy, now);
    if (ranked.empty()) break;
    const std::string run_id = ranked.front().run_id;
    auto stats = std::find_if(runs.begin(), runs.end(),
                              [&](const RunStats& r) { return r.run_id == run_id; });
    if (!queues.contains(run_id)) {
      SLUICE_ASSIGN_OR_RETURN(queues[run_id], store_.ListPendingPhases(run_id, stats->pending));
    }
    std::vector<PhaseRecord>& queue = queues[run_id];
    size_t& i = next[run_id];
    while (i < queue.size() && !queue[i].spec.labels.empty()) {
      plan.needs_labels.push_back(queue[i].spec);
      ++i;
    }
    if (i >= queue.size()) {
      stats->pending = 0;  // nothing a label-less worker could take
      continue;
    }
    plan.leases.push_back({queue[i].spec.run_id, queue[i].spec.phase_id,
                           queue[i].attempts + queue[i].requeues + 1,
                           !ranked.front().deferred_reason.empty() ? ranked.front().deferred_reason
                           : ranked.front().explored               ? "best estimated yield"
                                                                   : "sampling a new run",
                           ranked.front().expected_yield});
    ++i;
    --stats->pending;
    ++stats->leased;
    // The next phase of this run is the new best of the run.
    stats->best_pending_priority = i < queue.size() ? queue[i].spec.priority : 0;
  }
  return plan;
}

absl::Status Coordinator::CheckLeader() {
  Leadership* leadership = leadership_.load();
  if (leadership == nullptr) return absl::OkStatus();
  SLUICE_ASSIGN_OR_RETURN(const int64_t term, leadership->CurrentTerm());
  absl::MutexLock term_lock(&term_mu_);
  if (term == cached_term_) return absl::OkStatus();
  // A new term: whatever this process cached while it led before (or stood
  // by) may be stale; the store is the truth.
  {
    absl::MutexLock lock(&policy_mu_);
    policy_loaded_ = false;
    failure_policy_ = FailurePolicy();
    run_backoff_until_.clear();
    run_transient_streak_.clear();
    zero_yield_session_.clear();
    zero_yield_streak_ = 0;
  }
  {
    absl::MutexLock lock(&lease_mu_);
    recent_grants_.clear();
    recent_order_.clear();
    worker_labels_.clear();  // workers register again (FAILED_PRECONDITION on their next lease)
    ++generation_;
    work_changed_.SignalAll();
  }
  spdlog::info("coordinator term started term={} previous_term={}", term, cached_term_);
  cached_term_ = term;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<SkipRow>> Coordinator::ExplainSkips(const SessionSettings& settings) {
  SLUICE_ASSIGN_OR_RETURN(std::vector<RunStats> runs, store_.ListRunStats());
  SLUICE_ASSIGN_OR_RETURN(auto policy, PolicyFor(runs, settings));
  std::vector<SkipRow> rows;
  for (const RunDecision& d : scheduler_.Decide(runs, settings, policy, clock_.NowMs())) {
    if (!d.excluded_reason.empty()) {
      rows.push_back({"excluded", d.ranking.run_id, "", d.pending, d.excluded_reason});
    } else if (!d.ranking.deferred_reason.empty()) {
      rows.push_back({"deferred", d.ranking.run_id, "", d.pending, d.ranking.deferred_reason});
    }
  }
  SLUICE_ASSIGN_OR_RETURN(std::vector<WorkerInfo> workers, store_.ListWorkers());
  constexpr int64_t kMaxWaitingRows = 100;
  int64_t waiting = 0;
  for (const RunStats& run : runs) {
    if (run.pending <= 0) continue;
    SLUICE_ASSIGN_OR_RETURN(std::vector<PhaseRecord> pending,
                            store_.ListPendingPhases(run.run_id, run.pending));
    for (const PhaseRecord& p : pending) {
      if (p.spec.labels.empty()) continue;
      const bool some_worker_fits =
          std::any_of(workers.begin(), workers.end(), [&](const WorkerInfo& w) {
            return std::all_of(
                p.spec.labels.begin(), p.spec.labels.end(), [&](const std::string& l) {
                  return std::find(w.labels.begin(), w.labels.end(), l) != w.labels.end();
                });
          });
      if (some_worker_fits) continue;
      if (++waiting > kMaxWaitingRows) continue;  // summarised below
      rows.push_back(
          {"waiting_for_labels", p.spec.run_id, p.spec.phase_id, 1,
           absl::StrCat("waiting for a worker with labels ", absl::StrJoin(p.spec.labels, ","),
                        " (no registered worker has them all)")});
    }
  }
  if (waiting > kMaxWaitingRows) {
    // One row per phase would flood status; the rest is counted.
    rows.push_back({"waiting_for_labels", "*", "", waiting - kMaxWaitingRows,
                    "more phases waiting for a worker with their labels (not listed)"});
  }
  for (const RunStats& run : runs) {
    if (run.failed <= 0) continue;
    rows.push_back({"failed", run.run_id, "", run.failed,
                    absl::StrCat("failed for good: attempts exhausted (max_attempts_per_phase ",
                                 settings.max_attempts_per_phase,
                                 ") or lost too often (max_requeues_per_phase ",
                                 settings.max_requeues_per_phase, ")")});
  }
  return rows;
}

absl::StatusOr<SessionReport> Coordinator::SessionReportFor(const std::string& session_id) {
  SLUICE_ASSIGN_OR_RETURN(std::optional<SessionRecord> latest, store_.LatestSession());
  std::string id = session_id;
  if (id.empty()) {
    if (!latest) return absl::NotFoundError("no session yet");
    id = latest->session_id;
  }
  SLUICE_ASSIGN_OR_RETURN(SessionReport report, BuildSessionReport(store_, id));
  if (latest && latest->session_id == id) {
    SLUICE_ASSIGN_OR_RETURN(report.skipped, ExplainSkips(latest->settings));
  }
  return report;
}

absl::Status Coordinator::Tick() {
  // The leadership this tick acted under: a fenced write must step down that
  // one, not one installed while the tick ran.
  Leadership* leadership = leadership_.load();
  if (absl::Status st = CheckLeader(); !st.ok()) return st;
  absl::Status st = TickAsLeader();
  // The store refused a write as fenced: someone else took over while this
  // process still believed it led. Stop at once rather than at the next renewal.
  if (IsNotLeader(st) && leadership != nullptr) {
    leadership->OnFenced(st);
  }
  return st;
}

absl::Status Coordinator::TickAsLeader() {
  SLUICE_ASSIGN_OR_RETURN(std::optional<SessionRecord> session, store_.LatestSession());
  const int32_t max_requeues =
      session ? session->settings.max_requeues_per_phase : SessionSettings{}.max_requeues_per_phase;
  SLUICE_ASSIGN_OR_RETURN(std::vector<ExpiredLease> expired,
                          store_.ExpireLeases(clock_.NowMs(), max_requeues));
  if (!expired.empty()) {
    // Before the history is loaded these attempts are part of it.
    absl::MutexLock lock(&policy_mu_);
    if (policy_loaded_) outcome_totals_[Outcome::kLost] += static_cast<int64_t>(expired.size());
  }
  for (const ExpiredLease& e : expired) {
    spdlog::warn("lease expired run={} phase={} attempt={} lease={} worker={} phase_state={}",
                 e.lease.run_id, e.lease.phase_id, e.lease.attempt, e.lease.lease_id,
                 e.lease.worker_id, PhaseStateName(e.phase_state));
  }
  if (session && session->state == SessionState::kActive) {
    SLUICE_ASSIGN_OR_RETURN(std::string reason, SessionDoneReason(*session));
    if (!reason.empty()) {
      SLUICE_RETURN_IF_ERROR(
          store_.EndSession(session->session_id, SessionState::kFinished, clock_.NowMs(), reason));
      spdlog::info("session finished session={} reason={}", session->session_id, reason);
    } else {
      SLUICE_RETURN_IF_ERROR(CheckTelemetry(*session));
    }
  }
  if (!expired.empty()) WakeLeasePolls();
  return absl::OkStatus();
}

absl::StatusOr<std::map<Outcome, int64_t>> Coordinator::OutcomeTotals() {
  SLUICE_RETURN_IF_ERROR(EnsurePolicyLoaded());
  std::map<Outcome, int64_t> totals;
  for (Outcome o : {Outcome::kSucceeded, Outcome::kFailed, Outcome::kTimedOut, Outcome::kKilled,
                    Outcome::kCancelled, Outcome::kLost}) {
    totals[o] = 0;
  }
  absl::MutexLock lock(&policy_mu_);
  for (const auto& [outcome, count] : outcome_totals_) totals[outcome] = count;
  return totals;
}

void Coordinator::WakeLeasePolls() {
  absl::MutexLock lock(&lease_mu_);
  ++generation_;
  work_changed_.SignalAll();
}

absl::StatusOr<LeasingPause> Coordinator::LoadPause(const std::string& session_id) {
  SLUICE_ASSIGN_OR_RETURN(auto records, store_.ListPolicyRecords(kLeasingPauseRecord));
  auto it = records.find(session_id);
  if (it == records.end()) {
    LeasingPause none;
    none.session_id = session_id;
    return none;
  }
  std::optional<LeasingPause> pause = LeasingPauseFromJson(session_id, it->second);
  if (!pause) {
    return absl::InternalError(
        absl::StrCat("corrupt leasing pause record for session ", session_id, ": ", it->second));
  }
  return *pause;
}

absl::StatusOr<bool> Coordinator::LeasingPaused(const std::string& session_id) {
  {
    absl::MutexLock lock(&alarm_mu_);
    if (pause_cache_ && pause_cache_->session_id == session_id) return pause_cache_->paused;
  }
  SLUICE_ASSIGN_OR_RETURN(LeasingPause pause, LoadPause(session_id));
  absl::MutexLock lock(&alarm_mu_);
  pause_cache_ = pause;
  return pause.paused;
}

absl::Status Coordinator::CheckTelemetry(const SessionRecord& session) {
  // Refreshed every tick: a resume written by another process is seen here.
  SLUICE_ASSIGN_OR_RETURN(LeasingPause pause, LoadPause(session.session_id));
  bool resumed_elsewhere = false;
  const uint64_t accepted = reports_accepted_.load();
  {
    absl::MutexLock lock(&alarm_mu_);
    resumed_elsewhere = pause_cache_ && pause_cache_->session_id == session.session_id &&
                        pause_cache_->paused && !pause.paused;
    pause_cache_ = pause;
    if (!resumed_elsewhere && checked_session_ == session.session_id &&
        (reports_checked_ == accepted || absl::Now() < next_alarm_check_)) {
      return absl::OkStatus();  // nothing new to judge, or judged a moment ago
    }
  }
  if (resumed_elsewhere) {
    spdlog::info("leasing resumed session={}", session.session_id);
    WakeLeasePolls();
  }
  const absl::Time check_started = absl::Now();
  SLUICE_ASSIGN_OR_RETURN(std::vector<AttemptRecord> attempts,
                          store_.ListAttempts(session.session_id));
  std::erase_if(attempts,
                [&](const AttemptRecord& a) { return a.ended_at_ms <= pause.resumed_at_ms; });
  std::vector<TelemetryWarning> warnings = DetectTelemetryLoss(attempts);
  const absl::Duration took = absl::Now() - check_started;
  {
    absl::MutexLock lock(&alarm_mu_);
    // Small sessions are judged at every tick with news; one whose check
    // took over 50 ms waits 10x that, so the alarm costs at most ~10% of a
    // core however long the session grows.
    next_alarm_check_ =
        took > absl::Milliseconds(50) ? absl::Now() + 10 * took : absl::InfinitePast();
    std::string logged;
    for (const TelemetryWarning& w : warnings) {
      absl::StrAppend(&logged, std::string(TelemetryWarningKindName(w.kind)), ":", w.worker_id,
                      ";");
    }
    if (logged != warnings_logged_) {  // log a finding once, not every tick
      for (const TelemetryWarning& w : warnings) {
        spdlog::warn("telemetry alarm session={} kind={}: {}", session.session_id,
                     TelemetryWarningKindName(w.kind), w.message);
      }
      warnings_logged_ = logged;
    }
    warnings_ = warnings;
    reports_checked_ = accepted;
    checked_session_ = session.session_id;
  }
  if (warnings.empty() || pause.paused ||
      session.settings.on_telemetry_loss != TelemetryLossAction::kPause) {
    return absl::OkStatus();
  }
  pause.paused = true;
  pause.reason = absl::StrCat("telemetry loss: ", warnings.front().message);
  pause.paused_at_ms = clock_.NowMs();
  SLUICE_RETURN_IF_ERROR(
      store_.PutPolicyRecord(kLeasingPauseRecord, session.session_id, LeasingPauseToJson(pause)));
  {
    absl::MutexLock lock(&alarm_mu_);
    pause_cache_ = pause;
  }
  spdlog::warn(
      "leasing paused session={}: {} (running phases finish; `sluice resume` continues once "
      "phases get their telemetry environment)",
      session.session_id, pause.reason);
  return absl::OkStatus();
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
  SLUICE_ASSIGN_OR_RETURN(LeasingPause pause, LoadPause(session->session_id));
  if (!pause.paused) {
    return absl::FailedPreconditionError(
        absl::StrCat("leasing of session ", session->session_id, " is not paused"));
  }
  const LeasingPause ended = pause;
  pause.paused = false;
  pause.resumed_at_ms = clock_.NowMs();
  SLUICE_RETURN_IF_ERROR(
      store_.PutPolicyRecord(kLeasingPauseRecord, session->session_id, LeasingPauseToJson(pause)));
  {
    absl::MutexLock lock(&alarm_mu_);
    pause_cache_ = pause;
    warnings_.clear();  // the alarm judges the attempts after the resume afresh
    checked_session_.clear();
    warnings_logged_.clear();
  }
  spdlog::info("leasing resumed session={} (was paused: {})", session->session_id, ended.reason);
  WakeLeasePolls();
  return ended;
}

void Coordinator::BeginShutdown() {
  absl::MutexLock lock(&lease_mu_);
  shutting_down_ = true;
  ++generation_;
  work_changed_.SignalAll();
}

absl::StatusOr<CoordinatorStatus> Coordinator::Status(bool explain_skips) {
  SLUICE_RETURN_IF_ERROR(CheckLeader());
  CoordinatorStatus status;
  SLUICE_ASSIGN_OR_RETURN(status.phases, store_.CountPhases());
  SLUICE_ASSIGN_OR_RETURN(status.workers, store_.ListWorkers());
  SLUICE_ASSIGN_OR_RETURN(status.active_leases, store_.ListActiveLeases());
  for (const LeaseGrant& l : status.active_leases) ++status.active_leases_by_worker[l.worker_id];
  SLUICE_ASSIGN_OR_RETURN(status.late_reports, store_.CountLateReports());
  SLUICE_ASSIGN_OR_RETURN(status.session, store_.LatestSession());
  if (status.session) {
    SLUICE_ASSIGN_OR_RETURN(status.session_finished,
                            store_.CountSessionAttempts(status.session->session_id));
    SLUICE_ASSIGN_OR_RETURN(std::string reason, SessionDoneReason(*status.session));
    status.session_done = !reason.empty() && status.active_leases.empty();
    SLUICE_ASSIGN_OR_RETURN(LeasingPause pause, LoadPause(status.session->session_id));
    if (pause.paused && status.session->state == SessionState::kActive) status.pause = pause;
    absl::MutexLock lock(&alarm_mu_);
    if (checked_session_ == status.session->session_id) {
      status.telemetry_warnings = warnings_;
    }
  }
  if (explain_skips) {
    SLUICE_ASSIGN_OR_RETURN(status.skipped, ExplainSkips(status.session ? status.session->settings
                                                                        : SessionSettings{}));
  }
  return status;
}

}  // namespace sluice
