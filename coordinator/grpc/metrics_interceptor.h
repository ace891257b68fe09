// A gRPC server interceptor that records every RPC's server-side duration in
// `sluice_rpc_duration_seconds{method}` and counts it in
// `sluice_rpcs_total{method,code}`. `method` is "Service/Method" without
// the package ("WorkerService/Lease"): bounded cardinality.
//
// Register with ServerBuilder::experimental().SetInterceptorCreators. The
// registry must outlive the server. Thread-safe.
#pragma once

#include <grpcpp/support/server_interceptor.h>

#include <memory>

#include "coordinator/insight/metrics.h"

namespace sluice {

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> NewMetricsInterceptorFactory(
    MetricsRegistry& registry);

}  // namespace sluice
