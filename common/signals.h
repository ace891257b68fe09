// Termination signals handled on a dedicated thread (sigwait), so handlers
// can take locks and log. Call BlockTerminationSignals() in main() before any
// thread starts: every thread inherits the mask, and the watcher alone
// receives SIGTERM/SIGINT/SIGHUP. Child processes get a clean mask from the
// ProcessRunner.
#pragma once

#include <atomic>
#include <functional>
#include <thread>

namespace sluice {

void BlockTerminationSignals();

class TerminationWatcher {
 public:
  // Calls on_signal(signo) on the watcher thread for each signal received.
  explicit TerminationWatcher(std::function<void(int)> on_signal);
  ~TerminationWatcher();
  TerminationWatcher(const TerminationWatcher&) = delete;
  TerminationWatcher& operator=(const TerminationWatcher&) = delete;

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace sluice
