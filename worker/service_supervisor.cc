#include "worker/service_supervisor.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "httplib.h"
#include "spdlog/spdlog.h"
#include "worker/command_template.h"

namespace sluice {
namespace {

// A service runs for good: no timeout. Its outcome is only logged.
std::string Describe(const ProcessResult& r) {
  if (r.signal != 0) return absl::StrCat("killed by signal ", r.signal);
  return absl::StrCat("exited with code ", r.exit_code);
}

}  // namespace

absl::StatusOr<std::vector<std::string>> SplitServiceCommand(const std::string& what,
                                                             const std::string& text) {
  auto parsed = CommandTemplate::Parse(text);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", parsed.status().message()));
  }
  PhaseIdentity a{"a", "a", 1, "a", "a"};
  PhaseIdentity b{"b", "b", 2, "b", "b"};
  auto x = parsed->Expand(a);
  auto y = parsed->Expand(b);
  if (!x.ok() || !y.ok() || *x != *y) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": placeholders such as {run_id} have no meaning here"));
  }
  return *x;
}

absl::StatusOr<HealthCheck> HealthCheck::Parse(const std::string& text) {
  HealthCheck check;
  if (text.starts_with("https://")) {
    return absl::InvalidArgumentError(
        "--service-health: https:// is not supported; use a command, e.g. 'curl -fsS URL'");
  }
  if (text.starts_with("http://")) {
    std::string rest = text.substr(7);
    const size_t slash = rest.find('/');
    if (slash != std::string::npos) {
      check.path_ = rest.substr(slash);
      rest = rest.substr(0, slash);
    }
    const size_t colon = rest.rfind(':');
    if (colon != std::string::npos) {
      if (!absl::SimpleAtoi(rest.substr(colon + 1), &check.port_) || check.port_ <= 0 ||
          check.port_ > 65535) {
        return absl::InvalidArgumentError(absl::StrCat("--service-health ", text, ": bad port"));
      }
      rest = rest.substr(0, colon);
    }
    if (rest.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("--service-health ", text, ": no host"));
    }
    check.host_ = rest;
    return check;
  }
  auto argv = SplitServiceCommand("--service-health", text);
  if (!argv.ok()) return argv.status();
  check.argv_ = *std::move(argv);
  return check;
}

bool HealthCheck::Probe(ProcessRunner& runner, const std::map<std::string, std::string>& env,
                        int64_t timeout_ms) const {
  if (is_http()) {
    httplib::Client client(host_, port_);
    const auto timeout = std::chrono::milliseconds(timeout_ms);
    client.set_connection_timeout(timeout);
    client.set_read_timeout(timeout);
    client.set_write_timeout(timeout);
    auto res = client.Get(path_);
    return res && res->status >= 200 && res->status < 300;
  }
  ProcessSpec spec;
  spec.argv = argv_;
  spec.env = env;
  spec.timeout_ms = timeout_ms;
  spec.grace_ms = 500;
  spec.tail_bytes = 0;
  CancelToken never;
  auto result = runner.Run(spec, never);
  return result.ok() && result->exit_code == 0 && result->stopped_by == StopReason::kNone;
}

ServiceSupervisor::ServiceSupervisor(ServiceConfig config, ProcessRunner& runner)
    : config_(std::move(config)), runner_(runner) {}

ServiceSupervisor::~ServiceSupervisor() { Stop(); }

absl::Status ServiceSupervisor::Start() {
  if (config_.argv.empty() || config_.argv.front().empty()) {
    return absl::InvalidArgumentError("--service: empty command");
  }
  if (!config_.health.empty()) {
    auto check = HealthCheck::Parse(config_.health);
    if (!check.ok()) return check.status();
    check_ = *std::move(check);
  }
  supervise_thread_ = std::thread([this] { SuperviseLoop(); });
  health_thread_ = std::thread([this] { HealthLoop(); });
  return absl::OkStatus();
}

bool ServiceSupervisor::SleepUnlessStopping(int64_t ms) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&stopping_), absl::Milliseconds(ms));
  return !stopping_;
}

void ServiceSupervisor::SuperviseLoop() {
  int quick_deaths = 0;
  while (true) {
    auto cancel = std::make_shared<CancelToken>();
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      current_ = cancel;
      ++run_generation_;
    }
    ProcessSpec spec;
    spec.argv = config_.argv;
    spec.env = config_.env;
    spec.workdir = config_.workdir;
    spec.stdout_path = config_.stdout_path;
    spec.stderr_path = config_.stderr_path;
    spec.append_logs = true;
    spec.grace_ms = config_.grace_ms;
    spec.tail_bytes = 0;
    spec.on_started = [this](int pid) {
      pid_.store(pid);
      running_.store(true);
      const int n = starts_.fetch_add(1) + 1;
      spdlog::info("service started pid={} (start #{}): {}", pid, n, config_.argv.front());
      // Without a health check a running process is a healthy one.
      if (!check_) healthy_.store(true);
    };
    const auto started = std::chrono::steady_clock::now();
    absl::StatusOr<ProcessResult> result = runner_.Run(spec, *cancel);
    running_.store(false);
    healthy_.store(false);
    pid_.store(0);
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) {
        if (result.ok()) spdlog::info("service stopped ({})", Describe(*result));
        return;
      }
    }
    const auto ran = std::chrono::steady_clock::now() - started;
    // A service that ran a while before dying starts again at once; one that
    // keeps dying backs off, so a broken one does not spin.
    quick_deaths = ran > std::chrono::seconds(30) ? 0 : quick_deaths + 1;
    const int64_t backoff =
        quick_deaths == 0 ? 0
                          : std::min(config_.max_backoff_ms,
                                     config_.min_backoff_ms << std::min(quick_deaths - 1, 16));
    if (result.ok()) {
      spdlog::warn("service {}: {}; restarting in {} ms (not leasing until it is healthy)",
                   config_.argv.front(),
                   cancel->cancelled() ? "unhealthy, stopped" : Describe(*result), backoff);
    } else {
      spdlog::error("service {} could not start: {}; retrying in {} ms", config_.argv.front(),
                    result.status().ToString(), backoff);
    }
    if (backoff > 0 && !SleepUnlessStopping(backoff)) return;
  }
}

void ServiceSupervisor::HealthLoop() {
  if (!check_) return;
  int generation = -1;
  bool was_healthy = false;
  int failures = 0;
  while (SleepUnlessStopping(healthy_.load() ? config_.health_interval_ms : 200)) {
    if (!running_.load()) continue;
    {
      absl::MutexLock lock(&mu_);
      if (run_generation_ != generation) {  // a new start: judge it afresh
        generation = run_generation_;
        was_healthy = false;
        failures = 0;
      }
    }
    const bool ok = check_->Probe(runner_, config_.env, config_.health_timeout_ms);
    if (ok) {
      if (!healthy_.load()) spdlog::info("service is healthy");
      failures = 0;
      was_healthy = true;
      healthy_.store(running_.load());
      continue;
    }
    healthy_.store(false);
    if (was_healthy && ++failures >= config_.failures_before_restart) {
      spdlog::warn("service failed {} health checks in a row: restarting it", failures);
      absl::MutexLock lock(&mu_);
      if (current_ && generation == run_generation_) current_->Cancel();
      failures = 0;
      was_healthy = false;
    }
  }
}

bool ServiceSupervisor::WaitHealthy(int64_t timeout_ms, const std::atomic<bool>* abort) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!healthy_.load()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    if (abort != nullptr && abort->load()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

void ServiceSupervisor::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ && !supervise_thread_.joinable()) return;
    stopping_ = true;
    if (current_) current_->Cancel();
  }
  if (supervise_thread_.joinable()) supervise_thread_.join();
  if (health_thread_.joinable()) health_thread_.join();
  healthy_.store(false);
}

}  // namespace sluice
