#include "worker/phase_executor.h"

#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/ids.h"
#include "spdlog/spdlog.h"
#include "worker/telemetry_counter.h"

namespace sluice {
namespace {

bool IsKillSignal(int sig) {
  return sig == SIGKILL || sig == SIGTERM || sig == SIGINT || sig == SIGHUP;
}

}  // namespace

Outcome ClassifyOutcome(const ProcessResult& result) {
  // The idle limit stops a phase that hangs: a timeout, only sooner.
  if (result.stopped_by == StopReason::kTimeout || result.stopped_by == StopReason::kIdle) {
    return Outcome::kTimedOut;
  }
  if (result.stopped_by == StopReason::kCancelled) return Outcome::kCancelled;
  if (result.signal != 0) return IsKillSignal(result.signal) ? Outcome::kKilled : Outcome::kFailed;
  if (result.exit_code == 0) return Outcome::kSucceeded;
  if (result.exit_code > 128 && IsKillSignal(result.exit_code - 128)) return Outcome::kKilled;
  return Outcome::kFailed;
}

std::optional<int64_t> PhaseExecutor::ProbeTelemetry(const std::string& base) const {
  ProcessSpec spec;
  spec.argv = config_.telemetry_probe;
  spec.workdir = config_.workdir;
  spec.stdout_path = base + ".out";
  spec.stderr_path = base + ".err";
  spec.timeout_ms = config_.telemetry_probe_timeout_ms;
  spec.grace_ms = 1'000;
  CancelToken never;
  absl::StatusOr<ProcessResult> r = runner_.Run(spec, never);
  int64_t value = 0;
  if (r.ok() && r->exit_code == 0 &&
      absl::SimpleAtoi(absl::StripAsciiWhitespace(r->stdout_tail), &value)) {
    return value;
  }
  // Say why: a probe that hung or exited without a word on stderr used to
  // leave "telemetry probe failed: " and nothing else.
  std::string why;
  if (!r.ok()) {
    why = absl::StrCat("cannot start: ", r.status().message());
  } else if (r->stopped_by == StopReason::kTimeout) {
    why = absl::StrCat("timed out after ", static_cast<double>(spec.timeout_ms) / 1000.0,
                       " s (--telemetry-probe-timeout)");
  } else if (r->exit_code != 0) {
    why = r->signal != 0 ? absl::StrCat("killed by signal ", r->signal)
                         : absl::StrCat("exit code ", r->exit_code);
  } else {
    why = absl::StrCat("printed \"", absl::StripAsciiWhitespace(r->stdout_tail).substr(0, 80),
                       "\", not a count");
  }
  if (r.ok() && !r->error_text.empty()) absl::StrAppend(&why, "; stderr: ", r->error_text);
  spdlog::warn(
      "telemetry probe failed ({}): {}; its events are not counted: the attempt's telemetry is "
      "reported as unknown (see {}.err)",
      absl::StrJoin(config_.telemetry_probe, " "), why, base);
  return std::nullopt;
}

AttemptReport PhaseExecutor::Execute(const LeaseGrant& lease, const CancelToken& cancel) const {
  AttemptReport report;
  report.lease_id = lease.lease_id;
  report.epoch = lease.epoch;
  report.worker_id = config_.worker_id;

  // The coordinator is not trusted with paths or the phase's environment:
  // every identifier is checked before it becomes either.
  for (const auto& [field, value] :
       {std::pair<const char*, const std::string*>{"run_id", &lease.run_id},
        {"phase_id", &lease.phase_id},
        {"lease_id", &lease.lease_id},
        {"session_id", &lease.session_id}}) {
    if (absl::Status st = ValidateId(field, *value); !st.ok()) {
      report.outcome = Outcome::kFailed;
      report.error_text = absl::StrCat("worker refused the lease: ", st.message());
      return report;
    }
  }
  PhaseIdentity identity{lease.run_id, lease.phase_id, lease.attempt, lease.lease_id,
                         lease.session_id};
  absl::StatusOr<std::vector<std::string>> argv = config_.command->Expand(identity);
  if (!argv.ok()) {
    report.outcome = Outcome::kFailed;
    report.error_text = absl::StrCat("worker refused the lease: ", argv.status().message());
    return report;
  }
  // Identifiers are validated, so they are safe as path components.
  const std::filesystem::path dir = std::filesystem::path(config_.log_dir) / lease.run_id;
  std::error_code ec;
  // Logs hold whatever a phase printed: this user's only (a directory that
  // already existed keeps its mode).
  if (std::filesystem::create_directories(dir, ec)) {
    std::filesystem::permissions(dir, std::filesystem::perms::owner_all, ec);
  }
  const std::string stem =
      (dir / absl::StrCat(lease.phase_id, ".attempt", lease.attempt, ".", lease.lease_id)).string();
  const std::string telemetry_path = stem + ".telemetry.jsonl";
  std::filesystem::remove(telemetry_path, ec);  // a fresh file per attempt

  ProcessSpec spec;
  spec.argv = std::move(*argv);
  spec.env = config_.env;
  spec.env["SLUICE_RUN_ID"] = lease.run_id;
  spec.env["SLUICE_PHASE_ID"] = lease.phase_id;
  spec.env["SLUICE_ATTEMPT"] = std::to_string(lease.attempt);
  spec.env["SLUICE_LEASE_ID"] = lease.lease_id;
  spec.env["SLUICE_SESSION_ID"] = lease.session_id;
  spec.env["SLUICE_TELEMETRY_FILE"] = std::filesystem::absolute(telemetry_path).string();
  spec.workdir = config_.workdir;
  spec.stdout_path = stem + ".stdout.log";
  spec.stderr_path = stem + ".stderr.log";
  spec.timeout_ms = int64_t{lease.timeout_seconds} * 1000;
  spec.idle_timeout_ms = int64_t{std::max(lease.idle_timeout_seconds, 0)} * 1000;
  spec.grace_ms = config_.grace_ms;
  spec.tail_bytes = config_.tail_bytes;

  const bool probing = !config_.telemetry_probe.empty();
  const std::optional<int64_t> probe_before =
      probing ? ProbeTelemetry(stem + ".probe-before") : std::nullopt;
  spdlog::info("starting run={} phase={} attempt={} lease={} timeout_s={} idle_timeout_s={}",
               lease.run_id, lease.phase_id, lease.attempt, lease.lease_id, lease.timeout_seconds,
               lease.idle_timeout_seconds);
  absl::StatusOr<ProcessResult> result = runner_.Run(spec, cancel);
  if (!result.ok()) {
    // Log file, workdir, posix_spawn (ENOENT, EAGAIN): the worker's fault.
    report.outcome = Outcome::kStartFailed;
    report.exit_code = 127;
    report.error_text = absl::StrCat("cannot start phase: ", result.status().message());
    return report;
  }
  for (const std::string& error : result->log_errors) {
    spdlog::warn("lease={}: {}; its end is in the report", lease.lease_id, error);
  }
  report.outcome = ClassifyOutcome(*result);
  report.exit_code = result->exit_code;
  report.signal = result->signal;
  report.duration_ms = result->duration_ms;
  report.stdout_tail = result->stdout_tail;
  report.stderr_tail = result->stderr_tail;
  report.error_text = result->error_text;
  report.longest_silence_ms = result->longest_silence_ms;
  if (result->stopped_by == StopReason::kIdle) {
    // Whatever stderr said last was said before it went quiet.
    report.error_text = absl::StrCat("phase timed out: no output for ", lease.idle_timeout_seconds,
                                     " s (the idle limit)");
  } else if (report.outcome == Outcome::kTimedOut && lease.timeout_is_session_deadline) {
    report.outcome = Outcome::kCancelled;
    report.error_text = "cancelled at the session deadline (--max-total-minutes)";
  }
  if (report.outcome == Outcome::kTimedOut && report.error_text.empty()) {
    report.error_text = absl::StrCat("phase timed out after ", lease.timeout_seconds, " s");
  }
  absl::StatusOr<TelemetryCount> telemetry = CountTelemetryFile(telemetry_path);
  if (telemetry.ok()) {
    report.telemetry_events = telemetry->events;
    report.telemetry_by_type = telemetry->by_type;
    if (telemetry->bounded()) {
      spdlog::warn(
          "telemetry of lease={} was bounded: {} over-long lines skipped (limit {} bytes), {} "
          "events counted as \"{}\" (type names up to {} bytes, {} distinct types)",
          lease.lease_id, telemetry->oversized_lines, kMaxTelemetryLineBytes,
          telemetry->folded_events, kOtherTelemetryType, kMaxTelemetryTypeBytes,
          kMaxTelemetryTypes);
    }
  } else {
    // The file is there but cannot be read (a missing file is 0 events):
    // the count is unknown, not zero.
    spdlog::warn("cannot count telemetry lease={}: {}; reported as unknown", lease.lease_id,
                 telemetry.status().ToString());
    report.telemetry_unknown = true;
  }
  if (probing) {
    // No probe after a failed one: the delta is unknown either way.
    const std::optional<int64_t> after =
        probe_before.has_value() ? ProbeTelemetry(stem + ".probe-after") : std::nullopt;
    if (!probe_before.has_value() || !after.has_value()) {
      // Whatever the file held is only part of an unknown total.
      report.telemetry_unknown = true;
    } else if (const int64_t delta = after.value_or(0) - probe_before.value_or(0); delta > 0) {
      report.telemetry_events += delta;
      report.telemetry_by_type["probe"] += delta;
    }
  }
  if (report.telemetry_unknown) {
    if (report.telemetry_events > 0) {
      spdlog::warn("lease={}: {} events counted in the telemetry file are part of an unknown total",
                   lease.lease_id, report.telemetry_events);
    }
    // On the wire and in the store an unknown count is 0 events plus the flag.
    report.telemetry_events = 0;
    report.telemetry_by_type.clear();
  }
  return report;
}

}  // namespace sluice
