// sluice-coordinator: keeps the drain's state in a store and leases phases to
// workers over gRPC. Exit codes: 0 clean shutdown (SIGTERM/SIGINT), 2 usage
// or configuration error, 3 infrastructure error (store or port unavailable).
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <memory>
#include <random>

#include "CLI/CLI.hpp"
#include "common/clock.h"
#include "common/logging.h"
#include "common/mutex_checks.h"
#include "common/redact.h"
#include "common/signals.h"
#include "coordinator/bootstrap.h"
#include "coordinator/coordinator.h"
#include "coordinator/grpc/auth.h"
#include "coordinator/grpc/security.h"
#include "coordinator/grpc/server.h"
#include "coordinator/leadership/leader_election.h"
#include "coordinator/store/store_factory.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"

namespace {

// The flag's value, else the environment variable's, else "".
std::string FlagOrEnv(const std::string& flag_value, const char* env) {
  if (!flag_value.empty()) return flag_value;
  const char* v = std::getenv(env);
  return v == nullptr ? std::string() : std::string(v);
}

// HOST-PID-RANDOM: unique per process, readable in logs and in the leader key.
std::string DefaultCoordinatorId() {
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = 0;
  std::random_device rd;
  char suffix[9];
  std::snprintf(suffix, sizeof(suffix), "%08x", rd());
  return std::string(host[0] != 0 ? host : "coordinator") + "-" + std::to_string(getpid()) + "-" +
         suffix;
}

}  // namespace

int main(int argc, char** argv) {
  sluice::ConfigureMutexDeadlockChecks();
  sluice::BlockTerminationSignals();
  CLI::App app{"sluice-coordinator: leases backlog phases to sluice workers over gRPC."};
  sluice::ServerOptions server_options;
  sluice::CoordinatorConfig config;
  std::string store_url = sluice::kDefaultStoreUrl;
  std::string log_format = "human";
  std::string log_level = "info";
  app.add_option("--listen", server_options.listen_address, "gRPC address to listen on")
      ->capture_default_str();
  app.add_option("--store", store_url, "State store URL: sqlite://PATH")->capture_default_str();
  app.add_option("--lease-ttl-ms", config.lease_ttl_ms,
                 "A lease not renewed by a heartbeat within this is expired and re-leased")
      ->capture_default_str();
  app.add_option("--heartbeat-interval-ms", config.heartbeat_interval_ms,
                 "How often workers renew their leases (below the TTL)")
      ->capture_default_str();
  app.add_option("--max-lease-wait-ms", config.max_lease_wait_ms,
                 "Upper bound of a lease long-poll")
      ->capture_default_str();
  int64_t leader_lease_ms = 5'000;
  app.add_option("--leader-lease-ms", leader_lease_ms,
                 "Redis store: the leader lease TTL. Coordinators sharing one namespace elect one "
                 "leader; a standby takes over within this plus a third of it after the leader "
                 "dies (300..600000)")
      ->capture_default_str();
  std::string advertise;
  app.add_option("--advertise", advertise,
                 "Redis store: HOST:PORT workers should use to reach this coordinator when it "
                 "leads; a standby names the leader's in its UNAVAILABLE answers (default: "
                 "--listen, with the bound port)");
  std::string coordinator_id;
  app.add_option("--coordinator-id", coordinator_id,
                 "Redis store: this process's name in the leader lease (default: "
                 "HOST-PID-RANDOM; must differ between coordinators)");
  app.add_option("--family-pattern", config.family_pattern,
                 "RE2 pattern whose first capture group is a run's family for the scheduler's "
                 "priors, the web view and the report's family table (a run id it does not "
                 "match is its own family); default: strip a trailing date, letter or version "
                 "(research-system-v2 -> research-system)");
  bool no_reflection = false;
  app.add_flag("--no-reflection", no_reflection, "Do not offer gRPC server reflection");
  sluice::TlsServerOptions tls;
  app.add_option("--tls-cert", tls.cert_file, "PEM server certificate chain (enables TLS)");
  app.add_option("--tls-key", tls.key_file, "PEM private key of --tls-cert");
  app.add_option("--tls-client-ca", tls.client_ca_file,
                 "PEM CA: require client certificates signed by it (mTLS)");
  std::string token_file;
  std::string admin_token_file;
  app.add_option("--token-file", token_file,
                 "Worker tokens, one per line, TOKEN or WORKER_ID:TOKEN (default: "
                 "$SLUICE_WORKER_TOKENS_FILE); with no token file authentication is off");
  app.add_option("--admin-token-file", admin_token_file,
                 "Admin tokens (operator calls and everything else), one per line (default: "
                 "$SLUICE_ADMIN_TOKEN_FILE)");
  app.add_option("--max-message-bytes", server_options.max_message_bytes,
                 "Largest gRPC message received or sent")
      ->capture_default_str();
  std::string metrics_listen;
  app.add_option("--http-listen,--metrics-listen", metrics_listen,
                 "Serve the web view (http://HOST:PORT/), Prometheus /metrics and /healthz over "
                 "HTTP on HOST:PORT (off when empty; --metrics-listen is the old name)");
  bool print_config = false;
  app.add_flag("--print-config", print_config,
               "Print the effective configuration as JSON (secrets redacted) and exit");
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
    std::cerr << "sluice-coordinator: " << st.message() << "\n";
    return 2;
  }
  server_options.enable_reflection = !no_reflection;
  if (absl::Status st = config.Validate(); !st.ok()) {
    std::cerr << "sluice-coordinator: " << st.message() << "\n";
    return 2;
  }
  if (server_options.max_message_bytes < 4096) {
    std::cerr << "sluice-coordinator: --max-message-bytes must be at least 4096\n";
    return 2;
  }
  auto credentials = sluice::MakeServerCredentials(tls);
  if (!credentials.ok()) {
    std::cerr << "sluice-coordinator: " << credentials.status().message() << "\n";
    return 2;
  }
  if (tls.enabled()) server_options.credentials = *credentials;
  token_file = FlagOrEnv(token_file, "SLUICE_WORKER_TOKENS_FILE");
  admin_token_file = FlagOrEnv(admin_token_file, "SLUICE_ADMIN_TOKEN_FILE");
  auto auth = sluice::Authenticator::FromFiles(token_file, admin_token_file);
  if (!auth.ok()) {
    std::cerr << "sluice-coordinator: " << auth.status().message() << "\n";
    return 2;
  }
  server_options.authenticator = std::make_shared<const sluice::Authenticator>(std::move(*auth));
  if (print_config) {
    // File paths are printed, never their content; the store URL's password is redacted.
    const sluice::Authenticator& a = *server_options.authenticator;
    nlohmann::json j = {{"listen", server_options.listen_address},
                        {"store", sluice::RedactUrl(store_url)},
                        {"lease_ttl_ms", config.lease_ttl_ms},
                        {"heartbeat_interval_ms", config.heartbeat_interval_ms},
                        {"max_lease_wait_ms", config.max_lease_wait_ms},
                        {"leader_lease_ms", leader_lease_ms},
                        {"advertise", advertise},
                        {"coordinator_id", coordinator_id},
                        {"family_pattern", config.family_pattern},
                        {"max_tail_bytes", config.max_tail_bytes},
                        {"max_error_text_bytes", config.max_error_text_bytes},
                        {"max_message_bytes", server_options.max_message_bytes},
                        {"reflection", server_options.enable_reflection},
                        {"tls",
                         {{"enabled", tls.enabled()},
                          {"cert_file", tls.cert_file},
                          {"key_file", tls.key_file},
                          {"client_ca_file", tls.client_ca_file},
                          {"require_client_cert", tls.enabled() && tls.mutual()}}},
                        {"auth",
                         {{"enabled", a.enabled()},
                          {"token_file", token_file},
                          {"admin_token_file", admin_token_file},
                          {"worker_token_count", a.worker_token_count()},
                          {"admin_token_count", a.admin_token_count()}}},
                        {"log_format", log_format},
                        {"log_level", log_level}};
    std::cout << j.dump(2) << std::endl;
    return 0;
  }
  if (leader_lease_ms < 300 || leader_lease_ms > 600'000) {
    std::cerr << "sluice-coordinator: --leader-lease-ms must be between 300 and 600000\n";
    return 2;
  }
  if (!advertise.empty() && advertise.rfind(':') == std::string::npos) {
    std::cerr << "sluice-coordinator: --advertise must be HOST:PORT\n";
    return 2;
  }
  auto opened = sluice::OpenStore(store_url);
  if (!opened.ok()) {
    std::cerr << "sluice-coordinator: " << opened.status().message() << "\n";
    return opened.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 3;
  }
  sluice::Coordinator coordinator(*opened->store, sluice::SystemClock::Default(), config);
  // Operators compare this with the workers' --cluster-id and `sluice status`.
  spdlog::info("coordinator store={} cluster_id={}", sluice::RedactUrl(store_url),
               opened->store->ClusterId());
  // On a shared store (Redis: the factory hands out a leader lease), several
  // coordinators may share the namespace: one leads, the others stand by
  // (NOT_SERVING, UNAVAILABLE naming the leader). SQLite: one coordinator per
  // file, always the leader.
  sluice::LeaderLeaseStore* const leader_lease = opened->leader_lease.get();
  sluice::WriteFence* const write_fence = opened->write_fence;
  std::unique_ptr<sluice::LeaderElection> election;
  // No write of this process counts until it wins an election.
  if (write_fence != nullptr) write_fence->SetFencingEpoch(sluice::WriteFence::kNeverLeader);
  sluice::NotCampaigningYet not_campaigning_yet;
  // Before the server starts: its first Tick must already see a standby.
  if (leader_lease != nullptr) coordinator.SetLeadership(&not_campaigning_yet);
  sluice::CoordinatorHost host(coordinator, metrics_listen);
  auto port = host.StartServer(server_options);
  if (!port.ok()) {
    std::cerr << "sluice-coordinator: " << port.status().message() << "\n";
    return sluice::StartupExitCode(port.status());
  }
  auto metrics_port = host.StartMetrics();
  if (!metrics_port.ok()) {
    std::cerr << "sluice-coordinator: " << metrics_port.status().message() << "\n";
    host.ShutdownServer();
    return sluice::StartupExitCode(metrics_port.status());
  }
  if (*metrics_port) {
    // "metrics on port N" stays for scripts written before the web view.
    std::cout << "metrics on port " << **metrics_port << std::endl;
    std::cout << "web view on " << sluice::WebViewUrl(metrics_listen, **metrics_port) << std::endl;
  }
  // Tests and scripts read the bound port from this line on stdout.
  std::cout << "listening on port " << *port << std::endl;
  if (leader_lease != nullptr) {
    sluice::LeaderElectionOptions election_options;
    election_options.coordinator_id =
        coordinator_id.empty() ? DefaultCoordinatorId() : coordinator_id;
    election_options.advertise_address = advertise;
    if (advertise.empty()) {
      const std::string& listen = server_options.listen_address;
      election_options.advertise_address =
          listen.substr(0, listen.rfind(':') + 1) + std::to_string(*port);
    }
    election_options.lease_ms = leader_lease_ms;
    election_options.on_elected = [write_fence](int64_t epoch) {
      if (write_fence != nullptr) write_fence->SetFencingEpoch(epoch);
    };
    election_options.on_stepped_down = [&coordinator] { coordinator.WakeLeasePolls(); };
    election = std::make_unique<sluice::LeaderElection>(
        *leader_lease, sluice::SystemClock::Default(), std::move(election_options));
    coordinator.SetLeadership(election.get());
    election->Start();
  }
  sluice::TerminationWatcher watcher([&](int sig) {
    spdlog::info("signal {} received: shutting down", sig);
    host.ShutdownServer();
  });
  host.Wait();
  // Resign so a standby takes over at once instead of after the lease TTL.
  if (election != nullptr) election->Stop();
  spdlog::info("coordinator stopped");
  return 0;
}
