#include "coordinator/insight/telemetry_watch.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"

namespace sluice {

TelemetryWatch::TelemetryWatch(StateStore& store, const Clock& clock,
                               std::function<void()> wake_lease_polls)
    : store_(store), clock_(clock), wake_lease_polls_(std::move(wake_lease_polls)) {}

absl::StatusOr<LeasingPause> TelemetryWatch::LoadPause(const std::string& session_id) {
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

absl::StatusOr<bool> TelemetryWatch::LeasingPaused(const std::string& session_id) {
  {
    absl::MutexLock lock(&mu_);
    if (pause_cache_ && pause_cache_->session_id == session_id) return pause_cache_->paused;
  }
  SLUICE_ASSIGN_OR_RETURN(LeasingPause pause, LoadPause(session_id));
  absl::MutexLock lock(&mu_);
  pause_cache_ = pause;
  return pause.paused;
}

absl::Status TelemetryWatch::Check(const SessionRecord& session) {
  absl::MutexLock check_lock(&check_mu_);
  // Refreshed every tick: a resume written by another process is seen here.
  SLUICE_ASSIGN_OR_RETURN(LeasingPause pause, LoadPause(session.session_id));
  bool resumed_elsewhere = false;
  const uint64_t accepted = reports_accepted_.load();
  {
    absl::MutexLock lock(&mu_);
    resumed_elsewhere = pause_cache_ && pause_cache_->session_id == session.session_id &&
                        pause_cache_->paused && !pause.paused;
    pause_cache_ = pause;
    if (!resumed_elsewhere && checked_session_ == session.session_id &&
        (reports_checked_ == accepted || absl::Now() < next_check_)) {
      return absl::OkStatus();  // nothing new to judge, or judged a moment ago
    }
  }
  if (resumed_elsewhere) {
    spdlog::info("leasing resumed session={}", session.session_id);
    wake_lease_polls_();
  }
  const absl::Time check_started = absl::Now();
  const bool new_term = tally_stale_.exchange(false);
  if (!tally_ || new_term || tally_session_ != session.session_id ||
      tally_resumed_at_ms_ != pause.resumed_at_ms) {
    tally_.emplace();
    tally_session_ = session.session_id;
    tally_resumed_at_ms_ = pause.resumed_at_ms;
    tally_cursor_ = 0;
  }
  // In chunks, so a session's first check holds one chunk, not the session.
  // A failed read keeps what the chunks before it added, and their cursor.
  SLUICE_RETURN_IF_ERROR(
      ReadAttemptsOn(store_, session.session_id, &tally_cursor_, [&](const AttemptRecord& a) {
        // The alarm judges only attempts that ended after the last resume.
        if (a.ended_at_ms > pause.resumed_at_ms) tally_->Add(a);
      }));
  std::vector<TelemetryWarning> warnings = tally_->Warnings();
  const absl::Duration took = absl::Now() - check_started;
  {
    absl::MutexLock lock(&mu_);
    // Small sessions are judged at every tick with news; one whose check
    // took over 50 ms waits 10x that, so the alarm costs at most ~10% of a
    // core however long the session grows.
    next_check_ = took > absl::Milliseconds(50) ? absl::Now() + 10 * took : absl::InfinitePast();
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
  // Early warnings (TelemetryWarning::pauses false) are shown, never acted on.
  auto pausing = std::find_if(warnings.begin(), warnings.end(),
                              [](const TelemetryWarning& w) { return w.pauses; });
  if (pausing == warnings.end() || pause.paused ||
      session.settings.on_telemetry_loss != TelemetryLossAction::kPause) {
    return absl::OkStatus();
  }
  pause.paused = true;
  pause.reason = absl::StrCat("telemetry loss: ", pausing->message);
  pause.paused_at_ms = clock_.NowMs();
  SLUICE_RETURN_IF_ERROR(
      store_.PutPolicyRecord(kLeasingPauseRecord, session.session_id, LeasingPauseToJson(pause)));
  {
    absl::MutexLock lock(&mu_);
    pause_cache_ = pause;
  }
  spdlog::warn(
      "leasing paused session={}: {} (running phases finish; `sluice resume` continues once "
      "phases get their telemetry environment)",
      session.session_id, pause.reason);
  return absl::OkStatus();
}

absl::StatusOr<LeasingPause> TelemetryWatch::Resume(const SessionRecord& session) {
  SLUICE_ASSIGN_OR_RETURN(LeasingPause pause, LoadPause(session.session_id));
  if (!pause.paused) {
    return absl::FailedPreconditionError(
        absl::StrCat("leasing of session ", session.session_id, " is not paused"));
  }
  const LeasingPause ended = pause;
  pause.paused = false;
  pause.resumed_at_ms = clock_.NowMs();
  SLUICE_RETURN_IF_ERROR(
      store_.PutPolicyRecord(kLeasingPauseRecord, session.session_id, LeasingPauseToJson(pause)));
  {
    absl::MutexLock lock(&mu_);
    pause_cache_ = pause;
    warnings_.clear();  // the alarm judges the attempts after the resume afresh
    checked_session_.clear();
    warnings_logged_.clear();
  }
  spdlog::info("leasing resumed session={} (was paused: {})", session.session_id, ended.reason);
  wake_lease_polls_();
  return ended;
}

std::vector<TelemetryWarning> TelemetryWatch::WarningsFor(const std::string& session_id) const {
  absl::MutexLock lock(&mu_);
  if (checked_session_ != session_id) return {};
  return warnings_;
}

void TelemetryWatch::ResetForNewTerm() {
  tally_stale_.store(true);
  absl::MutexLock lock(&mu_);
  pause_cache_.reset();
  // A new leader judges at its first tick, not after a back-off.
  next_check_ = absl::InfinitePast();
}

}  // namespace sluice
