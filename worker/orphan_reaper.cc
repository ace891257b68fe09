#include "worker/orphan_reaper.h"

#include <sys/prctl.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstring>

#include "absl/time/time.h"

namespace sluice {

ChildRegistry& ChildRegistry::Get() {
  static ChildRegistry* registry = new ChildRegistry();  // never destroyed
  return *registry;
}

int ChildRegistry::SpawnTracked(const std::function<int(pid_t*)>& spawn, pid_t* pid) {
  absl::MutexLock lock(&mu_);
  const int rc = spawn(pid);
  if (rc == 0 && *pid > 0) tracked_.insert(*pid);
  return rc;
}

bool ChildRegistry::ReapTracked(pid_t pid, int* status) {
  absl::MutexLock lock(&mu_);
  pid_t rc;
  do {
    rc = ::waitpid(pid, status, 0);
  } while (rc < 0 && errno == EINTR);
  // Forgotten only now: a pid reused by a new child is tracked again under
  // this same lock, never left untracked in between.
  tracked_.erase(pid);
  return rc == pid;
}

int ChildRegistry::ReapUntracked() {
  absl::MutexLock lock(&mu_);
  int reaped = 0;
  for (;;) {
    siginfo_t info;
    std::memset(&info, 0, sizeof(info));
    const int rc = ::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT);
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0 || info.si_pid == 0) break;       // ECHILD: no children; 0: none has exited
    if (tracked_.count(info.si_pid) > 0) break;  // its runner reaps it
    int status = 0;
    if (::waitpid(info.si_pid, &status, WNOHANG) == info.si_pid) ++reaped;
  }
  return reaped;
}

absl::Status BecomeChildSubreaper() {
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
    const int err = errno;
    return absl::ErrnoToStatus(err, "prctl(PR_SET_CHILD_SUBREAPER)");
  }
  return absl::OkStatus();
}

OrphanReaper::OrphanReaper(int64_t period_ms) : period_ms_(period_ms) {
  thread_ = std::thread([this] {
    absl::MutexLock lock(&mu_);
    while (!stop_) {
      mu_.Unlock();
      reaped_ += ChildRegistry::Get().ReapUntracked();
      mu_.Lock();
      mu_.AwaitWithTimeout(absl::Condition(&stop_), absl::Milliseconds(period_ms_));
    }
  });
}

OrphanReaper::~OrphanReaper() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
  ChildRegistry::Get().ReapUntracked();
}

}  // namespace sluice
