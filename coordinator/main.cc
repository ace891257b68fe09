// sluice-coordinator: keeps the drain's state in a store and leases phases to
// workers over gRPC. Exit codes: 0 clean shutdown (SIGTERM/SIGINT), 2 usage
// or configuration error, 3 infrastructure error (store or port unavailable).
#include <iostream>

#include "CLI/CLI.hpp"
#include "common/clock.h"
#include "common/logging.h"
#include "common/signals.h"
#include "coordinator/coordinator.h"
#include "coordinator/grpc/server.h"
#include "coordinator/store_factory.h"
#include "spdlog/spdlog.h"

int main(int argc, char** argv) {
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
  bool no_reflection = false;
  app.add_flag("--no-reflection", no_reflection, "Do not offer gRPC server reflection");
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
  auto store = sluice::OpenStateStore(store_url);
  if (!store.ok()) {
    std::cerr << "sluice-coordinator: " << store.status().message() << "\n";
    return store.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 3;
  }
  sluice::Coordinator coordinator(**store, sluice::SystemClock::Default(), config);
  sluice::CoordinatorServer server(coordinator);
  auto port = server.Start(server_options);
  if (!port.ok()) {
    std::cerr << "sluice-coordinator: " << port.status().message() << "\n";
    return 3;
  }
  // Tests and scripts read the bound port from this line on stdout.
  std::cout << "listening on port " << *port << std::endl;
  sluice::TerminationWatcher watcher([&](int sig) {
    spdlog::info("signal {} received: shutting down", sig);
    server.Shutdown();
  });
  server.Wait();
  spdlog::info("coordinator stopped");
  return 0;
}
