// RedisStateStore against real redis-server processes, operations: AUTH,
// database selection, namespaces, no KEYS/SCAN, script reloads, reconnects,
// label walks, concurrency and memory per phase.
#include "coordinator/store/redis/redis_connection.h"
#include "tests/contract/redis_store_test_helpers.h"
#include "tests/testing/test_env.h"

namespace sluice::redis_test {
namespace {

TEST(RedisStoreTest, AuthWithRequirepass) {
  std::unique_ptr<RedisServer> server =
      StartOrThrow({.appendonly = false, .requirepass = "s3cret"});
  std::unique_ptr<RedisStateStore> store = OpenStore(*server);  // Url() carries the password
  Ok(store->ImportPhases({Spec("r1", "p1")}));
  EXPECT_TRUE(Ok(store->LeaseNextInRun(Lease("r1", "L1"))).has_value());

  RedisOptions none = Ok(ParseRedisUrl("redis+unix://" + server->socket_path()));
  absl::StatusOr<std::unique_ptr<RedisStateStore>> anonymous = RedisStateStore::Open(none);
  ASSERT_FALSE(anonymous.ok());
  EXPECT_EQ(anonymous.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(anonymous.status().message(), HasSubstr("NOAUTH"));

  RedisOptions wrong = none;
  wrong.password = "guess";
  absl::StatusOr<std::unique_ptr<RedisStateStore>> intruder = RedisStateStore::Open(wrong);
  ASSERT_FALSE(intruder.ok());
  EXPECT_EQ(intruder.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(intruder.status().message(), HasSubstr("AUTH failed"));
  EXPECT_THAT(intruder.status().message(), Not(HasSubstr("guess"))) << "never log the password";
}

// Bug: the Helm chart put the Redis password in the coordinator's argv
// (--store redis://:PW@...), readable by every process on the node through
// /proc/PID/cmdline. password_file=PATH keeps it in a file only.
TEST(RedisStoreTest, PasswordFileKeepsThePasswordOutOfTheUrl) {
  using ::sluice::testing::ScratchDir;
  using ::sluice::testing::WriteFile;
  std::unique_ptr<RedisServer> server =
      StartOrThrow({.appendonly = false, .requirepass = "s3cret"});
  ScratchDir dir;
  WriteFile(dir.File("redis-password"), "s3cret\n");
  const std::string base = "redis+unix://" + server->socket_path() + "?namespace=pwfile";
  std::unique_ptr<StateStore> store =
      Ok(OpenStateStore(base + "&password_file=" + dir.File("redis-password")));
  EXPECT_EQ(Ok(store->ImportPhases({Spec("r1", "p1")})).inserted, 1);
  // A wrong password in the file is refused by Redis, a missing file by us.
  WriteFile(dir.File("wrong"), "guess\n");
  absl::StatusOr<std::unique_ptr<StateStore>> wrong =
      OpenStateStore(base + "&password_file=" + dir.File("wrong"));
  ASSERT_FALSE(wrong.ok());
  EXPECT_THAT(wrong.status().message(), Not(HasSubstr("guess")));
  absl::StatusOr<std::unique_ptr<StateStore>> missing =
      OpenStateStore(base + "&password_file=" + dir.File("missing"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(missing.status().message(), HasSubstr("password_file"));
  // Not both.
  EXPECT_FALSE(ParseRedisUrl(base + "&password=x&password_file=/f").ok());
}

TEST(RedisStoreTest, SelectsTheDatabaseFromTheUrl) {
  std::unique_ptr<RedisServer> server = StartOrThrow();
  RedisOptions o = Ok(ParseRedisUrl("redis+unix://" + server->socket_path() + "?db=5"));
  std::unique_ptr<RedisStateStore> db5 = Ok(RedisStateStore::Open(o));
  Ok(db5->ImportPhases({Spec("r1", "p1")}));
  std::unique_ptr<RedisStateStore> db0 = OpenStore(*server);
  EXPECT_EQ(Ok(db0->CountPhases()).total(), 0);
  EXPECT_EQ(Ok(db5->CountPhases()).total(), 1);
  // meta, runs, run:r1, pending:r1, phase:...:p1 and phase_counts.
  EXPECT_THAT(Ok(server->Command({"INFO", "keyspace"})), HasSubstr("db5:keys=6,"));
}

TEST(RedisStoreTest, NamespacesAreIsolated) {
  RedisServer& server = SharedServer();
  std::unique_ptr<RedisStateStore> a = OpenStore(server, FreshNamespace("iso_a"));
  std::unique_ptr<RedisStateStore> b = OpenStore(server, FreshNamespace("iso_b"));
  Ok(a->ImportPhases({Spec("r1", "p1"), Spec("r1", "p2")}));
  SessionRecord s;
  s.session_id = "s1";
  s.started_at_ms = kT0;
  Ok(a->CreateSession(s));
  const LeaseGrant g = MustLease(*a, Lease("r1", "L1"));
  Ok(a->RecordReport(Report(g, Outcome::kSucceeded)));

  EXPECT_EQ(Ok(b->CountPhases()).total(), 0);
  EXPECT_TRUE(Ok(b->ListRunStats()).empty());
  EXPECT_FALSE(Ok(b->GetPhase({"r1", "p1"})).has_value());
  EXPECT_FALSE(Ok(b->LatestSession()).has_value());
  EXPECT_TRUE(Ok(b->ListAttempts("")).empty());
  EXPECT_FALSE(Ok(b->LeaseNextInRun(Lease("r1", "L1"))).has_value());
  // b may start its own session while a's is active, and its epochs start over.
  Ok(b->CreateSession(s));
  Ok(b->ImportPhases({Spec("r1", "p1")}));
  EXPECT_EQ(Ok(b->LeaseNextInRun(Lease("r1", "L1")))->epoch, 1);
  EXPECT_EQ(Ok(a->CountPhases()).succeeded, 1);
  EXPECT_EQ(Ok(a->CountPhases()).pending, 1);
}

TEST(RedisStoreTest, NeverUsesKeysOrScan) {
  std::unique_ptr<RedisServer> server = StartOrThrow();
  std::unique_ptr<RedisStateStore> store = OpenStore(*server);
  ASSERT_TRUE(server->Command({"CONFIG", "RESETSTAT"}).ok());
  std::vector<PhaseSpec> specs;
  for (int i = 0; i < 50; ++i) specs.push_back(Spec("r1", absl::StrCat("p", i), i % 3, {"gpu"}));
  Ok(store->ImportPhases(specs));
  SessionRecord s;
  s.session_id = "s1";
  s.started_at_ms = kT0;
  Ok(store->CreateSession(s));
  for (int i = 0; i < 10; ++i) {
    LeaseParams p = Lease("r1", absl::StrCat("L", i));
    p.worker_labels = {"gpu"};
    const LeaseGrant g = MustLease(*store, p);
    Ok(store->RenewLeases("w1", {g.lease_id}, kT0 + 1, kTtl));
    Ok(store->RecordReport(Report(g, i % 2 == 0 ? Outcome::kSucceeded : Outcome::kFailed)));
  }
  Ok(store->ExpireLeases(kT0 + kTtl * 3, LostLeaseTransition(5)));
  Ok(store->ListRunStats());
  Ok(store->CountPhases());
  Ok(store->ListActiveLeases());
  Ok(store->ListAttempts(""));
  Ok(store->ListAttempts("s1"));
  Ok(store->LatestSession());
  Ok(store->CountSessionAttempts("s1"));
  const std::string stats = Ok(server->Command({"INFO", "commandstats"}));
  EXPECT_THAT(stats, HasSubstr("cmdstat_evalsha"));
  EXPECT_THAT(stats, Not(HasSubstr("cmdstat_keys:")));
  EXPECT_THAT(stats, Not(HasSubstr("cmdstat_scan:")));
  EXPECT_THAT(stats, Not(HasSubstr("cmdstat_eval:"))) << "scripts run by SHA, never resent";
}

TEST(RedisStoreTest, ALongHistoryIsReadInChunksInEndOrder) {
  // Bug (#14 item 8): start-up and takeover read every attempt in one script;
  // at a million attempts it blocked Redis for seconds, the leader lease's
  // renewal failed and the coordinator lost leadership before it served.
  std::unique_ptr<RedisServer> server = StartOrThrow();
  std::unique_ptr<RedisStateStore> store = OpenStore(*server);
  constexpr int kAttempts = 12'345;  // two full chunks of 5,000 and a part
  for (int i = 0; i < kAttempts; ++i) {
    const std::string id = absl::StrCat("L", i);
    ASSERT_TRUE(server
                    ->Command({"HSET", "sluice:attempt:" + id, "lease_id", id, "run_id", "r1",
                               "phase_id", "p1", "outcome", "succeeded", "stderr_tail", "x"})
                    .ok());
    ASSERT_TRUE(server->Command({"RPUSH", "sluice:attempts", id}).ok());
  }
  ASSERT_TRUE(server->Command({"CONFIG", "RESETSTAT"}).ok());
  const std::vector<AttemptRecord> all = Ok(store->ListAttemptsWithoutOutput(""));
  ASSERT_EQ(all.size(), static_cast<size_t>(kAttempts));
  for (int i = 0; i < kAttempts; ++i) ASSERT_EQ(all[i].lease_id, absl::StrCat("L", i));
  EXPECT_EQ(all.back().stderr_tail, "");
  // Three ranges of the list, each attempt's hash read by a plain HMGET
  // (pipelined per range): no script, which Redis runs ~3x slower.
  const std::string stats = Ok(server->Command({"INFO", "commandstats"}));
  EXPECT_THAT(stats, HasSubstr("cmdstat_lrange:calls=3,"));
  EXPECT_THAT(stats, HasSubstr(absl::StrCat("cmdstat_hmget:calls=", kAttempts, ",")));
  EXPECT_THAT(stats, Not(HasSubstr("cmdstat_evalsha")));
}

TEST(RedisStoreTest, PipelinedCommandsAreVisitedInOrderUntilTheFirstFailure) {
  std::unique_ptr<RedisServer> server = StartOrThrow();
  RedisConnection conn(Ok(ParseRedisUrl(server->Url("sluice"))), {});
  // Runs `commands` through VisitPipelined; each reply as text and integer.
  auto visit = [&](const std::vector<std::vector<std::string>>& commands,
                   std::vector<std::string>* seen) {
    return conn.VisitPipelined(
        commands.size(),
        [&](size_t i, std::vector<const char*>& argv, std::vector<size_t>& lens) {
          for (const std::string& a : commands[i]) {
            argv.push_back(a.data());
            lens.push_back(a.size());
          }
        },
        [&](size_t i, RedisReplyView reply) {
          seen->push_back(absl::StrCat(i, ":", reply.Text(), "/", reply.Int()));
          return absl::OkStatus();
        });
  };
  std::vector<std::string> seen;
  Ok(visit({{"SET", "k", "1"}, {"INCR", "k"}, {"GET", "k"}}, &seen));
  EXPECT_THAT(seen, ::testing::ElementsAre("0:OK/0", "1:2/2", "2:2/2"));

  // An error reply is the answer, and what follows it is read but not
  // visited: the connection stays in step.
  seen.clear();
  const absl::Status st = visit({{"GET", "k"}, {"HGET", "k", "f"}, {"GET", "k"}}, &seen);
  EXPECT_THAT(st.message(), HasSubstr("WRONGTYPE"));
  EXPECT_THAT(seen, ::testing::ElementsAre("0:2/2"));
  EXPECT_EQ(Ok(conn.Command({"INCR", "k"})).Int(), 3);

  // A server that is gone: Unavailable, and nothing made up.
  server.reset();
  seen.clear();
  EXPECT_EQ(visit({{"GET", "k"}, {"GET", "k"}}, &seen).code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(seen, ::testing::IsEmpty());
}

TEST(RedisStoreTest, AnAttemptListedWithoutItsRecordIsAnErrorNotAnEmptyAttempt) {
  // The list and the records are read apart: a server that lost data in
  // between (a restart without persistence) must not yield blank attempts.
  std::unique_ptr<RedisServer> server = StartOrThrow();
  std::unique_ptr<RedisStateStore> store = OpenStore(*server);
  ASSERT_TRUE(server
                  ->Command({"HSET", "sluice:attempt:L1", "lease_id", "L1", "run_id", "r1",
                             "phase_id", "p1", "outcome", "succeeded"})
                  .ok());
  ASSERT_TRUE(server->Command({"RPUSH", "sluice:attempts", "L1", "L2"}).ok());
  const absl::Status st = store->ListAttemptsFrom("", 0, 10).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(st.message(), HasSubstr("attempt L2 is listed but has no record"));
}

TEST(RedisStoreTest, ReloadsScriptsAfterScriptFlush) {
  std::unique_ptr<RedisServer> server = StartOrThrow();
  std::unique_ptr<RedisStateStore> store = OpenStore(*server);
  Ok(store->ImportPhases({Spec("r1", "p1")}));
  ASSERT_TRUE(server->Command({"SCRIPT", "FLUSH"}).ok());
  EXPECT_TRUE(Ok(store->LeaseNextInRun(Lease("r1", "L1"))).has_value());
  EXPECT_EQ(Ok(store->CountPhases()).leased, 1);
}

TEST(RedisStoreTest, AReportBatchIsPipelinedAndSurvivesScriptFlushAndADroppedConnection) {
  std::unique_ptr<RedisServer> server = StartOrThrow();
  std::unique_ptr<RedisStateStore> store = OpenStore(*server);
  Ok(store->ImportPhases({Spec("r1", "p1"), Spec("r1", "p2"), Spec("r1", "p3"), Spec("r1", "p4")}));
  std::vector<LeaseGrant> grants;
  for (int i = 1; i <= 4; ++i) {
    grants.push_back(*Ok(store->LeaseNextInRun(Lease("r1", absl::StrCat("L", i)))));
  }
  auto report = [](const LeaseGrant& g) {
    ReportParams p;
    p.report.lease_id = g.lease_id;
    p.report.epoch = g.epoch;
    p.report.worker_id = g.worker_id;
    p.report.outcome = Outcome::kSucceeded;
    p.report.telemetry_events = 1;
    p.fingerprint = "ok";
    p.now_ms = 1'700'000'001'000;
    p.transition = TransitionAfterOutcome(PhaseBudget{}, Outcome::kSucceeded, true);
    return p;
  };
  // SCRIPT FLUSH: every pipelined call answers NOSCRIPT, runs nothing, and
  // is run again after the reload.
  ASSERT_TRUE(server->Command({"SCRIPT", "FLUSH"}).ok());
  std::vector<absl::StatusOr<ReportResult>> answers =
      store->RecordReports({report(grants[0]), report(grants[1])});
  ASSERT_EQ(answers.size(), 2u);
  EXPECT_EQ(Ok(answers[0]).disposition, ReportDisposition::kAccepted);
  EXPECT_EQ(Ok(answers[1]).disposition, ReportDisposition::kAccepted);
  // The server dropped the idle connection: the batch reconnects first.
  ASSERT_TRUE(server->Command({"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"}).ok());
  ASSERT_TRUE(server->Command({"CONFIG", "RESETSTAT"}).ok());
  answers = store->RecordReports({report(grants[2]), report(grants[3]), report(grants[0])});
  ASSERT_EQ(answers.size(), 3u);
  EXPECT_EQ(Ok(answers[0]).disposition, ReportDisposition::kAccepted);
  EXPECT_EQ(Ok(answers[1]).disposition, ReportDisposition::kAccepted);
  EXPECT_EQ(Ok(answers[2]).disposition, ReportDisposition::kDuplicate);
  EXPECT_THAT(Ok(server->Command({"INFO", "commandstats"})), HasSubstr("cmdstat_evalsha:calls=3,"));
  EXPECT_EQ(Ok(store->CountPhases()).succeeded, 4);
  EXPECT_EQ(Ok(store->ListAttempts("")).size(), 4u);
}

TEST(RedisStoreTest, ReconnectsWhenTheServerDropsTheConnection) {
  std::unique_ptr<RedisServer> server = StartOrThrow();
  std::unique_ptr<RedisStateStore> store = OpenStore(*server);
  Ok(store->ImportPhases({Spec("r1", "p1")}));
  ASSERT_TRUE(server->Command({"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"}).ok());
  EXPECT_EQ(Ok(store->CountPhases()).pending, 1);
}

TEST(RedisStoreTest, LeaseWalksPastManyPhasesTheWorkerCannotRun) {
  std::unique_ptr<RedisServer> server = StartOrThrow();
  std::unique_ptr<RedisStateStore> store = OpenStore(*server);
  std::vector<PhaseSpec> specs;
  // 200 higher-priority phases need a GPU (several walk chunks).
  for (int i = 0; i < 200; ++i) specs.push_back(Spec("r1", absl::StrCat("gpu", i), 10, {"gpu"}));
  specs.push_back(Spec("r1", "cpu", 1));
  specs.push_back(Spec("r1", "top", INT64_MAX, {"gpu", "big"}));
  Ok(store->ImportPhases(specs));
  LeaseParams p = Lease("r1", "L1");
  EXPECT_EQ(Ok(store->LeaseNextInRun(p))->phase_id, "cpu");
  p.lease_id = "L2";
  p.worker_labels = {"gpu"};
  EXPECT_EQ(Ok(store->LeaseNextInRun(p))->phase_id, "gpu0");
  p.lease_id = "L3";
  p.worker_labels = {"big", "gpu"};
  EXPECT_EQ(Ok(store->LeaseNextInRun(p))->phase_id, "top");
  EXPECT_EQ(Ok(store->ListRunStats())[0].best_pending_priority, 10);
}

TEST(RedisStoreTest, ConcurrentLeasesNeverGrantAPhaseTwice) {
  RedisServer& server = SharedServer();
  std::unique_ptr<RedisStateStore> store = OpenStore(server, FreshNamespace("concurrent"));
  std::vector<PhaseSpec> specs;
  for (int i = 0; i < 200; ++i) specs.push_back(Spec("r1", absl::StrCat("p", i)));
  Ok(store->ImportPhases(specs));
  std::vector<std::vector<std::string>> got(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0;; ++i) {
        absl::StatusOr<std::optional<LeaseGrant>> g =
            store->LeaseNextInRun(Lease("r1", absl::StrCat("T", t, "-", i)));
        if (!g.ok() || !*g) return;
        got[static_cast<size_t>(t)].push_back((*g)->phase_id);
      }
    });
  }
  for (std::thread& th : threads) th.join();
  std::set<std::string> all;
  size_t total = 0;
  for (const auto& v : got) {
    total += v.size();
    all.insert(v.begin(), v.end());
  }
  EXPECT_EQ(total, 200u);
  EXPECT_EQ(all.size(), 200u);
}

int64_t UsedMemory(const RedisServer& server) {
  const std::string info = Ok(server.Command({"INFO", "memory"}));
  for (absl::string_view line : absl::StrSplit(info, '\n')) {
    if (absl::StartsWith(line, "used_memory:")) {
      int64_t v = 0;
      if (absl::SimpleAtoi(absl::StripAsciiWhitespace(line.substr(12)), &v)) return v;
    }
  }
  return -1;
}

// Server-side microseconds spent in EVALSHA since the last CONFIG RESETSTAT.
std::string EvalshaStats(const RedisServer& server) {
  const std::string info = Ok(server.Command({"INFO", "commandstats"}));
  for (absl::string_view line : absl::StrSplit(info, '\n')) {
    if (absl::StartsWith(line, "cmdstat_evalsha:")) {
      return std::string(absl::StripAsciiWhitespace(line.substr(16)));
    }
  }
  return "none";
}

TEST(RedisStoreTest, MemoryPerPhaseIsMeasured) {
  // Figures for docs/redis.md: 10k phases in 10 runs, typical ids/labels/metadata.
  std::unique_ptr<RedisServer> server = StartOrThrow();
  std::unique_ptr<RedisStateStore> store = OpenStore(*server);
  constexpr int kPhases = 10'000;
  std::vector<PhaseSpec> specs;
  for (int i = 0; i < kPhases; ++i) {
    PhaseSpec s = Spec(absl::StrCat("run-", i % 10), absl::StrCat("phase-", i), i % 7, {"linux"});
    s.phase_index = i;
    s.metadata_json = R"({"shard":"eu-west-1","size":123456})";
    specs.push_back(std::move(s));
  }
  const int64_t empty = UsedMemory(*server);
  ASSERT_TRUE(server->Command({"CONFIG", "RESETSTAT"}).ok());
  const auto t0 = std::chrono::steady_clock::now();
  Ok(store->ImportPhases(specs));
  const auto import_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  const int64_t imported = UsedMemory(*server);
  const std::string import_stats = EvalshaStats(*server);
  // Then every phase done once: one lease + report each.
  SessionRecord session;
  session.session_id = "s1";
  session.started_at_ms = kT0;
  Ok(store->CreateSession(session));
  ASSERT_TRUE(server->Command({"CONFIG", "RESETSTAT"}).ok());
  const auto t1 = std::chrono::steady_clock::now();
  for (int i = 0; i < kPhases; ++i) {
    LeaseParams p = Lease(absl::StrCat("run-", i % 10), absl::StrCat("L", i));
    p.worker_labels = {"linux"};
    const LeaseGrant g = MustLease(*store, p);
    Ok(store->RecordReport(Report(g, Outcome::kSucceeded)));
  }
  const double cycle_us = static_cast<double>(std::chrono::duration_cast<std::chrono::microseconds>(
                                                  std::chrono::steady_clock::now() - t1)
                                                  .count()) /
                          kPhases;
  const int64_t done = UsedMemory(*server);
  const std::string cycle_stats = EvalshaStats(*server);
  const std::string phase_usage =
      Ok(server->Command({"MEMORY", "USAGE", "sluice:phase:5:run-3:phase-3"}));
  const std::string attempt_usage = Ok(server->Command({"MEMORY", "USAGE", "sluice:attempt:L3"}));
  const double per_phase = static_cast<double>(imported - empty) / kPhases;
  const double per_attempt = static_cast<double>(done - imported) / kPhases;
  std::printf(
      "redis memory: %.0f B/phase imported (phase hash alone %s B), %.0f B/attempt recorded "
      "(attempt hash %s B)\nimport of %d phases: %lld ms end to end, server: %s\n"
      "lease+report: %.0f us end to end, server per script: %s\n",
      per_phase, phase_usage.c_str(), per_attempt, attempt_usage.c_str(), kPhases,
      static_cast<long long>(import_ms), import_stats.c_str(), cycle_us, cycle_stats.c_str());
  RecordProperty("bytes_per_phase", static_cast<int>(per_phase));
  RecordProperty("bytes_per_attempt", static_cast<int>(per_attempt));
  EXPECT_LT(per_phase, 1024) << "a pending phase should stay well under 1 KiB";
  EXPECT_EQ(Ok(store->CountPhases()).succeeded, kPhases);
}

}  // namespace
}  // namespace sluice::redis_test

namespace sluice::redis_test {

// A chunked import stages its chunks under P:import:<id> and leaves no key
// behind, whether committed or dropped; a commit whose staged list lost chunks
// (it expired) is refused whole.
TEST(RedisStoreTest, ChunkedImportLeavesNoStagingKeyAndRefusesAnExpiredStage) {
  std::unique_ptr<RedisServer> server = StartOrThrow();
  std::unique_ptr<RedisStateStore> store = OpenStore(*server);
  auto staged = [&] { return Ok(server->Command({"KEYS", "sluice:import:*"})); };
  {
    std::unique_ptr<PhaseImport> import = Ok(store->BeginImport());
    ASSERT_TRUE(import->Add({Spec("r1", "p1"), Spec("r1", "p2")}).ok());
    EXPECT_THAT(staged(), HasSubstr("sluice:import:"));
    EXPECT_EQ(Ok(store->CountPhases()).total(), 0) << "nothing visible before the commit";
  }
  EXPECT_THAT(staged(), Not(HasSubstr("import:")));

  std::unique_ptr<PhaseImport> import = Ok(store->BeginImport());
  ASSERT_TRUE(import->Add({Spec("r1", "p1")}).ok());
  ASSERT_TRUE(import->Add({Spec("r1", "p2")}).ok());
  const std::string key = staged();
  ASSERT_THAT(key, HasSubstr("sluice:import:"));
  // Lose the first chunk, as an expiry of a stalled import would lose all.
  ASSERT_TRUE(server->Command({"LPOP", std::string(absl::StripAsciiWhitespace(key))}).ok());
  absl::StatusOr<ImportResult> result = import->Commit();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition) << result.status();
  EXPECT_EQ(Ok(store->CountPhases()).total(), 0);
  import.reset();
  EXPECT_THAT(staged(), Not(HasSubstr("import:")));

  import = Ok(store->BeginImport());
  ASSERT_TRUE(import->Add({Spec("r1", "p1"), Spec("r2", "p1")}).ok());
  EXPECT_EQ(Ok(import->Commit()).inserted, 2);
  EXPECT_THAT(staged(), Not(HasSubstr("import:")));
}

}  // namespace sluice::redis_test
