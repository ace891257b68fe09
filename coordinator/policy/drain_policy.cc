#include "coordinator/policy/drain_policy.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <string_view>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/fingerprint.h"
#include "common/ids.h"
#include "common/status_macros.h"
#include "coordinator/policy/backlog_history.h"
#include "coordinator/policy/outcome_evidence.h"
#include "coordinator/store/active_lease.h"
#include "spdlog/spdlog.h"

namespace sluice {

absl::Status ValidateSessionSettings(const SessionSettings& s) {
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
  if (s.idle_timeout_seconds < -1) {
    return absl::InvalidArgumentError(
        "idle_timeout_seconds must be -1 (off), 0 (auto) or a number of seconds > 0");
  }
  if (!(s.min_expected_yield >= 0) || !std::isfinite(s.min_expected_yield)) {
    return absl::InvalidArgumentError(
        "min_expected_yield must be a finite number >= 0 (events per worker-minute; 0 = off)");
  }
  if (auto m = TransientMatcher::ForSettings(s.retry_on); !m.ok()) return m.status();
  return absl::OkStatus();
}

int64_t TransientBackoffMs(int streak) {
  // Exponential without jitter: one coordinator decides, so there is no herd.
  return std::min<int64_t>(int64_t{10'000} << std::clamp(streak - 1, 0, 5), 300'000);
}

namespace {

// The backoff rule, for Observe and for the history replayed at load: an
// attempt of `run` that ended at `ended_at_ms` with a transient failure
// lengthens the run's streak and backs it off from then; another attempt that
// ran the phase (RanThePhase) ends both; a cancelled or start_failed attempt
// does neither. True when the run now backs off.
bool ApplyBackoffRule(const std::string& run, bool transient, bool ran, int64_t ended_at_ms,
                      std::map<std::string, int>& streaks,
                      std::map<std::string, int64_t>& backoff_until) {
  if (transient) {
    const int streak = ++streaks[run];
    backoff_until[run] = ended_at_ms + TransientBackoffMs(streak);
    return true;
  }
  if (ran) {
    streaks.erase(run);
    backoff_until.erase(run);
  }
  return false;
}

}  // namespace

DrainPolicy::DrainPolicy(StateStore& store, const Clock& clock, SchedulerOptions options)
    : store_(store),
      clock_(clock),
      scheduler_(std::move(options)),
      run_stats_([&store] { return store.ListRunStats(); }),
      failure_policy_(scheduler_.options().family_rule) {}

absl::Status DrainPolicy::EnsureLoaded() {
  {
    absl::MutexLock lock(&mu_);
    // One read at a time: a caller that finds one in flight (the tick's at
    // start-up, while the first page loads) waits for it instead of reading
    // the whole history a second time alongside it (twice the memory).
    mu_.Await(absl::Condition(
        +[](bool* loading) { return !*loading; }, &loading_));
    if (loaded_) return absl::OkStatus();
    loading_ = true;
  }
  absl::Status st = LoadHistory();
  absl::MutexLock lock(&mu_);
  loading_ = false;
  return st;
}

absl::Status DrainPolicy::LoadHistory() {
  // Rebuilt from the whole history once per coordinator (start or takeover),
  // outside the lock: the read may be long and reports must not wait on it.
  // Read and replayed in chunks, without stdout/stderr tails: what is held
  // is one chunk and the state built, not the history (1M attempts held
  // whole were ~500 MB).
  SLUICE_ASSIGN_OR_RETURN(auto records, store_.ListPolicyRecords(kFingerprintUnblockRecord));
  std::map<std::string, int64_t> unblocks;
  for (const auto& [fp, value] : records) {
    int64_t at = 0;
    if (absl::SimpleAtoi(value, &at)) unblocks[fp] = at;
  }
  // Which past failures were transient: under the latest session's settings.
  SLUICE_ASSIGN_OR_RETURN(std::optional<SessionRecord> latest, store_.LatestSession());
  SLUICE_ASSIGN_OR_RETURN(TransientMatcher matcher,
                          TransientMatcher::ForSettings(latest ? latest->settings.retry_on
                                                               : std::vector<std::string>{}));
  FailurePolicy failures(scheduler_.options().family_rule);
  failures.Load({}, unblocks);
  RetryEvidence retries;
  std::map<Outcome, int64_t> totals;
  EffortTotals effort;
  // Backoffs as Observe left them, so `status --store`, a restart and a
  // takeover see a run that just hit a rate limit as backing off instead of
  // leasing it again at once: Observe's rule replayed in the order attempts
  // ended, from each attempt's end (the report's time, which Observe counts
  // from). Lost attempts never reach Observe.
  std::map<std::string, int> streaks;
  std::map<std::string, int64_t> backoff_until;
  // A deterministic failure repeats its text (a run family's import error),
  // so each distinct fingerprint and error text is matched once: the
  // patterns were ~40 % of loading 1M failed attempts. Up to a bound, so a
  // history of all-different texts does not add a map as large as itself.
  // Keyed by "fingerprint NUL error text" (the chunk's strings do not live
  // on), looked up without an allocation through one reused key.
  constexpr size_t kMaxRemembered = 65'536;
  absl::flat_hash_map<std::string, bool> matched;
  std::string key;
  auto is_transient = [&](const AttemptRecord& a) {
    if (a.outcome != Outcome::kFailed) return false;
    key.assign(a.fingerprint).push_back('\0');
    key.append(a.error_text);
    if (auto it = matched.find(key); it != matched.end()) return it->second;
    const bool transient = matcher.Matches(a.fingerprint, a.error_text);
    if (matched.size() < kMaxRemembered) matched.emplace(key, transient);
    return transient;
  };
  std::unique_ptr<HistoryFollower> follower = follower_factory_ ? follower_factory_() : nullptr;
  int64_t cursor = 0;
  SLUICE_RETURN_IF_ERROR(ReadAttemptsOn(store_, "", &cursor, [&](const AttemptRecord& a) {
    if (follower) follower->Observe(a);
    // History does not say which failures were transient under the settings
    // of their day: today's settings decide.
    const bool transient = is_transient(a);
    failures.Observe(a.run_id, a.outcome, a.fingerprint, a.error_text, a.ended_at_ms, transient,
                     a.phase_id);
    retries.Observe(a.run_id, a.phase_id, a.outcome, a.fingerprint, transient);
    if (a.outcome != Outcome::kLost) {
      (void)ApplyBackoffRule(a.run_id, transient, RanThePhase(a.outcome), a.ended_at_ms, streaks,
                             backoff_until);
    }
    ++totals[a.outcome];
    effort.telemetry_events += a.telemetry_events;
    effort.run_ms += a.duration_ms;
    effort.unknown_telemetry_ms += UnknownTelemetryMs(a);
  }));
  if (follower) follower->Done(cursor);
  absl::MutexLock lock(&mu_);
  if (!loaded_) {
    failure_policy_ = std::move(failures);
    retry_evidence_ = std::move(retries);
    // try_emplace: a report observed since the history was read is newer.
    for (const auto& [run, streak] : streaks) run_transient_streak_.try_emplace(run, streak);
    for (const auto& [run, until] : backoff_until) run_backoff_until_.try_emplace(run, until);
    outcome_totals_ = std::move(totals);  // a new term recounts from the store
    effort_ = effort;
    loaded_ = true;
    ++generation_;
  }
  return absl::OkStatus();
}

void DrainPolicy::ResetForNewTerm() {
  absl::MutexLock lock(&mu_);
  loaded_ = false;
  failure_policy_ = FailurePolicy(scheduler_.options().family_rule);
  run_backoff_until_.clear();
  run_transient_streak_.clear();
  run_waiting_since_.clear();
  retry_tier_.Reset();
  idle_limit_.Reset();
  zero_yield_session_.clear();
  zero_yield_streak_ = 0;
  ++generation_;
  end_verdict_.reset();
}

bool DrainPolicy::DeadlinePassed(const SessionRecord& session) const {
  return session.settings.max_total_minutes > 0 &&
         clock_.NowMs() >=
             session.started_at_ms + int64_t{session.settings.max_total_minutes} * 60'000;
}

absl::StatusOr<std::optional<SessionRecord>> DrainPolicy::ActiveSession() {
  SLUICE_ASSIGN_OR_RETURN(std::optional<SessionRecord> s, store_.LatestSession());
  if (!s || s->state != SessionState::kActive || DeadlinePassed(*s)) {
    return std::optional<SessionRecord>();
  }
  return s;
}

absl::StatusOr<ReportParams> DrainPolicy::PrepareReport(const AttemptReport& report,
                                                        const SessionSettings& settings) const {
  ReportParams params;
  params.report = report;
  params.fingerprint =
      ComputeFingerprint(report.outcome, report.exit_code, report.signal, report.error_text).key;
  params.now_ms = clock_.NowMs();
  bool transient = false;
  if (report.outcome == Outcome::kFailed) {
    SLUICE_ASSIGN_OR_RETURN(TransientMatcher matcher,
                            TransientMatcher::ForSettings(settings.retry_on));
    transient = matcher.Matches(params.fingerprint, report.error_text);
  }
  const bool counts_as_attempt = !transient;
  PhaseBudget budget = BudgetOf(settings);
  if (counts_as_attempt) {
    PolicyReason declined;
    {
      absl::MutexLock lock(&mu_);
      declined = retry_evidence_.Decide(report.outcome, params.fingerprint);
    }
    if (declined.empty() && budget.max_attempts > 1) {
      SLUICE_ASSIGN_OR_RETURN(declined, BacklogHistoryDeclines(report));
    }
    if (!declined.empty()) {
      budget.max_attempts = 1;  // fails the phase for good now
      spdlog::info("lease={}: {}", report.lease_id, declined.Text());
    }
  }
  params.transition = TransitionAfterOutcome(budget, report.outcome, counts_as_attempt);
  return params;
}

absl::StatusOr<PolicyReason> DrainPolicy::BacklogHistoryDeclines(
    const AttemptReport& report) const {
  if (report.outcome != Outcome::kFailed && report.outcome != Outcome::kTimedOut) {
    return PolicyReason{};
  }
  SLUICE_ASSIGN_OR_RETURN(std::optional<LeaseGrant> lease,
                          FindActiveLease(store_, report.lease_id));
  // An unknown or expired lease: the store answers the report without a
  // transition, so there is nothing to decide.
  if (!lease) return PolicyReason{};
  SLUICE_ASSIGN_OR_RETURN(std::optional<PhaseRecord> phase,
                          store_.GetPhase({lease->run_id, lease->phase_id}));
  if (!phase) return PolicyReason{};
  return RepeatsBacklogFailure(report.outcome, report.error_text, phase->spec.last_error);
}

void DrainPolicy::Observe(const ReportParams& params, const ReportResult& result,
                          const std::optional<SessionRecord>& session) {
  const AttemptReport& report = params.report;
  // A failure spends the requeue budget exactly when PrepareReport found it
  // transient.
  const bool transient = report.outcome == Outcome::kFailed &&
                         params.transition.counter == PhaseTransition::Counter::kRequeues;
  const bool ran = RanThePhase(report.outcome);
  absl::MutexLock lock(&mu_);
  ++generation_;
  ++outcome_totals_[report.outcome];
  effort_.telemetry_events += report.telemetry_events;
  effort_.run_ms += report.duration_ms;
  if (report.telemetry_unknown) effort_.unknown_telemetry_ms += report.duration_ms;
  failure_policy_.Observe(result.run_id, report.outcome, params.fingerprint, report.error_text,
                          params.now_ms, transient, result.phase_id);
  retry_evidence_.Observe(result.run_id, result.phase_id, report.outcome, params.fingerprint,
                          transient);
  retry_tier_.Observe(report.lease_id, IsPhaseVerdict(report.outcome) && !transient,
                      report.telemetry_events, report.duration_ms, report.telemetry_unknown);
  idle_limit_.Observe(report.outcome, report.longest_silence_ms);
  if (ApplyBackoffRule(result.run_id, transient, ran, params.now_ms, run_transient_streak_,
                       run_backoff_until_)) {
    spdlog::info("transient failure run={} phase={}: run backs off", result.run_id,
                 result.phase_id);
  }
  if (session && ran) {
    if (zero_yield_session_ != session->session_id) {
      zero_yield_session_ = session->session_id;
      zero_yield_streak_ = 0;
    }
    // Unknown telemetry (the worker's probe failed) is no evidence either
    // way: it neither lengthens the streak nor ends it.
    if (!report.telemetry_unknown) {
      zero_yield_streak_ = report.telemetry_events == 0 ? zero_yield_streak_ + 1 : 0;
    }
  }
}

int64_t DrainPolicy::ZeroYieldStreak(const std::string& session_id) {
  absl::MutexLock lock(&mu_);
  return zero_yield_session_ == session_id ? zero_yield_streak_ : 0;
}

int32_t DrainPolicy::RequeueBudget(const std::optional<SessionRecord>& latest) {
  return latest ? latest->settings.max_requeues_per_phase
                : SessionSettings{}.max_requeues_per_phase;
}

PhaseBudget DrainPolicy::BudgetOf(const SessionSettings& settings) {
  return PhaseBudget{settings.max_attempts_per_phase, settings.max_requeues_per_phase};
}

PhaseTransition DrainPolicy::ExpiryTransition(const std::optional<SessionRecord>& latest) {
  return LostLeaseTransition(RequeueBudget(latest));
}

void DrainPolicy::Granted(const LeaseGrant& grant) {
  absl::MutexLock lock(&mu_);
  retry_tier_.Granted(grant.run_id, grant.lease_id, grant.retry_tier);
}

int32_t DrainPolicy::IdleTimeoutSeconds(const SessionSettings& settings,
                                        int32_t timeout_seconds) const {
  absl::MutexLock lock(&mu_);
  return idle_limit_.SecondsFor(settings, timeout_seconds);
}

bool DrainPolicy::InRetryTier(const std::string& run_id) const {
  absl::MutexLock lock(&mu_);
  return retry_tier_.InTier(run_id);
}

void DrainPolicy::UntriedDone(const std::string& run_id) {
  absl::MutexLock lock(&mu_);
  ++generation_;  // the run's rank changed
  retry_tier_.UntriedDone(run_id);
}

void DrainPolicy::ObserveLost(int64_t count) {
  absl::MutexLock lock(&mu_);
  ++generation_;
  // Before the history is loaded these attempts are part of it.
  if (loaded_) outcome_totals_[Outcome::kLost] += count;
}

absl::StatusOr<std::map<std::string, RunPolicyState>> DrainPolicy::StateOf(
    const std::vector<RunStats>& runs, const SessionSettings& settings) {
  SLUICE_RETURN_IF_ERROR(EnsureLoaded());
  std::map<std::string, RunPolicyState> out;
  const int64_t now = clock_.NowMs();
  absl::MutexLock lock(&mu_);
  const double tier_factor = RetryTierFactor();
  for (const RunStats& run : runs) {
    RunPolicyState state;
    if (retry_tier_.InTier(run.run_id)) {
      state.retry_tier = true;
      state.retry_tier_factor = tier_factor;
    }
    if (run.pending <= 0) {
      run_waiting_since_.erase(run.run_id);
    } else if (run.leased > 0) {
      run_waiting_since_[run.run_id] = now;  // served now: not waiting
    } else {
      state.waiting_since_ms = run_waiting_since_.try_emplace(run.run_id, now).first->second;
    }
    if (auto fp = failure_policy_.BlockingFingerprint(run.run_id, settings.max_fingerprint_repeats,
                                                      run.successes)) {
      state.blocked_by_fingerprint = *fp;
    }
    if (auto it = run_backoff_until_.find(run.run_id); it != run_backoff_until_.end()) {
      state.backoff_until_ms = it->second;
    }
    const RunFailures failures = failure_policy_.FailuresOf(run.run_id);
    state.deterministic_failures = failures.count;
    state.failure_fingerprint = failures.top_fingerprint;
    if (!state.blocked_by_fingerprint.empty() || state.backoff_until_ms > 0 ||
        state.deterministic_failures > 0 || state.waiting_since_ms > 0 || state.retry_tier) {
      // Runs come sorted by id (every store lists them so): the hint makes
      // each insert O(1), not a search of 10,000 keys.
      out.emplace_hint(out.end(), run.run_id, std::move(state));
    }
  }
  return out;
}

double DrainPolicy::RetryTierFactor() const {
  // Everyone's yield and minutes per own attempt, as the effort totals have
  // them (all sessions, like the scheduler's backlog-wide estimate).
  int64_t own = 0;
  for (const auto& [outcome, count] : outcome_totals_) {
    if (IsPhaseVerdict(outcome)) own += count;
  }
  const double known_minutes =
      static_cast<double>(effort_.run_ms - effort_.unknown_telemetry_ms) / 60'000.0;
  const double events_per_minute =
      known_minutes > 0 ? static_cast<double>(effort_.telemetry_events) / known_minutes : 0;
  const double minutes_per_attempt =
      own > 0 ? static_cast<double>(effort_.run_ms) / 60'000.0 / static_cast<double>(own) : 0;
  return retry_tier_.Factor(events_per_minute, minutes_per_attempt);
}

absl::StatusOr<std::vector<RunDecision>> DrainPolicy::Decide(const std::vector<RunStats>& runs,
                                                             const SessionSettings& settings,
                                                             int64_t now_ms) {
  SLUICE_ASSIGN_OR_RETURN(auto state, StateOf(runs, settings));
  return scheduler_.Decide(runs, settings, state, now_ms);
}

absl::StatusOr<std::vector<RunRanking>> DrainPolicy::Rank(const std::vector<RunStats>& runs,
                                                          const SessionSettings& settings,
                                                          int64_t now_ms) {
  SLUICE_ASSIGN_OR_RETURN(auto state, StateOf(runs, settings));
  return scheduler_.Rank(runs, settings, state, now_ms);
}

PolicyReason DrainPolicy::FailedForGood(const SessionSettings& settings) {
  return {SkipReason::kFailedForGood, absl::StrCat("attempts exhausted (max_attempts_per_phase ",
                                                   settings.max_attempts_per_phase,
                                                   ") or lost too often (max_requeues_per_phase ",
                                                   settings.max_requeues_per_phase, ")")};
}

namespace {

// "all 10 pending phases are blocked: 2 fingerprints (ID, ID); `sluice
// unblock ID`", or with other exclusions "all 10 pending phases are
// excluded: 8 blocked by 2 fingerprints (...), 2 max_timeouts_per_run";
// empty when nothing is pending or only the operator's own run filters
// (--run-id, --skip-run-prefix) hold pending phases back. Every decision
// is an exclusion here (nothing eligible is left).
std::string NothingLeftDetail(const std::vector<RunDecision>& decisions,
                              const std::map<std::string, RunPolicyState>& state) {
  int64_t pending = 0;
  int64_t blocked = 0;
  int64_t filtered = 0;
  std::set<std::string> fingerprint_ids;
  std::map<std::string, int64_t> others;  // reason name -> pending phases
  for (const RunDecision& d : decisions) {
    pending += d.pending;
    switch (d.excluded.code) {
      case SkipReason::kFingerprintRepeats:
        blocked += d.pending;
        if (auto it = state.find(d.ranking.run_id); it != state.end()) {
          fingerprint_ids.insert(FingerprintId(it->second.blocked_by_fingerprint));
        }
        break;
      case SkipReason::kNotSelected:
      case SkipReason::kSkippedByPrefix:
        filtered += d.pending;
        break;
      default:
        others[std::string(SkipReasonName(d.excluded.code))] += d.pending;
    }
  }
  if (pending == 0 || filtered == pending) return "";
  std::string fingerprints;
  if (blocked > 0) {
    fingerprints = absl::StrCat(fingerprint_ids.size(),
                                fingerprint_ids.size() == 1 ? " fingerprint (" : " fingerprints (",
                                absl::StrJoin(fingerprint_ids, ", "), "); `sluice unblock ID`");
  }
  if (blocked == pending) {
    return absl::StrCat("all ", pending, " pending phases are blocked: ", fingerprints);
  }
  std::vector<std::string> parts;
  if (blocked > 0) parts.push_back(absl::StrCat(blocked, " blocked by ", fingerprints));
  for (const auto& [name, n] : others) parts.push_back(absl::StrCat(n, " ", name));
  if (filtered > 0) parts.push_back(absl::StrCat(filtered, " outside the session's run filters"));
  return absl::StrCat("all ", pending,
                      " pending phases are excluded: ", absl::StrJoin(parts, ", "));
}

}  // namespace

PolicyReason DrainPolicy::FailedForGood(const SessionSettings& settings, FailedBudget budget) {
  if (budget == FailedBudget::kAttempts) {
    return {SkipReason::kFailedForGood, absl::StrCat("attempts exhausted (max_attempts_per_phase ",
                                                     settings.max_attempts_per_phase, ")")};
  }
  return {SkipReason::kFailedForGood,
          absl::StrCat("lost, cancelled or failed transiently too often (max_requeues_per_phase ",
                       settings.max_requeues_per_phase, ")")};
}

absl::StatusOr<SessionEnd> DrainPolicy::SessionEndFor(const SessionRecord& session,
                                                      int64_t reuse_for_ms) {
  if (session.state != SessionState::kActive) {
    if (session.end_reason.empty()) return SessionEnd{};
    return SessionEnd{SessionEndReason::kEnded, session.end_reason};
  }
  if (DeadlinePassed(session)) return SessionEnd{SessionEndReason::kMaxTotalMinutes, ""};
  SLUICE_ASSIGN_OR_RETURN(int64_t finished, store_.CountSessionAttempts(session.session_id));
  if (session.settings.batch_size > 0 && finished >= session.settings.batch_size) {
    return SessionEnd{SessionEndReason::kBatchSize, ""};
  }
  {
    // Like the batch size, the streak ends the session at once, phases still
    // in flight or not: none is leased after it (LeaseBroker), so the
    // operator should see why now, not when the last one reports.
    absl::MutexLock lock(&mu_);
    if (session.settings.max_consecutive_zero_yield > 0 &&
        zero_yield_session_ == session.session_id &&
        zero_yield_streak_ >= session.settings.max_consecutive_zero_yield) {
      return SessionEnd{SessionEndReason::kZeroYield, absl::StrCat(zero_yield_streak_)};
    }
  }
  SLUICE_ASSIGN_OR_RETURN(PhaseCounts counts, store_.CountPhases());
  if (counts.leased > 0) return SessionEnd{};
  EndVerdict verdict{.session_id = session.session_id,
                     .settings = session.settings,
                     .counts = counts,
                     .finished = finished,
                     .generation = 0,
                     .at_ms = clock_.NowMs(),
                     .end = {}};
  {
    absl::MutexLock lock(&mu_);
    const std::optional<EndVerdict>& last = end_verdict_;
    if (last && last->session_id == verdict.session_id && last->settings == session.settings &&
        last->counts == counts && last->finished == finished && last->generation == generation_ &&
        verdict.at_ms >= last->at_ms && verdict.at_ms - last->at_ms < reuse_for_ms) {
      return last->end;
    }
    // Taken before deciding: a change made while this one decides makes
    // the verdict stale at once, never hides behind it.
    verdict.generation = generation_;
  }
  SLUICE_ASSIGN_OR_RETURN(verdict.end, SessionEndWithNothingLeased(session));
  SessionEnd end = verdict.end;
  absl::MutexLock lock(&mu_);
  end_verdict_ = std::move(verdict);
  return end;
}

absl::StatusOr<SessionEnd> DrainPolicy::SessionEndWithNothingLeased(const SessionRecord& session) {
  ++end_decisions_;
  SLUICE_ASSIGN_OR_RETURN(std::vector<RunStats> runs, run_stats_());
  // The counts said nothing was leased, but a grant may have come between
  // that read and this one: its phase is no longer pending, so its run would
  // look finished and the session would end with the phase in flight (CI
  // caught a drain stopping with its last phase never run). In flight is not
  // over, whatever the counts said.
  if (std::any_of(runs.begin(), runs.end(), [](const RunStats& r) { return r.leased > 0; })) {
    return SessionEnd{};
  }
  SLUICE_ASSIGN_OR_RETURN(auto state, StateOf(runs, session.settings));
  const std::vector<RunDecision> decisions =
      scheduler_.Decide(runs, session.settings, state, clock_.NowMs());
  // A run backing off comes back by itself: the session waits for it.
  const bool waiting_on_backoff =
      std::any_of(decisions.begin(), decisions.end(),
                  [](const RunDecision& d) { return d.excluded.code == SkipReason::kBackingOff; });
  const bool any_eligible = std::any_of(decisions.begin(), decisions.end(),
                                        [](const RunDecision& d) { return d.excluded.empty(); });
  if (!any_eligible && !waiting_on_backoff) {
    // The stop rule ends the session when it is what keeps work back.
    int64_t below_phases = 0, below_runs = 0;
    double best = 0;
    for (const RunDecision& d : decisions) {
      if (d.excluded.code != SkipReason::kBelowMinExpectedYield) continue;
      below_phases += d.pending;
      ++below_runs;
      best = std::max(best, d.ranking.expected_yield);
    }
    if (below_runs > 0) {
      return SessionEnd{
          SessionEndReason::kBelowMinExpectedYield,
          absl::StrFormat("%g events/min; %d pending phases in %d runs, the best expected at %.3f",
                          session.settings.min_expected_yield, below_phases, below_runs, best)};
    }
    return SessionEnd{SessionEndReason::kNothingLeft, NothingLeftDetail(decisions, state)};
  }
  return SessionEnd{};
}

absl::StatusOr<std::map<Outcome, int64_t>> DrainPolicy::OutcomeTotals() {
  SLUICE_RETURN_IF_ERROR(EnsureLoaded());
  std::map<Outcome, int64_t> totals;
  for (Outcome o : {Outcome::kSucceeded, Outcome::kFailed, Outcome::kTimedOut, Outcome::kKilled,
                    Outcome::kCancelled, Outcome::kLost, Outcome::kStartFailed}) {
    totals[o] = 0;
  }
  absl::MutexLock lock(&mu_);
  for (const auto& [outcome, count] : outcome_totals_) totals[outcome] = count;
  return totals;
}

absl::StatusOr<DrainPolicy::EffortTotals> DrainPolicy::Effort() {
  SLUICE_RETURN_IF_ERROR(EnsureLoaded());
  absl::MutexLock lock(&mu_);
  return effort_;
}

absl::StatusOr<std::vector<FingerprintInfo>> DrainPolicy::Fingerprints() {
  SLUICE_RETURN_IF_ERROR(EnsureLoaded());
  absl::MutexLock lock(&mu_);
  return failure_policy_.Fingerprints();
}

absl::StatusOr<std::string> DrainPolicy::Unblock(const std::string& key_or_id) {
  SLUICE_RETURN_IF_ERROR(EnsureLoaded());
  std::optional<std::string> fp;
  {
    absl::MutexLock lock(&mu_);
    fp = failure_policy_.Resolve(key_or_id);
  }
  if (!fp) return absl::NotFoundError(absl::StrCat("no fingerprint ", key_or_id));
  const int64_t now = clock_.NowMs();
  SLUICE_RETURN_IF_ERROR(
      store_.PutPolicyRecord(kFingerprintUnblockRecord, *fp, std::to_string(now)));
  {
    absl::MutexLock lock(&mu_);
    failure_policy_.Unblock(*fp, now);
    ++generation_;
  }
  spdlog::info("fingerprint unblocked fingerprint={} id={}", *fp, FingerprintId(*fp));
  return *fp;
}

}  // namespace sluice
