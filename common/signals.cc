#include "common/signals.h"

#include <signal.h>
#include <time.h>

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

}  // namespace

void BlockTerminationSignals() {
  sigset_t set = TerminationSet();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  // A vanished pipe reader must not kill the process.
  signal(SIGPIPE, SIG_IGN);
}

TerminationWatcher::TerminationWatcher(std::function<void(int)> on_signal)
    : thread_([this, on_signal = std::move(on_signal)] {
        const sigset_t set = TerminationSet();
        const timespec poll = {0, 100'000'000};  // re-check stop_ every 100 ms
        while (!stop_.load()) {
          const int sig = sigtimedwait(&set, nullptr, &poll);
          if (sig > 0) on_signal(sig);
        }
      }) {}

TerminationWatcher::~TerminationWatcher() {
  stop_.store(true);
  thread_.join();
}

}  // namespace sluice
