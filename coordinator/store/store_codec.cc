#include "coordinator/store/store_codec.h"

#include <algorithm>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"

namespace sluice {

std::string JoinLabels(const std::vector<std::string>& labels) {
  std::vector<std::string> sorted = labels;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  return absl::StrJoin(sorted, ",");
}

std::vector<std::string> SplitLabels(const std::string& joined) {
  if (joined.empty()) return {};
  return absl::StrSplit(joined, ',');
}

std::string TypesToJson(const std::map<std::string, int64_t>& by_type) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : by_type) j[k] = v;
  return j.dump();
}

std::map<std::string, int64_t> TypesFromJson(const std::string& text) {
  std::map<std::string, int64_t> out;
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.value().is_number_integer()) out[it.key()] = it.value().get<int64_t>();
    }
  }
  return out;
}

std::string SettingsToJson(const SessionSettings& s) {
  nlohmann::json j = {
      {"batch_size", s.batch_size},
      {"phase_timeout_seconds", s.phase_timeout_seconds},
      {"max_total_minutes", s.max_total_minutes},
      {"max_attempts_per_phase", s.max_attempts_per_phase},
      {"max_requeues_per_phase", s.max_requeues_per_phase},
      {"run_ids", s.run_ids},
      {"skip_run_prefixes", s.skip_run_prefixes},
      {"max_fingerprint_repeats", s.max_fingerprint_repeats},
      {"max_timeouts_per_run", s.max_timeouts_per_run},
      {"max_consecutive_zero_yield", s.max_consecutive_zero_yield},
      {"retry_on", s.retry_on},
      {"min_expected_yield", s.min_expected_yield},
      {"idle_timeout_seconds", s.idle_timeout_seconds},
      {"on_telemetry_loss", std::string(TelemetryLossActionName(s.on_telemetry_loss))}};
  return j.dump();
}

SessionSettings SettingsFromJson(const std::string& text) {
  SessionSettings s;
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return s;
  s.batch_size = j.value("batch_size", s.batch_size);
  s.phase_timeout_seconds = j.value("phase_timeout_seconds", s.phase_timeout_seconds);
  s.max_total_minutes = j.value("max_total_minutes", s.max_total_minutes);
  s.max_attempts_per_phase = j.value("max_attempts_per_phase", s.max_attempts_per_phase);
  s.max_requeues_per_phase = j.value("max_requeues_per_phase", s.max_requeues_per_phase);
  s.run_ids = j.value("run_ids", std::vector<std::string>{});
  s.skip_run_prefixes = j.value("skip_run_prefixes", std::vector<std::string>{});
  s.max_fingerprint_repeats = j.value("max_fingerprint_repeats", s.max_fingerprint_repeats);
  s.max_timeouts_per_run = j.value("max_timeouts_per_run", s.max_timeouts_per_run);
  s.max_consecutive_zero_yield =
      j.value("max_consecutive_zero_yield", s.max_consecutive_zero_yield);
  s.retry_on = j.value("retry_on", std::vector<std::string>{});
  s.min_expected_yield = j.value("min_expected_yield", s.min_expected_yield);
  // Sessions stored before the idle limit existed get its default (auto).
  s.idle_timeout_seconds = j.value("idle_timeout_seconds", s.idle_timeout_seconds);
  // Sessions stored before the setting existed warn only.
  s.on_telemetry_loss = ParseTelemetryLossAction(j.value("on_telemetry_loss", std::string("warn")))
                            .value_or(TelemetryLossAction::kWarn);
  return s;
}

AttemptRecord AttemptOfLease(const LeaseGrant& lease, int64_t ended_at_ms) {
  AttemptRecord a;
  a.lease_id = lease.lease_id;
  a.run_id = lease.run_id;
  a.phase_id = lease.phase_id;
  a.attempt = lease.attempt;
  a.epoch = lease.epoch;
  a.worker_id = lease.worker_id;
  a.session_id = lease.session_id;
  a.started_at_ms = lease.leased_at_ms;
  a.ended_at_ms = ended_at_ms;
  return a;
}

AttemptRecord LostAttempt(const LeaseGrant& lease, int64_t now_ms) {
  AttemptRecord a = AttemptOfLease(lease, now_ms);
  a.outcome = Outcome::kLost;
  a.error_text = kLostAttemptErrorText;
  a.fingerprint = kLostAttemptFingerprint;
  return a;
}

}  // namespace sluice
