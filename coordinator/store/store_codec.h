// Encodings shared by the state stores (SQLite and Redis keep the same text
// forms, so a store's data reads the same whichever backend wrote it).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/model.h"

namespace sluice {

// Sorted, de-duplicated, comma-joined.
std::string JoinLabels(const std::vector<std::string>& labels);
std::vector<std::string> SplitLabels(const std::string& joined);

std::string TypesToJson(const std::map<std::string, int64_t>& by_type);
std::map<std::string, int64_t> TypesFromJson(const std::string& text);

// Missing keys take SessionSettings' defaults, so older rows stay readable.
std::string SettingsToJson(const SessionSettings& settings);
SessionSettings SettingsFromJson(const std::string& text);

// --- Records, as both stores keep them --------------------------------------
// Each decoder reads one record from `row`, field by field in the order its
// comment lists (SQLite's SELECT columns, Redis's HMGET fields). Row is any
// type with Text(i), Int(i) and Int32(i) for i counting from 0 (a SQLite
// statement, a window on a Redis reply). Unparseable enum text takes the
// default named below instead of failing the read.

// run_id, phase_id, phase_index, priority, last_error, labels, metadata,
// state (else pending), attempts, requeues, current_lease_id, final_outcome
// ('' = none), telemetry_events, updated_at.
template <typename Row>
PhaseRecord DecodePhase(const Row& row) {
  PhaseRecord p;
  p.spec.run_id = row.Text(0);
  p.spec.phase_id = row.Text(1);
  p.spec.phase_index = row.Int(2);
  p.spec.priority = row.Int(3);
  p.spec.last_error = row.Text(4);
  p.spec.labels = SplitLabels(row.Text(5));
  p.spec.metadata_json = row.Text(6);
  p.state = ParsePhaseState(row.Text(7)).value_or(PhaseState::kPending);
  p.attempts = row.Int32(8);
  p.requeues = row.Int32(9);
  p.current_lease_id = row.Text(10);
  const std::string final_outcome = row.Text(11);
  if (!final_outcome.empty()) p.final_outcome = ParseOutcome(final_outcome);
  p.telemetry_events = row.Int(12);
  p.updated_at_ms = row.Int(13);
  return p;
}

// lease_id, run_id, phase_id, attempt, epoch, worker_id, session_id,
// timeout_seconds, leased_at, expires_at.
template <typename Row>
LeaseGrant DecodeLease(const Row& row) {
  LeaseGrant g;
  g.lease_id = row.Text(0);
  g.run_id = row.Text(1);
  g.phase_id = row.Text(2);
  g.attempt = row.Int32(3);
  g.epoch = row.Int(4);
  g.worker_id = row.Text(5);
  g.session_id = row.Text(6);
  g.timeout_seconds = row.Int32(7);
  g.leased_at_ms = row.Int(8);
  g.expires_at_ms = row.Int(9);
  return g;
}

// lease_id, run_id, phase_id, attempt, epoch, worker_id, session_id, outcome
// (else failed), exit_code, signal, duration_ms, error_text, fingerprint,
// telemetry_events, telemetry_by_type, stdout_tail, stderr_tail, started_at,
// ended_at, telemetry_unknown (0 or 1).
template <typename Row>
AttemptRecord DecodeAttempt(const Row& row) {
  AttemptRecord a;
  a.lease_id = row.Text(0);
  a.run_id = row.Text(1);
  a.phase_id = row.Text(2);
  a.attempt = row.Int32(3);
  a.epoch = row.Int(4);
  a.worker_id = row.Text(5);
  a.session_id = row.Text(6);
  a.outcome = ParseOutcome(row.Text(7)).value_or(Outcome::kFailed);
  a.exit_code = row.Int32(8);
  a.signal = row.Int32(9);
  a.duration_ms = row.Int(10);
  a.error_text = row.Text(11);
  a.fingerprint = row.Text(12);
  a.telemetry_events = row.Int(13);
  a.telemetry_by_type = TypesFromJson(row.Text(14));
  a.stdout_tail = row.Text(15);
  a.stderr_tail = row.Text(16);
  a.started_at_ms = row.Int(17);
  a.ended_at_ms = row.Int(18);
  a.telemetry_unknown = row.Int(19) != 0;
  return a;
}

// worker_id, host, slots, labels, version, last_seen.
template <typename Row>
WorkerInfo DecodeWorker(const Row& row) {
  WorkerInfo w;
  w.worker_id = row.Text(0);
  w.host = row.Text(1);
  w.slots = row.Int32(2);
  w.labels = SplitLabels(row.Text(3));
  w.version = row.Text(4);
  w.last_seen_ms = row.Int(5);
  return w;
}

// session_id, settings, state (else stopped), started_at, ended_at, end_reason.
template <typename Row>
SessionRecord DecodeSession(const Row& row) {
  SessionRecord r;
  r.session_id = row.Text(0);
  r.settings = SettingsFromJson(row.Text(1));
  r.state = ParseSessionState(row.Text(2)).value_or(SessionState::kStopped);
  r.started_at_ms = row.Int(3);
  r.ended_at_ms = row.Int(4);
  r.end_reason = row.Text(5);
  return r;
}

// run_id, pending, leased, succeeded, failed, attempts, successes, timeouts,
// telemetry_events, run_ms, unknown_telemetry_ms. best_pending_priority is
// each store's own.
template <typename Row>
RunStats DecodeRunStats(const Row& row) {
  RunStats s;
  s.run_id = row.Text(0);
  s.pending = row.Int(1);
  s.leased = row.Int(2);
  s.succeeded = row.Int(3);
  s.failed = row.Int(4);
  s.attempts = row.Int(5);
  s.successes = row.Int(6);
  s.timeouts = row.Int(7);
  s.telemetry_events = row.Int(8);
  s.run_ms = row.Int(9);
  s.unknown_telemetry_ms = row.Int(10);
  return s;
}

// The attempt a lease ended with, as far as the lease knows it: its identity
// and start, ended at ended_at_ms. The caller fills in the outcome.
AttemptRecord AttemptOfLease(const LeaseGrant& lease, int64_t ended_at_ms);

// What an expired lease (no report, no heartbeat) leaves in the history.
inline constexpr char kLostAttemptErrorText[] =
    "lease expired: no report or heartbeat from the worker within the lease TTL";
inline constexpr char kLostAttemptFingerprint[] = "lost|lost|lease expired";
AttemptRecord LostAttempt(const LeaseGrant& lease, int64_t now_ms);

}  // namespace sluice
