// RedisStateStore against real redis-server processes: the shared contract
// suite, URL forms, and what only Redis can show about failures: restarts,
// outages, script errors and the scripts' integrity checks. The randomized
// differential run against SqliteStateStore is in redis_differential_test.cc,
// the remaining Redis-only operations in redis_store_ops_test.cc.
#include "tests/contract/redis_store_test_helpers.h"

namespace sluice::redis_test {
namespace {

INSTANTIATE_TEST_SUITE_P(Redis, StateStoreContractTest,
                         ::testing::Values(StoreFactory{
                             "Redis",
                             [] {
                               return std::unique_ptr<StateStore>(
                                   OpenStore(SharedServer(), FreshNamespace("contract")));
                             }}),
                         StoreFactoryName);

// ---------------------------------------------------------------------------
// URL forms

TEST(RedisUrlTest, ParsesTcpFormWithPasswordDbAndNamespace) {
  RedisOptions o = Ok(ParseRedisUrl("redis://:s%40cret@redis.internal:6380/3?namespace=prod-1"));
  EXPECT_EQ(o.host, "redis.internal");
  EXPECT_EQ(o.port, 6380);
  EXPECT_EQ(o.password, "s@cret");
  EXPECT_EQ(o.username, "");
  EXPECT_EQ(o.db, 3);
  EXPECT_EQ(o.key_namespace, "prod-1");
  EXPECT_TRUE(o.unix_socket.empty());
}

TEST(RedisUrlTest, DefaultsPortDbAndNamespace) {
  RedisOptions o = Ok(ParseRedisUrl("redis://localhost"));
  EXPECT_EQ(o.host, "localhost");
  EXPECT_EQ(o.port, 6379);
  EXPECT_EQ(o.db, 0);
  EXPECT_EQ(o.key_namespace, "sluice");
  EXPECT_EQ(o.password, "");
}

TEST(RedisUrlTest, ParsesUserAndIpv6) {
  RedisOptions o = Ok(ParseRedisUrl("redis://drain:pw@[::1]:7000"));
  EXPECT_EQ(o.host, "::1");
  EXPECT_EQ(o.port, 7000);
  EXPECT_EQ(o.username, "drain");
  EXPECT_EQ(o.password, "pw");
}

TEST(RedisUrlTest, ParsesUnixForm) {
  RedisOptions o = Ok(ParseRedisUrl("redis+unix:///run/redis/redis.sock?db=2&namespace=a_b"));
  EXPECT_EQ(o.unix_socket, "/run/redis/redis.sock");
  EXPECT_EQ(o.db, 2);
  EXPECT_EQ(o.key_namespace, "a_b");
  o = Ok(ParseRedisUrl("redis+unix:///tmp/r.sock?password=x"));
  EXPECT_EQ(o.password, "x");
}

TEST(RedisUrlTest, RejectsBadUrlsNamingTheForms) {
  for (const char* url :
       {"redis://", "redis://host:0", "redis://host:99999", "redis://host/x", "redis+unix://rel",
        "redis://host?namespace=a:b", "redis://host?namespace=", "redis://host?bogus=1",
        "redis://host/1?db=2", "redis://h?namespace=x&nokey", "http://host"}) {
    absl::StatusOr<RedisOptions> o = ParseRedisUrl(url);
    ASSERT_FALSE(o.ok()) << url;
    EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument) << url;
    EXPECT_THAT(o.status().message(), HasSubstr("redis+unix:///PATH")) << url;
  }
}

TEST(RedisUrlTest, StoreFactoryOpensRedisUrls) {
  RedisServer& server = SharedServer();
  std::unique_ptr<StateStore> store = Ok(OpenStateStore(server.Url(FreshNamespace("factory"))));
  PhaseSpec spec;
  spec.run_id = "r";
  spec.phase_id = "p";
  EXPECT_EQ(Ok(store->ImportPhases({spec})).inserted, 1);
  EXPECT_EQ(Ok(store->CountPhases()).pending, 1);
}

// ---------------------------------------------------------------------------
// Redis-only behaviour

TEST(RedisStoreTest, SurvivesRedisRestartAndReconnects) {
  std::unique_ptr<RedisServer> server = StartOrThrow({.appendonly = true, .requirepass = ""});
  std::unique_ptr<RedisStateStore> store = OpenStore(*server);
  Ok(store->ImportPhases({Spec("r1", "p1"), Spec("r1", "p2")}));
  const LeaseGrant g = MustLease(*store, Lease("r1", "L1"));

  ASSERT_TRUE(server->Stop().ok());
  ASSERT_TRUE(server->Restart().ok());

  // The server closed our idle connection; the store notices before sending
  // and reconnects (loading the scripts again) without failing a call.
  ReportResult r = Ok(store->RecordReport(Report(g, Outcome::kSucceeded)));
  EXPECT_EQ(r.disposition, ReportDisposition::kAccepted);
  std::optional<LeaseGrant> g2 = Ok(store->LeaseNextInRun(Lease("r1", "L2")));
  ASSERT_TRUE(g2.has_value());
  EXPECT_EQ(g2->phase_id, "p2");
  EXPECT_GT(g2->epoch, g.epoch) << "the epoch counter survived the restart";
  EXPECT_EQ(Ok(store->CountPhases()).succeeded, 1);
}

TEST(RedisStoreTest, UnavailableWhileRedisIsDownAndNothingHalfApplied) {
  std::unique_ptr<RedisServer> server = StartOrThrow({.appendonly = true, .requirepass = ""});
  std::unique_ptr<RedisStateStore> store = OpenStore(*server);
  Ok(store->ImportPhases({Spec("r1", "p1"), Spec("r1", "p2"), Spec("r2", "p1")}));
  SessionRecord session;
  session.session_id = "s1";
  session.started_at_ms = kT0;
  Ok(store->CreateSession(session));
  const LeaseGrant g = MustLease(*store, Lease("r1", "L1"));
  const std::string before = Snapshot(*store);

  ASSERT_TRUE(server->Kill().ok());
  auto unavailable = [](const absl::Status& s) {
    return s.code() == absl::StatusCode::kUnavailable;
  };
  // Twice each: the first call finds the connection dead, the next ones are
  // refused by the reconnect backoff or a failed connect; all Unavailable.
  for (int round = 0; round < 2; ++round) {
    EXPECT_PRED1(unavailable, store->ImportPhases({Spec("r2", "p2")}).status());
    EXPECT_PRED1(unavailable, store->LeaseNextInRun(Lease("r1", "L2")).status());
    EXPECT_PRED1(unavailable, store->RecordReport(Report(g, Outcome::kFailed)).status());
    EXPECT_PRED1(unavailable, store->RenewLeases("w1", {"L1"}, kT0 + 1, kTtl).status());
    EXPECT_PRED1(unavailable,
                 store->ExpireLeases(kT0 + kTtl * 10, LostLeaseTransition(5)).status());
    EXPECT_PRED1(unavailable, store->EndSession("s1", SessionState::kStopped, kT0, "x"));
    EXPECT_PRED1(unavailable, store->UpsertWorker(Worker("w9")));
    EXPECT_PRED1(unavailable, store->ListRunStats().status());
    EXPECT_PRED1(unavailable, store->GetPhase({"r1", "p1"}).status());
    EXPECT_PRED1(unavailable, store->CountSessionAttempts("s1").status());
    absl::Status down = store->CountPhases().status();
    EXPECT_PRED1(unavailable, down);
    EXPECT_THAT(down.message(), HasSubstr(server->socket_path()));
  }

  ASSERT_TRUE(server->Restart().ok());
  absl::StatusOr<PhaseCounts> counts = Eventually([&] { return store->CountPhases(); });
  ASSERT_TRUE(counts.ok()) << counts.status();
  EXPECT_EQ(Snapshot(*store), before) << "a call made while Redis was down changed something";
  EXPECT_EQ(Ok(store->RecordReport(Report(g, Outcome::kSucceeded))).disposition,
            ReportDisposition::kAccepted);
}

TEST(RedisStoreTest, ANamespaceFromBeforeClusterIdsGetsOneOnFirstOpenAndKeepsIt) {
  // Issue #16 item 2: stores had no cluster id; a namespace made before ids
  // existed must get one on its first open, and an id never changes.
  RedisServer& server = SharedServer();
  const std::string ns = FreshNamespace("cluster");
  const std::string created = OpenStore(server, ns)->ClusterId();
  EXPECT_THAT(created, ::testing::MatchesRegex("cl-[0-9a-f]{16}"));
  Ok(OpenStore(server, ns)->ImportPhases({Spec("r1", "p1")}));
  EXPECT_EQ(OpenStore(server, ns)->ClusterId(), created) << "the id changed on reopen";

  // The old format: the namespace without the id field.
  ASSERT_TRUE(server.Command({"HDEL", ns + ":meta", "cluster_id"}).ok());
  std::unique_ptr<RedisStateStore> store = OpenStore(server, ns);
  const std::string migrated = store->ClusterId();
  EXPECT_THAT(migrated, ::testing::MatchesRegex("cl-[0-9a-f]{16}"));
  EXPECT_EQ(Ok(store->CountPhases()).pending, 1) << "the migration lost the backlog";
  EXPECT_EQ(OpenStore(server, ns)->ClusterId(), migrated);
  EXPECT_NE(OpenStore(server, FreshNamespace("cluster"))->ClusterId(), migrated);
}

TEST(RedisStoreTest, ScriptErrorMidCallLeavesNothingBehind) {
  // Regression guard for the rule "validate before the first write": Redis
  // does not roll back a script that fails after writing.
  std::unique_ptr<RedisServer> server = StartOrThrow();
  std::unique_ptr<RedisStateStore> store = OpenStore(*server);
  Ok(store->ImportPhases({Spec("r1", "p1"), Spec("r2", "p1")}));
  Ok(store->LeaseNextInRun(Lease("r1", "L1", kT0)));
  Ok(store->LeaseNextInRun(Lease("r2", "L2", kT0 + 1)));
  // Corrupt the phase behind the second lease to expire: the first one alone
  // would be fine, but the call must apply whole or not at all.
  ASSERT_TRUE(server->Command({"DEL", "sluice:phase:2:r2:p1"}).ok());
  const std::string before = Show(store->ListActiveLeases()) + Show(store->ListAttempts("")) +
                             Show(store->GetPhase({"r1", "p1"})) + Show(store->ListRunStats());

  absl::StatusOr<std::vector<ExpiredLease>> expired =
      store->ExpireLeases(kT0 + kTtl * 2, LostLeaseTransition(5));
  ASSERT_FALSE(expired.ok());
  EXPECT_EQ(expired.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(expired.status().message(), HasSubstr("L2"));
  EXPECT_EQ(Show(store->ListActiveLeases()) + Show(store->ListAttempts("")) +
                Show(store->GetPhase({"r1", "p1"})) + Show(store->ListRunStats()),
            before);
}

// The scripts' integrity checks (INTERNAL replies) come before their first
// write, like every other refusal: a corrupt keyspace is reported, never
// made worse.
TEST(RedisStoreTest, LeaseRefusesALeaseIdAlreadyInUseAndWritesNothing) {
  std::unique_ptr<RedisServer> server = StartOrThrow();
  std::unique_ptr<RedisStateStore> store = OpenStore(*server);
  Ok(store->ImportPhases({Spec("r1", "p1"), Spec("r1", "p2")}));
  Ok(store->LeaseNextInRun(Lease("r1", "L1", kT0)));
  const std::string before = Show(store->ListActiveLeases()) + Show(store->ListRunStats()) +
                             Show(store->GetPhase({"r1", "p2"}));
  absl::StatusOr<std::optional<LeaseGrant>> again = store->LeaseNextInRun(Lease("r1", "L1", kT0));
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(again.status().message(), HasSubstr("L1"));
  EXPECT_EQ(Show(store->ListActiveLeases()) + Show(store->ListRunStats()) +
                Show(store->GetPhase({"r1", "p2"})),
            before);
}

TEST(RedisStoreTest, LeaseRefusesAPendingSetNamingAMissingPhase) {
  std::unique_ptr<RedisServer> server = StartOrThrow();
  std::unique_ptr<RedisStateStore> store = OpenStore(*server);
  Ok(store->ImportPhases({Spec("r1", "p1")}));
  ASSERT_TRUE(server->Command({"DEL", "sluice:phase:2:r1:p1"}).ok());
  const std::string before = Show(store->ListActiveLeases()) + Show(store->ListRunStats());
  absl::StatusOr<std::optional<LeaseGrant>> lease = store->LeaseNextInRun(Lease("r1", "L1", kT0));
  ASSERT_FALSE(lease.ok());
  EXPECT_EQ(lease.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(lease.status().message(), HasSubstr("missing phase p1"));
  EXPECT_EQ(Show(store->ListActiveLeases()) + Show(store->ListRunStats()), before);
}

TEST(RedisStoreTest, ReportRefusesALeaseWhoseAttemptIsAlreadyRecorded) {
  std::unique_ptr<RedisServer> server = StartOrThrow();
  std::unique_ptr<RedisStateStore> store = OpenStore(*server);
  Ok(store->ImportPhases({Spec("r1", "p1")}));
  const LeaseGrant g = *Ok(store->LeaseNextInRun(Lease("r1", "L1", kT0)));
  ASSERT_TRUE(server->Command({"HSET", "sluice:attempt:L1", "outcome", "failed"}).ok());
  const std::string before = Show(store->ListActiveLeases()) + Show(store->ListRunStats()) +
                             Show(store->GetPhase({"r1", "p1"})) + Show(store->ListAttempts(""));
  absl::StatusOr<ReportResult> report = store->RecordReport(Report(g, Outcome::kSucceeded));
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(report.status().message(), HasSubstr("already recorded"));
  EXPECT_EQ(Show(store->ListActiveLeases()) + Show(store->ListRunStats()) +
                Show(store->GetPhase({"r1", "p1"})) + Show(store->ListAttempts("")),
            before);
}

// The run's and the phase's sums are decimal strings added exactly in the
// scripts (add_dec), beyond 2^53 too, where a Lua number would round:
// 2^53 + 1 is not a double.
TEST(RedisStoreTest, SumsBeyond2To53AreAddedExactly) {
  std::unique_ptr<RedisServer> server = StartOrThrow();
  std::unique_ptr<RedisStateStore> store = OpenStore(*server);
  Ok(store->ImportPhases({Spec("r1", "p1")}));
  ASSERT_TRUE(server
                  ->Command({"HSET", "sluice:run:r1", "run_ms", "9007199254740993",
                             "telemetry_events", "9223372036854775000"})
                  .ok());
  ASSERT_TRUE(
      server->Command({"HSET", "sluice:phase:2:r1:p1", "telemetry_events", "999999999999999"})
          .ok());
  const LeaseGrant g = MustLease(*store, Lease("r1", "L1", kT0));
  ReportParams report = Report(g, Outcome::kSucceeded);
  report.report.duration_ms = 7;
  report.report.telemetry_events = 5;
  ASSERT_EQ(Ok(store->RecordReport(report)).disposition, ReportDisposition::kAccepted);
  EXPECT_EQ(Ok(server->Command({"HGET", "sluice:run:r1", "run_ms"})), "9007199254741000");
  EXPECT_EQ(Ok(server->Command({"HGET", "sluice:run:r1", "telemetry_events"})),
            "9223372036854775005");
  EXPECT_EQ(Ok(server->Command({"HGET", "sluice:phase:2:r1:p1", "telemetry_events"})),
            "1000000000000004");
  const RunStats stats = *Ok(store->GetRunStats("r1"));
  EXPECT_EQ(stats.run_ms, 9007199254741000);
  EXPECT_EQ(stats.telemetry_events, 9223372036854775005);
}

}  // namespace
}  // namespace sluice::redis_test
