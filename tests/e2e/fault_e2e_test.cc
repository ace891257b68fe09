// Faults end to end (issue #6), with the built binaries as processes on the
// embedded SQLite store and sluice-example-phase keeping its own ledger:
//
//  - a worker SIGTERMed mid-phase drains: phases that finish within
//    --drain-timeout are reported with their real outcome, phases that outlast
//    it are stopped and reported `cancelled`, re-leased and completed by
//    another worker; the worker exits 0 with its spool delivered;
//  - a worker cut off from the coordinator (a TcpProxy, tests/testing/) for
//    longer than the lease TTL fences itself (kills its phase), the lease
//    expires as `lost`, another worker completes the phase, and the first
//    worker's report, delivered when the cut ends, is recorded as late and
//    changes nothing;
//  - the same through a silent black hole (TcpProxy::BlackHole: no reset,
//    only deadlines show it): the worker fences within the lease TTL;
//  - the coordinator is SIGKILLed mid-drain and restarted on the same SQLite
//    file and port; workers reconnect and the drain completes;
//  - a restarted worker re-delivers a spooled report the coordinator already
//    took (duplicate) and one for a lease never granted (unknown): both are
//    answered, removed from the spool and counted nowhere.
//
// Each test ends with e2e::ExpectStoreMatchesLedger (exactly one final outcome
// per phase, attempts = ledger starts, telemetry counted once).
//
// Cancelled attempts, as coordinator.cc / the stores implement them: a report
// with outcome `cancelled` moves the phase back to pending and uses the
// requeue budget (--max-requeues-per-phase), not the attempt budget
// (--max-attempts-per-phase); the SIGTERM test runs with an attempt budget of
// 1 to show it.
#include <signal.h>
#include <sqlite3.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "coordinator/store/sqlite/sqlite_state_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/e2e_support.h"
#include "tests/testing/process.h"
#include "tests/testing/tcp_proxy.h"
#include "tests/testing/test_env.h"
#include "tests/testing/wait.h"

namespace sluice {
namespace {

using ::sluice::e2e::Ledger;
using ::sluice::e2e::SpooledLeaseIds;
using ::sluice::e2e::WorkerSpec;
using ::sluice::testing::ProcessGone;
using ::sluice::testing::ReadFile;
using ::sluice::testing::TcpProxy;
using ::sluice::testing::WaitUntil;
using ::sluice::testing::WriteFile;
using std::chrono::milliseconds;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

int64_t WallMs() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string BacklogLines(const std::string& run_id, const std::vector<std::string>& phase_ids) {
  std::string text;
  for (size_t i = 0; i < phase_ids.size(); ++i) {
    text += absl::StrCat("{\"run_id\": \"", run_id, "\", \"phase_id\": \"", phase_ids[i],
                         "\", \"phase_index\": ", i, "}\n");
  }
  return text;
}

// A late report as the SQLite store keeps it (table late_reports), read
// straight from the file (StateStore::ListLateReports is the API).
struct LateReport {
  std::string lease_id;
  std::string worker_id;
  std::string outcome;
  int64_t telemetry_events = 0;
};

std::vector<LateReport> ReadLateReports(const std::string& db_path) {
  std::vector<LateReport> out;
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    ADD_FAILURE() << "cannot open " << db_path << ": " << sqlite3_errmsg(db);
    sqlite3_close(db);
    return out;
  }
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db,
                         "SELECT lease_id, worker_id, outcome, telemetry_events FROM late_reports "
                         "ORDER BY lease_id",
                         -1, &st, nullptr) != SQLITE_OK) {
    ADD_FAILURE() << "late_reports: " << sqlite3_errmsg(db);
  } else {
    auto text = [st](int col) {
      const unsigned char* t = sqlite3_column_text(st, col);
      return t == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(t));
    };
    while (sqlite3_step(st) == SQLITE_ROW) {
      out.push_back({text(0), text(1), text(2), sqlite3_column_int64(st, 3)});
    }
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out;
}

class FaultE2ETest : public e2e::ProcessTest {
 protected:
  std::string StorePath() const { return dir_.File("state.db"); }
  std::string StoreUrl() const { return "sqlite://" + StorePath(); }

  std::string StartCoordinator(const std::string& name, const std::string& port,
                               int64_t lease_ttl_ms) {
    return ProcessTest::StartCoordinator(
        name, StoreUrl(), port,
        {"--lease-ttl-ms", std::to_string(lease_ttl_ms), "--heartbeat-interval-ms", "300",
         "--max-lease-wait-ms", "1000", "--log-level", "info"});
  }

  void ImportAndStart(const std::string& address, const std::string& backlog_text,
                      const std::vector<std::string>& session_flags) {
    const std::string backlog = dir_.File("backlog.jsonl");
    WriteFile(backlog, backlog_text);
    e2e::CommandResult r = Sluice({"import", backlog, "--coordinator", address});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::vector<std::string> start = {
        "session", "start", "--coordinator", address, "--max-fingerprint-repeats", "0"};
    start.insert(start.end(), session_flags.begin(), session_flags.end());
    r = Sluice(start);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  std::unique_ptr<SqliteStateStore> OpenStore() {
    auto store = SqliteStateStore::Open(StorePath());
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }

  // One phase behind a proxy, as the link-fault tests start: a coordinator
  // (lease TTL `lease_ttl_ms`) on which `run_id`/p1-slow is imported with
  // --phase-timeout-seconds `phase_timeout_s`, a TcpProxy in front of it, and
  // a one-slot worker `worker_id` (sluice-example-phase`exec_flags`) that
  // reaches the coordinator only through the proxy. Returns once that
  // worker's phase has started; a fatal failure otherwise.
  struct OnePhaseBehindAProxy {
    std::string address;              // the coordinator, direct
    std::unique_ptr<TcpProxy> proxy;  // in front of it
    pid_t worker = 0;
    Ledger::Line start;  // the ledger's start line of the worker's phase
  };
  void StartOnePhaseBehindAProxy(const std::string& run_id, int64_t lease_ttl_ms,
                                 int phase_timeout_s, const std::string& worker_id,
                                 const std::string& exec_flags, OnePhaseBehindAProxy* out) {
    out->address = StartCoordinator("coordinator", "0", lease_ttl_ms);
    ASSERT_FALSE(out->address.empty());
    ImportAndStart(out->address, BacklogLines(run_id, {"p1-slow"}),
                   {"--phase-timeout-seconds", std::to_string(phase_timeout_s)});
    auto proxy = TcpProxy::Start(PortOf(out->address));
    ASSERT_TRUE(proxy.ok()) << proxy.status();
    out->proxy = std::move(*proxy);
    out->worker =
        StartWorker(WorkerSpec(worker_id, out->proxy->address(), ExampleExec(exec_flags)).Slots(1));
    ASSERT_TRUE(WaitUntil([&] { return LedgerStarts() == 1; }, milliseconds(10'000)));
    out->start = Ledger::Read(ledger_).lines.front();
  }

  // Ledger start lines of attempts still running (start without end).
  std::vector<Ledger::Line> Unfinished(const Ledger& ledger) const {
    std::vector<Ledger::Line> out;
    for (const Ledger::Line& line : ledger.lines) {
      if (line.start && !ledger.ends.contains(line.key)) out.push_back(line);
    }
    return out;
  }
};

TEST_F(FaultE2ETest, SigtermDrainReportsFinishedPhasesAndCancelsThoseThatOutlastTheDrainTimeout) {
  const std::string address = StartCoordinator("coordinator", "0", 5'000);
  ASSERT_FALSE(address.empty());
  // An attempt budget of 1: a cancelled attempt that counted against it would
  // fail its phase for good instead of leaving it to the next worker.
  ImportAndStart(address, BacklogLines("r-term", {"p1-slow", "p2-slow", "p3-slow", "p4-slow"}),
                 {"--phase-timeout-seconds", "120", "--max-attempts-per-phase", "1"});

  // "outlaster": phases of 30-60 s, a 1 s drain timeout. "finisher": phases
  // of 3-6 s, a 20 s drain timeout. Each fills its two slots.
  const pid_t out_pid = StartWorker(WorkerSpec("outlaster", address, ExampleExec(" --scale 20"))
                                        .Slots(2)
                                        .DrainTimeout(1)
                                        .LogLevel("info"));
  ASSERT_TRUE(WaitUntil([&] { return LedgerStarts() == 2; }, milliseconds(10'000)));
  const pid_t fin_pid = StartWorker(WorkerSpec("finisher", address, ExampleExec(" --scale 2"))
                                        .Slots(2)
                                        .DrainTimeout(20)
                                        .LogLevel("info"));
  ASSERT_TRUE(WaitUntil([&] { return LedgerStarts() == 4; }, milliseconds(10'000)));
  const std::vector<Ledger::Line> running = Unfinished(Ledger::Read(ledger_));
  ASSERT_THAT(running, SizeIs(4)) << "a phase ended before the SIGTERM; the test needs 4 running";

  const int64_t sigterm_at_ms = WallMs();
  ::kill(out_pid, SIGTERM);
  ::kill(fin_pid, SIGTERM);
  EXPECT_EQ(StopChild(out_pid, SIGTERM, milliseconds(15'000)), 0) << Log("outlaster");
  EXPECT_EQ(StopChild(fin_pid, SIGTERM, milliseconds(30'000)), 0) << Log("finisher");
  EXPECT_THAT(Log("outlaster"), HasSubstr("drain timeout"));
  // Every outcome was answered: nothing is left in either spool.
  EXPECT_THAT(SpooledLeaseIds(SpoolDir("outlaster")), IsEmpty());
  EXPECT_THAT(SpooledLeaseIds(SpoolDir("finisher")), IsEmpty());
  // The cancelled phases' processes (process groups) are gone, without an
  // end line; the finished ones wrote theirs.
  const Ledger after_drain = Ledger::Read(ledger_);
  for (const Ledger::Line& line : running) {
    EXPECT_TRUE(ProcessGone(static_cast<pid_t>(line.number))) << std::get<1>(line.key);
  }
  EXPECT_EQ(after_drain.ends.size(), 2u);

  // The phases the outlaster held are pending again: 2 succeeded, 2 pending.
  const nlohmann::json status = Status({"--coordinator", address});
  EXPECT_EQ(status["phases"].value("succeeded", -1), 2) << status.dump();
  EXPECT_EQ(status["phases"].value("pending", -1), 2) << status.dump();
  EXPECT_EQ(status["phases"].value("failed", -1), 0) << status.dump();

  // Another worker completes them.
  const pid_t completer =
      StartWorker(WorkerSpec("completer", address, ExampleExec(" --scale 0.2")));
  ASSERT_TRUE(WaitSessionDone(address, milliseconds(20'000)));
  EXPECT_EQ(StopChild(completer, SIGTERM), 0);
  EXPECT_EQ(StopChild(coordinator_pid_, SIGTERM), 0);

  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  const Ledger ledger = Ledger::Read(ledger_);
  const e2e::Accounting acc = e2e::ExpectStoreMatchesLedger(*store, ledger);
  EXPECT_EQ(acc.attempts, 6);
  EXPECT_EQ(acc.lost, 0);
  auto counts = store->CountPhases();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->succeeded, 4);

  auto attempts = store->ListAttempts("");
  ASSERT_TRUE(attempts.ok());
  std::set<std::string> cancelled_phases;
  for (const AttemptRecord& a : *attempts) {
    SCOPED_TRACE(absl::StrCat(a.phase_id, "#", a.attempt, " by ", a.worker_id));
    if (a.worker_id == "finisher") {
      EXPECT_EQ(a.outcome, Outcome::kSucceeded) << OutcomeName(a.outcome);
      EXPECT_EQ(a.attempt, 1);
      EXPECT_GT(a.telemetry_events, 0);
    } else if (a.worker_id == "outlaster") {
      EXPECT_EQ(a.outcome, Outcome::kCancelled) << OutcomeName(a.outcome);
      EXPECT_EQ(a.attempt, 1);
      EXPECT_EQ(a.telemetry_events, 0);
      // Not cancelled before the drain timeout ran out.
      EXPECT_GE(a.ended_at_ms, sigterm_at_ms + 1'000);
      cancelled_phases.insert(a.phase_id);
    } else {
      EXPECT_EQ(a.worker_id, "completer");
      EXPECT_EQ(a.outcome, Outcome::kSucceeded) << OutcomeName(a.outcome);
      EXPECT_EQ(a.attempt, 2);  // the next attempt number after the cancelled one
    }
  }
  ASSERT_THAT(cancelled_phases, SizeIs(2));
  for (const std::string& phase_id : cancelled_phases) {
    auto phase = store->GetPhase({"r-term", phase_id});
    ASSERT_TRUE(phase.ok() && phase->has_value());
    EXPECT_EQ((*phase)->state, PhaseState::kSucceeded) << phase_id;
    EXPECT_EQ((*phase)->attempts, 1) << phase_id << ": the cancelled attempt is not in the budget";
    EXPECT_EQ((*phase)->requeues, 1) << phase_id;
  }
}

TEST_F(FaultE2ETest, WorkerCutOffLongerThanTheTtlFencesItselfAndItsLateReportChangesNothing) {
  constexpr int64_t kTtlMs = 1'500;
  // Worker A reaches the coordinator only through the proxy; its phase runs
  // 15-30 s, far longer than the test.
  OnePhaseBehindAProxy setup;
  ASSERT_NO_FATAL_FAILURE(
      StartOnePhaseBehindAProxy("r-cut", kTtlMs, 120, "cut-a", " --scale 10", &setup));
  const auto& [address, proxy, a, a_start] = setup;
  ASSERT_EQ(std::get<2>(a_start.key), 1);
  const auto a_phase_pid = static_cast<pid_t>(a_start.number);

  proxy->Pause();
  // Worker B, connected directly, waits for the phase.
  const pid_t b = StartWorker(WorkerSpec("cut-b", address, ExampleExec(" --scale 0.2")).Slots(1));

  // A cannot renew its lease: once the TTL has passed since its last good
  // heartbeat it kills its own phase, so no clone runs beside the retry.
  ASSERT_TRUE(WaitUntil([&] { return ProcessGone(a_phase_pid); }, milliseconds(kTtlMs + 8'000)))
      << "worker A did not fence itself: " << Log("cut-a");
  EXPECT_THAT(Log("cut-a"), HasSubstr("could not renew leases within the TTL"));
  // The lease expires (`lost`) and B completes the phase as attempt 2.
  ASSERT_TRUE(WaitSessionDone(address, milliseconds(20'000))) << Log("cut-b");
  EXPECT_THAT(ReadLateReports(StorePath()), IsEmpty());
  // A's cancelled outcome waits in its spool while the cut lasts.
  EXPECT_THAT(SpooledLeaseIds(SpoolDir("cut-a")), SizeIs(1));

  proxy->Resume();
  ASSERT_TRUE(WaitUntil([&] { return absl::StrContains(Log("cut-a"), "answered late"); },
                        milliseconds(20'000)))
      << "A's report was not delivered after the cut: " << Log("cut-a");
  EXPECT_THAT(SpooledLeaseIds(SpoolDir("cut-a")), IsEmpty());
  // Operators see it: `sluice status` (text and JSON) and the session report.
  e2e::CommandResult st = Sluice({"status", "--json", "--coordinator", address});
  ASSERT_EQ(st.exit_code, 0) << st.err;
  EXPECT_EQ(nlohmann::json::parse(st.out).value("late_reports", -1), 1) << st.out;
  st = Sluice({"status", "--coordinator", address});
  EXPECT_THAT(st.out, HasSubstr("late reports: 1"));
  e2e::CommandResult rep = Sluice({"report", "--json", "--coordinator", address});
  ASSERT_EQ(rep.exit_code, 0) << rep.err;
  EXPECT_EQ(nlohmann::json::parse(rep.out).value("late_reports", -1), 1) << rep.out;
  rep = Sluice({"report", "--coordinator", address});
  EXPECT_THAT(rep.out, HasSubstr("late reports 1"));
  EXPECT_EQ(StopChild(a, SIGTERM), 0) << Log("cut-a");
  EXPECT_EQ(StopChild(b, SIGTERM), 0) << Log("cut-b");
  EXPECT_EQ(StopChild(coordinator_pid_, SIGTERM), 0);
  EXPECT_GE(proxy->reset(), 1);

  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  const Ledger ledger = Ledger::Read(ledger_);
  const e2e::Accounting acc = e2e::ExpectStoreMatchesLedger(*store, ledger);
  EXPECT_EQ(acc.attempts, 2);
  EXPECT_EQ(acc.lost, 1);
  EXPECT_FALSE(ledger.ends.contains(a_start.key)) << "A's phase ran to its end despite the fence";
  auto attempts = store->ListAttempts("");
  ASSERT_TRUE(attempts.ok());
  ASSERT_THAT(*attempts, SizeIs(2));
  const AttemptRecord& lost = (*attempts)[0];
  const AttemptRecord& done = (*attempts)[1];
  EXPECT_EQ(lost.attempt, 1);
  EXPECT_EQ(lost.worker_id, "cut-a");
  EXPECT_EQ(lost.outcome, Outcome::kLost) << OutcomeName(lost.outcome);
  EXPECT_EQ(done.attempt, 2);
  EXPECT_EQ(done.worker_id, "cut-b");
  EXPECT_EQ(done.outcome, Outcome::kSucceeded) << OutcomeName(done.outcome);
  auto phase = store->GetPhase({"r-cut", "p1-slow"});
  ASSERT_TRUE(phase.ok() && phase->has_value());
  EXPECT_EQ((*phase)->state, PhaseState::kSucceeded);
  EXPECT_EQ((*phase)->attempts, 1);
  EXPECT_EQ((*phase)->requeues, 1);
  EXPECT_EQ((*phase)->telemetry_events, done.telemetry_events);

  // The late report is kept for the record only, as A sent it.
  const std::vector<LateReport> late = ReadLateReports(StorePath());
  ASSERT_THAT(late, SizeIs(1));
  EXPECT_EQ(late[0].lease_id, lost.lease_id);
  EXPECT_EQ(late[0].worker_id, "cut-a");
  EXPECT_EQ(late[0].outcome, "cancelled");
  EXPECT_THAT(Log("coordinator"), HasSubstr("disposition=late"));
}

// A black hole (packets dropped, no reset) shows only through deadlines. The
// worker bounds each heartbeat RPC by the lease TTL (HeartbeatTimeoutMs in
// worker_agent.h) and fences once the TTL has passed since it *sent* its last
// answered heartbeat, which is no later than the coordinator's expiry of the
// lease (same host, same clock). What the test can assert: the phase is gone
// within the TTL (plus scheduling slack) of the cut, where a fixed 10 s RPC
// deadline took over 10 s; and it is gone by the time the retry has started
// elsewhere (plus the time a SIGTERM takes to end it).
TEST_F(FaultE2ETest, WorkerInABlackHoleFencesItselfWithinTheLeaseTtl) {
  constexpr int64_t kTtlMs = 2'000;
  constexpr int64_t kSlackMs = 1'500;  // polling, SIGTERM, a loaded 2-core CI box
  OnePhaseBehindAProxy setup;
  ASSERT_NO_FATAL_FAILURE(
      StartOnePhaseBehindAProxy("r-hole", kTtlMs, 120, "hole-a", " --scale 10", &setup));
  const auto& [address, proxy, a, a_start] = setup;
  const auto a_phase_pid = static_cast<pid_t>(a_start.number);

  const int64_t cut_ms = WallMs();
  proxy->BlackHole();
  const pid_t b = StartWorker(WorkerSpec("hole-b", address, ExampleExec(" --scale 0.2")).Slots(1));

  // Polls both events; "gone" is read before "started", so gone_ms <=
  // started_ms when A was gone before B's attempt began.
  int64_t gone_ms = 0;
  int64_t b_started_ms = 0;
  WaitUntil(
      [&] {
        if (gone_ms == 0 && ProcessGone(a_phase_pid)) gone_ms = WallMs();
        if (b_started_ms == 0 && LedgerStarts() == 2) b_started_ms = WallMs();
        return gone_ms != 0 && b_started_ms != 0;
      },
      milliseconds(kTtlMs + 15'000), milliseconds(5));
  ASSERT_NE(gone_ms, 0) << "worker A did not fence itself: " << Log("hole-a");
  RecordProperty("fenced_after_cut_ms", std::to_string(gone_ms - cut_ms));
  if (b_started_ms != 0)
    RecordProperty("retry_started_after_cut_ms", std::to_string(b_started_ms - cut_ms));
  EXPECT_LE(gone_ms - cut_ms, kTtlMs + kSlackMs)
      << "A fenced " << gone_ms - cut_ms << " ms after the cut: " << Log("hole-a");
  EXPECT_THAT(Log("hole-a"), HasSubstr("could not renew leases within the TTL"));
  EXPECT_THAT(Log("hole-a"), HasSubstr("DEADLINE_EXCEEDED"));
  ASSERT_NE(b_started_ms, 0) << "the phase was not re-leased: " << Log("hole-b");
  EXPECT_LE(gone_ms, b_started_ms + 250) << "A's phase outlived the start of the retry";
  EXPECT_EQ(proxy->reset(), 0) << "a black hole resets nothing";

  ASSERT_TRUE(WaitSessionDone(address, milliseconds(20'000))) << Log("hole-b");
  // The link comes back: A's held and spooled report arrives, late.
  proxy->Resume();
  ASSERT_TRUE(WaitUntil([&] { return absl::StrContains(Log("hole-a"), "answered late"); },
                        milliseconds(30'000)))
      << "A's report was not delivered after the black hole: " << Log("hole-a");
  EXPECT_EQ(StopChild(a, SIGTERM), 0) << Log("hole-a");
  EXPECT_EQ(StopChild(b, SIGTERM), 0) << Log("hole-b");
  EXPECT_EQ(StopChild(coordinator_pid_, SIGTERM), 0);

  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  const Ledger ledger = Ledger::Read(ledger_);
  const e2e::Accounting acc = e2e::ExpectStoreMatchesLedger(*store, ledger);
  EXPECT_EQ(acc.attempts, 2);
  EXPECT_EQ(acc.lost, 1);
  EXPECT_FALSE(ledger.ends.contains(a_start.key)) << "A's phase ran to its end despite the fence";
}

TEST_F(FaultE2ETest, CoordinatorKilledMidDrainRestartsOnTheSameSqliteFileAndNothingIsLost) {
  const std::string address = StartCoordinator("coordinator1", "0", 4'000);
  ASSERT_FALSE(address.empty());
  // 20 phases: 8 slow and 6 ok succeed, 2 flaky succeed on their second
  // attempt, 4 importerr fail twice each (max_attempts_per_phase 2).
  std::string backlog = BacklogLines("r-slow", {"p1-slow", "p2-slow", "p3-slow", "p4-slow",
                                                "p5-slow", "p6-slow", "p7-slow", "p8-slow"});
  backlog += BacklogLines("r-ok", {"p1-ok", "p2-ok", "p3-ok", "p4-ok"});
  backlog +=
      BacklogLines("r-imp", {"p1-importerr", "p2-importerr", "p3-importerr", "p4-importerr"});
  backlog += BacklogLines("r-mix", {"p1-flaky", "p2-flaky", "p3-ok", "p4-ok"});
  ImportAndStart(address, backlog, {"--phase-timeout-seconds", "10"});
  const pid_t w1 = StartWorker(WorkerSpec("w1", address, ExampleExec(" --scale 0.8")));
  const pid_t w2 = StartWorker(WorkerSpec("w2", address, ExampleExec(" --scale 0.8")));

  ASSERT_TRUE(WaitUntil([&] { return LedgerEnds() >= 4; }, milliseconds(15'000)));
  ASSERT_TRUE(KillChild(coordinator_pid_));
  const size_t ends_at_kill = LedgerEnds();
  std::this_thread::sleep_for(milliseconds(500));  // workers see it gone

  const std::string port = std::to_string(PortOf(address));
  ASSERT_EQ(StartCoordinator("coordinator2", port, 4'000), address);
  ASSERT_TRUE(WaitSessionDone(address, milliseconds(40'000)))
      << "drain did not complete after the restart";
  EXPECT_GT(LedgerEnds(), ends_at_kill) << "nothing ran after the restart";

  EXPECT_EQ(StopChild(w1, SIGTERM), 0);
  EXPECT_EQ(StopChild(w2, SIGTERM), 0);
  EXPECT_EQ(StopChild(coordinator_pid_, SIGTERM), 0);
  EXPECT_THAT(SpooledLeaseIds(SpoolDir("w1")), IsEmpty());
  EXPECT_THAT(SpooledLeaseIds(SpoolDir("w2")), IsEmpty());

  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  auto counts = store->CountPhases();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->pending + counts->leased, 0);
  EXPECT_EQ(counts->succeeded, 16);
  EXPECT_EQ(counts->failed, 4);
  const e2e::Accounting acc = e2e::ExpectStoreMatchesLedger(*store, Ledger::Read(ledger_));
  EXPECT_GT(acc.events, 0);
  std::cout << "attempts=" << acc.attempts << " lost=" << acc.lost
            << " ledger_starts=" << acc.ledger_starts << " events=" << acc.events << "\n";
}

TEST_F(FaultE2ETest, RestartedWorkerRedeliversADuplicateAndAnUnknownLeaseReportCountedNowhere) {
  // The phase runs 0.75-1.5 s; the link is cut while it runs, so its outcome
  // waits in the spool, where the test copies it before the cut ends.
  OnePhaseBehindAProxy setup;
  ASSERT_NO_FATAL_FAILURE(
      StartOnePhaseBehindAProxy("r-dup", 20'000, 60, "w-dup", " --scale 0.5", &setup));
  const auto& [address, proxy, first, first_start] = setup;
  proxy->Pause();
  std::vector<std::string> spooled;
  ASSERT_TRUE(WaitUntil(
      [&] {
        spooled = SpooledLeaseIds(SpoolDir("w-dup"));
        return !spooled.empty();
      },
      milliseconds(10'000)));
  ASSERT_THAT(spooled, SizeIs(1));
  const std::string lease_id = spooled[0];
  const std::string saved = ReadFile(SpoolDir("w-dup") + "/" + lease_id + ".json");
  proxy->Resume();
  ASSERT_TRUE(WaitSessionDone(address, milliseconds(15'000)));
  ASSERT_TRUE(
      WaitUntil([&] { return SpooledLeaseIds(SpoolDir("w-dup")).empty(); }, milliseconds(5'000)));
  EXPECT_EQ(StopChild(first, SIGTERM), 0);

  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  auto before = store->ListAttempts("");
  ASSERT_TRUE(before.ok());
  ASSERT_THAT(*before, SizeIs(1));
  EXPECT_EQ((*before)[0].lease_id, lease_id);
  EXPECT_EQ((*before)[0].outcome, Outcome::kSucceeded);
  const int64_t events = (*before)[0].telemetry_events;
  EXPECT_GT(events, 0);

  // The already-answered report goes back into the spool, with a forged one
  // for a lease that was never granted; the restarted worker delivers both.
  WriteFile(SpoolDir("w-dup") + "/" + lease_id + ".json", saved);
  nlohmann::json forged = nlohmann::json::parse(saved);
  forged["lease_id"] = "l-never-granted";
  WriteFile(SpoolDir("w-dup") + "/l-never-granted.json", forged.dump());
  const pid_t second = StartWorker(WorkerSpec("w-dup", address, ExampleExec(" --scale 0.5"))
                                       .Slots(1)
                                       .Name("w-dup-restarted")
                                       .LogLevel("info"));
  ASSERT_TRUE(
      WaitUntil([&] { return SpooledLeaseIds(SpoolDir("w-dup")).empty(); }, milliseconds(10'000)))
      << Log("w-dup-restarted");
  EXPECT_EQ(StopChild(second, SIGTERM), 0);
  EXPECT_EQ(StopChild(coordinator_pid_, SIGTERM), 0);
  const std::string worker_log = Log("w-dup-restarted");
  EXPECT_THAT(worker_log, HasSubstr("re-delivering 2 outcome(s)"));
  EXPECT_THAT(worker_log, HasSubstr("report lease=" + lease_id + " answered duplicate"));
  EXPECT_THAT(worker_log, HasSubstr("report lease=l-never-granted answered unknown_lease"));
  const std::string coordinator_log = Log("coordinator");
  EXPECT_THAT(coordinator_log, HasSubstr("disposition=duplicate"));
  EXPECT_THAT(coordinator_log, HasSubstr("disposition=unknown_lease"));

  // Counted once: the same single attempt, the same events, no late record.
  const e2e::Accounting acc = e2e::ExpectStoreMatchesLedger(*store, Ledger::Read(ledger_));
  EXPECT_EQ(acc.attempts, 1);
  EXPECT_EQ(acc.events, events);
  auto phase = store->GetPhase({"r-dup", "p1-slow"});
  ASSERT_TRUE(phase.ok() && phase->has_value());
  EXPECT_EQ((*phase)->attempts, 1);
  EXPECT_EQ((*phase)->requeues, 0);
  EXPECT_EQ((*phase)->telemetry_events, events);
  EXPECT_THAT(ReadLateReports(StorePath()), IsEmpty());
}

}  // namespace
}  // namespace sluice
