#include "coordinator/lease/lease_broker.h"

#include <algorithm>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "coordinator/store/active_lease.h"
#include "spdlog/spdlog.h"

namespace sluice {

LeaseBroker::LeaseBroker(StateStore& store, const Clock& clock, DrainPolicy& policy,
                         TelemetryWatch& watch, LeaseBrokerOptions options,
                         std::function<absl::Status()> still_leader,
                         ReadyIndexOptions ready_options)
    : store_(store),
      clock_(clock),
      policy_(policy),
      watch_(watch),
      options_(options),
      still_leader_(std::move(still_leader)),
      ready_(
          store, clock,
          [this](const std::vector<RunStats>& runs, const SessionSettings& settings,
                 int64_t now_ms) { return policy_.Rank(runs, settings, now_ms); },
          ready_options) {}

std::string LeaseBroker::NewId(std::string_view prefix) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  const uint64_t counter = ++id_counter_;
  return absl::StrCat(std::string(prefix), "-", absl::Hex(clock_.NowMs()), "-",
                      absl::Hex(rng() & 0xffffffffff), "-", counter);
}

void LeaseBroker::SetWorkerLabels(const std::string& worker_id, std::vector<std::string> labels) {
  absl::MutexLock lock(&mu_);
  worker_labels_[worker_id] = std::move(labels);
}

bool LeaseBroker::FindRecent(const RequestKey& key, LeaseResult* out) {
  absl::MutexLock lock(&mu_);
  auto it = recent_grants_.find(key);
  if (it == recent_grants_.end()) return false;
  *out = LeaseResult{it->second, true};
  return true;
}

absl::StatusOr<std::vector<LeaseGrant>> LeaseBroker::TryLease(
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
  if (settings.batch_size > 0 || settings.max_consecutive_zero_yield > 0) {
    SLUICE_ASSIGN_OR_RETURN(PhaseCounts counts, store_.CountPhases());
    int64_t room = max_phases;
    if (settings.batch_size > 0) {
      SLUICE_ASSIGN_OR_RETURN(int64_t finished, store_.CountSessionAttempts(session.session_id));
      // Leases in flight count toward the batch, so it is not overshot.
      room = std::min(room, settings.batch_size - finished - counts.leased);
    }
    if (settings.max_consecutive_zero_yield > 0) {
      // Leases in flight count toward the zero-yield streak too: if they all
      // come back without telemetry the streak is complete, so no attempt
      // beyond the N-th runs. A report with events resets the streak.
      room = std::min(room, settings.max_consecutive_zero_yield -
                                policy_.ZeroYieldStreak(session.session_id) - counts.leased);
    }
    if (room <= 0) return grants;
    max_phases = static_cast<int32_t>(std::min<int64_t>(max_phases, room));
  }
  std::set<std::string> empty_runs;  // nothing leasable for these labels
  while (static_cast<int32_t>(grants.size()) < max_phases) {
    absl::StatusOr<std::optional<ReadyIndex::Candidate>> best =
        ready_.Best(session, labels, empty_runs);
    if (!best.ok()) return stop(best.status());
    if (!*best) break;
    const std::string run_id = (*best)->stats.run_id;
    LeaseParams params;
    params.run_id = run_id;
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
    params.ttl_ms = options_.lease_ttl_ms;
    params.worker_labels = labels;
    params.retries_last = true;  // a run's untried phases before its retries (#13)
    // Until the run's untried phases are done, ask for those only: its retry
    // tier is ranked on its own (RetryTier), so it waits for its turn.
    params.untried_only = !policy_.InRetryTier(run_id);
    absl::StatusOr<std::optional<LeaseGrant>> leased = store_.LeaseNextInRun(params);
    if (!leased.ok()) {
      // The write may have committed with only its reply lost: a grant
      // under our lease id is then the worker's, not a phase stranded as
      // leased until it expires as lost.
      // Whether the write committed: the active lease `lease_id`, if any.
      absl::StatusOr<std::optional<LeaseGrant>> committed =
          FindActiveLease(store_, params.lease_id);
      if (!committed.ok() || !committed->has_value()) return stop(leased.status());
      spdlog::warn("lease {}: the store's reply was lost ({}), but the grant was committed",
                   params.lease_id, leased.status().ToString());
      leased = *std::move(committed);
    }
    std::optional<LeaseGrant> grant = *std::move(leased);
    if (!grant && params.untried_only) {
      // Nothing untried fitted: the run is ranked by its retry tier from
      // now on, and offered again at that rank (in this very grant if it is
      // still the best): its retries are then leased. Not a miss: its
      // retries may fit.
      policy_.UntriedDone(run_id);
      ready_.Granted(run_id);  // dirty: ranked again before it is offered again
      continue;
    }
    if (!grant) {
      ready_.Missed(run_id, labels);
      empty_runs.insert(run_id);
      continue;
    }
    // The run just leased from is now sampled: it is ranked again before it
    // is offered again (with the statistics the store answered, if it did).
    ready_.Granted(run_id, grant->run_stats);
    policy_.Granted(*grant);
    grant->timeout_is_session_deadline = params.timeout_seconds < settings.phase_timeout_seconds;
    grant->idle_timeout_seconds = policy_.IdleTimeoutSeconds(settings, params.timeout_seconds);
    spdlog::info("leased run={} phase={} attempt={} lease={} worker={}", grant->run_id,
                 grant->phase_id, grant->attempt, grant->lease_id, worker_id);
    grants.push_back(std::move(*grant));
  }
  return grants;
}

absl::StatusOr<LeaseResult> LeaseBroker::Lease(const std::string& worker_id,
                                               const std::string& request_id, int32_t max_phases,
                                               int64_t wait_ms,
                                               const std::vector<std::string>& after_lease_ids) {
  // The long-poll waits in real time (not on clock_, which tests fake).
  const absl::Time deadline =
      absl::Now() + absl::Milliseconds(std::min(wait_ms, options_.max_lease_wait_ms));
  const RequestKey key(worker_id, request_id);
  LeaseResult result;
  if (FindRecent(key, &result)) return result;
  std::vector<std::string> labels;
  {
    absl::MutexLock lock(&mu_);
    auto it = worker_labels_.find(worker_id);
    if (it == worker_labels_.end()) {
      return absl::FailedPreconditionError(
          absl::StrCat("worker ", worker_id, " is not registered (call Register first)"));
    }
    labels = it->second;
  }
  bool timer_woke = false;  // the last wait ended by the recheck timer, not by Notify
  while (true) {
    uint64_t seen = 0;
    {
      absl::MutexLock lock(&mu_);
      seen = generation_;
    }
    // Leadership may have ended while this poll waited (a step-down wakes
    // it): the worker must go to the new leader, not wait here.
    if (still_leader_) SLUICE_RETURN_IF_ERROR(still_leader_());
    SLUICE_ASSIGN_OR_RETURN(std::optional<SessionRecord> session, policy_.ActiveSession());
    result.session_active = session.has_value();
    if (session) {
      // A paused session grants nothing; its workers keep long-polling and
      // lease again once an operator resumes.
      SLUICE_ASSIGN_OR_RETURN(bool paused, watch_.LeasingPaused(session->session_id));
      bool reports_pending = false;
      for (const std::string& id : after_lease_ids) {
        SLUICE_ASSIGN_OR_RETURN(reports_pending, store_.IsLeaseActive(id));
        if (reports_pending) break;
      }
      if (!paused && !reports_pending) {
        absl::MutexLock grant_lock(&grant_mu_);
        // A retry of this very request may have been granted while this one
        // waited for its turn: it gets those grants, not new ones.
        if (FindRecent(key, &result)) return result;
        SLUICE_ASSIGN_OR_RETURN(result.leases, TryLease(worker_id, labels, *session, max_phases));
        if (!result.leases.empty()) {
          absl::MutexLock lock(&mu_);
          // Work appeared with no Notify (a backoff or deadline passed): the
          // other polls sleep until Notify or their deadline, so wake them.
          if (timer_woke) {
            ++generation_;
            work_changed_.SignalAll();
          }
          recent_grants_[key] = result.leases;
          recent_order_.push_back(key);
          while (recent_order_.size() > options_.recent_grants_kept) {
            recent_grants_.erase(recent_order_.front());
            recent_order_.pop_front();
          }
          return result;
        }
      }
    }
    absl::MutexLock lock(&mu_);
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration() || shutting_down_) {
      // Hand the recheck role over if nobody holds it: a poll waiting without
      // a timer takes it when it wakes (a wasted look at worst, never a missed one).
      if (!recheck_taken_) work_changed_.Signal();
      break;
    }
    timer_woke = false;
    if (generation_ != seen) continue;  // something changed while this poll looked
    // Wait for a report, expiry, import or session start (Notify). Backoffs
    // and session deadlines move on their own, so the store is looked at
    // again every kRecheckInterval, but by ONE waiting poll (the rechecker),
    // not by every one: an idle fleet costs one look per interval, not one
    // per worker, and its other polls sleep without a timer until Notify or
    // their own deadline.
    const bool rechecker = !recheck_taken_;
    if (rechecker) recheck_taken_ = true;
    // Spurious wake-ups are possible: the generation decides, not the result.
    (void)work_changed_.WaitWithTimeout(&mu_, rechecker ? std::min(left, kRecheckInterval) : left);
    timer_woke = generation_ == seen;
    if (rechecker) recheck_taken_ = false;
  }
  return result;
}

void LeaseBroker::WakeEveryoneLocked() {
  ++generation_;
  work_changed_.SignalAll();
  watchers_.SignalAll();
}

void LeaseBroker::Notify() {
  absl::MutexLock lock(&mu_);
  WakeEveryoneLocked();
}

uint64_t LeaseBroker::ChangeCount() {
  absl::MutexLock lock(&mu_);
  return generation_;
}

uint64_t LeaseBroker::WaitForChange(uint64_t seen, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  const absl::Time deadline = absl::Now() + timeout;
  while (generation_ == seen && !watchers_.WaitWithDeadline(&mu_, deadline)) {
  }
  return generation_;
}

void LeaseBroker::BeginShutdown() {
  absl::MutexLock lock(&mu_);
  shutting_down_ = true;
  WakeEveryoneLocked();
}

void LeaseBroker::ResetForNewTerm() {
  absl::MutexLock lock(&mu_);
  ready_.Invalidate();
  recent_grants_.clear();
  recent_order_.clear();
  worker_labels_.clear();  // workers register again (FAILED_PRECONDITION on their next lease)
  WakeEveryoneLocked();
}

}  // namespace sluice
