// Hosts a Coordinator over gRPC: the worker and operator services, plus a
// maintenance thread that calls Coordinator::Tick (lease expiry, session end).
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "coordinator/coordinator.h"

namespace grpc {
class Server;
class ServerCredentials;
}  // namespace grpc

namespace sluice {

class WorkerServiceImpl;
class OperatorServiceImpl;
class Authenticator;
class MetricsRegistry;

struct ServerOptions {
  std::string listen_address = "127.0.0.1:7400";  // "host:0" picks a free port
  int64_t tick_interval_ms = 500;
  // Largest gRPC message received or sent (--max-message-bytes); bigger ones
  // fail with RESOURCE_EXHAUSTED. Bounds an ImportBacklog request's size.
  int max_message_bytes = 16 * 1024 * 1024;
  // Transport credentials (coordinator/grpc/security.h); null: plaintext.
  std::shared_ptr<grpc::ServerCredentials> credentials;
  // Bearer-token checks for every WorkerService and OperatorService call
  // (coordinator/grpc/auth.h); null or disabled: no authentication. Health
  // and reflection stay open.
  std::shared_ptr<const Authenticator> authenticator;
  // gRPC server reflection (grpcurl, grpc_cli); off for locked-down deployments.
  bool enable_reflection = true;
  // RPC latency histograms go here (coordinator/grpc/metrics_interceptor.h);
  // null: none. Must outlive the server.
  MetricsRegistry* metrics = nullptr;
};

class CoordinatorServer {
 public:
  explicit CoordinatorServer(Coordinator& coordinator);
  ~CoordinatorServer();

  // Binds and starts serving; returns the bound port.
  absl::StatusOr<int> Start(const ServerOptions& options);
  // The standard grpc.health.v1 status: SERVING while the coordinator is the
  // leader (always, without a Leadership) and can reach its store (both
  // checked by every maintenance tick, every tick_interval_ms), NOT_SERVING
  // otherwise (a standby, Redis down) and after shutdown begins. Service
  // names: "", "sluice.v1.WorkerService" and "sluice.v1.OperatorService".
  bool serving() const { return serving_.load(); }

  // Stops accepting, wakes long-polls, waits for in-flight calls (bounded).
  void Shutdown();
  void Wait();

 private:
  Coordinator& coordinator_;
  std::unique_ptr<WorkerServiceImpl> worker_service_;
  std::unique_ptr<OperatorServiceImpl> operator_service_;
  std::unique_ptr<grpc::Server> server_;
  std::atomic<bool> stopping_{false};
  absl::Notification ticker_stop_;  // wakes the ticker's wait at Shutdown
  std::atomic<bool> serving_{false};
  void SetServing(bool serving);
  std::thread ticker_;
};

}  // namespace sluice
