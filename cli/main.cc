// sluice: the operator CLI. Every command works on a store directly
// (--store URL, default the embedded store in ./.sluice) or through a running
// coordinator (--coordinator ADDR). Exit codes: 0 ok, 1 the drain left
// failures, 2 usage or configuration error, 3 infrastructure error.
#include <iostream>
#include <optional>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "cli/drain.h"
#include "cli/insight_commands.h"
#include "cli/operator_api.h"
#include "cli/policy_commands.h"
#include "cli/watch.h"
#include "common/logging.h"
#include "common/mutex_checks.h"
#include "common/signals.h"
#include "coordinator/backlog_importer.h"
#include "coordinator/insight/session_report.h"
#include "coordinator/policy/failure_policy.h"
#include "coordinator/store/store_factory.h"
#include "nlohmann/json.hpp"

namespace sluice {
namespace {

// --idle-timeout: "auto" (0), "off" (-1) or seconds > 0
// (SessionSettings::idle_timeout_seconds).
std::optional<int32_t> ParseIdleTimeout(const std::string& value) {
  if (value == "auto") return 0;
  if (value == "off") return -1;
  int32_t seconds = 0;
  if (absl::SimpleAtoi(value, &seconds) && seconds > 0) return seconds;
  return std::nullopt;
}

constexpr int kExitUsage = 2;
constexpr int kExitInfra = 3;

struct Target {
  std::string store_url = kDefaultStoreUrl;
  ChannelOptions channel;  // channel.address: --coordinator
  bool json = false;
  // --family-pattern, on the commands whose output groups runs by family
  // (status's and plan's deferrals, the report's family table): the
  // in-process coordinator's with --store, so they agree with a drain run
  // with the same pattern; a running coordinator has its own.
  std::string family_pattern;
};

void AddTargetFlags(CLI::App* cmd, Target* t) {
  cmd->add_option("--store", t->store_url, "State store URL used directly (sqlite://PATH)")
      ->capture_default_str();
  cmd->add_option("--coordinator", t->channel.address,
                  "Talk to a running coordinator at HOST:PORT instead of the store; a "
                  "comma-separated list (active/standby coordinators) follows the leader");
  AddChannelFlags(cmd, &t->channel);
  cmd->add_flag("--json", t->json, "Print JSON");
}

int ErrorExit(const std::string& what, const absl::Status& st) {
  std::cerr << "sluice " << what << ": " << st.message() << "\n";
  switch (st.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kUnauthenticated:   // a wrong or missing token
    case absl::StatusCode::kPermissionDenied:  // a worker token on an operator call
      return kExitUsage;
    default:
      return kExitInfra;
  }
}

absl::StatusOr<std::unique_ptr<OperatorApi>> Connect(const Target& t) {
  if (!t.channel.address.empty()) {
    // Refused, not ignored: the answer would group runs by the coordinator's
    // rule, not the one asked for.
    if (!t.family_pattern.empty()) {
      return absl::InvalidArgumentError(
          "--family-pattern applies to --store only; a running coordinator groups runs by its "
          "own (sluice-coordinator --family-pattern)");
    }
    return ConnectOperator(t.channel);
  }
  return OpenDirectOperator(t.store_url, t.family_pattern);
}

void AddSessionFlags(CLI::App* cmd, SessionSettings* s) {
  cmd->add_option("--batch-size", s->batch_size,
                  "Phases to finish in this session (0 = until nothing is left)")
      ->capture_default_str();
  cmd->add_option("--phase-timeout-seconds", s->phase_timeout_seconds,
                  "Per-attempt timeout enforced by the worker (SIGTERM, grace, SIGKILL)")
      ->capture_default_str();
  cmd->add_option("--max-total-minutes", s->max_total_minutes,
                  "Session deadline; running phases are cancelled at it (0 = none)")
      ->capture_default_str();
  cmd->add_option("--max-attempts-per-phase", s->max_attempts_per_phase,
                  "A phase whose own attempts failed this often is failed for good (across "
                  "sessions)")
      ->capture_default_str();
  cmd->add_option("--max-requeues-per-phase", s->max_requeues_per_phase,
                  "Attempts lost to infrastructure (expired leases, cancellations) before a phase "
                  "is failed")
      ->capture_default_str();
  cmd->add_option("--run-id", s->run_ids, "Only drain this run (repeatable)");
  cmd->add_option("--skip-run-prefix", s->skip_run_prefixes,
                  "Skip runs whose id starts with this (repeatable)");
  cmd->add_option("--max-fingerprint-repeats", s->max_fingerprint_repeats,
                  "Once a failure fingerprint occurred this often across the cluster, the runs "
                  "it occurred in are blocked until `sluice unblock` (0 = off)")
      ->capture_default_str();
  cmd->add_option("--max-timeouts-per-run", s->max_timeouts_per_run,
                  "A run with this many real timeouts is skipped (0 = off)")
      ->capture_default_str();
  cmd->add_option("--max-consecutive-zero-yield", s->max_consecutive_zero_yield,
                  "End the session after this many attempts in a row without telemetry (0 = off)")
      ->capture_default_str();
  cmd->add_option("--min-expected-yield", s->min_expected_yield,
                  "Stop rule, telemetry events per worker-minute: runs expected to yield less are "
                  "not leased, and the session ends once nothing left is expected to beat it "
                  "(0 = off)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option_function<std::string>(
         "--idle-timeout",
         [s](const std::string& value) {
           s->idle_timeout_seconds = *ParseIdleTimeout(value);  // checked below
         },
         "Stop a phase that writes nothing to its logs for this long, as timed out (it hangs): "
         "auto (learnt: twice the longest silence of the attempts that ended on their own, at "
         "least 120 s, once 5 were seen), off, or seconds [default: auto]")
      ->check([](const std::string& value) {
        return ParseIdleTimeout(value) ? std::string()
                                       : std::string("must be auto, off or seconds > 0");
      });
  cmd->add_option("--retry-on", s->retry_on,
                  "RE2 pattern (case-insensitive) of transient failures, e.g. 'connection reset|"
                  "503': retried with backoff, not counted as attempts or repeats (repeatable); "
                  "added to the built-in set (connection reset/refused/aborted, timeouts, HTTP "
                  "429/5xx, rate limits, broken pipe, DNS failures)");
  cmd->add_flag_callback(
      "--no-default-transient", [s] { s->retry_on.push_back(kNoDefaultTransient); },
      "Switch off the built-in set of transient errors: only --retry-on patterns are transient");
  cmd->add_option_function<std::string>(
         "--on-telemetry-loss",
         [s](const std::string& value) {
           s->on_telemetry_loss = *ParseTelemetryLossAction(value);  // checked below
         },
         "When the telemetry-loss alarm fires: warn (logs, status, metrics) or pause (also stop "
         "granting leases until `sluice resume`; running phases finish) [default: warn]")
      ->check(CLI::IsMember({"warn", "pause"}));
}

int CmdImport(const Target& t, const std::string& file) {
  // Streamed: the file is read a chunk at a time into one import (all or
  // nothing on SQLite, atomic slices on Redis: StateStore::BeginImport), so
  // memory does not grow with the file (issue #12).
  constexpr size_t kChunkPhases = 2000;
  auto reader = BacklogReader::Open(file);
  if (!reader.ok()) {
    std::cerr << "sluice import: " << reader.status().message() << "\n";
    return kExitUsage;
  }
  // The first chunk before connecting: a file that is bad from the start
  // never opens (or creates) a store.
  std::vector<PhaseSpec> first;
  if (absl::Status s = (*reader)->Next(kChunkPhases, &first); !s.ok()) {
    std::cerr << "sluice import: " << s.message() << "\n";
    return kExitUsage;
  }
  auto api = Connect(t);
  if (!api.ok()) return ErrorExit("import", api.status());
  bool first_taken = false;
  auto result = (*api)->ImportChunks([&](std::vector<PhaseSpec>* chunk) {
    if (!first_taken) {
      first_taken = true;
      *chunk = std::move(first);
      return absl::OkStatus();
    }
    return (*reader)->Next(kChunkPhases, chunk);
  });
  if (!result.ok()) return ErrorExit("import", result.status());
  if (t.json) {
    std::cout << nlohmann::json{{"file", file},
                                {"inserted", result->inserted},
                                {"updated", result->updated},
                                {"unchanged", result->unchanged}}
                     .dump()
              << "\n";
  } else {
    std::cout << absl::StrFormat("imported %s: %d new, %d updated, %d unchanged phases\n", file,
                                 result->inserted, result->updated, result->unchanged);
  }
  return 0;
}

nlohmann::json SessionJson(const SessionRecord& s) {
  return {{"session_id", s.session_id},
          {"state", std::string(SessionStateName(s.state))},
          {"started_at_ms", s.started_at_ms},
          {"ended_at_ms", s.ended_at_ms},
          {"end_reason", s.end_reason},
          {"settings",
           {{"batch_size", s.settings.batch_size},
            {"phase_timeout_seconds", s.settings.phase_timeout_seconds},
            {"max_total_minutes", s.settings.max_total_minutes},
            {"max_attempts_per_phase", s.settings.max_attempts_per_phase},
            {"max_requeues_per_phase", s.settings.max_requeues_per_phase},
            {"run_ids", s.settings.run_ids},
            {"skip_run_prefixes", s.settings.skip_run_prefixes},
            {"on_telemetry_loss",
             std::string(TelemetryLossActionName(s.settings.on_telemetry_loss))}}}};
}

int CmdStatus(const Target& t) {
  auto api = Connect(t);
  if (!api.ok()) return ErrorExit("status", api.status());
  auto status = (*api)->Status(/*explain_skips=*/true);
  if (!status.ok()) return ErrorExit("status", status.status());
  if (t.json) {
    nlohmann::json j;
    j["cluster_id"] = status->cluster_id;
    j["phases"] = {{"pending", status->phases.pending},
                   {"leased", status->phases.leased},
                   {"succeeded", status->phases.succeeded},
                   {"failed", status->phases.failed}};
    j["workers"] = nlohmann::json::array();
    for (const WorkerInfo& w : status->workers) {
      j["workers"].push_back(
          {{"worker_id", w.worker_id},
           {"host", w.host},
           {"slots", w.slots},
           {"labels", w.labels},
           {"last_seen_ms", w.last_seen_ms},
           {"state", status->gone_workers.contains(w.worker_id) ? "gone" : "connected"},
           {"active_leases", status->active_leases_by_worker[w.worker_id]}});
    }
    j["active_leases"] = nlohmann::json::array();
    for (const LeaseGrant& l : status->active_leases) {
      j["active_leases"].push_back({{"lease_id", l.lease_id},
                                    {"run_id", l.run_id},
                                    {"phase_id", l.phase_id},
                                    {"attempt", l.attempt},
                                    {"worker_id", l.worker_id},
                                    {"expires_at_ms", l.expires_at_ms}});
    }
    j["session"] = status->session ? SessionJson(*status->session) : nlohmann::json(nullptr);
    j["session_finished"] = status->session_finished;
    j["session_done"] = status->session_done;
    j["skipped"] = nlohmann::json::array();
    for (const SkipRow& k : status->skipped) {
      j["skipped"].push_back({{"kind", k.kind},
                              {"run_id", k.run_id},
                              {"phase_id", k.phase_id},
                              {"phases", k.phases},
                              {"reason", k.reason}});
    }
    j["leasing_paused"] = status->pause.has_value();
    j["paused_reason"] = status->pause ? status->pause->reason : std::string();
    j["telemetry_warnings"] = nlohmann::json::array();
    for (const TelemetryWarning& w : status->telemetry_warnings) {
      j["telemetry_warnings"].push_back({{"kind", std::string(TelemetryWarningKindName(w.kind))},
                                         {"worker_id", w.worker_id},
                                         {"message", w.message}});
    }
    j["late_reports"] = status->late_reports;
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  const PhaseCounts& p = status->phases;
  std::cout << "cluster: " << (status->cluster_id.empty() ? "(none)" : status->cluster_id) << "\n";
  std::cout << absl::StrFormat("phases: %d total, %d pending, %d leased, %d succeeded, %d failed\n",
                               p.total(), p.pending, p.leased, p.succeeded, p.failed);
  if (status->session) {
    const SessionRecord& s = *status->session;
    std::cout << absl::StrFormat(
        "session %s: %s%s, %d attempts finished\n", s.session_id, SessionStateName(s.state),
        s.end_reason.empty() ? "" : " (" + s.end_reason + ")", status->session_finished);
    if (status->pause) {
      std::cout << "paused: " << status->pause->reason
                << "\n  (no new leases; running phases finish; `sluice resume` continues)\n";
    }
    for (const TelemetryWarning& w : status->telemetry_warnings) {
      std::cout << "warning: " << w.message << "\n";
    }
  } else {
    std::cout << "no session yet\n";
  }
  const int64_t now_ms = absl::ToUnixMillis(absl::Now());
  std::cout << absl::StrFormat("workers: %d connected, %d gone\n",
                               status->workers.size() - status->gone_workers.size(),
                               status->gone_workers.size());
  for (const WorkerInfo& w : status->workers) {
    std::cout << absl::StrFormat(
        "  %-32s %-20s slots=%d leases=%d %s\n", w.worker_id, w.host, w.slots,
        status->active_leases_by_worker[w.worker_id],
        WorkerSeenText(status->gone_workers.contains(w.worker_id), now_ms - w.last_seen_ms));
  }
  std::cout << absl::StrFormat("active leases: %d\n", status->active_leases.size());
  for (const LeaseGrant& l : status->active_leases) {
    std::cout << absl::StrFormat("  %-24s %s/%s attempt %d on %s\n", l.lease_id, l.run_id,
                                 l.phase_id, l.attempt, l.worker_id);
  }
  // Workers that reported after their lease expired (their outcome was kept
  // for the record only); nonzero hints at network cuts or stalled workers.
  std::cout << absl::StrFormat("late reports: %d\n", status->late_reports);
  std::cout << SkipRowsText(status->skipped);
  return 0;
}

int CmdResume(const Target& t, const std::string& session_id) {
  auto api = Connect(t);
  if (!api.ok()) return ErrorExit("resume", api.status());
  auto resumed = (*api)->Resume(session_id);
  if (!resumed.ok()) return ErrorExit("resume", resumed.status());
  if (t.json) {
    std::cout << nlohmann::json{{"session_id", resumed->session_id},
                                {"was_paused_for", resumed->reason}}
                     .dump()
              << "\n";
  } else {
    std::cout << "resumed leasing of session " << resumed->session_id
              << " (was paused: " << resumed->reason << ")\n";
  }
  return 0;
}

int CmdReport(const Target& t, const std::string& session_id) {
  auto api = Connect(t);
  if (!api.ok()) return ErrorExit("report", api.status());
  auto json = (*api)->ReportJson(session_id);
  if (!json.ok()) return ErrorExit("report", json.status());
  if (t.json) {
    std::cout << *json << "\n";
    return 0;
  }
  auto report = SessionReportFromJson(*json);
  if (!report.ok()) return ErrorExit("report", report.status());
  std::cout << SessionReportText(*report);
  return 0;
}

}  // namespace
}  // namespace sluice

int main(int argc, char** argv) {
  using namespace sluice;
  ConfigureMutexDeadlockChecks();
  BlockTerminationSignals();
  CLI::App app{
      "sluice: drain backlogs of failed build phases across many workers.\n"
      "Commands work on the embedded store in ./.sluice (--store) or through a running "
      "coordinator (--coordinator)."};
  app.require_subcommand(1);
  std::string log_format = "human";
  std::string log_level = "warn";
  app.add_option("--log-format", log_format, "human or json")->capture_default_str();
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->capture_default_str();

  Target import_target;
  std::string import_file;
  CLI::App* import_cmd = app.add_subcommand(
      "import",
      "Import a backlog file (JSONL or CSV); idempotent, a bad line imports nothing. All or "
      "nothing on SQLite; on Redis in atomic slices of 1,000 phases: others may see part of "
      "it, and one that fails part-way is completed by importing the file again");
  import_cmd->add_option("FILE", import_file, "Backlog file")->required();
  AddTargetFlags(import_cmd, &import_target);

  Target status_target;
  CLI::App* status_cmd =
      app.add_subcommand("status", "Phases by state, workers, active leases, the session");
  AddTargetFlags(status_cmd, &status_target);
  AddFamilyPatternFlag(status_cmd, &status_target.family_pattern);

  Target resume_target;
  std::string resume_session;
  CLI::App* resume_cmd = app.add_subcommand(
      "resume",
      "Resume leasing after a pause (--on-telemetry-loss pause): fix the cause first, e.g. the "
      "workers' --env");
  resume_cmd->add_option("--session-id", resume_session, "Session id (default: the active one)");
  AddTargetFlags(resume_cmd, &resume_target);

  Target report_target;
  std::string report_session;
  bool report_latest = false;
  CLI::App* report_cmd = app.add_subcommand("report", "The summary of a session");
  report_cmd->add_option("--session", report_session, "Session id (default: the latest)");
  report_cmd->add_flag("--latest", report_latest, "The latest session (the default)");
  AddTargetFlags(report_cmd, &report_target);
  AddFamilyPatternFlag(report_cmd, &report_target.family_pattern);

  CLI::App* session_cmd = app.add_subcommand("session", "Start or stop a drain session");
  session_cmd->require_subcommand(1);
  Target start_target;
  SessionSettings start_settings;
  std::string start_id;
  bool start_allow_empty = false;
  CLI::App* start_cmd = session_cmd->add_subcommand("start", "Start a session with its settings");
  AddTargetFlags(start_cmd, &start_target);
  AddSessionFlags(start_cmd, &start_settings);
  start_cmd->add_option("--session-id", start_id, "Session id (default: generated)");
  start_cmd->add_flag("--allow-empty", start_allow_empty,
                      "Start even if the store holds no phases (refused otherwise: a mistyped "
                      "store path must not look like a finished drain)");
  Target stop_target;
  std::string stop_id;
  std::string stop_reason;
  CLI::App* stop_cmd = session_cmd->add_subcommand("stop", "Stop the active session");
  AddTargetFlags(stop_cmd, &stop_target);
  stop_cmd->add_option("--session-id", stop_id, "Session id (default: the active one)");
  stop_cmd->add_option("--reason", stop_reason, "Why, recorded with the session");

  DrainOptions drain;
  CLI::App* drain_cmd = app.add_subcommand(
      "drain",
      "All-in-one on this box: import FILE, start a coordinator on the embedded store and N "
      "local workers over gRPC, drain, print the summary. Ctrl-C stops and keeps state; the "
      "same command resumes. Exit 0: every phase succeeded; 1: some did not; 2: usage; 3: "
      "infrastructure; 130: interrupted");
  drain_cmd->add_option("FILE", drain.backlog_path, "Backlog file (JSONL or CSV)")->required();
  drain_cmd
      ->add_option("--exec", drain.exec,
                   "Command template each worker runs per phase (no shell); placeholders "
                   "{run_id} {phase_id} {attempt} {lease_id} {session_id}")
      ->required();
  drain_cmd->add_option("--workers", drain.workers, "Local worker processes")
      ->capture_default_str();
  drain_cmd->add_option("--slots", drain.slots, "Phases each worker runs at once")
      ->capture_default_str();
  drain_cmd->add_option("--env", drain.env, "K=V for every phase (repeatable)");
  drain_cmd->add_option("--workdir", drain.workdir, "Directory phases run in");
  drain_cmd->add_option("--store", drain.store_url, "State store URL")->capture_default_str();
  drain_cmd
      ->add_option("--listen", drain.listen_address,
                   "Coordinator address (port 0 picks a free one)")
      ->capture_default_str();
  drain_cmd->add_option("--log-dir", drain.log_dir,
                        "Worker and per-attempt logs (default: <store dir>/logs)");
  drain_cmd
      ->add_option("--grace-seconds", drain.grace_seconds,
                   "SIGTERM -> SIGKILL delay when a phase is stopped")
      ->capture_default_str();
  AddFamilyPatternFlag(drain_cmd, &drain.family_pattern);
  drain_cmd
      ->add_option("--lease-ttl-ms", drain.lease_ttl_ms,
                   "Lease TTL: a vanished worker's phase is re-leased after this")
      ->capture_default_str();
  drain_cmd
      ->add_option("--heartbeat-interval-ms", drain.heartbeat_interval_ms,
                   "Worker heartbeat period (below the TTL)")
      ->capture_default_str();
  drain_cmd->add_flag("--json", drain.json, "Print the summary as JSON");
  drain_cmd->add_option("--http-listen,--metrics-listen", drain.metrics_listen,
                        "Serve the web view (http://HOST:PORT/, read-only here), the "
                        "coordinator's Prometheus /metrics and /healthz on HOST:PORT (off when "
                        "empty; --metrics-listen is the old name)");
  AddSessionFlags(drain_cmd, &drain.settings);

  Target fingerprints_target;
  CLI::App* fingerprints_cmd = app.add_subcommand(
      "fingerprints", "Failure fingerprints across the cluster and whether they block their runs");
  AddTargetFlags(fingerprints_cmd, &fingerprints_target);
  Target unblock_target;
  std::string unblock_fingerprint;
  CLI::App* unblock_cmd = app.add_subcommand(
      "unblock", "Unblock a fingerprint after fixing its cause: its runs are leased again");
  unblock_cmd->add_option("FINGERPRINT", unblock_fingerprint, "Fingerprint key or short id")
      ->required();
  AddTargetFlags(unblock_cmd, &unblock_target);
  Target plan_target;
  SessionSettings plan_settings;
  int64_t plan_limit = 1'000'000;
  CLI::App* plan_cmd = app.add_subcommand(
      "plan",
      "Dry run: the order in which a session with these settings would lease phases now, "
      "why each other run is excluded, and the expected curve of what is left (expected events "
      "against worker-minutes in that order, and the yield at the margin). Changes nothing");
  AddTargetFlags(plan_cmd, &plan_target);
  AddFamilyPatternFlag(plan_cmd, &plan_target.family_pattern);
  AddSessionFlags(plan_cmd, &plan_settings);
  plan_cmd
      ->add_option("--limit", plan_limit,
                   "At most this many phases in the lease order (the expected curve "
                   "covers all pending work)")
      ->capture_default_str();
  drain_cmd->add_flag("--dry-run", drain.dry_run,
                      "Print the lease order and exclusions for this backlog and settings; change "
                      "nothing");

  std::unique_ptr<InsightCommands> insight = AddInsightCommands(app);  // recommend, watch

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : kExitUsage;
  }
  if (absl::Status st = SetupLogging(log_format, log_level); !st.ok()) {
    std::cerr << "sluice: " << st.message() << "\n";
    return kExitUsage;
  }
  if (*fingerprints_cmd || *unblock_cmd || *plan_cmd) {
    const Target& t = *fingerprints_cmd ? fingerprints_target
                      : *unblock_cmd    ? unblock_target
                                        : plan_target;
    auto api = Connect(t);
    if (!api.ok()) return ErrorExit("connect", api.status());
    if (*fingerprints_cmd) return CmdFingerprints(**api, t.json);
    if (*unblock_cmd) return CmdUnblock(**api, unblock_fingerprint, t.json);
    auto plan = (*api)->Plan(plan_settings, plan_limit);
    if (!plan.ok()) return ErrorExit("plan", plan.status());
    PrintPlan(*plan, t.json);
    return 0;
  }
  if (std::optional<int> rc = RunInsightCommands(*insight)) return *rc;
  if (*import_cmd) return CmdImport(import_target, import_file);
  if (*status_cmd) return CmdStatus(status_target);
  if (*resume_cmd) return CmdResume(resume_target, resume_session);
  if (*report_cmd) return CmdReport(report_target, report_session);
  if (*start_cmd) {
    auto api = Connect(start_target);
    if (!api.ok()) return ErrorExit("session start", api.status());
    auto s = (*api)->StartSession(start_settings, start_id, start_allow_empty);
    if (!s.ok()) return ErrorExit("session start", s.status());
    std::cout << (start_target.json ? SessionJson(*s).dump(2) : "started session " + s->session_id)
              << "\n";
    return 0;
  }
  if (*stop_cmd) {
    auto api = Connect(stop_target);
    if (!api.ok()) return ErrorExit("session stop", api.status());
    auto s = (*api)->StopSession(stop_id, stop_reason);
    if (!s.ok()) return ErrorExit("session stop", s.status());
    std::cout << (stop_target.json ? SessionJson(*s).dump(2) : "stopped session " + s->session_id)
              << "\n";
    return 0;
  }
  if (*drain_cmd) {
    drain.log_format = log_format;
    drain.log_level = log_level;
    return RunDrain(drain);
  }
  return kExitUsage;
}
