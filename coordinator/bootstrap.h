// The serving side of a coordinator process, shared by sluice-coordinator
// (coordinator/main.cc) and `sluice drain` (cli/drain.cc), so both wire it
// the same way: the gRPC server with the worker and operator services and
// its maintenance tick loop (CoordinatorServer), RPC latency metrics, and
// the optional HTTP endpoint: the web view (coordinator/web/, docs/web.md),
// Prometheus /metrics and /healthz (healthy while the server is SERVING). Opening the store and the
// leader election stay with the caller: only sluice-coordinator elects a leader.
//
// Ownership: `coordinator` must outlive the host. Thread-safety: Start*,
// Stop() and the destructor from one thread; ShutdownServer() from any (a
// signal watcher), also while Wait() blocks.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "coordinator/coordinator.h"
#include "coordinator/grpc/server.h"
#include "coordinator/insight/metrics.h"
#include "coordinator/web/web_api.h"

namespace sluice {

// The exit code of a start-up failure: 2 for a configuration error
// (InvalidArgument), 3 for an infrastructure one (store or port unavailable).
int StartupExitCode(const absl::Status& status);

// "http://HOST:PORT/" of the web view served on `http_listen` (HOST:PORT)
// bound to `port`; a wildcard host (0.0.0.0, ::, empty) becomes 127.0.0.1.
std::string WebViewUrl(const std::string& http_listen, int port);

class CoordinatorHost {
 public:
  // `http_listen` (--http-listen, alias --metrics-listen): HOST:PORT of the
  // web view, /metrics and /healthz; empty: no endpoint and no metrics
  // recorded. The web view's actions take the admin tokens of
  // ServerOptions::authenticator; without admin tokens they are refused.
  CoordinatorHost(Coordinator& coordinator, std::string http_listen);
  ~CoordinatorHost();  // Stop()
  CoordinatorHost(const CoordinatorHost&) = delete;
  CoordinatorHost& operator=(const CoordinatorHost&) = delete;

  // Binds options.listen_address, registers the services and starts the
  // tick loop; returns the bound port. options.metrics is the host's own
  // registry when there is an endpoint, else null. Unavailable when it
  // cannot listen.
  absl::StatusOr<int> StartServer(ServerOptions options);
  // After StartServer: serves the web view, /metrics and /healthz, samples
  // the web view's history every few seconds and keeps its snapshot of every
  // run (RunTable) fresh while someone looks; returns the bound
  // port, nullopt without an endpoint. InvalidArgument for a malformed address,
  // Unavailable when the port cannot be bound; the gRPC server keeps running
  // until ShutdownServer() or Stop().
  absl::StatusOr<std::optional<int>> StartMetrics();

  // The server's health (CoordinatorServer::serving()).
  bool serving() const { return server_.serving(); }
  // Stops accepting RPCs, wakes long-polls, waits (bounded) for calls in
  // flight and ends the tick loop. Idempotent. /metrics keeps answering
  // (/healthz with 503) until Stop().
  void ShutdownServer();
  // Blocks until the gRPC server has shut down.
  void Wait();
  // ShutdownServer(), then stops the HTTP endpoint. Idempotent.
  void Stop();

 private:
  const std::string metrics_listen_;
  MetricsRegistry metrics_;  // outlives the server: its interceptor records into it
  CoordinatorServer server_;
  WebApi web_;
  std::shared_ptr<const Authenticator> authenticator_;  // from StartServer's options
  MetricsHttpServer metrics_http_;
  absl::Notification stop_background_;
  std::thread sampler_;              // the web view's history
  std::thread run_table_refresher_;  // the web view's snapshot of every run
};

}  // namespace sluice
