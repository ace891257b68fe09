// Zombies: in a container the worker is often PID 1 with no init, and a
// phase that daemonizes (a double fork, `cmd &` in a shell that then exits)
// leaves orphans. Linux re-parents orphans to the nearest "child subreaper"
// (else PID 1), and only a wait by that parent removes them once they exit.
// The worker makes itself a subreaper and reaps every exited child it does
// not track itself.
//
// Tracked children (every process PosixProcessRunner starts: phases, probes,
// the --service) belong to the runner, which needs their exit status: they
// are started and reaped through ChildRegistry, under its lock, so the
// reaper never sees one untracked, and never steals one's status.
//
// Thread-safe. PR_SET_PDEATHSIG cannot be set for phases: posix_spawn has
// no hook for it (the worker spawns, never forks; see ANCHORS.md figures).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <set>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace sluice {

class ChildRegistry {
 public:
  // The process-wide registry.
  static ChildRegistry& Get();

  // Runs `spawn` (which returns 0 and sets *pid, or an errno) with the
  // registry locked and tracks the child it started.
  int SpawnTracked(const std::function<int(pid_t*)>& spawn, pid_t* pid) ABSL_LOCKS_EXCLUDED(mu_);
  // Reaps a tracked child that has exited (waitpid) and forgets it; false
  // when its status was lost.
  bool ReapTracked(pid_t pid, int* status) ABSL_LOCKS_EXCLUDED(mu_);
  // Reaps every exited child that is not tracked; returns how many. Peeks
  // first (waitid WNOWAIT): a tracked child that has exited is left to its
  // runner, and the rest waits for the next call.
  int ReapUntracked() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::Mutex mu_;
  std::set<pid_t> tracked_ ABSL_GUARDED_BY(mu_);
};

// prctl(PR_SET_CHILD_SUBREAPER): orphaned descendants become this process's
// children. An error when the kernel refuses.
absl::Status BecomeChildSubreaper();

// Calls ChildRegistry::ReapUntracked() every `period_ms` on its own thread
// until destroyed.
class OrphanReaper {
 public:
  explicit OrphanReaper(int64_t period_ms = 500);
  ~OrphanReaper();
  OrphanReaper(const OrphanReaper&) = delete;
  OrphanReaper& operator=(const OrphanReaper&) = delete;

  int64_t reaped() const { return reaped_.load(); }

 private:
  const int64_t period_ms_;
  std::atomic<int64_t> reaped_{0};
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace sluice
