// Prometheus metrics for the coordinator: a tiny thread-safe registry
// (counters, gauges, histograms with fixed buckets) rendered in the text
// exposition format 0.0.4, gauges and counters computed from the store at
// scrape time, and an HTTP endpoint (cpp-httplib) serving /metrics and
// /healthz.
//
// Names follow Prometheus conventions: the `sluice_` prefix, `_total` for
// counters, base units (`_seconds`), low-cardinality labels only (state,
// outcome, method: never run, phase or lease ids).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace httplib {
class Server;
}

namespace sluice {

class Coordinator;

enum class MetricType { kCounter, kGauge, kHistogram };

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

// Thread-safe: every method may be called from any thread.
class MetricsRegistry {
 public:
  // Declares a metric family. Declaring a name twice keeps the first
  // declaration. `buckets` (upper bounds, ascending) for histograms only.
  void Declare(const std::string& name, MetricType type, const std::string& help,
               std::vector<double> buckets = {});

  // Counters: Add increments, Set replaces (for totals read from the store,
  // which are monotonic there). Gauges: Set. Undeclared names are ignored.
  void Add(const std::string& name, const MetricLabels& labels, double delta);
  void Set(const std::string& name, const MetricLabels& labels, double value);
  // Histograms: one observation.
  void Observe(const std::string& name, const MetricLabels& labels, double value);

  // Runs before every Render (outside the registry's lock): sets gauges and
  // store-derived counters. A collector's error is reported by
  // `sluice_scrape_errors_total` and logged; the other values still render.
  void AddCollector(std::function<absl::Status(MetricsRegistry&)> collector);

  // Runs the collectors, then renders every family in text format 0.0.4.
  std::string Render();

 private:
  struct Histogram {
    std::vector<uint64_t> counts;  // per bucket, not cumulative; last = +Inf
    double sum = 0;
    uint64_t count = 0;
  };
  struct Family {
    MetricType type = MetricType::kGauge;
    std::string help;
    std::vector<double> buckets;
    std::map<MetricLabels, double> values;
    std::map<MetricLabels, Histogram> histograms;
  };
  absl::Mutex mu_;
  std::map<std::string, Family> families_ ABSL_GUARDED_BY(mu_);
  absl::Mutex collectors_mu_;
  std::vector<std::function<absl::Status(MetricsRegistry&)>> collectors_
      ABSL_GUARDED_BY(collectors_mu_);
};

// Buckets for RPC latencies, 0.5 ms to 30 s (long-polling leases wait up
// to max_lease_wait_ms).
std::vector<double> RpcLatencyBuckets();

// Declares the coordinator's metric families and adds a collector that reads
// Coordinator::Status() and counters at scrape time: phase counts, the
// coordinator's outcome and effort totals, and for sluice_ready_backlog the
// session's listed runs or skipped prefixes only. No scrape reads every run,
// phase or attempt (issue #14 item 8), and no series is labelled by run,
// phase, worker or lease id, so the series count is fixed:
//   sluice_phases{state}, sluice_active_leases, sluice_workers_connected,
//   sluice_ready_backlog, sluice_attempts_total{outcome},
//   sluice_telemetry_events_total, sluice_phase_run_seconds_total,
//   sluice_yield_events_per_minute, sluice_session_active, sluice_store_up,
//   and (recorded by the gRPC interceptor) sluice_rpc_duration_seconds{method}.
// `coordinator` must outlive the registry's use.
void RegisterCoordinatorMetrics(MetricsRegistry& registry, Coordinator& coordinator);

// Serves GET /metrics (registry.Render()) and GET /healthz (200 "ok" while
// healthy() is true, 503 otherwise) on its own threads, plus the routes
// added with AddRoutes (the web view, coordinator/web/web_http.h).
class MetricsHttpServer {
 public:
  MetricsHttpServer(MetricsRegistry& registry, std::function<bool()> healthy);
  ~MetricsHttpServer();
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  // Before Start: `add` registers more routes on the server when it starts.
  void AddRoutes(std::function<void(httplib::Server&)> add) { add_routes_ = std::move(add); }

  // Binds "HOST:PORT" (port 0 picks a free one) and starts serving; returns
  // the bound port. InvalidArgument for a malformed address, Unavailable when
  // the port cannot be bound.
  absl::StatusOr<int> Start(const std::string& listen_address);
  void Stop();

 private:
  MetricsRegistry& registry_;
  std::function<bool()> healthy_;
  std::function<void(httplib::Server&)> add_routes_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

}  // namespace sluice
