// Termination signals handled on a dedicated thread, so handlers can take
// locks and log. Call BlockTerminationSignals() in main() before any thread
// starts: every thread inherits the mask, and the watcher alone receives
// SIGTERM/SIGINT/SIGHUP. Child processes get a clean mask from the
// ProcessRunner.
#pragma once

#include <functional>
#include <thread>

#include "common/unique_fd.h"

namespace sluice {

void BlockTerminationSignals();

class TerminationWatcher {
 public:
  // Calls on_signal(signo) on the watcher thread for each signal received.
  // The signals must be blocked in every thread (BlockTerminationSignals),
  // or the default action may take them first.
  explicit TerminationWatcher(std::function<void(int)> on_signal);
  // Returns as soon as the thread has stopped: a stop wakes it, no timer
  // (a command's exit, and a drained worker's, wait for no tick).
  ~TerminationWatcher();
  TerminationWatcher(const TerminationWatcher&) = delete;
  TerminationWatcher& operator=(const TerminationWatcher&) = delete;

 private:
  UniqueFd signals_;  // signalfd of the termination set
  UniqueFd stop_;     // eventfd: written once by the destructor
  std::thread thread_;
};

}  // namespace sluice
