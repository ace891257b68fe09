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
  // A read from the first attempt on is a scan (its later chunks are the
  // same scan).
  absl::StatusOr<AttemptBatch> ListAttemptsFrom(const std::string& session, int64_t cursor,
                                                int64_t limit) override {
    if (cursor == 0) ++attempt_scans;
    return target().ListAttemptsFrom(session, cursor, limit);
  }

  int run_scans = 0;
  int attempt_scans = 0;
};

}  // namespace sluice::testing
