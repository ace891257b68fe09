#include "coordinator/grpc/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/impl/server_builder_option.h>
#include <grpcpp/impl/server_builder_plugin.h>

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "coordinator/grpc/auth.h"
#include "coordinator/grpc/metrics_interceptor.h"
#include "coordinator/grpc/security.h"
#include "coordinator/grpc/services.h"
#include "coordinator/leadership/not_leader.h"
#include "spdlog/spdlog.h"

namespace sluice {
namespace {

// Drops the server reflection plugin from a builder.
class WithoutReflection final : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    plugins->erase(std::remove_if(plugins->begin(), plugins->end(),
                                  [](const std::unique_ptr<grpc::ServerBuilderPlugin>& p) {
                                    return p->name() == "proto_server_reflection";
                                  }),
                   plugins->end());
  }
};

}  // namespace

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
  builder.AddListeningPort(
      options.listen_address,
      options.credentials != nullptr ? options.credentials : grpc::InsecureServerCredentials(),
      &port);
  // gRPC binds with SO_REUSEPORT on Linux by default: a second coordinator on
  // a port in use would bind anyway and share (steal) the first one's workers.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  worker_service_->SetAuthenticator(options.authenticator);
  operator_service_->SetAuthenticator(options.authenticator);
  if (options.metrics != nullptr) {
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
    creators.push_back(NewMetricsInterceptorFactory(*options.metrics));
    builder.experimental().SetInterceptorCreators(std::move(creators));
  }
  if (!options.enable_reflection) {
    // Linking grpc++_reflection registers its plugin at load time; remove it.
    builder.SetOption(std::make_unique<WithoutReflection>());
  }
  builder.RegisterService(worker_service_.get());
  builder.RegisterService(operator_service_.get());
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.listen_address,
                                               " (address in use by another process, or invalid)"));
  }
  SetServing(coordinator_.Tick().ok());
  ticker_ = std::thread([this, interval = options.tick_interval_ms] {
    while (!stopping_.load()) {
      absl::Status st = coordinator_.Tick();
      // After the tick, which never waits for it without an active session:
      // expiring leases does not depend on a long first read.
      if (st.ok()) st = coordinator_.LoadPolicy();
      // A standby's tick is refused by design; the election logs its transitions.
      if (!st.ok() && !IsNotLeader(st)) spdlog::error("maintenance tick failed: {}", st.ToString());
      SetServing(st.ok() && !stopping_.load());
      // Shutdown ends the wait at once (a drain's end waits for no tick).
      (void)ticker_stop_.WaitForNotificationWithTimeout(absl::Milliseconds(interval));
    }
  });
  spdlog::info("coordinator listening on {} (port {})", options.listen_address, port);
  const bool auth_on = options.authenticator != nullptr && options.authenticator->enabled();
  spdlog::info(
      "transport: {}; authentication: {}", options.credentials != nullptr ? "TLS" : "plaintext",
      auth_on ? absl::StrCat("bearer tokens (", options.authenticator->worker_token_count(),
                             " worker, ", options.authenticator->admin_token_count(), " admin)")
              : std::string("off"));
  if (!IsLoopbackAddress(options.listen_address)) {
    if (!auth_on) {
      spdlog::warn(
          "authentication is off on non-loopback address {}: anyone who can reach it can lease "
          "work, report results and drive the coordinator (set --token-file and "
          "--admin-token-file)",
          options.listen_address);
    }
    if (options.credentials == nullptr) {
      spdlog::warn(
          "TLS is off on non-loopback address {}: traffic{} is plaintext (set --tls-cert "
          "and --tls-key)",
          options.listen_address, auth_on ? ", tokens included," : "");
    }
  }
  return port;
}

void CoordinatorServer::SetServing(bool serving) {
  const bool was = serving_.exchange(serving);
  if (server_ == nullptr) return;
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  if (health == nullptr) return;
  if (was != serving) spdlog::info("health: {}", serving ? "SERVING" : "NOT_SERVING");
  health->SetServingStatus(serving);
  // The default health service knows only "" until a name is set explicitly.
  health->SetServingStatus("sluice.v1.WorkerService", serving);
  health->SetServingStatus("sluice.v1.OperatorService", serving);
}

void CoordinatorServer::Shutdown() {
  if (stopping_.exchange(true)) return;
  SetServing(false);
  coordinator_.BeginShutdown();
  if (server_ != nullptr) {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }
  ticker_stop_.Notify();
  if (ticker_.joinable()) ticker_.join();
}

void CoordinatorServer::Wait() {
  if (server_ != nullptr) server_->Wait();
}

}  // namespace sluice
