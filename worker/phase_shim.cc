// sluice-phase-shim: the direct parent of one contained phase (issue #16
// item 3). posix_spawn, which the worker uses because fork from a large
// process is slow, cannot arm PR_SET_PDEATHSIG in the child; this small
// program can, and it is cheap to exec. It
//  - arms PR_SET_PDEATHSIG on itself, so it learns when the worker dies, even
//    by SIGKILL, and then kills the phase's whole tree;
//  - is a child subreaper, so every descendant of the phase that is orphaned
//    (a double fork, `setsid cmd &`) is re-parented to it and stays
//    reachable, whatever process group or session it moved to;
//  - kills every remaining descendant when the phase exits, on a timeout or
//    cancel (asked by the worker) and on the worker's death, and reaps them;
//  - then exits with the phase's status, so the worker reports exit codes and
//    signals exactly as when it spawned the phase itself.
// The protocol with the worker is in worker/phase_shim_protocol.h.
//
// Deliberately C-like (no standard library containers, no allocation after
// start-up except in the /proc reads): it starts once per attempt, so it must
// start fast, and it runs single-threaded.
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "worker/phase_shim_protocol.h"

extern char** environ;

namespace {

using sluice::phase_shim::kShimKillSignal;
using sluice::phase_shim::kShimTerminateSignal;
using sluice::phase_shim::kStatusFd;
using sluice::phase_shim::ShimStartError;
using sluice::phase_shim::StartStage;

// Reports a start failure to the worker (best effort: it may be gone).
void ReportStartError(StartStage stage, int error) {
  ShimStartError record;
  record.stage = static_cast<int32_t>(stage);
  record.error = error;
  ssize_t n;
  do {
    n = ::write(kStatusFd, &record, sizeof(record));
  } while (n < 0 && errno == EINTR);
}

// execve of `program`, searched in `search_path` when it has no '/', the way
// glibc's posix_spawnp does it (no /bin/sh fallback on ENOEXEC): EACCES wins
// over ENOENT, any other error stops the search. Returns errno.
int ExecLikeSpawnp(const char* program, char* const argv[], char* const envp[],
                   const char* search_path) {
  if (std::strchr(program, '/') != nullptr) {
    ::execve(program, argv, envp);
    return errno;
  }
  const char* path = search_path != nullptr ? search_path : "/bin:/usr/bin";
  const size_t program_len = std::strlen(program);
  bool saw_eacces = false;
  int last = ENOENT;
  for (const char* dir = path;; ++dir) {
    const char* end = std::strchr(dir, ':');
    const size_t dir_len = end != nullptr ? static_cast<size_t>(end - dir) : std::strlen(dir);
    char candidate[4096];
    if (dir_len + program_len + 2 <= sizeof(candidate)) {
      size_t len = 0;
      if (dir_len > 0) {  // an empty entry means the current directory
        std::memcpy(candidate, dir, dir_len);
        len = dir_len;
        candidate[len++] = '/';
      }
      std::memcpy(candidate + len, program, program_len + 1);
      ::execve(candidate, argv, envp);
      last = errno;
      if (last == EACCES) {
        saw_eacces = true;
      } else if (last != ENOENT && last != ENOTDIR && last != ESTALE && last != ENODEV &&
                 last != ETIMEDOUT) {
        return last;
      }
    }
    if (end == nullptr) break;
    dir = end;
  }
  return saw_eacces ? EACCES : last;
}

// Appends the pids listed in `file` (a /proc/PID/task/TID/children file) to
// pids[*count..cap).
void ReadPidList(const char* file, pid_t* pids, size_t* count, size_t cap) {
  const int fd = ::open(file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  char buf[8192];
  size_t used = 0;
  for (;;) {
    const ssize_t n = ::read(fd, buf + used, sizeof(buf) - 1 - used);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    used += static_cast<size_t>(n);
    if (used == sizeof(buf) - 1) break;
  }
  ::close(fd);
  buf[used] = '\0';
  char* p = buf;
  while (*p != '\0' && *count < cap) {
    char* next = nullptr;
    const long pid = std::strtol(p, &next, 10);
    if (next == p) break;
    if (pid > 0) pids[(*count)++] = static_cast<pid_t>(pid);
    p = next;
  }
}

// The children of `pid`, from /proc/PID/task/*/children (each thread has its
// own list). Returns how many were stored; when the files do not exist
// (a kernel without CONFIG_PROC_CHILDREN) only the direct children of this
// process are found, through the slower scan below.
size_t ChildrenOf(pid_t pid, pid_t* pids, size_t cap) {
  char dir_path[64];
  std::snprintf(dir_path, sizeof(dir_path), "/proc/%d/task", static_cast<int>(pid));
  DIR* dir = ::opendir(dir_path);
  if (dir == nullptr) return 0;
  size_t count = 0;
  while (dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    char file[sizeof(dir_path) + sizeof(entry->d_name) + 16];
    std::snprintf(file, sizeof(file), "%s/%s/children", dir_path, entry->d_name);
    ReadPidList(file, pids, &count, cap);
  }
  ::closedir(dir);
  return count;
}

// Whether /proc/PID/task/TID/children exists on this kernel; set once in
// main, before anything reads it (the shim is single-threaded).
bool g_have_children_files = false;

bool DetectChildrenFiles() {
  char file[64];
  std::snprintf(file, sizeof(file), "/proc/self/task/%d/children", static_cast<int>(::getpid()));
  return ::access(file, R_OK) == 0;
}

// Without /proc/.../children: every process whose parent (field 4 of
// /proc/PID/stat) is `parent`.
size_t ScanChildrenOf(pid_t parent, pid_t* pids, size_t cap) {
  DIR* dir = ::opendir("/proc");
  if (dir == nullptr) return 0;
  size_t count = 0;
  while (dirent* entry = ::readdir(dir)) {
    if (count == cap) break;
    char* end = nullptr;
    const long pid = std::strtol(entry->d_name, &end, 10);
    if (pid <= 0 || *end != '\0') continue;
    char file[64];
    std::snprintf(file, sizeof(file), "/proc/%ld/stat", pid);
    const int fd = ::open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    char buf[512];
    const ssize_t n = ::read(fd, buf, sizeof(buf) - 1);
    ::close(fd);
    if (n <= 0) continue;
    buf[n] = '\0';
    const char* close_paren = std::strrchr(buf, ')');  // the name may hold anything
    if (close_paren == nullptr) continue;
    char state = 0;
    long ppid = 0;
    if (std::sscanf(close_paren + 1, " %c %ld", &state, &ppid) == 2 && ppid == parent) {
      pids[count++] = static_cast<pid_t>(pid);
    }
  }
  ::closedir(dir);
  return count;
}

// Sends `sig` to every descendant of this process, parents before their
// children, except members of process group `skip_group` (0: none), which
// the caller signalled as a group already. A process that has already been signalled SIGKILL cannot
// fork any more, so a SIGKILL pass misses only processes whose parent died during the pass; as a
// subreaper this process inherits those, and the caller repeats the pass until it has no children
// left.
void SignalDescendants(int sig, pid_t skip_group = 0) {
  constexpr size_t kCap = 4096;
  static pid_t stack[kCap];
  size_t depth = 0;
  if (g_have_children_files) {
    depth = ChildrenOf(::getpid(), stack, kCap);
  } else {
    depth = ScanChildrenOf(::getpid(), stack, kCap);
  }
  while (depth > 0) {
    const pid_t pid = stack[--depth];
    if (skip_group == 0 || ::getpgid(pid) != skip_group) (void)::kill(pid, sig);
    if (g_have_children_files) depth += ChildrenOf(pid, stack + depth, kCap - depth);
  }
}

struct Phase {
  pid_t pid = -1;
  bool exited = false;
  int status = 0;
};

// Reaps every child that has exited (the phase and orphans alike); false
// once there are no children at all.
bool ReapExited(Phase* phase) {
  for (;;) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid < 0 && errno == EINTR) continue;
    if (pid < 0) return false;  // ECHILD: nothing left
    if (pid == 0) return true;
    if (pid == phase->pid) {
      phase->exited = true;
      phase->status = status;
    }
  }
}

// Drains pending signals from `sfd`; returns the set seen as a bit mask.
unsigned ReadSignals(int sfd) {
  unsigned seen = 0;
  signalfd_siginfo info;
  while (::read(sfd, &info, sizeof(info)) == static_cast<ssize_t>(sizeof(info))) {
    if (info.ssi_signo < 32) seen |= 1u << info.ssi_signo;
  }
  return seen;
}

void WaitForSignal(int sfd, int timeout_ms) {
  pollfd event{};
  event.fd = sfd;
  event.events = POLLIN;
  (void)::poll(&event, 1, timeout_ms);
}

// The attempt's own cgroup v2 directory ("" without one): PARENT/
// sluice-attempt-SHIMPID, created by main, joined by the phase before exec,
// killed with cgroup.kill (atomic: nothing in it can fork past it) and
// removed when everything in it has been reaped.
char g_cgroup_dir[4096] = "";

// Writes `text` to the file `name` in the attempt's cgroup; errno or 0.
int WriteCgroupFile(const char* name, const char* text) {
  char path[sizeof(g_cgroup_dir) + 32];
  std::snprintf(path, sizeof(path), "%s/%s", g_cgroup_dir, name);
  const int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  const size_t len = std::strlen(text);
  const int err = ::write(fd, text, len) == static_cast<ssize_t>(len) ? 0 : errno;
  ::close(fd);
  return err;
}

// Removes the attempt's cgroup once it is empty (it empties as its last
// process exits; a short retry covers the kernel's bookkeeping).
void RemoveCgroup() {
  if (g_cgroup_dir[0] == '\0') return;
  for (int i = 0; i < 200 && ::rmdir(g_cgroup_dir) != 0 && errno == EBUSY; ++i) {
    ::usleep(1000);
  }
  g_cgroup_dir[0] = '\0';
}

int64_t MonotonicMs() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<int64_t>(now.tv_sec) * 1000 + now.tv_nsec / 1'000'000;
}

// How long KillAndReapAll keeps trying. A process in uninterruptible sleep
// (a hung NFS mount) does not die of SIGKILL until the kernel lets it, and
// without /proc descendants cannot be found at all; the attempt must end
// anyway, so the shim gives up, says so in the phase's stderr log, and what
// is left is re-parented to the worker (a subreaper too), which reaps it.
constexpr int64_t kGiveUpMs = 10'000;

// SIGKILLs every descendant and reaps them all, until this process has no
// child left. As a subreaper, no child means no descendant at all.
void KillAndReapAll(int sfd, Phase* phase) {
  const int64_t give_up_at = MonotonicMs() + kGiveUpMs;
  for (;;) {
    // Everything in the attempt's cgroup at once (kernel 5.14+; the walk
    // below still runs, for older kernels and for what was never in it).
    if (g_cgroup_dir[0] != '\0') (void)WriteCgroupFile("cgroup.kill", "1");
    if (phase->pid > 0 && !phase->exited) (void)::kill(-phase->pid, SIGKILL);
    SignalDescendants(SIGKILL);
    if (!ReapExited(phase)) return;
    if (MonotonicMs() >= give_up_at) {
      static const char kMessage[] =
          "sluice-phase-shim: processes of this attempt did not die within 10 s of SIGKILL; "
          "leaving them to the worker\n";
      (void)!::write(STDERR_FILENO, kMessage, sizeof(kMessage) - 1);
      return;
    }
    WaitForSignal(sfd, 5);  // a SIGCHLD, or a re-parented orphan to find
    (void)ReadSignals(sfd);
  }
}

// Ends this process the way the phase ended.
[[noreturn]] void ExitLikePhase(int status) {
  RemoveCgroup();
  if (WIFEXITED(status)) ::_exit(WEXITSTATUS(status));
  const int sig = WIFSIGNALED(status) ? WTERMSIG(status) : SIGKILL;
  if (sig != SIGKILL) {
    // Ignoring discards a pending terminate or kill request, which must not
    // decide this process's status instead of the phase's signal.
    (void)::signal(kShimTerminateSignal, SIG_IGN);
    (void)::signal(kShimKillSignal, SIG_IGN);
    const rlimit no_core{0, 0};  // the phase dumped core already, if it did
    (void)::setrlimit(RLIMIT_CORE, &no_core);
    (void)::signal(sig, SIG_DFL);
    sigset_t only;
    sigemptyset(&only);
    sigaddset(&only, sig);
    (void)::sigprocmask(SIG_UNBLOCK, &only, nullptr);
  }
  (void)::kill(::getpid(), sig);
  ::_exit(128 + sig);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    ReportStartError(StartStage::kSetup, EINVAL);
    std::fprintf(stderr,
                 "usage: sluice-phase-shim WORKER_PID PATH_SPEC CGROUP_SPEC PROGRAM [ARGS...]\n"
                 "(started by sluice-worker for each phase; not meant to be run by hand)\n");
    return 127;
  }
  const pid_t worker = static_cast<pid_t>(std::atol(argv[1]));
  const char* path_spec = argv[2];
  const char* search_path = path_spec[0] == 'P' ? path_spec + 1 : nullptr;
  const char* cgroup_spec = argv[3];
  char** phase_argv = argv + 4;
  (void)::fcntl(kStatusFd, F_SETFD, FD_CLOEXEC);  // never inherited by the phase
  g_have_children_files = DetectChildrenFiles();

  // The terminate and kill requests and SIGCHLD arrive through a signalfd;
  // the phase gets the empty mask back before exec.
  sigset_t handled;
  sigemptyset(&handled);
  sigaddset(&handled, SIGCHLD);
  sigaddset(&handled, kShimTerminateSignal);
  sigaddset(&handled, kShimKillSignal);
  sigset_t original;
  if (::sigprocmask(SIG_BLOCK, &handled, &original) != 0) {
    ReportStartError(StartStage::kSetup, errno);
    return 127;
  }
  const int sfd = ::signalfd(-1, &handled, SFD_NONBLOCK | SFD_CLOEXEC);
  if (sfd < 0 || ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0 ||
      ::prctl(PR_SET_PDEATHSIG, kShimKillSignal, 0, 0, 0) != 0) {
    ReportStartError(StartStage::kSetup, errno);
    return 127;
  }
  if (::getppid() != worker) return 127;  // the worker died before the signal was armed
  if (cgroup_spec[0] == 'C') {
    const int n = std::snprintf(g_cgroup_dir, sizeof(g_cgroup_dir), "%s/sluice-attempt-%d",
                                cgroup_spec + 1, static_cast<int>(::getpid()));
    if (n < 0 || static_cast<size_t>(n) >= sizeof(g_cgroup_dir)) {
      g_cgroup_dir[0] = '\0';
      ReportStartError(StartStage::kCgroup, ENAMETOOLONG);
      return 127;
    }
    if (::mkdir(g_cgroup_dir, 0755) != 0) {
      const int err = errno;
      g_cgroup_dir[0] = '\0';
      ReportStartError(StartStage::kCgroup, err);
      return 127;
    }
  }

  const pid_t shim = ::getpid();
  Phase phase;
  phase.pid = ::fork();
  if (phase.pid < 0) {
    ReportStartError(StartStage::kFork, errno);
    RemoveCgroup();
    return 127;
  }
  if (phase.pid == 0) {
    // The phase leads its own process group (as without the shim), and dies
    // with the shim if the shim itself is killed (SIGKILL, OOM killer).
    (void)::setpgid(0, 0);
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || ::getppid() != shim) ::_exit(127);
    if (g_cgroup_dir[0] != '\0') {
      if (const int err = WriteCgroupFile("cgroup.procs", "0"); err != 0) {
        ReportStartError(StartStage::kCgroup, err);
        ::_exit(127);
      }
    }
    (void)::sigprocmask(SIG_SETMASK, &original, nullptr);
    ReportStartError(StartStage::kExec,
                     ExecLikeSpawnp(phase_argv[0], phase_argv, environ, search_path));
    ::_exit(127);
  }
  (void)::setpgid(phase.pid, phase.pid);  // no window in which -pid names no group
  ::close(kStatusFd);

  bool terminated = false;
  while (!phase.exited) {
    WaitForSignal(sfd, -1);
    const unsigned seen = ReadSignals(sfd);
    if ((seen & (1u << kShimKillSignal)) != 0) break;  // killed and reaped below
    if ((seen & (1u << kShimTerminateSignal)) != 0 && !terminated) {
      terminated = true;
      (void)::kill(-phase.pid, SIGTERM);
      SignalDescendants(SIGTERM, phase.pid);  // and, once, those that left the group
    }
    (void)ReapExited(&phase);
  }
  // Nothing the phase started outlives it: daemons, `cmd &`, setsid'd ones.
  KillAndReapAll(sfd, &phase);
  // A phase that could not be reaped (see kGiveUpMs) was killed, not done:
  // the raw wait status SIGKILL reads "killed by SIGKILL".
  ExitLikePhase(phase.exited ? phase.status : SIGKILL);
}
