// What the SQLite store keeps between calls to stay off the parser and the
// sessions table on the lease and report path: prepared statements
// (StatementCache) and the latest session record. Each case shows a
// property a wrong cache would break: statements are reused, never shared
// while live, hold no read transaction, are finalized before close and
// bounded; a kept session follows writes by another connection.
#include <sqlite3.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "coordinator/store/sqlite/sqlite_state_store.h"
#include "coordinator/store/sqlite/sqlite_statements.h"
#include "gtest/gtest.h"
#include "tests/contract/contract_fixture.h"
#include "tests/testing/test_env.h"

namespace sluice {
namespace {

using ::sluice::contract::Session;
using ::sluice::sqlite_store::StatementCache;
using ::sluice::sqlite_store::Stmt;
using ::sluice::testing::Ok;
using ::sluice::testing::ScratchDir;

// A raw in-memory connection with a two-row table; Forget + close at the end.
class StatementCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(sqlite3_open(":memory:", &db_), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db_, "CREATE TABLE t(x); INSERT INTO t VALUES(1),(2);", nullptr, nullptr,
                           nullptr),
              SQLITE_OK);
  }
  void TearDown() override {
    StatementCache::Forget(db_);
    EXPECT_EQ(sqlite3_close(db_), SQLITE_OK);
  }
  // Statements the connection holds, live or kept.
  int Prepared() const {
    int n = 0;
    for (sqlite3_stmt* s = sqlite3_next_stmt(db_, nullptr); s != nullptr;
         s = sqlite3_next_stmt(db_, s)) {
      ++n;
    }
    return n;
  }
  sqlite3* db_ = nullptr;
};

TEST_F(StatementCacheTest, ATextIsPreparedOnceAndReusedWithFreshBindings) {
  for (int i = 0; i < 100; ++i) {
    Stmt s(db_, "SELECT x FROM t WHERE x=?");
    s.Bind(int64_t{1 + i % 2});
    ASSERT_TRUE(Ok(s.Step()));
    EXPECT_EQ(s.Int(0), 1 + i % 2);
  }
  EXPECT_EQ(Prepared(), 1);
  EXPECT_EQ(StatementCache::Kept(db_), 1u);
  // A reused statement starts with no bindings: an unbound ? is NULL.
  Stmt unbound(db_, "SELECT x FROM t WHERE x=?");
  EXPECT_FALSE(Ok(unbound.Step()));
}

TEST_F(StatementCacheTest, TwoLiveStatementsOfOneTextAreDistinctAndBothKept) {
  {
    Stmt outer(db_, "SELECT x FROM t ORDER BY x");
    ASSERT_TRUE(Ok(outer.Step()));
    Stmt inner(db_, "SELECT x FROM t ORDER BY x");
    ASSERT_TRUE(Ok(inner.Step()));
    ASSERT_TRUE(Ok(inner.Step()));
    EXPECT_EQ(inner.Int(0), 2);
    // The outer walk is not disturbed by the inner one.
    EXPECT_EQ(outer.Int(0), 1);
    ASSERT_TRUE(Ok(outer.Step()));
    EXPECT_EQ(outer.Int(0), 2);
  }
  EXPECT_EQ(StatementCache::Kept(db_), 2u);
}

TEST_F(StatementCacheTest, AStatementLeftMidResultIsResetBeforeItIsKept) {
  {
    Stmt s(db_, "SELECT x FROM t ORDER BY x");
    ASSERT_TRUE(Ok(s.Step()));  // one row of two: the statement is busy
  }
  for (sqlite3_stmt* s = sqlite3_next_stmt(db_, nullptr); s != nullptr;
       s = sqlite3_next_stmt(db_, s)) {
    EXPECT_EQ(sqlite3_stmt_busy(s), 0) << sqlite3_sql(s);
  }
  // Reused, it starts from the first row.
  Stmt again(db_, "SELECT x FROM t ORDER BY x");
  ASSERT_TRUE(Ok(again.Step()));
  EXPECT_EQ(again.Int(0), 1);
}

TEST_F(StatementCacheTest, AConnectionWithKeptStatementsClosesOnlyAfterForget) {
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(":memory:", &other), SQLITE_OK);
  { Stmt s(other, "SELECT 1"); }
  EXPECT_EQ(sqlite3_close(other), SQLITE_BUSY);  // why the store forgets first
  StatementCache::Forget(other);
  EXPECT_EQ(StatementCache::Kept(other), 0u);
  EXPECT_EQ(sqlite3_close(other), SQLITE_OK);
}

TEST_F(StatementCacheTest, KeepsAtMostTheCapOfDistinctTexts) {
  const size_t texts = StatementCache::kMaxPerConnection + 20;
  for (size_t i = 0; i < texts; ++i) {
    Stmt s(db_, absl::StrCat("SELECT ", i));
    ASSERT_TRUE(Ok(s.Step()));
  }
  EXPECT_EQ(StatementCache::Kept(db_), StatementCache::kMaxPerConnection);
  EXPECT_EQ(Prepared(), static_cast<int>(StatementCache::kMaxPerConnection));
}

TEST_F(StatementCacheTest, AFailedPrepareIsReportedAndNotKept) {
  Stmt bad(db_, "SELECT FROM nowhere");
  EXPECT_FALSE(bad.status().ok());
  EXPECT_FALSE(bad.Step().ok());
  EXPECT_EQ(StatementCache::Kept(db_), 0u);
}

std::unique_ptr<SqliteStateStore> OpenOrThrow(const std::string& path) {
  absl::StatusOr<std::unique_ptr<SqliteStateStore>> store = SqliteStateStore::Open(path);
  if (!store.ok()) throw std::runtime_error(store.status().ToString());
  return *std::move(store);
}

// The coordinator keeps the latest session between calls; `sluice session
// start --store` or a second coordinator writes through another connection.
TEST(SqliteLatestSessionTest, FollowsSessionsStartedAndEndedByAnotherConnection) {
  ScratchDir dir;
  const std::string path = dir.File("sluice.db");
  std::unique_ptr<SqliteStateStore> reader = OpenOrThrow(path);
  std::unique_ptr<SqliteStateStore> writer = OpenOrThrow(path);
  EXPECT_FALSE(Ok(reader->LatestSession()).has_value());

  Ok(writer->CreateSession(Session("s1", contract::kT0)));
  std::optional<SessionRecord> seen = Ok(reader->LatestSession());
  ASSERT_TRUE(seen.has_value());
  EXPECT_EQ(seen->session_id, "s1");
  EXPECT_EQ(seen->state, SessionState::kActive);

  Ok(writer->EndSession("s1", SessionState::kStopped, contract::kT0 + 1, "enough"));
  seen = Ok(reader->LatestSession());
  EXPECT_EQ(seen->state, SessionState::kStopped);
  EXPECT_EQ(seen->end_reason, "enough");

  // And the reader's own writes are seen by the reader at once.
  Ok(reader->CreateSession(Session("s2", contract::kT0 + 2)));
  EXPECT_EQ(Ok(reader->LatestSession())->session_id, "s2");
  Ok(reader->EndSession("s2", SessionState::kFinished, contract::kT0 + 3, "done"));
  EXPECT_EQ(Ok(reader->LatestSession())->state, SessionState::kFinished);
  EXPECT_EQ(Ok(writer->LatestSession())->state, SessionState::kFinished);
}

}  // namespace
}  // namespace sluice
