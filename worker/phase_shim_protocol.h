// The contract between PosixProcessRunner (worker/process_runner.cc) and
// sluice-phase-shim (worker/phase_shim.cc), the small program that is every
// contained phase's direct parent. Both sides include this header; nothing
// else should.
//
// argv:   sluice-phase-shim WORKER_PID PATH_SPEC CGROUP_SPEC PROGRAM [ARGS...]
//   WORKER_PID  the runner's pid: if the shim's parent is not that process
//               once PR_SET_PDEATHSIG is armed, the worker is already gone
//               and nothing is started.
//   PATH_SPEC   "P" + the worker's $PATH, or "-" when the worker has none:
//               PROGRAM without a '/' is searched there (as posix_spawnp in
//               the worker would), never in the phase's own $PATH.
//   CGROUP_SPEC "C" + a cgroup v2 directory: the attempt gets its own cgroup
//               PARENT/sluice-attempt-SHIMPID, the phase joins it before
//               exec, every kill also writes its cgroup.kill, and it is
//               removed at the end; "-": no cgroup.
// fd 3:   the write end of a pipe from the runner. The shim writes one
//         ShimStartError to it when the phase could not be started, and the
//         pipe reaches end-of-file without a byte once the phase has exec'd.
// Signals the runner sends to the shim (never to the phase directly):
//   kShimTerminateSignal  SIGTERM to the phase's process group and to every
//                         other descendant (a timeout or cancel, start of grace)
//   kShimKillSignal       SIGKILL to every descendant now (end of grace, or a
//                         self-fence); also the shim's PR_SET_PDEATHSIG
// Exit:   once the phase has exited, every remaining descendant is killed and
//         reaped; then the shim exits with the phase's exit code, or dies of
//         the phase's terminating signal, so the runner's wait status is the
//         phase's own.
#pragma once

#include <csignal>
#include <cstdint>

namespace sluice::phase_shim {

inline constexpr int kStatusFd = 3;
inline constexpr int kShimTerminateSignal = SIGTERM;
inline constexpr int kShimKillSignal = SIGUSR1;

// Where starting the phase failed.
enum class StartStage : int32_t { kSetup = 1, kFork = 2, kExec = 3, kCgroup = 4 };

struct ShimStartError {
  int32_t stage = 0;  // a StartStage
  int32_t error = 0;  // errno
};

}  // namespace sluice::phase_shim
