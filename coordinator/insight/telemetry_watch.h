// The telemetry-loss alarm run against the live session, and the pause of
// leasing it may set. DetectTelemetryLoss (telemetry_alarm.h) is the pure
// judgement; this is the state machine around it: when to look again (only
// after new reports, and not more often than the last look's cost allows),
// what was already logged, the cached pause that Lease consults on every
// poll, and the resume by an operator.
//
// The session's attempts are judged through a TelemetryTally that reads on
// from where the last check stopped (StateStore::ListAttemptsFrom), in
// chunks: a check costs the attempts recorded since the last one, and its
// memory the tally (per worker) and one chunk, however long the session. It
// starts over on another session, after a resume and on a new term.
//
// Thread-safety: every method may be called from many threads. One mutex
// guards the state the lease path reads and is never held across a store
// call; a second one makes checks take turns (the tally reads on from its
// cursor), and only Check takes it.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/model.h"
#include "coordinator/insight/telemetry_alarm.h"
#include "coordinator/policy/leasing_pause.h"
#include "coordinator/store/state_store.h"

namespace sluice {

class TelemetryWatch {
 public:
  // `wake_lease_polls` is called when leasing resumes (here or, seen by
  // Check, through another process) so waiting long-polls lease at once.
  // `store` and `clock` must outlive the watch.
  TelemetryWatch(StateStore& store, const Clock& clock, std::function<void()> wake_lease_polls);

  // The session's pause as stored (paused == false when there is none).
  absl::StatusOr<LeasingPause> LoadPause(const std::string& session_id);
  // Whether leasing is paused for `session_id`, from a cache that Check and
  // Resume refresh (a resume through another process, `sluice resume
  // --store`, is seen at the next Check).
  absl::StatusOr<bool> LeasingPaused(const std::string& session_id) ABSL_LOCKS_EXCLUDED(mu_);

  // A report was accepted: the next Check has something new to judge.
  void ReportAccepted() { reports_accepted_.fetch_add(1); }

  // One alarm round for the active `session` (Tick): refreshes the pause,
  // judges the attempts since the last resume when there is news, logs a new
  // finding once and, with --on-telemetry-loss pause, pauses leasing.
  absl::Status Check(const SessionRecord& session) ABSL_LOCKS_EXCLUDED(mu_, check_mu_);

  // Ends the pause of the active `session`; returns the pause that ended.
  // FailedPrecondition when it is not paused.
  absl::StatusOr<LeasingPause> Resume(const SessionRecord& session) ABSL_LOCKS_EXCLUDED(mu_);

  // The findings of the last Check of `session_id` (empty if it was not the
  // session last checked).
  std::vector<TelemetryWarning> WarningsFor(const std::string& session_id) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // A new leadership term: the pause is re-read from the store (another
  // leader may have resumed it meanwhile), and the next check, without
  // waiting out a back-off, judges the session's attempts from the start.
  void ResetForNewTerm() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  StateStore& store_;
  const Clock& clock_;
  const std::function<void()> wake_lease_polls_;

  mutable absl::Mutex mu_;
  std::optional<LeasingPause> pause_cache_ ABSL_GUARDED_BY(mu_);
  std::vector<TelemetryWarning> warnings_ ABSL_GUARDED_BY(mu_);
  std::string warnings_logged_ ABSL_GUARDED_BY(mu_);  // what was last logged, to log once
  // Reports accepted since the alarm last looked; the alarm re-reads the
  // session's attempts only when this moved. Starts at 1 so a restarted
  // coordinator looks once.
  std::atomic<uint64_t> reports_accepted_{1};
  uint64_t reports_checked_ ABSL_GUARDED_BY(mu_) = 0;
  // Reading a big session's attempts is not free (on Redis one hash per
  // attempt): a check that took long (the first of a long session)
  // postpones the next one (real time).
  absl::Time next_check_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::string checked_session_ ABSL_GUARDED_BY(mu_);

  // Taken by Check for its whole length, before mu_ (never the other way).
  absl::Mutex check_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  // The attempts judged so far: of tally_session_, ended after
  // tally_resumed_at_ms_, read up to tally_cursor_.
  std::optional<TelemetryTally> tally_ ABSL_GUARDED_BY(check_mu_);
  std::string tally_session_ ABSL_GUARDED_BY(check_mu_);
  int64_t tally_resumed_at_ms_ ABSL_GUARDED_BY(check_mu_) = 0;
  int64_t tally_cursor_ ABSL_GUARDED_BY(check_mu_) = 0;
  // Set by ResetForNewTerm: the next check reads the session from its start
  // (a failed-over Redis may have lost what the old term read).
  std::atomic<bool> tally_stale_{false};
};

}  // namespace sluice
