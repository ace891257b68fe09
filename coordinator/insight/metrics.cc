#include "coordinator/insight/metrics.h"

#include <httplib.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "coordinator/coordinator.h"
#include "coordinator/insight/session_report.h"
#include "coordinator/policy/scheduler.h"
#include "spdlog/spdlog.h"

namespace sluice {
namespace {

std::string_view TypeName(MetricType t) {
  switch (t) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

// Shortest text that parses back to the same double; Prometheus spellings
// for the special values.
std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

std::string EscapeHelp(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string EscapeLabelValue(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '"') {
      out += "\\\"";
    } else {
      out += EscapeHelp(std::string_view(&c, 1));
    }
  }
  return out;
}

std::string LabelText(const MetricLabels& labels, const std::string& extra_name = "",
                      const std::string& extra_value = "") {
  if (labels.empty() && extra_name.empty()) return "";
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : labels) {
    absl::StrAppend(&out, first ? "" : ",", k, "=\"", EscapeLabelValue(v), "\"");
    first = false;
  }
  if (!extra_name.empty()) {
    absl::StrAppend(&out, first ? "" : ",", extra_name, "=\"", EscapeLabelValue(extra_value), "\"");
  }
  return out + "}";
}

// Splits "HOST:PORT" ("[::1]:9090" for IPv6).
absl::StatusOr<std::pair<std::string, int>> SplitHostPort(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--metrics-listen: expected HOST:PORT, got \"", address, "\""));
  }
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const std::string port_text = address.substr(colon + 1);
  int port = -1;
  auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || ptr != port_text.data() + port_text.size() || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--metrics-listen: bad port in \"", address, "\""));
  }
  return std::make_pair(host, port);
}

// Pending phases the session's run selection allows, from counters: every
// pending phase, or the listed runs' aggregates, minus the skipped
// prefixes' (a range of runs each). Never every run.
absl::StatusOr<int64_t> AllowedPending(StateStore& store, const SessionSettings& settings,
                                       int64_t all_pending) {
  if (!settings.run_ids.empty()) {
    int64_t ready = 0;
    for (const std::string& run_id : settings.run_ids) {
      if (!Scheduler::RunAllowed(settings, run_id)) continue;
      absl::StatusOr<std::optional<RunStats>> run = store.GetRunStats(run_id);
      if (!run.ok()) return run.status();
      if (*run) ready += (*run)->pending;
    }
    return ready;
  }
  int64_t ready = all_pending;
  const std::set<std::string> prefixes(settings.skip_run_prefixes.begin(),
                                       settings.skip_run_prefixes.end());
  if (prefixes.contains("")) return 0;  // every run is skipped
  for (const std::string& prefix : prefixes) {
    // A prefix inside another skipped prefix is already subtracted.
    const bool covered = std::any_of(prefixes.begin(), prefixes.end(), [&](const std::string& o) {
      return o != prefix && prefix.starts_with(o);
    });
    if (covered) continue;
    RunStatsQuery q;
    q.run_id_prefix = prefix;
    q.limit = 0;
    absl::StatusOr<RunStatsPage> page = store.ListRunStatsPage(q);
    if (!page.ok()) return page.status();
    ready -= page->sum.pending;
  }
  return std::max<int64_t>(0, ready);
}

}  // namespace

void MetricsRegistry::Declare(const std::string& name, MetricType type, const std::string& help,
                              std::vector<double> buckets) {
  absl::MutexLock lock(&mu_);
  if (families_.contains(name)) return;
  Family& f = families_[name];
  f.type = type;
  f.help = help;
  std::sort(buckets.begin(), buckets.end());
  f.buckets = std::move(buckets);
}

void MetricsRegistry::Add(const std::string& name, const MetricLabels& labels, double delta) {
  absl::MutexLock lock(&mu_);
  auto it = families_.find(name);
  if (it == families_.end() || it->second.type == MetricType::kHistogram) return;
  it->second.values[labels] += delta;
}

void MetricsRegistry::Set(const std::string& name, const MetricLabels& labels, double value) {
  absl::MutexLock lock(&mu_);
  auto it = families_.find(name);
  if (it == families_.end() || it->second.type == MetricType::kHistogram) return;
  it->second.values[labels] = value;
}

void MetricsRegistry::Observe(const std::string& name, const MetricLabels& labels, double value) {
  absl::MutexLock lock(&mu_);
  auto it = families_.find(name);
  if (it == families_.end() || it->second.type != MetricType::kHistogram) return;
  Family& f = it->second;
  Histogram& h = f.histograms[labels];
  if (h.counts.empty()) h.counts.assign(f.buckets.size() + 1, 0);
  const size_t bucket = static_cast<size_t>(
      std::lower_bound(f.buckets.begin(), f.buckets.end(), value) - f.buckets.begin());
  ++h.counts[bucket];
  h.sum += value;
  ++h.count;
}

void MetricsRegistry::AddCollector(std::function<absl::Status(MetricsRegistry&)> collector) {
  absl::MutexLock lock(&collectors_mu_);
  collectors_.push_back(std::move(collector));
}

std::string MetricsRegistry::Render() {
  Declare("sluice_scrape_errors_total", MetricType::kCounter,
          "Scrapes in which computing a metric from the coordinator failed");
  {
    // One scrape at a time runs the collectors, so their Set calls do not
    // interleave.
    absl::MutexLock lock(&collectors_mu_);
    for (const auto& collect : collectors_) {
      if (absl::Status st = collect(*this); !st.ok()) {
        spdlog::warn("metrics: collecting failed: {}", st.ToString());
        Add("sluice_scrape_errors_total", {}, 1);
      }
    }
  }
  absl::MutexLock lock(&mu_);
  std::string out;
  for (const auto& [name, f] : families_) {
    absl::StrAppend(&out, "# HELP ", name, " ", EscapeHelp(f.help), "\n");
    absl::StrAppend(&out, "# TYPE ", name, " ", std::string(TypeName(f.type)), "\n");
    if (f.type != MetricType::kHistogram) {
      for (const auto& [labels, v] : f.values) {
        absl::StrAppend(&out, name, LabelText(labels), " ", FormatValue(v), "\n");
      }
      continue;
    }
    for (const auto& [labels, h] : f.histograms) {
      uint64_t cumulative = 0;
      for (size_t i = 0; i < f.buckets.size(); ++i) {
        cumulative += h.counts[i];
        absl::StrAppend(&out, name, "_bucket", LabelText(labels, "le", FormatValue(f.buckets[i])),
                        " ", cumulative, "\n");
      }
      absl::StrAppend(&out, name, "_bucket", LabelText(labels, "le", "+Inf"), " ", h.count, "\n");
      absl::StrAppend(&out, name, "_sum", LabelText(labels), " ", FormatValue(h.sum), "\n");
      absl::StrAppend(&out, name, "_count", LabelText(labels), " ", h.count, "\n");
    }
  }
  return out;
}

std::vector<double> RpcLatencyBuckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
}

void RegisterCoordinatorMetrics(MetricsRegistry& registry, Coordinator& coordinator) {
  registry.Declare("sluice_phases", MetricType::kGauge, "Phases in the backlog by state");
  registry.Declare("sluice_active_leases", MetricType::kGauge, "Leases currently held by workers");
  registry.Declare("sluice_workers_connected", MetricType::kGauge,
                   "Workers seen within one lease TTL");
  registry.Declare("sluice_worker_slots_available", MetricType::kGauge,
                   "Slots of connected workers minus their active leases");
  registry.Declare("sluice_ready_backlog", MetricType::kGauge,
                   "Pending phases the active session may still lease (0 without a session); "
                   "scale workers on this");
  registry.Declare("sluice_session_active", MetricType::kGauge, "1 while a session is active");
  registry.Declare("sluice_store_up", MetricType::kGauge,
                   "1 when the last scrape could read the state store");
  registry.Declare("sluice_attempts_total", MetricType::kCounter,
                   "Attempts recorded in the store by outcome (succeeded, failed, timed_out, "
                   "killed, cancelled, lost, start_failed)");
  registry.Declare("sluice_leasing_paused", MetricType::kGauge,
                   "1 while leasing of the session is paused (--on-telemetry-loss pause) until "
                   "`sluice resume`");
  registry.Declare("sluice_telemetry_loss_warnings", MetricType::kGauge,
                   "Telemetry-loss alarm findings for the session at the last check (0 = "
                   "telemetry looks fine)");
  registry.Declare("sluice_telemetry_events_total", MetricType::kCounter,
                   "Telemetry events reported by every attempt");
  registry.Declare("sluice_phase_run_seconds_total", MetricType::kCounter,
                   "Summed attempt durations (phase run time)");
  registry.Declare("sluice_telemetry_unknown_run_seconds_total", MetricType::kCounter,
                   "Phase run time of attempts whose telemetry the worker could not count");
  registry.Declare("sluice_yield_events_per_minute", MetricType::kGauge,
                   "Telemetry events per minute of phase run time with known telemetry, all "
                   "attempts in the store");
  registry.Declare("sluice_rpc_duration_seconds", MetricType::kHistogram,
                   "Server-side duration of coordinator RPCs by method", RpcLatencyBuckets());

  registry.AddCollector([&coordinator](MetricsRegistry& r) -> absl::Status {
    absl::StatusOr<CoordinatorStatus> status = coordinator.Status();
    r.Set("sluice_store_up", {}, status.ok() ? 1 : 0);
    if (!status.ok()) return status.status();
    const PhaseCounts& p = status->phases;
    r.Set("sluice_phases", {{"state", "pending"}}, static_cast<double>(p.pending));
    r.Set("sluice_phases", {{"state", "leased"}}, static_cast<double>(p.leased));
    r.Set("sluice_phases", {{"state", "succeeded"}}, static_cast<double>(p.succeeded));
    r.Set("sluice_phases", {{"state", "failed"}}, static_cast<double>(p.failed));
    r.Set("sluice_active_leases", {}, static_cast<double>(status->active_leases.size()));

    // Connected: called within one lease TTL (a lease poll, heartbeat or
    // report, WorkerContacts), not registered within it.
    const int64_t now = SystemClock::Default().NowMs();
    int64_t connected = 0;
    int64_t free_slots = 0;
    for (const WorkerInfo& w : status->workers) {
      const int64_t seen = coordinator.contacts().LastSeen(w.worker_id, w.last_seen_ms);
      if (seen + coordinator.config().lease_ttl_ms < now) continue;
      ++connected;
      auto it = status->active_leases_by_worker.find(w.worker_id);
      const int64_t busy = it == status->active_leases_by_worker.end() ? 0 : it->second;
      free_slots += std::max<int64_t>(0, w.slots - busy);
    }
    r.Set("sluice_workers_connected", {}, static_cast<double>(connected));
    r.Set("sluice_worker_slots_available", {}, static_cast<double>(free_slots));

    int64_t ready = 0;
    const bool active = status->session && status->session->state == SessionState::kActive;
    if (active && !status->session_done) {
      absl::StatusOr<int64_t> allowed =
          AllowedPending(coordinator.store(), status->session->settings, p.pending);
      if (!allowed.ok()) return allowed.status();
      ready = *allowed;
      const int32_t batch = status->session->settings.batch_size;
      if (batch > 0) {
        ready = std::min<int64_t>(
            ready, std::max<int64_t>(0, batch - status->session_finished - p.leased));
      }
    }
    r.Set("sluice_ready_backlog", {}, static_cast<double>(ready));
    r.Set("sluice_session_active", {}, active ? 1 : 0);

    absl::StatusOr<DrainPolicy::EffortTotals> effort = coordinator.Effort();
    if (!effort.ok()) return effort.status();
    const int64_t events = effort->telemetry_events, run_ms = effort->run_ms;
    absl::StatusOr<std::map<Outcome, int64_t>> outcomes = coordinator.OutcomeTotals();
    if (!outcomes.ok()) return outcomes.status();
    for (const auto& [outcome, count] : *outcomes) {
      r.Set("sluice_attempts_total", {{"outcome", std::string(OutcomeName(outcome))}},
            static_cast<double>(count));
    }
    r.Set("sluice_leasing_paused", {}, status->pause ? 1 : 0);
    r.Set("sluice_telemetry_loss_warnings", {},
          static_cast<double>(status->telemetry_warnings.size()));
    r.Set("sluice_telemetry_events_total", {}, static_cast<double>(events));
    r.Set("sluice_phase_run_seconds_total", {}, static_cast<double>(run_ms) / 1000.0);
    r.Set("sluice_telemetry_unknown_run_seconds_total", {},
          static_cast<double>(effort->unknown_telemetry_ms) / 1000.0);
    r.Set("sluice_yield_events_per_minute", {},
          YieldPerMinute(events, run_ms - effort->unknown_telemetry_ms));
    return absl::OkStatus();
  });
}

MetricsHttpServer::MetricsHttpServer(MetricsRegistry& registry, std::function<bool()> healthy)
    : registry_(registry), healthy_(std::move(healthy)) {}

MetricsHttpServer::~MetricsHttpServer() { Stop(); }

absl::StatusOr<int> MetricsHttpServer::Start(const std::string& listen_address) {
  if (server_ != nullptr) return absl::FailedPreconditionError("metrics server already started");
  auto host_port = SplitHostPort(listen_address);
  if (!host_port.ok()) return host_port.status();
  auto server = std::make_unique<httplib::Server>();
  server->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(registry_.Render(), "text/plain; version=0.0.4; charset=utf-8");
  });
  server->Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
    const bool ok = !healthy_ || healthy_();
    res.status = ok ? 200 : 503;
    res.set_content(ok ? "ok\n" : "unavailable\n", "text/plain; charset=utf-8");
  });
  if (add_routes_) add_routes_(*server);
  const auto& [host, port] = *host_port;
  int bound = port;
  if (port == 0) {
    bound = server->bind_to_any_port(host);
  } else if (!server->bind_to_port(host, port)) {
    bound = -1;
  }
  if (bound <= 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", listen_address, " for HTTP (address in use?)"));
  }
  server_ = std::move(server);
  thread_ = std::thread([srv = server_.get()] { srv->listen_after_bind(); });
  spdlog::info("HTTP (web view, /metrics, /healthz) on http://{}:{}/", host, bound);
  return bound;
}

void MetricsHttpServer::Stop() {
  if (server_ == nullptr) return;
  server_->stop();
  if (thread_.joinable()) thread_.join();
  server_.reset();
}

}  // namespace sluice
