#include "coordinator/bootstrap.h"

#include <utility>

namespace sluice {

int StartupExitCode(const absl::Status& status) {
  return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 3;
}

CoordinatorHost::CoordinatorHost(Coordinator& coordinator, std::string metrics_listen)
    : metrics_listen_(std::move(metrics_listen)),
      server_(coordinator),
      metrics_http_(metrics_, [this] { return server_.serving(); }) {
  if (!metrics_listen_.empty()) RegisterCoordinatorMetrics(metrics_, coordinator);
}

CoordinatorHost::~CoordinatorHost() { Stop(); }

absl::StatusOr<int> CoordinatorHost::StartServer(ServerOptions options) {
  options.metrics = metrics_listen_.empty() ? nullptr : &metrics_;
  return server_.Start(options);
}

absl::StatusOr<std::optional<int>> CoordinatorHost::StartMetrics() {
  if (metrics_listen_.empty()) return std::nullopt;
  absl::StatusOr<int> port = metrics_http_.Start(metrics_listen_);
  if (!port.ok()) return port.status();
  return *port;
}

void CoordinatorHost::ShutdownServer() { server_.Shutdown(); }

void CoordinatorHost::Wait() { server_.Wait(); }

void CoordinatorHost::Stop() {
  server_.Shutdown();
  metrics_http_.Stop();
}

}  // namespace sluice
