// The fixture of the drain end-to-end tests (drain_e2e_test.cc,
// drain_worker_e2e_test.cc): a sluice-coordinator on SQLite, workers and the
// sluice CLI as separate processes (e2e_support.h's ProcessTest).
//
// Not in an anonymous namespace: both files link into one binary, and gtest
// requires every TEST_F of a suite to use the same fixture type.
#pragma once

#include <signal.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "coordinator/store/sqlite/sqlite_state_store.h"
#include "gtest/gtest.h"
#include "tests/e2e/e2e_support.h"

namespace sluice::e2e {

// The process helpers (spawning, stopping, the sluice CLI, the ledger) are
// in e2e_support.h's ProcessTest.
class DrainE2ETest : public ProcessTest {
 protected:
  void TearDown() override {
    // Workers first (they may still report), the coordinator last; SIGTERM,
    // a bounded wait, then SIGKILL. The base kills what is left and the
    // phases a SIGKILLed worker orphaned.
    for (pid_t pid : std::vector<pid_t>(children_.rbegin(), children_.rend())) {
      StopChild(pid, SIGTERM);
    }
    ProcessTest::TearDown();
  }

  // Starts sluice-coordinator on a free port; returns "127.0.0.1:PORT".
  std::string StartCoordinator(std::vector<std::string> extra) {
    extra.insert(extra.end(), {"--log-level", "warn"});
    return ProcessTest::StartCoordinator("coordinator", "sqlite://" + StorePath(), "0", extra);
  }

  pid_t StartWorker(const std::string& address, const std::string& worker_id, int slots,
                    const std::string& exec) {
    return ProcessTest::StartWorker(WorkerSpec(worker_id, address, exec).Slots(slots));
  }

  std::string StorePath() const { return dir_.File("state.db"); }

  std::unique_ptr<SqliteStateStore> OpenStore(const std::string& path) {
    auto store = SqliteStateStore::Open(path);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }

  static std::vector<AttemptRecord> Attempts(StateStore& store) {
    auto attempts = store.ListAttempts("");
    EXPECT_TRUE(attempts.ok()) << attempts.status();
    return attempts.ok() ? *attempts : std::vector<AttemptRecord>();
  }
};

// A backlog of `ok` run/phase ids plus `importerr` ones.
inline std::string Backlog(const std::string& run_id, int ok, int importerr) {
  std::string text;
  for (int i = 1; i <= ok + importerr; ++i) {
    text += absl::StrCat("{\"run_id\": \"", run_id, "\", \"phase_id\": \"p", i,
                         i <= ok ? "-ok" : "-importerr", "\", \"phase_index\": ", i, "}\n");
  }
  return text;
}

}  // namespace sluice::e2e
