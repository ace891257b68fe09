#include "cli/drain.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "cli/drain_progress.h"
#include "cli/policy_commands.h"
#include "common/clock.h"
#include "common/redact.h"
#include "common/signals.h"
#include "coordinator/backlog_importer.h"
#include "coordinator/bootstrap.h"
#include "coordinator/coordinator.h"
#include "coordinator/insight/session_report.h"
#include "coordinator/store/sqlite/sqlite_state_store.h"
#include "coordinator/store/store_factory.h"
#include "spdlog/spdlog.h"
#include "worker/command_template.h"

extern char** environ;

namespace sluice {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailures = 1;
constexpr int kExitUsage = 2;
constexpr int kExitInfra = 3;
constexpr int kExitInterrupted = 130;

std::string SelfDir() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : exe.parent_path().string();
}

// N local sluice-worker processes, each logging to its own file.
class LocalWorkers {
 public:
  absl::Status Start(const DrainOptions& o, int port, const std::string& log_dir) {
    const std::string binary =
        o.worker_binary.empty() ? SelfDir() + "/sluice-worker" : o.worker_binary;
    if (access(binary.c_str(), X_OK) != 0) {
      return absl::FailedPreconditionError(absl::StrCat("worker binary ", binary, " not found"));
    }
    for (int i = 0; i < o.workers; ++i) {
      std::vector<std::string> args = {binary,
                                       "--coordinator",
                                       absl::StrCat("127.0.0.1:", port),
                                       "--slots",
                                       std::to_string(o.slots),
                                       "--exec",
                                       o.exec,
                                       "--worker-id",
                                       absl::StrCat("local-", getpid(), "-", i + 1),
                                       "--log-dir",
                                       log_dir,
                                       "--grace-seconds",
                                       absl::StrFormat("%g", o.grace_seconds),
                                       "--drain-timeout",
                                       "0",
                                       "--log-format",
                                       o.log_format};
      for (const std::string& kv : o.env) {
        args.push_back("--env");
        args.push_back(kv);
      }
      if (!o.workdir.empty()) {
        args.push_back("--workdir");
        args.push_back(o.workdir);
      }
      const std::string log = absl::StrCat(log_dir, "/worker-", i + 1, ".log");
      auto pid = Spawn(args, log);
      if (!pid.ok()) return pid.status();
      pids_.push_back(*pid);
    }
    return absl::OkStatus();
  }

  // Until one of the running workers exits, or `limit`.
  void WaitForAnExit(std::chrono::milliseconds limit) {
    std::vector<pollfd> fds;
    for (pid_t pid : pids_) {
      if (pid <= 0) continue;
      const int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
      if (fd >= 0) fds.push_back({fd, POLLIN, 0});
    }
    if (fds.empty()) {  // no pidfds (a kernel before 5.3): look again shortly
      std::this_thread::sleep_for(std::min(limit, std::chrono::milliseconds(10)));
      return;
    }
    (void)poll(fds.data(), fds.size(), static_cast<int>(limit.count()));
    for (const pollfd& p : fds) close(p.fd);
  }

  // Number of workers still running (reaps the exited ones).
  int Alive() {
    int alive = 0;
    for (pid_t& pid : pids_) {
      if (pid <= 0) continue;
      int status = 0;
      if (waitpid(pid, &status, WNOHANG) == pid) {
        pid = -pid;
      } else {
        ++alive;
      }
    }
    return alive;
  }

  // SIGTERM (graceful drain), then SIGKILL after `grace`. Returns as soon
  // as the last worker has exited (their pidfds wake it), not at a tick.
  void Stop(std::chrono::milliseconds grace) {
    for (pid_t pid : pids_) {
      if (pid > 0) kill(pid, SIGTERM);
    }
    const auto deadline = std::chrono::steady_clock::now() + grace;
    while (Alive() > 0) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      WaitForAnExit(left);
    }
    for (pid_t& pid : pids_) {
      if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
        pid = -pid;
      }
    }
  }

 private:
  // The workers' environment: the drain's own minus sluice's secrets
  // (IsScrubbedFromPhases, the rule phases get too). A worker needs none of
  // them (it talks to this drain's own coordinator), and a phase of the same
  // user could read its worker's /proc/PID/environ.
  static std::vector<std::string> WorkerEnvironment() {
    std::vector<std::string> env;
    for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
      const std::string_view kv(*entry);
      if (!IsScrubbedFromPhases(kv.substr(0, kv.find('=')))) env.emplace_back(kv);
    }
    return env;
  }

  static absl::StatusOr<pid_t> Spawn(const std::vector<std::string>& args, const std::string& log) {
    std::vector<std::string> env_strings = WorkerEnvironment();
    std::vector<char*> envp;
    for (std::string& kv : env_strings) envp.push_back(kv.data());
    envp.push_back(nullptr);
    std::vector<char*> argv;
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0600);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    // Nothing else this process has open reaches a worker (or its phases).
    posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t empty;
    sigemptyset(&empty);
    posix_spawnattr_setsigmask(&attr, &empty);
    // Own process group: a terminal's Ctrl-C reaches only `sluice drain`,
    // which then drains the workers in order.
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP);
    pid_t pid = 0;
    const int rc = posix_spawn(&pid, argv[0], &actions, &attr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
      return absl::UnavailableError(absl::StrCat("cannot start ", args[0], ": ", strerror(rc)));
    }
    return pid;
  }

  std::vector<pid_t> pids_;
};

int TerminalWidth() {
  winsize ws{};
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 100;
}

// The backlog's telemetry events and summed attempt time with known
// telemetry, for the yield.
void AddTelemetry(StateStore& store, DrainProgress* progress) {
  auto runs = store.ListRunStats();
  if (!runs.ok()) return;
  for (const RunStats& r : *runs) {
    progress->telemetry_events += r.telemetry_events;
    progress->run_ms += r.run_ms - r.unknown_telemetry_ms;
  }
}

std::string StoreDir(const std::string& url) {
  const std::string prefix = "sqlite://";
  if (url.rfind(prefix, 0) == 0) {
    auto parent = std::filesystem::path(url.substr(prefix.size())).parent_path();
    return parent.empty() ? std::string(".") : parent.string();
  }
  return ".sluice";
}

// The --exec program as the local workers will start it: found on PATH
// (posix_spawnp with the drain's own PATH, which the workers inherit) or,
// with a slash, relative to --workdir. InvalidArgument for a malformed
// template, FailedPrecondition (an infrastructure failure: exit 3) when the
// program cannot be started, so the drain stops before leasing anything
// instead of failing every phase with "cannot start". A program name with a
// placeholder is left to the workers.
absl::Status CheckExecProgram(const DrainOptions& o) {
  auto command = CommandTemplate::Parse(o.exec);
  if (!command.ok()) return command.status();
  const std::string& program = command->words().front();
  if (program.find('{') != std::string::npos) return absl::OkStatus();
  auto executable = [](const std::filesystem::path& path) {
    std::error_code ec;
    return std::filesystem::is_regular_file(path, ec) && access(path.c_str(), X_OK) == 0;
  };
  if (program.find('/') != std::string::npos) {
    std::filesystem::path path(program);
    if (path.is_relative() && !o.workdir.empty()) path = std::filesystem::path(o.workdir) / path;
    if (executable(path)) return absl::OkStatus();
    return absl::FailedPreconditionError(
        absl::StrCat("--exec: cannot start ", program, ": ",
                     std::filesystem::exists(path) ? "not executable" : "no such file"));
  }
  const char* path_env = std::getenv("PATH");
  for (const std::string& dir :
       std::vector<std::string>(absl::StrSplit(path_env != nullptr ? path_env : "", ':'))) {
    if (executable(std::filesystem::path(dir.empty() ? "." : dir) / program)) {
      return absl::OkStatus();
    }
  }
  return absl::FailedPreconditionError(
      absl::StrCat("--exec: cannot start ", program, ": not found in PATH"));
}

// A session's limits as the flags that set them, e.g. "--batch-size 20
// --max-total-minutes 5"; "no limits" when none is set.
std::string LimitsText(const SessionSettings& s) {
  std::vector<std::string> parts;
  if (s.batch_size > 0) parts.push_back(absl::StrCat("--batch-size ", s.batch_size));
  if (s.max_total_minutes > 0) {
    parts.push_back(absl::StrCat("--max-total-minutes ", s.max_total_minutes));
  }
  if (s.max_consecutive_zero_yield > 0) {
    parts.push_back(absl::StrCat("--max-consecutive-zero-yield ", s.max_consecutive_zero_yield));
  }
  if (s.min_expected_yield > 0) {
    parts.push_back(absl::StrCat("--min-expected-yield ", s.min_expected_yield));
  }
  if (s.idle_timeout_seconds != 0) {
    parts.push_back(absl::StrCat("--idle-timeout ", s.idle_timeout_seconds < 0
                                                        ? std::string("off")
                                                        : std::to_string(s.idle_timeout_seconds)));
  }
  return parts.empty() ? std::string("no limits") : absl::StrJoin(parts, " ");
}

// Imports the backlog into an in-memory copy of the store and prints the
// plan: the real store is never written.
int RunDryRun(const DrainOptions& o, const std::vector<PhaseSpec>& phases) {
  const std::string prefix = "sqlite://";
  if (o.store_url.rfind(prefix, 0) != 0) {
    std::cerr << "sluice drain --dry-run: needs the embedded store (sqlite://); use `sluice plan "
                 "--coordinator ADDR` against a running coordinator\n";
    return kExitUsage;
  }
  auto copy = SqliteStateStore::OpenInMemoryCopy(o.store_url.substr(prefix.size()));
  if (!copy.ok()) {
    std::cerr << "sluice drain --dry-run: " << copy.status().message() << "\n";
    return kExitInfra;
  }
  CoordinatorConfig config;
  config.family_pattern = o.family_pattern;
  if (absl::Status st = config.Validate(); !st.ok()) {
    std::cerr << "sluice drain --dry-run: " << st.message() << "\n";
    return kExitUsage;
  }
  Coordinator coordinator(**copy, SystemClock::Default(), config);
  if (auto imported = coordinator.ImportBacklog(phases); !imported.ok()) {
    std::cerr << "sluice drain --dry-run: import: " << imported.status().message() << "\n";
    return kExitUsage;
  }
  auto plan =
      coordinator.Plan(o.settings, o.settings.batch_size > 0 ? o.settings.batch_size : 1'000'000);
  if (!plan.ok()) {
    std::cerr << "sluice drain --dry-run: " << plan.status().message() << "\n";
    return StartupExitCode(plan.status());
  }
  PrintPlan(*plan, o.json);
  return kExitOk;
}

}  // namespace

int RunDrain(const DrainOptions& o) {
  if (o.workers < 1) {
    std::cerr << "sluice drain: --workers must be >= 1\n";
    return kExitUsage;
  }
  auto phases = ReadBacklogFile(o.backlog_path);
  if (!phases.ok()) {
    std::cerr << "sluice drain: " << phases.status().message() << "\n";
    return kExitUsage;
  }
  if (o.dry_run) return RunDryRun(o, *phases);
  if (absl::Status st = CheckExecProgram(o); !st.ok()) {
    std::cerr << "sluice drain: " << st.message() << "\n";
    return StartupExitCode(st);
  }
  auto store = OpenStateStore(o.store_url);
  if (!store.ok()) {
    std::cerr << "sluice drain: " << store.status().message() << "\n";
    return StartupExitCode(store.status());
  }
  CoordinatorConfig config;
  config.lease_ttl_ms = o.lease_ttl_ms;
  config.heartbeat_interval_ms = o.heartbeat_interval_ms;
  config.family_pattern = o.family_pattern;
  config.max_lease_wait_ms = 5'000;
  if (absl::Status st = config.Validate(); !st.ok()) {
    std::cerr << "sluice drain: " << st.message() << "\n";
    return kExitUsage;
  }
  Coordinator coordinator(**store, SystemClock::Default(), config);
  auto imported = coordinator.ImportBacklog(*phases);
  if (!imported.ok()) {
    std::cerr << "sluice drain: import: " << imported.status().message() << "\n";
    return StartupExitCode(imported.status());
  }
  if (!o.json) {
    std::cout << absl::StrFormat("imported %s: %d new, %d updated, %d unchanged phases\n",
                                 o.backlog_path, imported->inserted, imported->updated,
                                 imported->unchanged);
  }
  // A session left active by a drain that died is superseded: its phases'
  // state is kept and the new session carries on from it.
  auto latest = (*store)->LatestSession();
  if (latest.ok() && *latest && (*latest)->state == SessionState::kActive) {
    (void)coordinator.StopSession((*latest)->session_id, "superseded by a new drain");
  }
  // A resumed drain starts a new session with this command's limits, not the
  // interrupted one's: say exactly which apply now when they differ.
  if (latest.ok() && *latest) {
    const SessionRecord& previous = **latest;
    const bool interrupted =
        previous.state == SessionState::kActive || previous.end_reason == "interrupted by operator";
    if (interrupted && LimitsText(previous.settings) != LimitsText(o.settings)) {
      std::cerr << "sluice drain: resuming after interrupted session " << previous.session_id
                << " (" << LimitsText(previous.settings)
                << "); this drain starts a new session with the limits given now: "
                << LimitsText(o.settings) << " (pass the flags again to keep the old ones)\n";
    }
  }
  auto session = coordinator.StartSession(o.settings, "");
  if (!session.ok()) {
    std::cerr << "sluice drain: " << session.status().message() << "\n";
    return StartupExitCode(session.status());
  }

  CoordinatorHost host(coordinator, o.metrics_listen);
  ServerOptions server_options;
  server_options.listen_address = o.listen_address;
  server_options.tick_interval_ms = 200;
  auto port = host.StartServer(server_options);
  if (!port.ok()) {
    std::cerr << "sluice drain: " << port.status().message() << "\n";
    (void)coordinator.StopSession(session->session_id, "coordinator could not listen");
    return StartupExitCode(port.status());
  }
  auto metrics_port = host.StartMetrics();
  if (!metrics_port.ok()) {
    std::cerr << "sluice drain: --http-listen: " << metrics_port.status().message() << "\n";
    (void)coordinator.StopSession(session->session_id, "metrics endpoint could not listen");
    host.ShutdownServer();
    return StartupExitCode(metrics_port.status());
  }
  if (*metrics_port && !o.json) {
    std::cout << "metrics on port " << **metrics_port << std::endl;
    std::cout << "web view on " << WebViewUrl(o.metrics_listen, **metrics_port) << std::endl;
  }
  const std::string log_dir = o.log_dir.empty() ? StoreDir(o.store_url) + "/logs" : o.log_dir;
  std::filesystem::create_directories(log_dir);
  LocalWorkers workers;
  if (absl::Status st = workers.Start(o, *port, log_dir); !st.ok()) {
    std::cerr << "sluice drain: " << st.message() << "\n";
    (void)coordinator.StopSession(session->session_id, "workers could not start");
    workers.Stop(std::chrono::seconds(5));
    return kExitInfra;
  }
  if (!o.json) {
    std::cout << absl::StrFormat(
        "session %s: %d workers x %d slots on 127.0.0.1:%d; logs in %s (Ctrl-C stops and keeps "
        "state)\n",
        session->session_id, o.workers, o.slots, *port, log_dir);
  }

  std::atomic<bool> interrupted{false};
  TerminationWatcher watcher([&](int) {
    interrupted.store(true);
    coordinator.WakeLeasePolls();  // and the loop below, which waits for a change
  });
  bool stopped = false;
  bool infra_error = false;
  int64_t last_progress_ms = 0;
  const int64_t started_ms = SystemClock::Default().NowMs();
  // A redrawn bar on a terminal; plain lines for logs and pipes.
  const bool bar = !o.json && isatty(STDOUT_FILENO) != 0;
  std::string last_pause;
  auto show_progress = [&](const CoordinatorStatus& status) {
    DrainProgress progress;
    progress.phases = status.phases;
    progress.session_finished = status.session_finished;
    progress.running = static_cast<int64_t>(status.active_leases.size());
    AddTelemetry(**store, &progress);
    progress.elapsed_ms = SystemClock::Default().NowMs() - started_ms;
    progress.paused_reason = status.pause ? status.pause->reason : std::string();
    if (bar) {
      std::cout << "\r\033[K" << ProgressBarLine(progress, TerminalWidth() - 1) << std::flush;
    } else {
      std::cout << ProgressLogLine(progress) << std::endl;
    }
  };
  const auto grace = std::chrono::milliseconds(static_cast<int64_t>(o.grace_seconds * 1000));
  std::chrono::steady_clock::time_point stop_deadline;
  // The loop looks at the coordinator when something changed (a report, an
  // expiry, Ctrl-C: the session may have ended), so a drain ends when its
  // last phase does, not at a tick. It looks at most once per 10 x what a
  // look costs (>= 10 ms: a status at a million phases takes ~20 ms, and
  // this keeps it under a tenth of a core), and at least every 200 ms (a
  // worker that exited, a deadline, the progress line).
  using std::chrono::milliseconds;
  using std::chrono::steady_clock;
  uint64_t seen_change = coordinator.ChangeCount();
  steady_clock::time_point last_look = steady_clock::now();
  steady_clock::duration look_cost{};
  while (true) {
    const auto look_by = last_look + milliseconds(200);
    seen_change = coordinator.WaitForChange(
        seen_change,
        absl::FromChrono(std::max(steady_clock::duration{}, look_by - steady_clock::now())));
    std::this_thread::sleep_until(std::min(
        look_by, last_look + std::max<steady_clock::duration>(milliseconds(10), 10 * look_cost)));
    last_look = steady_clock::now();
    if (interrupted.load() && !stopped) {
      stopped = true;
      std::cerr << "\ninterrupted: no new leases; cancelling running phases (state is kept)\n";
      (void)coordinator.StopSession(session->session_id, "interrupted by operator");
      stop_deadline = std::chrono::steady_clock::now() + grace +
                      std::chrono::milliseconds(2 * config.heartbeat_interval_ms + 2'000);
    }
    auto status = coordinator.Status();
    look_cost = steady_clock::now() - last_look;
    if (!status.ok()) {
      spdlog::error("status: {}", status.status().ToString());
      infra_error = true;
      break;
    }
    if (status->session_done || (stopped && status->active_leases.empty())) break;
    if (stopped && std::chrono::steady_clock::now() > stop_deadline) break;
    if (workers.Alive() == 0) {
      std::cerr << "sluice drain: every worker exited; see " << log_dir << "/worker-*.log\n";
      infra_error = true;
      break;
    }
    const int64_t now = SystemClock::Default().NowMs();
    const std::string pause = status->pause ? status->pause->reason : std::string();
    if (pause != last_pause) {
      // Said once in the log, whatever the display: an operator must act.
      if (bar) std::cout << "\n";
      std::cerr << (pause.empty() ? std::string("leasing resumed")
                                  : "leasing paused: " + pause +
                                        "\n  fix the phases' environment, then run `sluice "
                                        "resume --store " +
                                        o.store_url + "` (or Ctrl-C to stop)")
                << std::endl;
      last_pause = pause;
    }
    if (o.json || now - last_progress_ms < (bar ? 500 : 2'000)) continue;
    last_progress_ms = now;
    show_progress(*status);
  }
  if (!o.json) {
    // The final state, so the display does not stop short of the end.
    if (auto last = coordinator.Status(); last.ok()) show_progress(*last);
    if (bar) std::cout << "\n";
  }
  // Workers idle in a lease long-poll would only see SIGTERM when it ends
  // (max_lease_wait_ms later); end the long-polls first. Reports and
  // heartbeats are still served until host.Stop().
  coordinator.BeginShutdown();
  workers.Stop(grace + std::chrono::seconds(5));
  host.Stop();
  // One last maintenance pass records the session's end.
  (void)coordinator.Tick();

  auto report = coordinator.SessionReportFor(session->session_id);
  if (!report.ok()) {
    std::cerr << "sluice drain: report: " << report.status().message() << "\n";
    return kExitInfra;
  }
  std::cout << (o.json ? SessionReportJson(*report) + "\n" : "\n" + SessionReportText(*report));
  if (infra_error) return kExitInfra;
  if (stopped) return kExitInterrupted;
  // 0 only when every phase of the backlog has succeeded.
  return report->phases.total() == report->phases.succeeded ? kExitOk : kExitFailures;
}

}  // namespace sluice
