#include "worker/process_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/redact.h"
#include "common/unique_fd.h"
#include "worker/orphan_reaper.h"
#include "worker/phase_log_file.h"
#include "worker/phase_shim_launch.h"
#include "worker/phase_shim_protocol.h"

extern char** environ;

namespace sluice {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kErrorTextMaxBytes = 1000;
// A last stderr line shorter than this is often a summary ("Aborted",
// "exit status 1"); the line before it says what went wrong, so both are kept.
constexpr size_t kShortErrorLine = 40;
// How much of the end of stderr is searched for error_text.
constexpr size_t kErrorTextWindow = 8192;

int64_t MillisSince(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

// A duration in [0, ~10 years]: adding it to a steady_clock time cannot overflow.
std::chrono::milliseconds ClampedMillis(int64_t ms) {
  constexpr int64_t kMax = int64_t{10} * 365 * 24 * 3600 * 1000;
  return std::chrono::milliseconds(std::clamp<int64_t>(ms, 0, kMax));
}

// ErrnoToStatus appends strerror(err) to the message. (Debian's absl::string_view is
// not std::string_view, hence std::string here.)
absl::Status ErrnoStatus(int err, const std::string& what) {
  return absl::ErrnoToStatus(err, what);
}

// Replaces bytes that are not part of valid UTF-8 with '?', so tails and
// error text can travel in protobuf string fields. The size never grows.
std::string SanitizeUtf8(std::string text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    size_t len = 0;
    if (c < 0x80) {
      len = 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
    }
    bool valid = len > 0 && i + len <= text.size();
    for (size_t k = 1; valid && k < len; ++k) {
      valid = (static_cast<unsigned char>(text[i + k]) & 0xC0) == 0x80;
    }
    if (valid && len >= 3) {
      // Reject overlong forms, surrogates and code points above U+10FFFF.
      const auto c1 = static_cast<unsigned char>(text[i + 1]);
      if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 > 0x9F) || (c == 0xF0 && c1 < 0x90) ||
          (c == 0xF4 && c1 > 0x8F)) {
        valid = false;
      }
    }
    if (!valid) {
      text[i] = '?';
      len = 1;
    }
    i += len;
  }
  return text;
}

// Drops UTF-8 continuation bytes at the front of a window that was cut
// mid-character.
std::string_view SkipContinuationBytes(std::string_view text) {
  size_t i = 0;
  while (i < text.size() && i < 3 && (static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) ++i;
  return text.substr(i);
}

std::string Tail(const PhaseLogFile& log, size_t tail_bytes) {
  bool from_start = true;
  const std::string window = log.ReadEnd(tail_bytes, &from_start);
  std::string_view view = window;
  if (!from_start) {
    // The window starts mid-line: begin at the next full line if there is one.
    const size_t newline = view.find('\n');
    if (newline != std::string_view::npos && newline + 1 < view.size()) {
      view.remove_prefix(newline + 1);
    } else {
      view = SkipContinuationBytes(view);
    }
  }
  return SanitizeUtf8(std::string(view));
}

std::string_view TrimSpace(std::string_view s) {
  const auto is_space = [](char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
  };
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// The last non-empty stderr line, plus the one before it when the last is
// shorter than kShortErrorLine (a Python traceback ends with the exception
// line; a wrapper may end with a bare "failed"), at most kErrorTextMaxBytes.
// A line too long for the budget keeps its end, where the reason usually is.
std::string ErrorText(const PhaseLogFile& stderr_log) {
  bool from_start = true;
  const std::string window = stderr_log.ReadEnd(kErrorTextWindow, &from_start);
  std::string_view rest = window;
  std::vector<std::string_view> lines;  // last first
  while (!rest.empty() && lines.size() < 2) {
    const size_t newline = rest.rfind('\n');
    const bool partial = newline == std::string_view::npos && !from_start;
    const std::string_view line =
        TrimSpace(newline == std::string_view::npos ? rest : rest.substr(newline + 1));
    rest = newline == std::string_view::npos ? std::string_view() : rest.substr(0, newline);
    if (line.empty()) continue;
    if (partial && !lines.empty()) break;  // a cut-off earlier line adds nothing
    lines.push_back(line);
    if (lines.front().size() >= kShortErrorLine) break;
  }
  if (lines.empty()) return {};
  std::string text(lines.front());
  if (lines.size() == 2 && lines[1].size() + 1 + text.size() <= kErrorTextMaxBytes) {
    text = absl::StrCat(std::string(lines[1]), "\n", text);
  }
  if (text.size() > kErrorTextMaxBytes) {
    text = std::string(
        SkipContinuationBytes(std::string_view(text).substr(text.size() - kErrorTextMaxBytes)));
  }
  return SanitizeUtf8(std::move(text));
}

// "KEY=VALUE" strings: the worker's environment, without sluice's own
// secrets (IsScrubbedFromPhases: the worker's token must not reach a phase),
// with spec.env on top.
absl::StatusOr<std::vector<std::string>> BuildEnvironment(
    const std::map<std::string, std::string>& overrides) {
  for (const auto& [key, value] : overrides) {
    if (key.empty() || key.find('=') != std::string::npos || key.find('\0') != std::string::npos ||
        value.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("environment variable name \"", key, "\" is not valid"));
    }
  }
  std::vector<std::string> env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    const std::string_view kv(*entry);
    const std::string key(kv.substr(0, kv.find('=')));
    if (overrides.count(key) == 0 && !IsScrubbedFromPhases(key)) env.emplace_back(kv);
  }
  for (const auto& [key, value] : overrides) env.push_back(absl::StrCat(key, "=", value));
  return env;
}

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// posix_spawn attributes and file actions, destroyed on scope exit.
class SpawnSetup {
 public:
  SpawnSetup() {
    attr_ok_ = ::posix_spawnattr_init(&attr_) == 0;
    actions_ok_ = ::posix_spawn_file_actions_init(&actions_) == 0;
  }
  ~SpawnSetup() {
    if (attr_ok_) ::posix_spawnattr_destroy(&attr_);
    if (actions_ok_) ::posix_spawn_file_actions_destroy(&actions_);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;

  bool ok() const { return attr_ok_ && actions_ok_; }
  posix_spawnattr_t* attr() { return &attr_; }
  posix_spawn_file_actions_t* actions() { return &actions_; }

 private:
  posix_spawnattr_t attr_;
  posix_spawn_file_actions_t actions_;
  bool attr_ok_ = false;
  bool actions_ok_ = false;
};

absl::Status Configure(SpawnSetup& setup, int stdin_fd, int stdout_fd, int stderr_fd,
                       int shim_status_fd, const std::string& workdir) {
  if (!setup.ok()) return absl::InternalError("posix_spawn setup failed");
  // A new process group led by the child, so the whole tree it starts can be
  // signalled at once; a clean signal mask and default dispositions, because
  // the worker itself may block or ignore signals (SIGPIPE under gRPC).
  sigset_t empty_mask;
  sigemptyset(&empty_mask);
  sigset_t all_signals;
  sigfillset(&all_signals);
  int rc = ::posix_spawnattr_setflags(
      setup.attr(), POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  if (rc == 0) rc = ::posix_spawnattr_setpgroup(setup.attr(), 0);
  if (rc == 0) rc = ::posix_spawnattr_setsigmask(setup.attr(), &empty_mask);
  if (rc == 0) rc = ::posix_spawnattr_setsigdefault(setup.attr(), &all_signals);
  if (rc == 0) rc = ::posix_spawn_file_actions_adddup2(setup.actions(), stdin_fd, STDIN_FILENO);
  if (rc == 0) rc = ::posix_spawn_file_actions_adddup2(setup.actions(), stdout_fd, STDOUT_FILENO);
  if (rc == 0) rc = ::posix_spawn_file_actions_adddup2(setup.actions(), stderr_fd, STDERR_FILENO);
  if (rc == 0 && shim_status_fd >= 0) {
    // glibc clears FD_CLOEXEC on the target even when both numbers are equal.
    rc = ::posix_spawn_file_actions_adddup2(setup.actions(), shim_status_fd, phase_shim::kStatusFd);
  }
  if (rc == 0 && !workdir.empty()) {
    rc = ::posix_spawn_file_actions_addchdir_np(setup.actions(), workdir.c_str());
  }
  if (rc != 0) return ErrnoStatus(rc, "posix_spawn setup");
  return absl::OkStatus();
}

void SignalGroup(pid_t pgid, int sig) {
  // ESRCH (nothing left in the group) is the expected outcome, not an error.
  (void)::kill(-pgid, sig);
}

// True once `pid` has exited (it stays a zombie, so its pid and process group
// id cannot be reused until ReapStatus).
bool HasExited(pid_t pid) {
  siginfo_t info;
  std::memset(&info, 0, sizeof(info));
  int rc;
  do {
    rc = ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT);
  } while (rc < 0 && errno == EINTR);
  // ECHILD: someone else reaped it (SIGCHLD ignored, or a waitpid(-1) elsewhere).
  if (rc < 0) return errno == ECHILD;
  return info.si_pid == pid;
}

// Sleeps up to `interval`, but returns as soon as the child behind `pidfd`
// exits (a pidfd is readable then); with no pidfd (-1: a kernel before 5.3
// or a sandbox refusing pidfd_open) it just sleeps.
void SleepUntilExitOr(int pidfd, std::chrono::milliseconds interval) {
  if (pidfd < 0) {
    std::this_thread::sleep_for(interval);
    return;
  }
  pollfd exit_event{};
  exit_event.fd = pidfd;
  exit_event.events = POLLIN;
  (void)::poll(&exit_event, 1, static_cast<int>(interval.count()));  // EINTR: the loop re-checks
}

// Reaps `pid`; false when its status was lost (see HasExited).
bool ReapStatus(pid_t pid, int* status) { return ChildRegistry::Get().ReapTracked(pid, status); }

absl::Status CannotStart(int err, const std::string& program) {
  if (err == ENOENT) {
    return absl::NotFoundError(absl::StrCat(
        "cannot start ", program, ": ",
        program.find('/') != std::string::npos ? "no such file" : "not found in PATH"));
  }
  return ErrnoStatus(err, absl::StrCat("cannot start ", program));
}

// Watches the log files for output by their sizes (the phase writes to
// them directly, not through the worker): when output was last seen and the
// longest stretch without any. Only regular files can be watched; a log
// that is /dev/null (no path given) says nothing.
class SilenceWatch {
 public:
  SilenceWatch(std::initializer_list<int> fds, Clock::time_point start)
      : last_output_(start), next_check_(start) {
    for (int fd : fds) {
      struct stat st {};
      if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) fds_.push_back(fd);
    }
    size_ = Size();
  }
  bool watchable() const { return !fds_.empty(); }

  // Looks at the sizes at most every kSilenceCheckMs (`force`: now, as at
  // the exit); cheap to call often. Returns whether it looked.
  bool Check(Clock::time_point now, bool force = false) {
    if (fds_.empty() || (!force && now < next_check_)) return false;
    next_check_ = now + std::chrono::milliseconds(kSilenceCheckMs);
    const int64_t size = Size();
    if (size != size_) {
      size_ = size;
      longest_ = std::max(longest_, now - last_output_);
      last_output_ = now;
    }
    return true;
  }
  Clock::duration SilentFor(Clock::time_point now) const { return now - last_output_; }
  // The longest silence up to `end` (a silence before the exit counts);
  // -1 when not watchable.
  int64_t LongestMs(Clock::time_point end) const {
    if (fds_.empty()) return -1;
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::max(longest_, end - last_output_))
        .count();
  }

 private:
  int64_t Size() const {
    int64_t total = 0;
    for (int fd : fds_) {
      struct stat st {};
      if (::fstat(fd, &st) == 0) total += static_cast<int64_t>(st.st_size);
    }
    return total;
  }

  std::vector<int> fds_;
  int64_t size_ = 0;
  Clock::duration longest_{0};
  Clock::time_point last_output_;
  Clock::time_point next_check_;
};

// How long a contained run waits for the shim to exit after asking it to kill
// everything before it kills the shim itself (the phase then dies by its own
// PR_SET_PDEATHSIG). The shim needs milliseconds; this only guards a shim
// that was stopped or otherwise wedged.
constexpr std::chrono::milliseconds kShimKillFallback{2000};

}  // namespace

PosixProcessRunner::PosixProcessRunner() {
  if (const char* shim = std::getenv("SLUICE_PHASE_SHIM"); shim != nullptr) shim_path_ = shim;
  if (const char* cgroup = std::getenv("SLUICE_PHASE_CGROUP"); cgroup != nullptr) {
    cgroup_parent_ = cgroup;
  }
}

PosixProcessRunner::PosixProcessRunner(std::string shim_path, std::string cgroup_parent)
    : shim_path_(std::move(shim_path)), cgroup_parent_(std::move(cgroup_parent)) {}

absl::StatusOr<ProcessResult> PosixProcessRunner::Run(const ProcessSpec& spec,
                                                      const CancelToken& cancel) {
  const bool contained = !shim_path_.empty();
  if (spec.argv.empty() || spec.argv.front().empty()) {
    return absl::InvalidArgumentError("process spec has no program (argv is empty)");
  }
  if (!spec.workdir.empty()) {
    struct stat st {};
    if (::stat(spec.workdir.c_str(), &st) != 0) {
      const int err = errno;
      return ErrnoStatus(err, absl::StrCat("workdir ", spec.workdir));
    }
    if (!S_ISDIR(st.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat("workdir ", spec.workdir, " is not a directory"));
    }
  }
  absl::StatusOr<std::vector<std::string>> env = BuildEnvironment(spec.env);
  if (!env.ok()) return env.status();

  const UniqueFd stdin_fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (stdin_fd.get() < 0) {
    const int err = errno;
    return ErrnoStatus(err, "cannot open /dev/null");
  }
  PhaseLogFile stdout_log;
  if (absl::Status s = stdout_log.Open(spec.stdout_path, spec.append_logs); !s.ok()) return s;
  PhaseLogFile stderr_log;
  if (absl::Status s = stderr_log.Open(spec.stderr_path, spec.append_logs); !s.ok()) return s;

  std::optional<ShimStatusPipe> shim_status;
  if (contained) {
    shim_status.emplace();
    if (shim_status->error() != 0) return ErrnoStatus(shim_status->error(), "pipe");
  }

  SpawnSetup setup;
  if (absl::Status status = Configure(setup, stdin_fd.get(), stdout_log.fd(), stderr_log.fd(),
                                      contained ? shim_status->write_fd() : -1, spec.workdir);
      !status.ok()) {
    return status;
  }

  std::vector<std::string> argv_strings;
  if (contained) {
    // worker/phase_shim_protocol.h: the program is searched in the worker's
    // PATH, as posix_spawnp here would.
    argv_strings = PhaseShimArgv(shim_path_, cgroup_parent_);
  }
  argv_strings.insert(argv_strings.end(), spec.argv.begin(), spec.argv.end());
  std::vector<char*> argv = CStrings(argv_strings);
  std::vector<char*> envp = CStrings(*env);
  const std::string& program = contained ? shim_path_ : spec.argv.front();
  const bool has_slash = program.find('/') != std::string::npos;

  const Clock::time_point start = Clock::now();
  pid_t pid = -1;
  // glibc's posix_spawn reports exec failures (ENOENT, EACCES) as its result.
  // posix_spawnp searches the worker's PATH, not one set in spec.env. The exec
  // happens after the chdir, so a relative "./tool" is found in spec.workdir.
  // Tracked from its first instant: the worker's orphan reaper never takes
  // this child's exit status (worker/orphan_reaper.h).
  const int spawn_rc = ChildRegistry::Get().SpawnTracked(
      [&](pid_t* child) {
        return has_slash ? ::posix_spawn(child, program.c_str(), setup.actions(), setup.attr(),
                                         argv.data(), envp.data())
                         : ::posix_spawnp(child, program.c_str(), setup.actions(), setup.attr(),
                                          argv.data(), envp.data());
      },
      &pid);
  if (spawn_rc != 0) return CannotStart(spawn_rc, program);
  if (contained) {
    shim_status->CloseWrite();
    if (const std::optional<phase_shim::ShimStartError> failed = shim_status->ReadStartError()) {
      int ignored = 0;
      (void)ReapStatus(pid, &ignored);  // the shim exits at once after reporting
      if (failed->stage == static_cast<int32_t>(phase_shim::StartStage::kCgroup)) {
        return ErrnoStatus(
            failed->error,
            absl::StrCat("cannot create or join the attempt's cgroup under ", cgroup_parent_));
      }
      return CannotStart(failed->error, spec.argv.front());
    }
  }
  // The child is the leader of its own group; pgid == pid. Contained, the
  // child is the shim, alone in its group: it is signalled, never the group,
  // and it signals the phase's group and every other descendant.
  const pid_t pgid = pid;
  if (spec.on_started) spec.on_started(pid);
  const auto terminate = [&] {
    if (contained) {
      (void)::kill(pid, phase_shim::kShimTerminateSignal);
    } else {
      SignalGroup(pgid, SIGTERM);
    }
  };
  const auto kill_all = [&] {
    if (contained) {
      (void)::kill(pid, phase_shim::kShimKillSignal);
    } else {
      SignalGroup(pgid, SIGKILL);
    }
  };

  ProcessResult result;
  SilenceWatch silence({stdout_log.fd(), stderr_log.fd()}, start);
  // Names a log once it has output (see PhaseLogFile); a log that cannot
  // be named is said in the result, once.
  const auto name_written_logs = [&] {
    for (PhaseLogFile* log : {&stdout_log, &stderr_log}) {
      if (absl::Status s = log->NameIfWritten(); !s.ok()) result.log_errors.push_back(s.ToString());
    }
  };
  const bool has_idle_limit = spec.idle_timeout_ms > 0 && silence.watchable();
  const Clock::duration idle_limit = ClampedMillis(spec.idle_timeout_ms);
  const bool has_timeout = spec.timeout_ms > 0;
  const Clock::time_point deadline = start + ClampedMillis(spec.timeout_ms);
  bool terminating = false;
  bool killed = false;
  Clock::time_point kill_at;
  // Polls rather than blocking in waitpid: the cancel token is a plain flag,
  // and waitpid(pid) on our own child is safe with concurrent Run() calls.
  // The child's exit itself ends a poll at once (pidfd, close-on-exec by
  // default); the cancel flag and the deadlines are checked at least every
  // 16 ms.
  const UniqueFd exit_fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  auto poll_interval = std::chrono::milliseconds(1);
  while (!HasExited(pid)) {
    const Clock::time_point now = Clock::now();
    // On every look, not only when the sizes moved: output written before
    // the watch began (the phase ran first) is no change to it.
    if (silence.Check(now)) name_written_logs();
    if (!terminating) {
      StopReason reason = StopReason::kNone;
      if (cancel.cancelled()) {
        reason = StopReason::kCancelled;
      } else if (has_timeout && now >= deadline) {
        reason = StopReason::kTimeout;
      } else if (has_idle_limit && silence.SilentFor(now) >= idle_limit) {
        reason = StopReason::kIdle;
      }
      if (reason != StopReason::kNone) {
        result.stopped_by = reason;
        terminating = true;
        kill_at = now + ClampedMillis(spec.grace_ms);
        terminate();
        poll_interval = std::chrono::milliseconds(1);
      }
    } else if (!killed) {
      // A self-fence may ask for the kill sooner than the spec's grace.
      if (const int64_t by_ns = cancel.kill_by_steady_ns();
          by_ns != std::numeric_limits<int64_t>::max()) {
        kill_at = std::min(kill_at, Clock::time_point(std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::nanoseconds(by_ns))));
      }
      if (now >= kill_at) {
        kill_all();
        killed = true;
      }
    } else if (contained && now >= kill_at + kShimKillFallback) {
      SignalGroup(pgid, SIGKILL);
    }
    SleepUntilExitOr(exit_fd.get(), poll_interval);
    poll_interval = std::min(poll_interval * 2, std::chrono::milliseconds(16));
  }
  // The leader is a zombie now, so pgid still names this group: kill
  // whatever it left behind (daemons, `cmd &`) before reaping it. Processes
  // that moved to another group or session escape this; a phase that does
  // that on purpose owns the consequences.
  SignalGroup(pgid, SIGKILL);
  int status = 0;
  if (ReapStatus(pid, &status)) {
    if (WIFEXITED(status)) {
      result.exit_code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
      result.signal = WTERMSIG(status);
    }
  }
  result.duration_ms = MillisSince(start);
  {
    const Clock::time_point end = Clock::now();
    silence.Check(end, /*force=*/true);  // output up to the exit
    result.longest_silence_ms = silence.LongestMs(end);
  }
  // Also a log first written since the last look.
  name_written_logs();
  result.stdout_tail = Tail(stdout_log, spec.tail_bytes);
  result.stderr_tail = Tail(stderr_log, spec.tail_bytes);
  result.error_text = ErrorText(stderr_log);
  return result;
}

}  // namespace sluice
