// A long-lived helper the worker runs once for all its phases (`sluice-worker
// --service CMD --service-health URL-or-CMD`), e.g. the API server phases
// talk to: one copy per worker instead of one per phase. Its address reaches
// the phases through the worker's --env.
//
// The supervisor starts the service through the ProcessRunner (posix_spawn,
// its own process group, argv without a shell), health-checks it
// periodically, restarts it with backoff when it exits or stays unhealthy,
// and stops it (SIGTERM to the group, grace, SIGKILL) on Stop(). The worker
// leases only while healthy() is true.
//
// Thread-safe: healthy(), starts() and pid() may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "worker/process_runner.h"

namespace sluice {

// Splits a service or health command into argv without a shell, as the
// --exec template is split; placeholders ({run_id}, ...) are refused: there
// is no phase. InvalidArgument names `what` (the flag).
absl::StatusOr<std::vector<std::string>> SplitServiceCommand(const std::string& what,
                                                             const std::string& text);

// "http://HOST[:PORT][/PATH]": healthy on a 2xx answer to GET. Anything
// else is a command (split without a shell): healthy when it exits 0.
class HealthCheck {
 public:
  // InvalidArgument for an empty check, a malformed URL, https:// (not
  // supported: use a command such as `curl -fsS https://...`) or a command
  // that does not parse.
  static absl::StatusOr<HealthCheck> Parse(const std::string& text);

  // One probe, bounded by timeout_ms. A command runs with `env` added.
  bool Probe(ProcessRunner& runner, const std::map<std::string, std::string>& env,
             int64_t timeout_ms) const;

  bool is_http() const { return !host_.empty(); }

 private:
  std::string host_;  // http only
  int port_ = 80;
  std::string path_ = "/";
  std::vector<std::string> argv_;  // command only
};

struct ServiceConfig {
  std::vector<std::string> argv;
  std::map<std::string, std::string> env;  // added to the worker's environment
  std::string workdir;
  std::string stdout_path;  // appended to across restarts
  std::string stderr_path;
  // Empty: healthy while the process runs.
  std::string health;
  int64_t health_interval_ms = 2'000;
  int64_t health_timeout_ms = 2'000;
  // Consecutive failed probes, after the service was healthy once, that make
  // the supervisor restart it (a hung server is as useless as a dead one).
  int failures_before_restart = 3;
  int64_t grace_ms = 10'000;  // SIGTERM -> SIGKILL when stopping it
  int64_t min_backoff_ms = 500;
  int64_t max_backoff_ms = 30'000;
};

class ServiceSupervisor {
 public:
  ServiceSupervisor(ServiceConfig config, ProcessRunner& runner);
  ~ServiceSupervisor();  // Stop()
  ServiceSupervisor(const ServiceSupervisor&) = delete;
  ServiceSupervisor& operator=(const ServiceSupervisor&) = delete;

  // Validates the config and starts supervising (the first start happens on
  // the supervisor's thread). InvalidArgument for a bad health check or an
  // empty command.
  absl::Status Start();

  // Waits until healthy, at most timeout_ms or until *abort becomes true.
  bool WaitHealthy(int64_t timeout_ms, const std::atomic<bool>* abort = nullptr);

  // Stops the service and its process group and ends supervision. Idempotent.
  void Stop();

  bool healthy() const { return healthy_.load(); }
  int starts() const { return starts_.load(); }
  // The running service's pid (its process group id), 0 when none.
  int pid() const { return pid_.load(); }

 private:
  void SuperviseLoop();
  void HealthLoop();
  // Sleeps up to ms; false when stopping.
  bool SleepUnlessStopping(int64_t ms);

  const ServiceConfig config_;
  ProcessRunner& runner_;
  std::optional<HealthCheck> check_;
  std::atomic<bool> healthy_{false};
  std::atomic<bool> running_{false};
  std::atomic<int> starts_{0};
  std::atomic<int> pid_{0};

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::shared_ptr<CancelToken> current_ ABSL_GUARDED_BY(mu_);  // cancels the running service
  int run_generation_ ABSL_GUARDED_BY(mu_) = 0;  // which start the health loop is judging
  std::thread supervise_thread_;
  std::thread health_thread_;
};

}  // namespace sluice
