// Runs one phase as a subprocess. Seam for tests: the worker agent takes a
// ProcessRunner, unit tests may pass a fake, integration tests use
// PosixProcessRunner with real processes.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace sluice {

struct ProcessSpec {
  std::vector<std::string> argv;           // argv[0] is looked up in PATH when it has no '/'
  std::map<std::string, std::string> env;  // added to (and overriding) the worker's environment
  std::string workdir;                     // empty: the worker's own
  // Log files; empty: /dev/null. Unless append_logs, each is created only
  // once the process has written to it (worker/phase_log_file.h), replacing
  // a file at its path.
  std::string stdout_path;
  std::string stderr_path;
  bool append_logs = false;  // append to the log files instead of truncating
  // Called with the child's pid (= its process group id) right after it
  // started, e.g. for a supervisor that reports it.
  std::function<void(int pid)> on_started;
  int64_t timeout_ms = 0;  // 0: none
  // Stop the process (as for timeout_ms, StopReason::kIdle) once it has
  // written nothing to stdout_path or stderr_path for this long; 0: none.
  // Output is seen by the files' sizes, checked every kSilenceCheckMs.
  int64_t idle_timeout_ms = 0;
  int64_t grace_ms = 10'000;  // SIGTERM -> SIGKILL delay
  size_t tail_bytes = 4096;   // how much of each stream to keep in the result
};

// Why the runner stopped the process, if it did. kIdle: it wrote nothing
// for ProcessSpec::idle_timeout_ms.
enum class StopReason { kNone, kTimeout, kCancelled, kIdle };

// How often the runner looks at the log files' sizes for output, so the
// longest silence is measured to about this and an idle limit acts within it.
inline constexpr int64_t kSilenceCheckMs = 250;

struct ProcessResult {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;      // the terminating signal, 0 when it exited
  StopReason stopped_by = StopReason::kNone;
  int64_t duration_ms = 0;
  // The longest stretch with no output to either log file (the start to the
  // first output counts), to about kSilenceCheckMs; -1 when the logs are
  // not files the runner can watch.
  int64_t longest_silence_ms = -1;
  std::string stdout_tail;  // at most tail_bytes, cut at a line start where possible
  std::string stderr_tail;
  std::string error_text;  // last non-empty stderr line(s), at most 1000 bytes
  // A log with output that could not be given its path (the tails above
  // still hold its end).
  std::vector<std::string> log_errors;
};

// Lets another thread stop a running phase (lease revoked, worker draining).
class CancelToken {
 public:
  void Cancel() { cancelled_.store(true); }
  // Cancels, and has the runner send SIGKILL within `kill_within_ms` from now
  // even if the spec's grace is longer (the worker's self-fence must finish
  // before its lease can be granted again). Only ever shortens the grace.
  void CancelAndKillWithin(int64_t kill_within_ms) {
    const int64_t within = std::max<int64_t>(kill_within_ms, 0);
    const int64_t by = std::chrono::duration_cast<std::chrono::nanoseconds>(
                           std::chrono::steady_clock::now().time_since_epoch())
                           .count() +
                       within * 1'000'000;
    int64_t seen = kill_by_ns_.load();
    while (by < seen && !kill_by_ns_.compare_exchange_weak(seen, by)) {
    }
    seen = kill_within_ms_.load();
    while ((seen < 0 || within < seen) && !kill_within_ms_.compare_exchange_weak(seen, within)) {
    }
    cancelled_.store(true);
  }
  bool cancelled() const { return cancelled_.load(); }
  // steady_clock time (ns since its epoch) by which SIGKILL is due; INT64_MAX: none.
  int64_t kill_by_steady_ns() const { return kill_by_ns_.load(); }
  // The shortest kill_within_ms asked for; -1 when none (for tests and logs).
  int64_t kill_within_ms() const { return kill_within_ms_.load(); }

 private:
  std::atomic<bool> cancelled_{false};
  std::atomic<int64_t> kill_by_ns_{std::numeric_limits<int64_t>::max()};
  std::atomic<int64_t> kill_within_ms_{-1};
};

class ProcessRunner {
 public:
  virtual ~ProcessRunner() = default;
  // Blocks until the process and its whole process group are gone. Returns an
  // error only when the process could not be started (e.g. ENOENT); a process
  // that ran and failed is a ProcessResult. Thread-safe: one call per phase.
  virtual absl::StatusOr<ProcessResult> Run(const ProcessSpec& spec, const CancelToken& cancel) = 0;
};

// posix_spawn into a new process group (never fork from a large process).
// On timeout or cancel: SIGTERM to the group, wait grace_ms, SIGKILL to the
// group. After the leader exits, any process left in its group is killed too.
//
// Contained (a shim path given): the runner spawns sluice-phase-shim
// (worker/phase_shim.cc), which starts the phase in its own process group and
// guarantees that no process the phase started outlives the attempt: not
// past its exit, its timeout or cancel (the SIGTERM also reaches descendants
// that left the group, the SIGKILL reaches every one), nor the worker's own
// death, SIGKILL included (PR_SET_PDEATHSIG on the shim, which is a child
// subreaper). Results, errors and timing are the same as uncontained: the
// shim exits with the phase's exit code or dies of its signal, and a program
// that cannot be started is the same error. on_started gets the shim's pid.
// Limits: a descendant that forks faster than the shim kills could in
// theory outrun it, unless a cgroup parent is given: then each attempt gets
// its own cgroup v2 (PARENT/sluice-attempt-PID), killed at once with
// cgroup.kill; a process that is not a descendant (started through a daemon
// such as at or systemd-run) is out of reach.
class PosixProcessRunner final : public ProcessRunner {
 public:
  // Contained when $SLUICE_PHASE_SHIM names a shim, uncontained otherwise;
  // with a per-attempt cgroup under $SLUICE_PHASE_CGROUP when that is set.
  PosixProcessRunner();
  // Contained through the shim at `shim_path`; uncontained when empty.
  // `cgroup_parent`: a cgroup v2 directory this process may create child
  // cgroups in and move processes to (see CheckPhaseCgroupParent in phase_shim_launch.h); empty for
  // none. Ignored when uncontained.
  explicit PosixProcessRunner(std::string shim_path, std::string cgroup_parent = {});

  absl::StatusOr<ProcessResult> Run(const ProcessSpec& spec, const CancelToken& cancel) override;

  const std::string& shim_path() const { return shim_path_; }

 private:
  std::string shim_path_;
  std::string cgroup_parent_;
};

}  // namespace sluice
