// The StateStore contract run against SqliteStateStore (in memory, in a file,
// and behind an unarmed FailingStateStore to prove the decorator transparent),
// plus what only SQLite can show: durability across reopen, and that a
// transaction failing halfway leaves nothing behind.
#include "tests/contract/state_store_contract.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

#include "coordinator/store/sqlite/sqlite_state_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/failing_state_store.h"
#include "tests/testing/forwarding_state_store.h"
#include "tests/testing/test_env.h"

namespace sluice {
namespace {

using ::sluice::contract::StoreFactory;
using ::sluice::contract::StoreFactoryName;
using ::sluice::testing::FailingStateStore;
using ::sluice::testing::ForwardingStateStore;
using ::sluice::testing::ScratchDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr int64_t kT0 = 1'700'000'000'000;
constexpr int64_t kTtl = 30'000;

std::unique_ptr<SqliteStateStore> OpenOrThrow(const std::string& path) {
  absl::StatusOr<std::unique_ptr<SqliteStateStore>> store = SqliteStateStore::Open(path);
  if (!store.ok()) throw std::runtime_error(store.status().ToString());
  return *std::move(store);
}

// Keeps the scratch directory alive until the store in it is closed: bases
// are destroyed in reverse order, so the store goes first.
struct DirHolder {
  std::unique_ptr<ScratchDir> dir = std::make_unique<ScratchDir>();
};
class FileBackedSqlite final : private DirHolder, public ForwardingStateStore {
 public:
  FileBackedSqlite()
      : DirHolder(), ForwardingStateStore(OpenOrThrow(dir->File("nested/dir/sluice.db"))) {}
};

INSTANTIATE_TEST_SUITE_P(
    Sqlite, StateStoreContractTest,
    ::testing::Values(
        StoreFactory{"Memory", [] { return std::unique_ptr<StateStore>(OpenOrThrow(":memory:")); }},
        StoreFactory{"File", [] { return std::unique_ptr<StateStore>(new FileBackedSqlite()); }},
        StoreFactory{"BehindUnarmedFailingStore",
                     [] {
                       return std::unique_ptr<StateStore>(
                           new FailingStateStore(OpenOrThrow(":memory:")));
                     }}),
    StoreFactoryName);

template <typename T>
T Ok(absl::StatusOr<T> result) {
  if (!result.ok()) throw std::runtime_error(result.status().ToString());
  return *std::move(result);
}
void Ok(const absl::Status& status) {
  if (!status.ok()) throw std::runtime_error(status.ToString());
}

PhaseSpec Spec(const std::string& run, const std::string& phase, int64_t index = 0,
               int64_t priority = 0) {
  PhaseSpec s;
  s.run_id = run;
  s.phase_id = phase;
  s.phase_index = index;
  s.priority = priority;
  return s;
}

LeaseGrant MustLease(StateStore& store, const std::string& run, const std::string& lease_id,
                     int64_t now = kT0) {
  LeaseParams p;
  p.run_id = run;
  p.worker_id = "w1";
  p.session_id = "s1";
  p.lease_id = lease_id;
  p.now_ms = now;
  p.ttl_ms = kTtl;
  std::optional<LeaseGrant> g = Ok(store.LeaseNextInRun(p));
  if (!g) throw std::runtime_error("nothing to lease in " + run);
  return *g;
}

ReportParams Report(const LeaseGrant& g, Outcome outcome, int64_t events = 0) {
  ReportParams p;
  p.report.lease_id = g.lease_id;
  p.report.epoch = g.epoch;
  p.report.worker_id = g.worker_id;
  p.report.outcome = outcome;
  p.report.telemetry_events = events;
  p.report.duration_ms = 1'000;
  p.fingerprint = "fp";
  p.now_ms = kT0 + 1'000;
  p.transition = TransitionAfterOutcome(PhaseBudget{}, outcome, true);
  return p;
}

// Runs SQL on the store's file through a second connection, the way an
// operator's sqlite3 shell would.
void ExecOnFile(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  EXPECT_EQ(rc, SQLITE_OK) << (err != nullptr ? err : "") << " in " << sql;
  sqlite3_free(err);
  sqlite3_close(db);
}

class SqliteStateStoreTest : public ::testing::Test {
 protected:
  ScratchDir dir_;
  const std::string path_ = dir_.File("state/sluice.db");
};

TEST_F(SqliteStateStoreTest, FileStoreKeepsEverythingAcrossReopen) {
  int64_t last_epoch = 0;
  LeaseGrant open_lease;
  {
    std::unique_ptr<SqliteStateStore> store = OpenOrThrow(path_);
    Ok(store->ImportPhases({Spec("r1", "p1"), Spec("r1", "p2", 1), Spec("r2", "q1", 0, 4)}));
    LeaseGrant done = MustLease(*store, "r1", "L1");
    ASSERT_EQ(Ok(store->RecordReport(Report(done, Outcome::kSucceeded, 9))).disposition,
              ReportDisposition::kAccepted);
    open_lease = MustLease(*store, "r1", "L2");
    last_epoch = open_lease.epoch;
    SessionRecord session;
    session.session_id = "s1";
    session.settings.batch_size = 3;
    session.started_at_ms = kT0;
    Ok(store->CreateSession(session));
    WorkerInfo w;
    w.worker_id = "w1";
    w.host = "h";
    w.last_seen_ms = kT0;
    Ok(store->UpsertWorker(w));
  }

  std::unique_ptr<SqliteStateStore> store = OpenOrThrow(path_);
  std::optional<PhaseRecord> p1 = Ok(store->GetPhase(PhaseKey{"r1", "p1"}));
  ASSERT_TRUE(p1.has_value());
  EXPECT_EQ(p1->state, PhaseState::kSucceeded);
  EXPECT_EQ(p1->telemetry_events, 9);
  std::optional<PhaseRecord> p2 = Ok(store->GetPhase(PhaseKey{"r1", "p2"}));
  ASSERT_TRUE(p2.has_value());
  EXPECT_EQ(p2->state, PhaseState::kLeased);
  EXPECT_EQ(p2->current_lease_id, "L2");

  PhaseCounts counts = Ok(store->CountPhases());
  EXPECT_EQ(counts.pending, 1);
  EXPECT_EQ(counts.leased, 1);
  EXPECT_EQ(counts.succeeded, 1);
  std::vector<LeaseGrant> leases = Ok(store->ListActiveLeases());
  ASSERT_EQ(leases.size(), 1u);
  EXPECT_EQ(leases[0].lease_id, "L2");
  EXPECT_EQ(leases[0].expires_at_ms, open_lease.expires_at_ms);
  std::vector<AttemptRecord> attempts = Ok(store->ListAttempts("s1"));
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0].lease_id, "L1");
  std::optional<SessionRecord> session = Ok(store->LatestSession());
  ASSERT_TRUE(session.has_value());
  EXPECT_EQ(session->session_id, "s1");
  EXPECT_EQ(session->state, SessionState::kActive);
  EXPECT_EQ(session->settings.batch_size, 3);
  ASSERT_EQ(Ok(store->ListWorkers()).size(), 1u);

  // Fencing survives the restart: epochs keep increasing, the open lease
  // can still be reported exactly once.
  EXPECT_GT(MustLease(*store, "r2", "L3").epoch, last_epoch);
  EXPECT_EQ(Ok(store->RecordReport(Report(open_lease, Outcome::kSucceeded))).disposition,
            ReportDisposition::kAccepted);
  EXPECT_EQ(Ok(store->RecordReport(Report(open_lease, Outcome::kSucceeded))).disposition,
            ReportDisposition::kDuplicate);
}

TEST_F(SqliteStateStoreTest, AStoreFromBeforeClusterIdsGetsOneOnFirstOpenAndKeepsIt) {
  // Issue #16 item 2: stores had no cluster id; one made before ids existed
  // must get one on its first open, and an id, once written, never changes.
  std::string created;
  {
    std::unique_ptr<SqliteStateStore> store = OpenOrThrow(path_);
    created = store->ClusterId();
    Ok(store->ImportPhases({Spec("r1", "p1")}));
  }
  EXPECT_THAT(created, ::testing::MatchesRegex("cl-[0-9a-f]{16}"));
  EXPECT_EQ(OpenOrThrow(path_)->ClusterId(), created) << "the id changed on reopen";

  // The old format: the same schema without the meta row.
  ExecOnFile(path_, "DELETE FROM meta WHERE key='cluster_id'");
  std::string migrated;
  {
    std::unique_ptr<SqliteStateStore> store = OpenOrThrow(path_);
    migrated = store->ClusterId();
    EXPECT_EQ(Ok(store->CountPhases()).pending, 1) << "the migration lost the backlog";
  }
  EXPECT_THAT(migrated, ::testing::MatchesRegex("cl-[0-9a-f]{16}"));
  EXPECT_EQ(OpenOrThrow(path_)->ClusterId(), migrated);
  // Two stores are two clusters.
  EXPECT_NE(OpenOrThrow(dir_.File("other.db"))->ClusterId(), migrated);
}

TEST_F(SqliteStateStoreTest, AStoreFromBeforeUnknownTelemetryGetsItsColumnsOnFirstOpen) {
  // Issue #16 item 6: attempts and runs gained a column each; a store made
  // before them must open, keep its history (as known telemetry) and record
  // unknown telemetry from then on.
  {
    std::unique_ptr<SqliteStateStore> store = OpenOrThrow(path_);
    Ok(store->ImportPhases({Spec("r1", "p1"), Spec("r1", "p2")}));
    Ok(store->RecordReport(Report(MustLease(*store, "r1", "l1"), Outcome::kSucceeded, 4)));
  }
  // The old format: the same tables without the new columns.
  ExecOnFile(path_,
             "ALTER TABLE attempts DROP COLUMN telemetry_unknown;"
             "ALTER TABLE runs DROP COLUMN unknown_telemetry_ms;");
  std::unique_ptr<SqliteStateStore> store = OpenOrThrow(path_);
  std::vector<AttemptRecord> old = Ok(store->ListAttempts(""));
  ASSERT_EQ(old.size(), 1u) << "the migration lost the history";
  EXPECT_FALSE(old[0].telemetry_unknown);
  EXPECT_EQ(old[0].telemetry_events, 4);
  ReportParams unknown = Report(MustLease(*store, "r1", "l2"), Outcome::kSucceeded);
  unknown.report.telemetry_unknown = true;
  Ok(store->RecordReport(unknown));
  std::vector<AttemptRecord> now = Ok(store->ListAttempts(""));
  ASSERT_EQ(now.size(), 2u);
  EXPECT_TRUE(now[1].telemetry_unknown);
  std::optional<RunStats> stats = Ok(store->GetRunStats("r1"));
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->run_ms, 2'000);
  EXPECT_EQ(stats->unknown_telemetry_ms, 1'000);
}

TEST_F(SqliteStateStoreTest, AStoreFromBeforeTheBestPendingColumnGetsItComputedOnFirstOpen) {
  // Issue #12: runs keep their best pending priority instead of status
  // seeking it per run; a store made before the column must open with it
  // computed from its phases, not defaulted to 0.
  {
    std::unique_ptr<SqliteStateStore> store = OpenOrThrow(path_);
    Ok(store->ImportPhases({Spec("r1", "p1", 0, 4), Spec("r1", "p2", 1, 7), Spec("r2", "q1", 0, -2),
                            Spec("r3", "x1", 0, 3)}));
    MustLease(*store, "r1", "l1");  // p2 (7) is leased: r1's best pending is p1's 4
    Ok(store->RecordReport(Report(MustLease(*store, "r3", "l2"), Outcome::kSucceeded, 1)));
  }
  ExecOnFile(path_, "ALTER TABLE runs DROP COLUMN best_pending_priority;");
  std::unique_ptr<SqliteStateStore> store = OpenOrThrow(path_);
  std::map<std::string, int64_t> best;
  for (const RunStats& r : Ok(store->ListRunStats())) best[r.run_id] = r.best_pending_priority;
  EXPECT_THAT(best, ::testing::ElementsAre(::testing::Pair("r1", 4), ::testing::Pair("r2", -2),
                                           ::testing::Pair("r3", 0)));
}

TEST_F(SqliteStateStoreTest, AStoreFromBeforeTheSessionCountsGetsThemCountedOnFirstOpen) {
  // Issue #12: a session's progress is kept in session_attempts instead of
  // being counted over its attempts on every status and lease; a store made
  // before the table must open with its history counted, not from zero.
  {
    std::unique_ptr<SqliteStateStore> store = OpenOrThrow(path_);
    Ok(store->ImportPhases({Spec("r1", "p1"), Spec("r1", "p2", 1), Spec("r1", "p3", 2)}));
    Ok(store->RecordReport(Report(MustLease(*store, "r1", "l1"), Outcome::kSucceeded, 1)));
    Ok(store->RecordReport(Report(MustLease(*store, "r1", "l2"), Outcome::kFailed)));
    Ok(store->RecordReport(Report(MustLease(*store, "r1", "l3"), Outcome::kCancelled)));
    ASSERT_EQ(Ok(store->CountSessionAttempts("s1")), 2);
  }
  ExecOnFile(path_, "DROP TABLE session_attempts;");
  {
    std::unique_ptr<SqliteStateStore> store = OpenOrThrow(path_);
    EXPECT_EQ(Ok(store->CountSessionAttempts("s1")), 2);
    Ok(store->RecordReport(Report(MustLease(*store, "r1", "l4"), Outcome::kSucceeded, 1)));
    EXPECT_EQ(Ok(store->CountSessionAttempts("s1")), 3);
  }
  // Counted once: a second open does not add the history again.
  EXPECT_EQ(Ok(OpenOrThrow(path_)->CountSessionAttempts("s1")), 3);
}

TEST_F(SqliteStateStoreTest, ImportFailingHalfwayLeavesNothingBehind) {
  std::unique_ptr<SqliteStateStore> store = OpenOrThrow(path_);
  Ok(store->ImportPhases({Spec("r1", "existing", 0, 1)}));
  ExecOnFile(path_,
             "CREATE TRIGGER poison BEFORE INSERT ON phases WHEN NEW.phase_id = 'poison' "
             "BEGIN SELECT RAISE(ABORT, 'injected failure'); END;");

  absl::StatusOr<ImportResult> result = store->ImportPhases(
      {Spec("r1", "existing", 0, 9), Spec("r1", "new1"), Spec("r2", "new2"), Spec("r2", "poison")});
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("injected failure"));

  EXPECT_EQ(Ok(store->GetPhase(PhaseKey{"r1", "existing"}))->spec.priority, 1);
  EXPECT_FALSE(Ok(store->GetPhase(PhaseKey{"r1", "new1"})).has_value());
  EXPECT_FALSE(Ok(store->GetPhase(PhaseKey{"r2", "new2"})).has_value());
  std::vector<RunStats> runs = Ok(store->ListRunStats());
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].run_id, "r1");
  EXPECT_EQ(runs[0].pending, 1);
  EXPECT_EQ(Ok(store->CountPhases()).total(), 1);
}

TEST_F(SqliteStateStoreTest, ReportFailingHalfwayLeavesNothingBehindAndRetrySucceedsOnce) {
  std::unique_ptr<SqliteStateStore> store = OpenOrThrow(path_);
  Ok(store->ImportPhases({Spec("r1", "p1")}));
  LeaseGrant g = MustLease(*store, "r1", "L1");
  // The run aggregates are updated last, after the attempt row, the lease
  // delete and the phase update: failing there is failing halfway.
  ExecOnFile(path_,
             "CREATE TRIGGER poison BEFORE UPDATE ON runs "
             "BEGIN SELECT RAISE(ABORT, 'injected failure'); END;");
  ASSERT_FALSE(store->RecordReport(Report(g, Outcome::kSucceeded, 5)).ok());

  std::optional<PhaseRecord> p = Ok(store->GetPhase(PhaseKey{"r1", "p1"}));
  EXPECT_EQ(p->state, PhaseState::kLeased);
  EXPECT_EQ(p->current_lease_id, "L1");
  EXPECT_EQ(p->telemetry_events, 0);
  EXPECT_THAT(Ok(store->ListAttempts("")), IsEmpty());
  EXPECT_EQ(Ok(store->ListActiveLeases()).size(), 1u);
  EXPECT_EQ(Ok(store->ListRunStats())[0].leased, 1);

  ExecOnFile(path_, "DROP TRIGGER poison;");
  EXPECT_EQ(Ok(store->RecordReport(Report(g, Outcome::kSucceeded, 5))).disposition,
            ReportDisposition::kAccepted);
  EXPECT_EQ(Ok(store->RecordReport(Report(g, Outcome::kSucceeded, 5))).disposition,
            ReportDisposition::kDuplicate);
  EXPECT_EQ(Ok(store->ListAttempts("")).size(), 1u);
  RunStats stats = Ok(store->ListRunStats())[0];
  EXPECT_EQ(stats.succeeded, 1);
  EXPECT_EQ(stats.attempts, 1);
  EXPECT_EQ(stats.telemetry_events, 5);
}

TEST_F(SqliteStateStoreTest, AReportFailingHalfwayInABatchLeavesOnlyItselfOut) {
  std::unique_ptr<SqliteStateStore> store = OpenOrThrow(path_);
  Ok(store->ImportPhases({Spec("r1", "p1"), Spec("r2", "p1"), Spec("r3", "p1")}));
  LeaseGrant g1 = MustLease(*store, "r1", "L1");
  LeaseGrant g2 = MustLease(*store, "r2", "L2");
  LeaseGrant g3 = MustLease(*store, "r3", "L3");
  // r2's run aggregates are written last of its report: it fails halfway,
  // after its attempt row, lease delete and phase update.
  ExecOnFile(path_,
             "CREATE TRIGGER poison BEFORE UPDATE ON runs WHEN NEW.run_id='r2' "
             "BEGIN SELECT RAISE(ABORT, 'injected failure'); END;");
  std::vector<absl::StatusOr<ReportResult>> answers =
      store->RecordReports({Report(g1, Outcome::kSucceeded, 1), Report(g2, Outcome::kSucceeded, 2),
                            Report(g3, Outcome::kSucceeded, 3)});
  ASSERT_EQ(answers.size(), 3u);
  EXPECT_EQ(Ok(answers[0]).disposition, ReportDisposition::kAccepted);
  EXPECT_FALSE(answers[1].ok());
  EXPECT_EQ(Ok(answers[2]).disposition, ReportDisposition::kAccepted);

  std::optional<PhaseRecord> p2 = Ok(store->GetPhase(PhaseKey{"r2", "p1"}));
  EXPECT_EQ(p2->state, PhaseState::kLeased);
  EXPECT_EQ(p2->current_lease_id, "L2");
  EXPECT_EQ(p2->telemetry_events, 0);
  std::vector<AttemptRecord> attempts = Ok(store->ListAttempts(""));
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_EQ(attempts[0].run_id, "r1");
  EXPECT_EQ(attempts[1].run_id, "r3");
  EXPECT_EQ(Ok(store->ListActiveLeases()).size(), 1u);
  EXPECT_EQ(Ok(store->CountPhases()).succeeded, 2);

  ExecOnFile(path_, "DROP TRIGGER poison;");
  answers = store->RecordReports({Report(g2, Outcome::kSucceeded, 2)});
  EXPECT_EQ(Ok(answers[0]).disposition, ReportDisposition::kAccepted);
  EXPECT_EQ(Ok(store->CountPhases()).succeeded, 3);
  EXPECT_EQ(Ok(store->GetRunStats("r2"))->telemetry_events, 2);
}

TEST_F(SqliteStateStoreTest, ExpiryFailingOnTheSecondLeaseKeepsTheFirst) {
  std::unique_ptr<SqliteStateStore> store = OpenOrThrow(path_);
  Ok(store->ImportPhases({Spec("r1", "p1"), Spec("r1", "p2", 1)}));
  LeaseGrant first = MustLease(*store, "r1", "L1", kT0);
  MustLease(*store, "r1", "L2", kT0 + 1);
  ExecOnFile(path_,
             "CREATE TRIGGER poison BEFORE UPDATE ON phases WHEN NEW.phase_id = 'p2' "
             "AND NEW.state != 'leased' BEGIN SELECT RAISE(ABORT, 'injected failure'); END;");
  ASSERT_FALSE(store->ExpireLeases(kT0 + 1 + kTtl, LostLeaseTransition(5)).ok());

  EXPECT_EQ(Ok(store->GetPhase(PhaseKey{"r1", "p1"}))->state, PhaseState::kLeased);
  EXPECT_EQ(Ok(store->GetPhase(PhaseKey{"r1", "p1"}))->requeues, 0);
  EXPECT_THAT(Ok(store->ListAttempts("")), IsEmpty());
  EXPECT_EQ(Ok(store->ListActiveLeases()).size(), 2u);

  ExecOnFile(path_, "DROP TRIGGER poison;");
  std::vector<ExpiredLease> expired =
      Ok(store->ExpireLeases(kT0 + 1 + kTtl, LostLeaseTransition(5)));
  ASSERT_EQ(expired.size(), 2u);
  EXPECT_EQ(expired[0].lease.lease_id, first.lease_id);
  EXPECT_EQ(Ok(store->ListRunStats())[0].attempts, 2);
}

TEST_F(SqliteStateStoreTest, OpenRejectsAStoreFromANewerSchema) {
  OpenOrThrow(path_);  // create, then close
  ExecOnFile(path_, "UPDATE meta SET value = 99 WHERE key = 'schema_version';");
  absl::StatusOr<std::unique_ptr<SqliteStateStore>> store = SqliteStateStore::Open(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition) << store.status();
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("99"));
}

TEST_F(SqliteStateStoreTest, OpenUnderAFileIsUnavailableAndNamesThePath) {
  sluice::testing::WriteFile(dir_.File("plain-file"), "x");
  const std::string bad = dir_.File("plain-file/sub/sluice.db");
  absl::StatusOr<std::unique_ptr<SqliteStateStore>> store = SqliteStateStore::Open(bad);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kUnavailable) << store.status();
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("plain-file"));
}

TEST(FailingStateStoreTest, FailsOnlyTheArmedMutatingCallBeforeForwarding) {
  FailingStateStore store(OpenOrThrow(":memory:"));
  store.FailNthMutatingCall(2);
  Ok(store.ImportPhases({Spec("r1", "p1")}));     // call 1 passes
  EXPECT_EQ(Ok(store.CountPhases()).pending, 1);  // reads are not counted
  absl::StatusOr<ImportResult> failed = store.ImportPhases({Spec("r1", "p2")});
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(Ok(store.GetPhase(PhaseKey{"r1", "p2"})).has_value());  // never forwarded
  Ok(store.ImportPhases({Spec("r1", "p2")}));                          // call 3 passes
  EXPECT_EQ(Ok(store.CountPhases()).pending, 2);
  EXPECT_EQ(store.mutating_calls(), 3);
  EXPECT_THAT(store.failed_calls(), ElementsAre("ImportPhases"));
}

// Bug: a new SQLite store was created 0644 (SQLite's default less the umask),
// and its -wal and -shm files copy that mode: any user on the box could read
// every phase's output tails, fingerprints and worker ids.
TEST(SqliteStoreFiles, ANewStoreAndItsWalAreReadableByItsOwnerOnly) {
  ScratchDir dir;
  const mode_t old_umask = ::umask(022);
  {
    std::unique_ptr<SqliteStateStore> store = OpenOrThrow(dir.File("state.db"));
    Ok(store->ImportPhases({Spec("r1", "p1")}));
    for (const std::string name : {"state.db", "state.db-wal", "state.db-shm"}) {
      struct stat st {};
      if (name != "state.db" && ::stat(dir.File(name).c_str(), &st) != 0) continue;
      ASSERT_EQ(::stat(dir.File(name).c_str(), &st), 0) << name;
      EXPECT_EQ(st.st_mode & 0777, 0600u) << name;
    }
  }
  ::umask(old_umask);
}

}  // namespace
}  // namespace sluice
