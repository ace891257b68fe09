// A StateStore decorator that counts the reads whose cost grows with runs or
// attempts (ListRunStats, ListAttempts, ListAttemptsWithoutOutput): tests
// prove with it that a page load or a scrape reads neither (issue #15).
// Thread-compatible: tests read the counters between calls.
#pragma once

#include <string>
#include <vector>

#include "tests/testing/forwarding_state_store.h"

namespace sluice::testing {

class ScanCountingStateStore : public ForwardingStateStore {
 public:
  using ForwardingStateStore::ForwardingStateStore;

  absl::StatusOr<std::vector<RunStats>> ListRunStats() override {
    ++run_scans;
    return ForwardingStateStore::ListRunStats();
  }
  absl::StatusOr<std::vector<AttemptRecord>> ListAttempts(const std::string& session) override {
    ++attempt_scans;
    return ForwardingStateStore::ListAttempts(session);
  }
  absl::StatusOr<std::vector<AttemptRecord>> ListAttemptsWithoutOutput(
      const std::string& session) override {
    ++attempt_scans;
    return target().ListAttemptsWithoutOutput(session);
  }

  int run_scans = 0;
  int attempt_scans = 0;
};

}  // namespace sluice::testing
