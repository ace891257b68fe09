// sluice-worker: runs phases leased from a coordinator, each through this
// worker's own command template. Exit codes: 0 drained cleanly, 2 usage or
// configuration error, 3 infrastructure error (e.g. the coordinator rejected
// registration, or --max-start-failures phases in a row could not be started).
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "client/channel.h"
#include "client/coordinator_client_factory.h"
#include "client/failover_coordinator_client.h"
#include "common/clock.h"
#include "common/logging.h"
#include "common/mutex_checks.h"
#include "common/redact.h"
#include "common/signals.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"
#include "worker/orphan_reaper.h"
#include "worker/phase_shim_launch.h"
#include "worker/required_env.h"
#include "worker/service_supervisor.h"
#include "worker/startup_hardening.h"
#include "worker/worker_agent.h"

namespace {

std::string DefaultWorkerId() {
  char host[256] = "worker";
  gethostname(host, sizeof(host) - 1);
  std::string id;
  for (char c : std::string(host)) {
    const bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
    id += ok ? c : '-';
  }
  return absl::StrCat(id.substr(0, 100), "-", getpid());
}

}  // namespace

int main(int argc, char** argv) {
  // Before anything else: whatever descriptors we inherited must not reach
  // phases, and phases of our uid must not read our memory or environment.
  if (absl::Status st = sluice::MarkInheritedDescriptorsCloseOnExec(); !st.ok()) {
    std::cerr << "sluice-worker: " << st.message() << "\n";
    return 3;
  }
  if (absl::Status st = sluice::MakeNonDumpable(); !st.ok()) {
    std::cerr << "sluice-worker: " << st.message() << "\n";
    return 3;
  }
  sluice::ConfigureMutexDeadlockChecks();
  sluice::BlockTerminationSignals();
  CLI::App app{
      "sluice-worker: leases phases from a sluice coordinator and runs each one as a subprocess "
      "of this worker's own command template (no shell)."};
  std::string coordinator;
  std::string exec;
  std::vector<std::string> env_pairs;
  std::vector<std::string> labels;
  std::vector<std::string> required_env;
  std::string telemetry_probe;
  std::string service_command;
  std::string service_health;
  double service_start_timeout_seconds = 60;
  std::string log_format = "human";
  std::string log_level = "info";
  double grace_seconds = 10;
  double drain_timeout_seconds = 60;
  double telemetry_probe_timeout_seconds = 30;
  sluice::WorkerConfig config;
  config.worker_id = DefaultWorkerId();
  char host[256] = "";
  gethostname(host, sizeof(host) - 1);
  config.host = host;
  config.version = "0.1.0";

  app.add_option("--coordinator", coordinator,
                 "Coordinator address HOST:PORT, or several comma-separated (an active "
                 "coordinator and its standbys: the worker follows the leader), or one Service "
                 "address in front of them")
      ->required();
  sluice::ChannelOptions channel_options;
  sluice::AddChannelFlags(&app, &channel_options);
  bool print_config = false;
  app.add_flag("--print-config", print_config,
               "Print the effective configuration as JSON (secrets redacted) and exit");
  app.add_option("--exec", exec,
                 "Command template run for each phase, split into words without a shell; "
                 "placeholders {run_id} {phase_id} {attempt} {lease_id} {session_id}")
      ->required();
  app.add_option("--slots", config.slots, "Phases run at once")->capture_default_str();
  app.add_option(
      "--env", env_pairs,
      "K=V added to every phase's environment (repeatable), e.g. TELEMETRY_DB_ENABLED=1");
  app.add_option("--require-env", required_env,
                 "NAME or NAME=VALUE that phases must get (from this worker's environment or "
                 "--env); the worker refuses to start (exit 2) otherwise, e.g. "
                 "TELEMETRY_DB_ENABLED=1 (repeatable)");
  app.add_option("--workdir", config.workdir, "Directory phases run in (default: current)");
  app.add_option("--worker-id", config.worker_id, "Identifier of this worker")
      ->capture_default_str();
  app.add_option("--label", labels, "Label this worker offers, e.g. gpu (repeatable)");
  app.add_option("--cluster-id", config.cluster_id,
                 "Join only the cluster with this id (`sluice status` shows it); a coordinator "
                 "on another store refuses the registration and the worker exits 3");
  app.add_option("--log-dir", config.log_dir,
                 "Per-attempt files RUN/PHASE.attemptN.LEASE.{stdout.log,stderr.log,"
                 "telemetry.jsonl}, each created once the phase writes to it")
      ->capture_default_str();
  app.add_option("--spool-dir", config.spool_dir,
                 "Finished outcomes kept until the coordinator answers them; re-delivered on "
                 "the next start (default: LOG_DIR/spool)");
  app.add_option("--grace-seconds", grace_seconds,
                 "Time between SIGTERM and SIGKILL when a phase is stopped")
      ->capture_default_str();
  app.add_option("--drain-timeout", drain_timeout_seconds,
                 "On SIGTERM: seconds running phases may finish before they are cancelled")
      ->capture_default_str();
  app.add_option("--max-start-failures", config.max_start_failures,
                 "Stop leasing and exit 3 after this many phases in a row could not be started "
                 "(missing program, log dir or workdir; 0 = never)")
      ->capture_default_str();
  app.add_option("--lease-wait-ms", config.lease_wait_ms, "Long-poll bound for a lease request")
      ->capture_default_str();
  app.add_option("--telemetry-probe", telemetry_probe,
                 "Command printing an integer event count, run before and after each phase; the "
                 "delta is reported (exact only with --slots 1)");
  app.add_option("--telemetry-probe-timeout", telemetry_probe_timeout_seconds,
                 "Seconds a --telemetry-probe may run; a probe that fails or runs longer makes "
                 "the attempt's telemetry unknown (not 0): the report leaves it out of yield and "
                 "the zero-yield stop rule")
      ->capture_default_str();
  app.add_option("--service", service_command,
                 "A long-lived helper started once for this worker (not per phase), e.g. the API "
                 "server phases talk to; split into words without a shell, restarted with backoff "
                 "when it dies, stopped on exit. Pass its address to phases with --env");
  app.add_option("--service-health", service_health,
                 "Health check of --service: http://HOST:PORT/PATH (healthy on 2xx) or a command "
                 "(healthy on exit 0). Nothing is leased while it fails; 3 failures in a row "
                 "restart the service. Empty: healthy while the process runs");
  app.add_option("--service-start-timeout", service_start_timeout_seconds,
                 "Seconds --service may take to become healthy at start (else exit 3)")
      ->capture_default_str();
  std::string run_as;
  app.add_option("--run-as", run_as,
                 "UID:GID (numeric) to switch to for good once the token and TLS files are "
                 "read, so phases (run as that user) cannot read them; needs root or "
                 "CAP_SETUID+CAP_SETGID");
  app.add_option("--log-format", log_format, "human or json")->capture_default_str();
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  if (absl::Status st = sluice::SetupLogging(log_format, log_level); !st.ok()) {
    std::cerr << "sluice-worker: " << st.message() << "\n";
    return 2;
  }
  auto command = sluice::CommandTemplate::Parse(exec);
  if (!command.ok()) {
    std::cerr << "sluice-worker: --exec: " << command.status().message() << "\n";
    return 2;
  }
  config.command = *command;
  if (!telemetry_probe.empty()) {
    auto probe = sluice::CommandTemplate::Parse(telemetry_probe);
    if (!probe.ok()) {
      std::cerr << "sluice-worker: --telemetry-probe: " << probe.status().message() << "\n";
      return 2;
    }
    config.telemetry_probe = probe->words();
  }
  for (const std::string& pair : env_pairs) {
    const size_t eq = pair.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::cerr << "sluice-worker: --env " << pair << ": expected NAME=VALUE\n";
      return 2;
    }
    config.env[pair.substr(0, eq)] = pair.substr(eq + 1);
  }
  if (absl::Status st =
          sluice::CheckRequiredEnv(required_env, config.env, sluice::ProcessEnvLookup());
      !st.ok()) {
    std::cerr << "sluice-worker: " << st.message() << "\n";
    return 2;
  }
  if (!service_health.empty() && service_command.empty()) {
    std::cerr << "sluice-worker: --service-health needs --service\n";
    return 2;
  }
  sluice::ServiceConfig service;
  if (!service_command.empty()) {
    auto service_argv = sluice::SplitServiceCommand("--service", service_command);
    if (!service_argv.ok()) {
      std::cerr << "sluice-worker: " << service_argv.status().message() << "\n";
      return 2;
    }
    service.argv = *std::move(service_argv);
    service.health = service_health;
    if (auto check = sluice::HealthCheck::Parse(service_health);
        !service_health.empty() && !check.ok()) {
      std::cerr << "sluice-worker: " << check.status().message() << "\n";
      return 2;
    }
  }
  config.labels = labels;
  config.grace_ms = static_cast<int64_t>(grace_seconds * 1000);
  config.drain_timeout_ms = static_cast<int64_t>(drain_timeout_seconds * 1000);
  config.telemetry_probe_timeout_ms = static_cast<int64_t>(telemetry_probe_timeout_seconds * 1000);
  if (absl::Status st = config.Validate(); !st.ok()) {
    std::cerr << "sluice-worker: " << st.message() << "\n";
    return 2;
  }

  std::optional<sluice::RunAs> run_as_ids;
  if (!run_as.empty()) {
    auto parsed = sluice::ParseRunAs(run_as);
    if (!parsed.ok()) {
      std::cerr << "sluice-worker: " << parsed.status().message() << "\n";
      return 2;
    }
    run_as_ids = *parsed;
  }

  auto addresses = sluice::ParseCoordinatorAddresses(coordinator);
  if (!addresses.ok()) {
    std::cerr << "sluice-worker: " << addresses.status().message() << "\n";
    return 2;
  }
  // Every channel is made now, so that a bad TLS file is a configuration
  // error at start rather than at the first failover.
  // The TLS files are read once, here: later channels (to a leader learnt
  // from a standby) use these contents, also after --run-as.
  if (absl::Status st = sluice::LoadTlsFiles(&channel_options); !st.ok()) {
    std::cerr << "sluice-worker: " << st.message() << "\n";
    return 2;
  }
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels;
  for (const std::string& address : *addresses) {
    channel_options.address = address;
    auto channel = sluice::MakeChannel(channel_options);
    if (!channel.ok()) {
      std::cerr << "sluice-worker: " << channel.status().message() << "\n";
      return 2;
    }
    channels[address] = *channel;
  }
  auto token = sluice::LoadClientToken(channel_options);
  if (!token.ok()) {
    std::cerr << "sluice-worker: " << token.status().message() << "\n";
    return 2;
  }
  if (print_config) {
    // Paths are printed, never file contents; the token and secret-looking
    // --env values are redacted.
    nlohmann::json env = nlohmann::json::object();
    for (const auto& [name, value] : config.env) {
      env[name] = sluice::IsSecretName(name) ? std::string(sluice::kRedacted) : value;
    }
    nlohmann::json j = {
        {"coordinator", coordinator},
        {"worker_id", config.worker_id},
        {"host", config.host},
        {"slots", config.slots},
        {"exec", exec},
        {"env", env},
        {"require_env", required_env},
        {"labels", config.labels},
        {"cluster_id", config.cluster_id},
        {"workdir", config.workdir},
        {"log_dir", config.log_dir},
        {"grace_ms", config.grace_ms},
        {"drain_timeout_ms", config.drain_timeout_ms},
        {"max_start_failures", config.max_start_failures},
        {"lease_wait_ms", config.lease_wait_ms},
        {"telemetry_probe", telemetry_probe},
        {"telemetry_probe_timeout_ms", config.telemetry_probe_timeout_ms},
        {"service", service_command},
        {"service_health", service_health},
        {"max_message_bytes", channel_options.max_message_bytes},
        {"tls",
         {{"enabled", channel_options.tls_enabled()},
          {"ca_file", channel_options.tls_ca_file},
          {"cert_file", channel_options.tls_cert_file},
          {"key_file", channel_options.tls_key_file},
          {"server_name", channel_options.tls_server_name}}},
        {"token",
         {{"set", !token->empty()},
          {"source", !channel_options.token_file.empty() ? "--token-file"
                     : token->empty()                    ? "none"
                                                         : "$SLUICE_TOKEN"},
          {"token_file", channel_options.token_file},
          {"value", token->empty() ? nlohmann::json(nullptr) : nlohmann::json(sluice::kRedacted)}}},
        {"run_as", run_as},
        {"log_format", log_format},
        {"log_level", log_level}};
    std::cout << j.dump(2) << std::endl;
    return 0;
  }
  // Every secret is in memory now: drop to the phases' user before anything
  // is created on disk or started, so logs, spool and phases are that user's.
  if (run_as_ids) {
    if (absl::Status st = sluice::DropPrivileges(*run_as_ids); !st.ok()) {
      std::cerr << "sluice-worker: " << st.message() << "\n";
      return 3;
    }
    // A change of ids makes the kernel reset the dumpable flag: set it again.
    if (absl::Status st = sluice::MakeNonDumpable(); !st.ok()) {
      std::cerr << "sluice-worker: " << st.message() << "\n";
      return 3;
    }
    spdlog::info("running as uid {} gid {} (--run-as)", run_as_ids->uid, run_as_ids->gid);
  }
  // A leader address learnt from a standby's answer gets the same TLS
  // settings, and no channel at all if they cannot be applied (fail closed).
  sluice::FailoverCoordinatorClient client(
      *addresses,
      sluice::MakeCoordinatorClientFactory(std::move(channels), channel_options, *token));
  // Every phase, probe and --service runs under sluice-phase-shim, so none
  // outlives its attempt or this worker (#16 item 3). Without the shim the
  // worker refuses to start: running uncontained would break that promise.
  absl::StatusOr<std::string> shim = sluice::FindPhaseShim();
  if (!shim.ok()) {
    std::cerr << "sluice-worker: " << shim.status().message() << "\n";
    return 3;
  }
  // Optional: a per-attempt cgroup v2 under this directory, killed at once
  // with cgroup.kill (docs/containment.md).
  std::string phase_cgroup;
  if (const char* cgroup = std::getenv("SLUICE_PHASE_CGROUP"); cgroup != nullptr && *cgroup) {
    phase_cgroup = cgroup;
    if (absl::Status st = sluice::CheckPhaseCgroupParent(phase_cgroup); !st.ok()) {
      std::cerr << "sluice-worker: $SLUICE_PHASE_CGROUP: " << st.message() << "\n";
      return 3;
    }
  }
  sluice::PosixProcessRunner runner(*shim, phase_cgroup);
  std::unique_ptr<sluice::ServiceSupervisor> supervisor;
  if (!service.argv.empty()) {
    service.env = config.env;
    service.workdir = config.workdir;
    service.stdout_path = config.log_dir + "/service.out";
    service.stderr_path = config.log_dir + "/service.err";
    service.grace_ms = config.grace_ms;
    supervisor = std::make_unique<sluice::ServiceSupervisor>(service, runner);
    config.ready = [s = supervisor.get()] { return s->healthy(); };
  }
  // Orphans of phases (double forks, daemons) become our children and are
  // reaped; as PID 1 in a container there is nobody else to do it.
  if (absl::Status st = sluice::BecomeChildSubreaper(); !st.ok()) {
    spdlog::warn("orphaned processes of phases will not be reaped by the worker: {}",
                 st.ToString());
  }
  sluice::OrphanReaper orphan_reaper;
  sluice::WorkerAgent agent(config, client, runner, sluice::SystemClock::Default());
  std::atomic<bool> terminating{false};
  sluice::TerminationWatcher watcher([&](int sig) {
    spdlog::info("signal {} received: draining", sig);
    terminating.store(true);
    agent.RequestDrain();
  });
  if (supervisor) {
    std::error_code ec;
    std::filesystem::create_directories(config.log_dir, ec);
    if (absl::Status started = supervisor->Start(); !started.ok()) {
      std::cerr << "sluice-worker: " << started.message() << "\n";
      return 2;
    }
    if (!supervisor->WaitHealthy(static_cast<int64_t>(service_start_timeout_seconds * 1000),
                                 &terminating)) {
      supervisor->Stop();
      if (terminating.load()) return 0;
      std::cerr << "sluice-worker: --service did not become healthy within "
                << service_start_timeout_seconds << " s; see " << config.log_dir
                << "/service.err\n";
      return 3;
    }
  }
  absl::Status st = agent.Run();
  // After the phases: they may have needed the service to the end.
  if (supervisor) supervisor->Stop();
  if (!st.ok()) {
    spdlog::error("worker stopped: {}", st.ToString());
    // A rejected token is a configuration error too.
    const bool config_error = st.code() == absl::StatusCode::kInvalidArgument ||
                              st.code() == absl::StatusCode::kUnauthenticated ||
                              st.code() == absl::StatusCode::kPermissionDenied;
    return config_error ? 2 : 3;
  }
  return 0;
}
