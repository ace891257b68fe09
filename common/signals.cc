#include "common/signals.h"

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace sluice {
namespace {

sigset_t TerminationSet() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}

// Both descriptors are needed for the watcher to work at all; without them
// (descriptor limit reached at start-up) a process could not be stopped
// cleanly, so it says why and stops now.
int MustOpen(int fd, const char* what) {
  if (fd < 0) {
    std::perror(what);
    std::abort();
  }
  return fd;
}

}  // namespace

void BlockTerminationSignals() {
  sigset_t set = TerminationSet();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  // A vanished pipe reader must not kill the process.
  signal(SIGPIPE, SIG_IGN);
}

TerminationWatcher::TerminationWatcher(std::function<void(int)> on_signal)
    : signals_(MustOpen(
          [] {
            const sigset_t set = TerminationSet();
            return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
          }(),
          "sluice: signalfd")),
      stop_(MustOpen(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), "sluice: eventfd")),
      thread_([this, on_signal = std::move(on_signal)] {
        pollfd fds[2] = {{signals_.get(), POLLIN, 0}, {stop_.get(), POLLIN, 0}};
        while (true) {
          if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return;
          }
          if (fds[1].revents != 0) return;
          signalfd_siginfo info;
          while (read(signals_.get(), &info, sizeof(info)) == static_cast<ssize_t>(sizeof(info))) {
            on_signal(static_cast<int>(info.ssi_signo));
          }
        }
      }) {}

TerminationWatcher::~TerminationWatcher() {
  const uint64_t one = 1;
  (void)!write(stop_.get(), &one, sizeof(one));
  thread_.join();
}

}  // namespace sluice
