#include "coordinator/grpc/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "coordinator/grpc/services.h"
#include "spdlog/spdlog.h"

namespace sluice {

CoordinatorServer::CoordinatorServer(Coordinator& coordinator)
    : coordinator_(coordinator),
      worker_service_(std::make_unique<WorkerServiceImpl>(coordinator)),
      operator_service_(std::make_unique<OperatorServiceImpl>(coordinator)) {}

CoordinatorServer::~CoordinatorServer() { Shutdown(); }

absl::StatusOr<int> CoordinatorServer::Start(const ServerOptions& options) {
  grpc::EnableDefaultHealthCheckService(true);
  if (options.enable_reflection) grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options.listen_address, grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  builder.RegisterService(worker_service_.get());
  builder.RegisterService(operator_service_.get());
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen_address, " (address in use or invalid)"));
  }
  SetServing(coordinator_.Tick().ok());
  ticker_ = std::thread([this, interval = options.tick_interval_ms] {
    while (!stopping_.load()) {
      absl::Status st = coordinator_.Tick();
      if (!st.ok()) spdlog::error("maintenance tick failed: {}", st.ToString());
      SetServing(st.ok() && !stopping_.load());
      for (int64_t waited = 0; waited < interval && !stopping_.load(); waited += 50) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
  });
  spdlog::info("coordinator listening on {} (port {})", options.listen_address, port);
  return port;
}

void CoordinatorServer::SetServing(bool serving) {
  const bool was = serving_.exchange(serving);
  if (server_ == nullptr) return;
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  if (health == nullptr) return;
  if (was != serving) spdlog::info("health: {}", serving ? "SERVING" : "NOT_SERVING");
  health->SetServingStatus(serving);
}

void CoordinatorServer::Shutdown() {
  if (stopping_.exchange(true)) return;
  SetServing(false);
  coordinator_.BeginShutdown();
  if (server_ != nullptr) {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }
  if (ticker_.joinable()) ticker_.join();
}

void CoordinatorServer::Wait() {
  if (server_ != nullptr) server_->Wait();
}

}  // namespace sluice
