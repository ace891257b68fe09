// Helpers for end-to-end tests that run the built binaries as processes: the
// ledger that sluice-example-phase writes; the ProcessTest fixture (children,
// the sluice CLI, coordinator and worker start-up) that every e2e fixture
// derives from; and ExpectStoreMatchesLedger, the accounting every fault test
// ends with. Spawning, bounded waits and process checks are the shared ones
// in tests/testing/process.h and tests/testing/wait.h.
#pragma once

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "coordinator/store/state_store.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/process.h"
#include "tests/testing/test_env.h"
#include "tests/testing/wait.h"

namespace sluice::e2e {

using ::sluice::testing::ProcessGone;
using ::sluice::testing::WaitExit;
using ::sluice::testing::WaitUntil;
using std::chrono::milliseconds;

// What sluice-example-phase wrote: "start R P A PID" and "end R P A ok|fail N".
struct Ledger {
  using Key = std::tuple<std::string, std::string, int>;  // run, phase, attempt
  struct Line {
    bool start = false;
    Key key;
    bool ok = false;
    int64_t number = 0;  // start: pid; end: telemetry events
  };
  std::vector<Line> lines;
  std::map<Key, int> starts;
  std::map<Key, int> ends;
  std::map<Key, int64_t> end_events;
  int64_t total_end_events = 0;

  static Ledger Read(const std::string& path) {
    Ledger ledger;
    std::istringstream in(sluice::testing::ReadFile(path));
    std::string text;
    while (std::getline(in, text)) {
      const std::vector<std::string> w = absl::StrSplit(text, ' ', absl::SkipEmpty());
      Line line;
      if (w.size() == 5 && w[0] == "start") {
        line.start = true;
        line.key = {w[1], w[2], std::atoi(w[3].c_str())};
        line.number = std::atoll(w[4].c_str());
        ++ledger.starts[line.key];
      } else if (w.size() == 6 && w[0] == "end") {
        line.key = {w[1], w[2], std::atoi(w[3].c_str())};
        line.ok = w[4] == "ok";
        line.number = std::atoll(w[5].c_str());
        ++ledger.ends[line.key];
        ledger.end_events[line.key] += line.number;
        ledger.total_end_events += line.number;
      } else {
        ADD_FAILURE() << "unexpected ledger line: " << text;
        continue;
      }
      ledger.lines.push_back(line);
    }
    return ledger;
  }

  // SIGKILLs the process groups of phases still running (orphans of a
  // SIGKILLed worker keep running in their own group).
  void KillOrphans() const {
    for (const Line& line : lines) {
      const auto pid = static_cast<pid_t>(line.number);
      if (!line.start || pid <= 0 || ProcessGone(pid)) continue;
      const std::string cmdline =
          sluice::testing::ReadFile("/proc/" + std::to_string(pid) + "/cmdline");
      if (cmdline.find("sluice-example-phase") != std::string::npos) {
        sluice::testing::KillProcessGroup(pid);
      }
    }
  }
};

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Lease ids of the outcomes waiting in a worker's spool directory (LEASE.json).
inline std::vector<std::string> SpooledLeaseIds(const std::string& dir) {
  std::vector<std::string> ids;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (absl::EndsWith(name, ".json")) ids.push_back(name.substr(0, name.size() - 5));
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

// How a sluice-worker is started by ProcessTest::StartWorker:
//   WorkerSpec("w1", address, exec).Slots(1).DrainTimeout(2)
struct WorkerSpec {
  WorkerSpec(std::string id, std::string address, std::string command)
      : worker_id(std::move(id)), coordinator(std::move(address)), exec(std::move(command)) {}
  WorkerSpec& Slots(int n) {
    slots = n;
    return *this;
  }
  WorkerSpec& DrainTimeout(double seconds) {
    drain_timeout_seconds = seconds;
    return *this;
  }
  WorkerSpec& Name(std::string stem) {
    name = std::move(stem);
    return *this;
  }
  WorkerSpec& LogLevel(std::string level) {
    log_level = std::move(level);
    return *this;
  }

  std::string worker_id;
  std::string coordinator;  // host:port (may be a TcpProxy)
  std::string exec;         // --exec template
  int slots = 2;
  double drain_timeout_seconds = 5;
  std::string name;  // stem of its .out/.err files; the worker id when empty
  std::string log_level = "warn";
};

// A fixture for tests that run the built binaries as processes in a scratch
// directory: every child's stdout/stderr goes to NAME.out/NAME.err there,
// children still running at the end are SIGKILLed (workers first, the
// coordinator last), and so are phases a SIGKILLed worker orphaned.
// SLUICE_KEEP_E2E=DIR copies the scratch directory there for inspection.
class ProcessTest : public ::testing::Test {
 protected:
  void SetUp() override { ledger_ = dir_.File("ledger.txt"); }

  void TearDown() override {
    while (!children_.empty()) KillChild(children_.back());
    Ledger::Read(ledger_).KillOrphans();
    if (const char* keep = std::getenv("SLUICE_KEEP_E2E"); keep != nullptr) {
      const std::string to =
          absl::StrCat(keep, "/", ::testing::UnitTest::GetInstance()->current_test_info()->name());
      std::error_code ec;
      std::filesystem::copy(dir_.path(), to, std::filesystem::copy_options::recursive, ec);
    }
  }

  pid_t StartChild(const std::vector<std::string>& argv, const std::string& name) {
    const pid_t pid =
        sluice::testing::Spawn(argv, dir_.File(name + ".out"), dir_.File(name + ".err"));
    EXPECT_GT(pid, 0) << "cannot start " << argv[0];
    if (pid > 0) children_.push_back(pid);
    return pid;
  }

  // SIGKILLs `pid` and reaps it; false when it is still there after 5 s.
  // Either way it is no longer one of the children.
  bool KillChild(pid_t pid) {
    ::kill(pid, SIGKILL);
    const bool reaped = WaitExit(pid, milliseconds(5'000)).has_value();
    std::erase(children_, pid);
    return reaped;
  }

  // Sends `sig`, waits up to `timeout`, then SIGKILLs (a test failure).
  // Returns the exit code, nullopt when it had to be killed.
  std::optional<int> StopChild(pid_t pid, int sig, milliseconds timeout = milliseconds(5'000)) {
    if (pid <= 0) return std::nullopt;
    ::kill(pid, sig);
    std::optional<int> code = WaitExit(pid, timeout);
    if (!code) {
      ::kill(pid, SIGKILL);
      WaitExit(pid, milliseconds(5'000));
      ADD_FAILURE() << "pid " << pid << " ignored signal " << sig << "; killed";
    }
    std::erase(children_, pid);
    return code;
  }

  // Runs a command to completion (killed after `timeout`, a test failure).
  CommandResult Run(const std::vector<std::string>& argv, milliseconds timeout) {
    const std::string name = absl::StrCat("cmd-", ++commands_);
    const pid_t pid = StartChild(argv, name);
    CommandResult result;
    if (pid <= 0) return result;
    std::optional<int> code = WaitExit(pid, timeout);
    if (!code) {
      ADD_FAILURE() << argv[0] << " " << (argv.size() > 1 ? argv[1] : "") << " still running after "
                    << timeout.count() << " ms";
      code = StopChild(pid, SIGKILL);
    } else {
      std::erase(children_, pid);
    }
    result.exit_code = code.value_or(-1);
    result.out = sluice::testing::ReadFile(dir_.File(name + ".out"));
    result.err = sluice::testing::ReadFile(dir_.File(name + ".err"));
    return result;
  }

  CommandResult Sluice(std::vector<std::string> args, milliseconds timeout = milliseconds(20'000)) {
    args.insert(args.begin(), sluice::testing::BinPath("sluice"));
    return Run(args, timeout);
  }

  // `sluice status --json` through a coordinator or on a store ({} when it
  // fails, which `expect_ok` makes a test failure).
  nlohmann::json Status(const std::vector<std::string>& target, bool expect_ok = true) {
    std::vector<std::string> args = {"status", "--json"};
    args.insert(args.end(), target.begin(), target.end());
    const CommandResult r = Sluice(args, milliseconds(10'000));
    if (expect_ok) {
      EXPECT_EQ(r.exit_code, 0) << r.err;
    }
    nlohmann::json j = nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
    if (expect_ok) {
      EXPECT_FALSE(j.is_discarded()) << r.out;
    }
    return r.exit_code != 0 || j.is_discarded() ? nlohmann::json::object() : j;
  }

  // Tolerates a coordinator that is restarting.
  bool WaitSessionDone(const std::string& address, milliseconds timeout) {
    return WaitUntil(
        [&] {
          return Status({"--coordinator", address}, /*expect_ok=*/false)
              .value("session_done", false);
        },
        timeout, milliseconds(250));
  }

  // Starts sluice-coordinator on `store_url`, listening on 127.0.0.1:`port`
  // ("0": a free one); returns "127.0.0.1:PORT" ("" and a test failure when
  // it does not come up). Its output goes to NAME.out/.err.
  std::string StartCoordinator(const std::string& name, const std::string& store_url,
                               const std::string& port, const std::vector<std::string>& extra) {
    std::vector<std::string> argv = {sluice::testing::BinPath("sluice-coordinator"), "--listen",
                                     "127.0.0.1:" + port, "--store", store_url};
    argv.insert(argv.end(), extra.begin(), extra.end());
    coordinator_pid_ = StartChild(argv, name);
    std::string bound;
    const std::regex listening("listening on port ([0-9]+)");
    WaitUntil(
        [&] {
          std::smatch m;
          const std::string out = sluice::testing::ReadFile(dir_.File(name + ".out"));
          if (std::regex_search(out, m, listening)) bound = m[1];
          return !bound.empty() || ProcessGone(coordinator_pid_);
        },
        milliseconds(10'000));
    EXPECT_FALSE(bound.empty()) << name << " did not start: "
                                << sluice::testing::ReadFile(dir_.File(name + ".err"));
    return bound.empty() ? std::string() : "127.0.0.1:" + bound;
  }

  // sluice-example-phase writing to this test's ledger.
  std::string ExampleExec(const std::string& extra = "") const {
    return absl::StrCat(sluice::testing::BinPath("sluice-example-phase"),
                        " --run-id {run_id} --phase-id {phase_id} --ledger ", ledger_, extra);
  }

  std::string LogDir(const std::string& worker_id) const { return dir_.File("logs-" + worker_id); }
  std::string SpoolDir(const std::string& worker_id) const { return LogDir(worker_id) + "/spool"; }

  pid_t StartWorker(const WorkerSpec& spec) {
    return StartChild({sluice::testing::BinPath("sluice-worker"),
                       "--coordinator",
                       spec.coordinator,
                       "--slots",
                       std::to_string(spec.slots),
                       "--exec",
                       spec.exec,
                       "--env",
                       "TELEMETRY_DB_ENABLED=1",
                       "--worker-id",
                       spec.worker_id,
                       "--log-dir",
                       LogDir(spec.worker_id),
                       "--grace-seconds",
                       "1",
                       "--drain-timeout",
                       absl::StrCat(spec.drain_timeout_seconds),
                       "--lease-wait-ms",
                       "1000",
                       "--log-level",
                       spec.log_level},
                      spec.name.empty() ? spec.worker_id : spec.name);
  }

  std::string Log(const std::string& name) const {
    return sluice::testing::ReadFile(dir_.File(name + ".err"));
  }
  bool LogHas(const std::string& name, const std::string& text) const {
    return absl::StrContains(Log(name), text);
  }

  // A JSONL backlog NAME.jsonl in the scratch directory: `n` phases of run `run_id` named p1-`kind`
  // ... pN-`kind`.
  std::string WriteBacklog(const std::string& name, const std::string& run_id, int n,
                           const std::string& kind) {
    std::string text;
    for (int i = 1; i <= n; ++i) {
      text += absl::StrCat("{\"run_id\": \"", run_id, "\", \"phase_id\": \"p", i, "-", kind,
                           "\", \"phase_index\": ", i, "}\n");
    }
    const std::string path = dir_.File(name + ".jsonl");
    sluice::testing::WriteFile(path, text);
    return path;
  }

  // Attempts the ledger has seen start, and end.
  size_t LedgerStarts() const { return Ledger::Read(ledger_).starts.size(); }
  size_t LedgerEnds() const { return Ledger::Read(ledger_).ends.size(); }

  // PORT of "HOST:PORT".
  static int PortOf(const std::string& address) {
    return std::stoi(address.substr(address.rfind(':') + 1));
  }

  sluice::testing::ScratchDir dir_;
  std::string ledger_;
  std::vector<pid_t> children_;
  pid_t coordinator_pid_ = 0;
  int commands_ = 0;
};

// Every phase with attempts is final with exactly one final outcome: a
// succeeded phase has one succeeded attempt, its last; a failed phase none,
// and its final outcome is its last attempt's. `attempts` in the store's
// order (by end). Returns the sum of those phases' telemetry events.
inline int64_t ExpectOneFinalOutcomeEach(StateStore& store,
                                         const std::vector<AttemptRecord>& attempts) {
  std::map<PhaseKey, std::vector<const AttemptRecord*>> by_phase;
  for (const AttemptRecord& a : attempts) by_phase[{a.run_id, a.phase_id}].push_back(&a);
  int64_t phase_events = 0;
  for (const auto& [key, list] : by_phase) {
    SCOPED_TRACE(key.run_id + "/" + key.phase_id);
    auto phase = store.GetPhase(key);
    EXPECT_TRUE(phase.ok() && phase->has_value());
    if (!phase.ok() || !phase->has_value()) continue;
    phase_events += (*phase)->telemetry_events;
    EXPECT_TRUE(IsFinal((*phase)->state)) << PhaseStateName((*phase)->state);
    int successes = 0;
    for (const AttemptRecord* a : list) successes += a->outcome == Outcome::kSucceeded ? 1 : 0;
    if ((*phase)->state == PhaseState::kSucceeded) {
      EXPECT_EQ(successes, 1);
      EXPECT_EQ(list.back()->outcome, Outcome::kSucceeded);
    } else {
      EXPECT_EQ(successes, 0);
      EXPECT_EQ((*phase)->final_outcome, list.back()->outcome);
    }
  }
  return phase_events;
}

// Attempts by (run, phase, attempt) with how often each is recorded.
inline std::map<Ledger::Key, int> AttemptKeys(const std::vector<AttemptRecord>& attempts) {
  std::map<Ledger::Key, int> keys;
  for (const AttemptRecord& a : attempts) ++keys[{a.run_id, a.phase_id, a.attempt}];
  return keys;
}

struct Accounting {
  int64_t attempts = 0;
  int64_t lost = 0;
  int64_t ledger_starts = 0;
  int64_t events = 0;
};

// The accounting every fault test ends with, between the store and the
// phases' own ledger:
//  - every phase is final with exactly one final outcome: a succeeded phase
//    has one succeeded attempt, its last; a failed phase none, and its final
//    outcome is its last attempt's;
//  - every (run, phase, attempt) is recorded once, and every attempt the
//    ledger started is recorded; an attempt recorded without a ledger start
//    must be `lost` (a grant whose reply never reached a worker);
//  - telemetry is counted once: a non-lost attempt carries exactly its
//    ledger `end` events (0 without one), a lost attempt none, and the
//    per-run and per-phase sums equal the sum over attempts.
inline Accounting ExpectStoreMatchesLedger(StateStore& store, const Ledger& ledger) {
  Accounting acc;
  auto listed = store.ListAttempts("");
  EXPECT_TRUE(listed.ok()) << listed.status();
  if (!listed.ok()) return acc;
  const std::vector<AttemptRecord>& attempts = *listed;
  acc.attempts = static_cast<int64_t>(attempts.size());
  acc.ledger_starts = static_cast<int64_t>(ledger.starts.size());

  const std::map<Ledger::Key, int> recorded = AttemptKeys(attempts);
  for (const auto& [key, n] : recorded) {
    EXPECT_EQ(n, 1) << std::get<0>(key) << "/" << std::get<1>(key) << "#" << std::get<2>(key)
                    << " recorded " << n << " times";
  }
  for (const auto& [key, n] : ledger.starts) {
    SCOPED_TRACE(absl::StrCat(std::get<0>(key), "/", std::get<1>(key), "#", std::get<2>(key)));
    EXPECT_EQ(n, 1) << "the same attempt number ran twice";
    EXPECT_TRUE(recorded.contains(key)) << "started but never recorded";
  }
  for (const AttemptRecord& a : attempts) {
    const Ledger::Key key{a.run_id, a.phase_id, a.attempt};
    SCOPED_TRACE(absl::StrCat(a.run_id, "/", a.phase_id, "#", a.attempt, " ",
                              std::string(OutcomeName(a.outcome)), " lease ", a.lease_id));
    if (a.outcome == Outcome::kLost) {
      ++acc.lost;
      EXPECT_EQ(a.telemetry_events, 0);
      continue;
    }
    EXPECT_TRUE(ledger.starts.contains(key)) << "recorded with an outcome but never started";
    const auto it = ledger.end_events.find(key);
    EXPECT_EQ(a.telemetry_events, it == ledger.end_events.end() ? 0 : it->second);
    acc.events += a.telemetry_events;
  }

  auto runs = store.ListRunStats();
  EXPECT_TRUE(runs.ok()) << runs.status();
  int64_t run_events = 0;
  int64_t run_attempts = 0;
  for (const RunStats& r : runs.ok() ? *runs : std::vector<RunStats>()) {
    run_events += r.telemetry_events;
    run_attempts += r.attempts;
  }
  EXPECT_EQ(run_events, acc.events);
  EXPECT_EQ(run_attempts, acc.attempts);
  const int64_t phase_events = ExpectOneFinalOutcomeEach(store, attempts);
  EXPECT_EQ(phase_events, acc.events);
  return acc;
}

}  // namespace sluice::e2e
