// What a lease+report cycle costs on Redis (#12), and the cache that makes it
// cheap: the latest session is read from Redis only when a reply says it
// changed, yet a session written by another process is seen.
#include "tests/contract/redis_store_test_helpers.h"

namespace sluice::redis_test {
namespace {

// Calls of `command` (lower case, e.g. "evalsha") since the last CONFIG
// RESETSTAT, from INFO commandstats.
int64_t Calls(const RedisServer& server, const std::string& command) {
  const std::string stats = Ok(server.Command({"INFO", "commandstats"}));
  const std::string key = absl::StrCat("cmdstat_", command, ":calls=");
  const size_t at = stats.find(key);
  if (at == std::string::npos) return 0;
  int64_t n = 0;
  const size_t from = at + key.size();
  EXPECT_TRUE(absl::SimpleAtoi(stats.substr(from, stats.find(',', from) - from), &n));
  return n;
}

std::unique_ptr<RedisStateStore> OpenCaching(const RedisServer& server, const std::string& ns) {
  RedisOptions o = Ok(ParseRedisUrl(server.Url(ns)));
  o.session_cache_max_age = absl::Hours(1);  // only a reply or a write may refresh it
  return Ok(RedisStateStore::Open(o));
}

SessionRecord Active(const std::string& id) {
  SessionRecord s;
  s.session_id = id;
  s.started_at_ms = kT0;
  return s;
}

TEST(RedisLatestSessionTest, RepeatedReadsCostOneScript) {
  std::unique_ptr<RedisServer> server = StartOrThrow();
  std::unique_ptr<RedisStateStore> store = OpenCaching(*server, "sluice");
  Ok(store->CreateSession(Active("s1")));
  ASSERT_TRUE(server->Command({"CONFIG", "RESETSTAT"}).ok());
  for (int i = 0; i < 10; ++i) EXPECT_EQ(Ok(store->LatestSession())->session_id, "s1");
  EXPECT_EQ(Calls(*server, "evalsha"), 1);
}

TEST(RedisLatestSessionTest, ASessionWrittenByAnotherStoreIsSeenAfterTheNextLease) {
  RedisServer& server = SharedServer();
  const std::string ns = FreshNamespace("gen_lease");
  std::unique_ptr<RedisStateStore> coordinator = OpenCaching(server, ns);
  std::unique_ptr<RedisStateStore> cli = OpenStore(server, ns);  // another process
  Ok(coordinator->ImportPhases({Spec("r1", "p1")}));
  EXPECT_FALSE(Ok(coordinator->LatestSession()).has_value());

  Ok(cli->CreateSession(Active("s1")));
  // Its next lease's reply carries the new generation, also when nothing is
  // granted.
  EXPECT_FALSE(Ok(coordinator->LeaseNextInRun(Lease("no-such-run", "L0"))).has_value());
  std::optional<SessionRecord> seen = Ok(coordinator->LatestSession());
  ASSERT_TRUE(seen.has_value());
  EXPECT_EQ(seen->session_id, "s1");
  EXPECT_EQ(seen->state, SessionState::kActive);

  Ok(cli->EndSession("s1", SessionState::kStopped, kT0 + 5, "operator"));
  MustLease(*coordinator, Lease("r1", "L1"));
  EXPECT_EQ(Ok(coordinator->LatestSession())->state, SessionState::kStopped);
}

TEST(RedisLatestSessionTest, ASessionWrittenByAnotherStoreIsSeenAfterTheNextReport) {
  RedisServer& server = SharedServer();
  const std::string ns = FreshNamespace("gen_report");
  std::unique_ptr<RedisStateStore> coordinator = OpenCaching(server, ns);
  std::unique_ptr<RedisStateStore> cli = OpenStore(server, ns);
  Ok(coordinator->ImportPhases({Spec("r1", "p1"), Spec("r1", "p2")}));
  Ok(coordinator->CreateSession(Active("s1")));
  const LeaseGrant g1 = MustLease(*coordinator, Lease("r1", "L1"));
  const LeaseGrant g2 = MustLease(*coordinator, Lease("r1", "L2"));
  EXPECT_EQ(Ok(coordinator->LatestSession())->state, SessionState::kActive);

  Ok(cli->EndSession("s1", SessionState::kStopped, kT0 + 5, "operator"));
  Ok(coordinator->RecordReport(Report(g1, Outcome::kSucceeded)));
  EXPECT_EQ(Ok(coordinator->LatestSession())->state, SessionState::kStopped);

  // The batched (pipelined) reports carry it too.
  SessionRecord s2 = Active("s2");
  s2.started_at_ms = kT0 + 10;
  Ok(cli->CreateSession(s2));
  const std::vector<absl::StatusOr<ReportResult>> batch =
      coordinator->RecordReports({Report(g2, Outcome::kSucceeded)});
  ASSERT_TRUE(batch[0].ok()) << batch[0].status();
  EXPECT_EQ(Ok(coordinator->LatestSession())->session_id, "s2");
}

TEST(RedisLatestSessionTest, OwnWritesAndANewFencingEpochAreSeenAtOnce) {
  RedisServer& server = SharedServer();
  const std::string ns = FreshNamespace("gen_own");
  std::unique_ptr<RedisStateStore> coordinator = OpenCaching(server, ns);
  std::unique_ptr<RedisStateStore> other_leader = OpenStore(server, ns);
  EXPECT_FALSE(Ok(coordinator->LatestSession()).has_value());
  Ok(coordinator->CreateSession(Active("s1")));
  EXPECT_EQ(Ok(coordinator->LatestSession())->state, SessionState::kActive);
  Ok(coordinator->EndSession("s1", SessionState::kFinished, kT0 + 1, "done"));
  EXPECT_EQ(Ok(coordinator->LatestSession())->state, SessionState::kFinished);

  // Another coordinator led meanwhile and started a session; this one takes
  // over again (a new epoch) before any lease or report.
  SessionRecord s2 = Active("s2");
  s2.started_at_ms = kT0 + 10;
  Ok(other_leader->CreateSession(s2));
  coordinator->SetFencingEpoch(WriteFence::kNeverLeader);
  EXPECT_EQ(Ok(coordinator->LatestSession())->session_id, "s2");
}

TEST(RedisLatestSessionTest, AnIdleStoreSeesAnotherStoresSessionAfterTheMaxAge) {
  RedisServer& server = SharedServer();
  const std::string ns = FreshNamespace("gen_idle");
  RedisOptions o = Ok(ParseRedisUrl(server.Url(ns)));
  o.session_cache_max_age = absl::ZeroDuration();  // every call reads
  std::unique_ptr<RedisStateStore> coordinator = Ok(RedisStateStore::Open(o));
  std::unique_ptr<RedisStateStore> cli = OpenStore(server, ns);
  EXPECT_FALSE(Ok(coordinator->LatestSession()).has_value());
  Ok(cli->CreateSession(Active("s1")));
  EXPECT_EQ(Ok(coordinator->LatestSession())->session_id, "s1");
}

TEST(RedisLatestSessionTest, NegativeMaxAgeIsRejected) {
  RedisOptions o;
  o.session_cache_max_age = absl::Milliseconds(-1);
  EXPECT_EQ(ValidateRedisOptions(o).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sluice::redis_test
