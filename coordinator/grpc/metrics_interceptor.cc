#include "coordinator/grpc/metrics_interceptor.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <string>

namespace sluice {
namespace {

using grpc::experimental::InterceptionHookPoints;

// "/sluice.v1.WorkerService/Lease" -> "WorkerService/Lease".
std::string ShortMethod(const char* full) {
  std::string m = full == nullptr ? "" : full;
  const size_t slash = m.rfind('/');
  if (slash == std::string::npos || slash == 0) return m;
  std::string service = m.substr(0, slash);
  if (!service.empty() && service.front() == '/') service.erase(0, 1);
  const size_t dot = service.rfind('.');
  if (dot != std::string::npos) service = service.substr(dot + 1);
  return service + m.substr(slash);
}

std::string CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::OK:
      return "OK";
    case grpc::CANCELLED:
      return "CANCELLED";
    case grpc::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::ABORTED:
      return "ABORTED";
    case grpc::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    case grpc::INTERNAL:
      return "INTERNAL";
    default:
      return "OTHER";
  }
}

class MetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  MetricsInterceptor(grpc::experimental::ServerRpcInfo* info, MetricsRegistry& registry)
      : registry_(registry),
        method_(ShortMethod(info->method())),
        start_(std::chrono::steady_clock::now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      registry_.Observe("sluice_rpc_duration_seconds", {{"method", method_}}, seconds);
      registry_.Add(
          "sluice_rpcs_total",
          {{"code", CodeName(methods->GetSendStatus().error_code())}, {"method", method_}}, 1);
    }
    methods->Proceed();
  }

 private:
  MetricsRegistry& registry_;
  const std::string method_;
  const std::chrono::steady_clock::time_point start_;
};

class MetricsInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit MetricsInterceptorFactory(MetricsRegistry& registry) : registry_(registry) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new MetricsInterceptor(info, registry_);  // gRPC owns and deletes it
  }

 private:
  MetricsRegistry& registry_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> NewMetricsInterceptorFactory(
    MetricsRegistry& registry) {
  registry.Declare("sluice_rpc_duration_seconds", MetricType::kHistogram,
                   "Server-side duration of coordinator RPCs by method", RpcLatencyBuckets());
  registry.Declare("sluice_rpcs_total", MetricType::kCounter,
                   "Coordinator RPCs by method and status code");
  return std::make_unique<MetricsInterceptorFactory>(registry);
}

}  // namespace sluice
