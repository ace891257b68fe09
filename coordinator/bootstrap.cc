#include "coordinator/bootstrap.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "coordinator/grpc/auth.h"
#include "coordinator/web/web_http.h"
#include "spdlog/spdlog.h"

namespace sluice {
namespace {

// The history's step: each sample costs what a /metrics scrape costs.
constexpr absl::Duration kSampleEvery = absl::Seconds(5);
// How often the run table checks whether a snapshot is due (RunTable decides;
// a check reads nothing).
constexpr absl::Duration kRunTableCheckEvery = absl::Milliseconds(250);

}  // namespace

int StartupExitCode(const absl::Status& status) {
  return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 3;
}

std::string WebViewUrl(const std::string& http_listen, int port) {
  std::string host = http_listen.substr(0, http_listen.rfind(':'));
  if (host.empty() || host == "0.0.0.0" || host == "::" || host == "[::]") host = "127.0.0.1";
  return absl::StrCat("http://", host, ":", port, "/");
}

CoordinatorHost::CoordinatorHost(Coordinator& coordinator, std::string metrics_listen)
    : metrics_listen_(std::move(metrics_listen)),
      server_(coordinator),
      web_(coordinator, SystemClock::Default(), WebApiOptions{.background_run_table = true}),
      metrics_http_(metrics_, [this] { return server_.serving(); }) {
  if (!metrics_listen_.empty()) RegisterCoordinatorMetrics(metrics_, coordinator);
}

CoordinatorHost::~CoordinatorHost() { Stop(); }

absl::StatusOr<int> CoordinatorHost::StartServer(ServerOptions options) {
  options.metrics = metrics_listen_.empty() ? nullptr : &metrics_;
  authenticator_ = options.authenticator;
  return server_.Start(options);
}

absl::StatusOr<std::optional<int>> CoordinatorHost::StartMetrics() {
  if (metrics_listen_.empty()) return std::nullopt;
  WebRouteOptions web_options;
  web_options.serving = [this] { return server_.serving(); };
  // The gRPC operator calls' admin-token check, reused as is: an admin
  // token may act, a worker token may not, nothing else gets through.
  if (authenticator_ != nullptr && authenticator_->admin_token_count() > 0) {
    web_options.authorize_action = [auth = authenticator_](std::optional<std::string_view> h) {
      return auth->Authorize(h, CallKind::kOperator, "");
    };
  }
  metrics_http_.AddRoutes(
      [this, web_options](httplib::Server& server) { AddWebRoutes(server, web_, web_options); });
  absl::StatusOr<int> port = metrics_http_.Start(metrics_listen_);
  if (!port.ok()) return port.status();
  sampler_ = std::thread([this] {
    do {
      if (absl::Status st = web_.Sample(); !st.ok()) {
        spdlog::debug("web view: no history sample: {}", st.ToString());
      }
    } while (!stop_background_.WaitForNotificationWithTimeout(kSampleEvery));
  });
  run_table_refresher_ = std::thread([this] {
    do {
      if (absl::Status st = web_.RefreshRunTable(); !st.ok()) {
        spdlog::debug("web view: no snapshot of the runs: {}", st.ToString());
      }
    } while (!stop_background_.WaitForNotificationWithTimeout(kRunTableCheckEvery));
  });
  return *port;
}

void CoordinatorHost::ShutdownServer() { server_.Shutdown(); }

void CoordinatorHost::Wait() { server_.Wait(); }

void CoordinatorHost::Stop() {
  server_.Shutdown();
  if (sampler_.joinable()) {
    stop_background_.Notify();
    sampler_.join();
    run_table_refresher_.join();
  }
  metrics_http_.Stop();
}

}  // namespace sluice
