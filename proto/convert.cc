#include "proto/convert.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace sluice {

v1::Outcome ToProto(Outcome outcome) {
  switch (outcome) {
    case Outcome::kSucceeded:
      return v1::OUTCOME_SUCCEEDED;
    case Outcome::kFailed:
      return v1::OUTCOME_FAILED;
    case Outcome::kTimedOut:
      return v1::OUTCOME_TIMED_OUT;
    case Outcome::kKilled:
      return v1::OUTCOME_KILLED;
    case Outcome::kCancelled:
      return v1::OUTCOME_CANCELLED;
    case Outcome::kLost:
      return v1::OUTCOME_LOST;
    case Outcome::kStartFailed:
      return v1::OUTCOME_START_FAILED;
  }
  return v1::OUTCOME_UNSPECIFIED;
}

absl::StatusOr<Outcome> FromProto(v1::Outcome outcome) {
  switch (outcome) {
    case v1::OUTCOME_SUCCEEDED:
      return Outcome::kSucceeded;
    case v1::OUTCOME_FAILED:
      return Outcome::kFailed;
    case v1::OUTCOME_TIMED_OUT:
      return Outcome::kTimedOut;
    case v1::OUTCOME_KILLED:
      return Outcome::kKilled;
    case v1::OUTCOME_CANCELLED:
      return Outcome::kCancelled;
    case v1::OUTCOME_LOST:
      return Outcome::kLost;
    case v1::OUTCOME_START_FAILED:
      return Outcome::kStartFailed;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("outcome ", static_cast<int>(outcome), " is not a valid outcome"));
  }
}

v1::PhaseState ToProto(PhaseState state) {
  switch (state) {
    case PhaseState::kPending:
      return v1::PHASE_STATE_PENDING;
    case PhaseState::kLeased:
      return v1::PHASE_STATE_LEASED;
    case PhaseState::kSucceeded:
      return v1::PHASE_STATE_SUCCEEDED;
    case PhaseState::kFailed:
      return v1::PHASE_STATE_FAILED;
  }
  return v1::PHASE_STATE_UNSPECIFIED;
}

PhaseState FromProto(v1::PhaseState state) {
  switch (state) {
    case v1::PHASE_STATE_LEASED:
      return PhaseState::kLeased;
    case v1::PHASE_STATE_SUCCEEDED:
      return PhaseState::kSucceeded;
    case v1::PHASE_STATE_FAILED:
      return PhaseState::kFailed;
    default:
      return PhaseState::kPending;
  }
}

void ToProto(const LeaseGrant& g, v1::Lease* out) {
  out->set_lease_id(g.lease_id);
  out->set_epoch(g.epoch);
  out->set_run_id(g.run_id);
  out->set_phase_id(g.phase_id);
  out->set_attempt(g.attempt);
  out->set_session_id(g.session_id);
  out->set_timeout_seconds(g.timeout_seconds);
  out->set_expires_at_ms(g.expires_at_ms);
  out->set_timeout_is_session_deadline(g.timeout_is_session_deadline);
  out->set_worker_id(g.worker_id);
  out->set_idle_timeout_seconds(g.idle_timeout_seconds);
}

LeaseGrant FromProto(const v1::Lease& l) {
  LeaseGrant g;
  g.lease_id = l.lease_id();
  g.epoch = l.epoch();
  g.run_id = l.run_id();
  g.phase_id = l.phase_id();
  g.attempt = l.attempt();
  g.session_id = l.session_id();
  g.timeout_seconds = l.timeout_seconds();
  g.expires_at_ms = l.expires_at_ms();
  g.timeout_is_session_deadline = l.timeout_is_session_deadline();
  g.worker_id = l.worker_id();
  g.idle_timeout_seconds = l.idle_timeout_seconds();
  return g;
}

void ToProto(const AttemptReport& r, v1::ReportRequest* out) {
  out->set_worker_id(r.worker_id);
  out->set_lease_id(r.lease_id);
  out->set_epoch(r.epoch);
  out->set_outcome(ToProto(r.outcome));
  out->set_exit_code(r.exit_code);
  out->set_signal(r.signal);
  out->set_duration_ms(r.duration_ms);
  out->set_stdout_tail(r.stdout_tail);
  out->set_stderr_tail(r.stderr_tail);
  out->set_error_text(r.error_text);
  out->set_telemetry_events(r.telemetry_events);
  for (const auto& [type, count] : r.telemetry_by_type) {
    (*out->mutable_telemetry_by_type())[type] = count;
  }
  out->set_telemetry_unknown(r.telemetry_unknown);
  if (r.longest_silence_ms >= 0) out->set_longest_silence_ms(r.longest_silence_ms);
}

absl::StatusOr<AttemptReport> FromProto(const v1::ReportRequest& in) {
  AttemptReport r;
  absl::StatusOr<Outcome> outcome = FromProto(in.outcome());
  if (!outcome.ok()) return outcome.status();
  r.worker_id = in.worker_id();
  r.lease_id = in.lease_id();
  r.epoch = in.epoch();
  r.outcome = *outcome;
  r.exit_code = in.exit_code();
  r.signal = in.signal();
  r.duration_ms = in.duration_ms();
  r.stdout_tail = in.stdout_tail();
  r.stderr_tail = in.stderr_tail();
  r.error_text = in.error_text();
  r.telemetry_events = in.telemetry_events();
  for (const auto& [type, count] : in.telemetry_by_type()) r.telemetry_by_type[type] = count;
  r.telemetry_unknown = in.telemetry_unknown();
  r.longest_silence_ms = in.has_longest_silence_ms() ? in.longest_silence_ms() : -1;
  return r;
}

void ToProto(const PhaseSpec& s, v1::PhaseSpec* out) {
  out->set_run_id(s.run_id);
  out->set_phase_id(s.phase_id);
  out->set_phase_index(s.phase_index);
  out->set_priority(s.priority);
  out->set_last_error(s.last_error);
  for (const std::string& l : s.labels) out->add_labels(l);
  out->set_metadata_json(s.metadata_json);
}

PhaseSpec FromProto(const v1::PhaseSpec& in) {
  PhaseSpec s;
  s.run_id = in.run_id();
  s.phase_id = in.phase_id();
  s.phase_index = in.phase_index();
  s.priority = in.priority();
  s.last_error = in.last_error();
  s.labels.assign(in.labels().begin(), in.labels().end());
  s.metadata_json = in.metadata_json().empty() ? "{}" : in.metadata_json();
  return s;
}

void ToProto(const SessionSettings& s, v1::SessionSettings* out) {
  out->set_batch_size(s.batch_size);
  out->set_phase_timeout_seconds(s.phase_timeout_seconds);
  out->set_max_total_minutes(s.max_total_minutes);
  out->set_max_attempts_per_phase(s.max_attempts_per_phase);
  out->set_max_requeues_per_phase(s.max_requeues_per_phase);
  for (const std::string& r : s.run_ids) out->add_run_ids(r);
  for (const std::string& p : s.skip_run_prefixes) out->add_skip_run_prefixes(p);
  out->set_max_fingerprint_repeats(s.max_fingerprint_repeats);
  out->set_max_timeouts_per_run(s.max_timeouts_per_run);
  out->set_max_consecutive_zero_yield(s.max_consecutive_zero_yield);
  for (const std::string& p : s.retry_on) {
    // The switch travels as its own field; the marker is how the model keeps it.
    if (p == kNoDefaultTransient) {
      out->set_no_default_transient(true);
    } else {
      out->add_retry_on(p);
    }
  }
  out->set_min_expected_yield(s.min_expected_yield);
  out->set_idle_timeout_seconds(s.idle_timeout_seconds);
  out->set_on_telemetry_loss(s.on_telemetry_loss == TelemetryLossAction::kPause
                                 ? v1::TELEMETRY_LOSS_PAUSE
                                 : v1::TELEMETRY_LOSS_WARN);
}

SessionSettings FromProto(const v1::SessionSettings& in) {
  SessionSettings s;
  s.batch_size = in.batch_size();
  s.phase_timeout_seconds = in.phase_timeout_seconds();
  s.max_total_minutes = in.max_total_minutes();
  s.max_attempts_per_phase = in.max_attempts_per_phase();
  s.max_requeues_per_phase = in.max_requeues_per_phase();
  s.run_ids.assign(in.run_ids().begin(), in.run_ids().end());
  s.skip_run_prefixes.assign(in.skip_run_prefixes().begin(), in.skip_run_prefixes().end());
  s.max_fingerprint_repeats = in.max_fingerprint_repeats();
  s.max_timeouts_per_run = in.max_timeouts_per_run();
  s.max_consecutive_zero_yield = in.max_consecutive_zero_yield();
  s.retry_on.assign(in.retry_on().begin(), in.retry_on().end());
  // An older client's marker in retry_on and the field mean the same.
  if (in.no_default_transient() &&
      std::find(s.retry_on.begin(), s.retry_on.end(), kNoDefaultTransient) == s.retry_on.end()) {
    s.retry_on.push_back(kNoDefaultTransient);
  }
  s.min_expected_yield = in.min_expected_yield();
  s.idle_timeout_seconds = in.idle_timeout_seconds();
  s.on_telemetry_loss = in.on_telemetry_loss() == v1::TELEMETRY_LOSS_PAUSE
                            ? TelemetryLossAction::kPause
                            : TelemetryLossAction::kWarn;
  return s;
}

void ToProto(const SessionRecord& s, v1::Session* out) {
  out->set_session_id(s.session_id);
  ToProto(s.settings, out->mutable_settings());
  out->set_state(std::string(SessionStateName(s.state)));
  out->set_started_at_ms(s.started_at_ms);
  out->set_ended_at_ms(s.ended_at_ms);
  out->set_end_reason(s.end_reason);
}

SessionRecord FromProto(const v1::Session& in) {
  SessionRecord s;
  s.session_id = in.session_id();
  s.settings = FromProto(in.settings());
  s.state = ParseSessionState(in.state()).value_or(SessionState::kStopped);
  s.started_at_ms = in.started_at_ms();
  s.ended_at_ms = in.ended_at_ms();
  s.end_reason = in.end_reason();
  return s;
}

int ToGrpcCode(absl::StatusCode code) { return static_cast<int>(code); }

}  // namespace sluice
