// RedisStateStore against real redis-server processes: the shared contract
// suite, a randomized differential run against SqliteStateStore (the
// reference semantics), and what only Redis can show: restarts, outages,
// AUTH, namespaces, script reloads, no KEYS/SCAN, memory per phase.
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "coordinator/store/redis/redis_state_store.h"
#include "coordinator/store/sqlite/sqlite_state_store.h"
#include "coordinator/store/store_factory.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/contract/state_store_contract.h"
#include "tests/testing/redis_server.h"

namespace sluice {
namespace {

using ::sluice::contract::StoreFactory;
using ::sluice::contract::StoreFactoryName;
using ::sluice::testing::RedisServer;
using ::sluice::testing::RedisServerOptions;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr int64_t kT0 = 1'700'000'000'000;
constexpr int64_t kTtl = 30'000;

template <typename T>
T Ok(absl::StatusOr<T> result) {
  if (!result.ok()) throw std::runtime_error(result.status().ToString());
  return *std::move(result);
}
void Ok(const absl::Status& status) {
  if (!status.ok()) throw std::runtime_error(status.ToString());
}

std::unique_ptr<RedisServer> StartOrThrow(RedisServerOptions options = {}) {
  absl::StatusOr<std::unique_ptr<RedisServer>> server = RedisServer::Start(std::move(options));
  if (!server.ok()) throw std::runtime_error(server.status().ToString());
  return *std::move(server);
}

std::unique_ptr<RedisStateStore> OpenStore(const RedisServer& server,
                                           const std::string& key_namespace = "sluice") {
  RedisOptions o = Ok(ParseRedisUrl(server.Url(key_namespace)));
  return Ok(RedisStateStore::Open(o));
}

// A namespace no other store of this process used: stores on the shared
// server start empty, also under --gtest_repeat.
std::string FreshNamespace(const std::string& base) {
  static int n = 0;
  return absl::StrCat(base, "_", ++n);
}

// ---------------------------------------------------------------------------
// The shared contract suite. One server for the whole binary; each store gets
// a namespace of its own, so it starts empty.

RedisServer& SharedServer() {
  static std::unique_ptr<RedisServer> server = StartOrThrow();
  return *server;
}

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
// Differential: the same random operations against SQLite (the reference) and
// Redis must give the same answers and leave the same state.

std::string Show(const absl::Status& s) { return absl::StatusCodeToString(s.code()); }
std::string Show(const ImportResult& r) {
  return absl::StrCat("import ", r.inserted, "/", r.updated, "/", r.unchanged);
}
std::string Show(const LeaseGrant& g) {
  return absl::StrCat("lease ", g.lease_id, " ", g.run_id, "/", g.phase_id, " a", g.attempt, " e",
                      g.epoch, " ", g.worker_id, " ", g.session_id, " t", g.timeout_seconds, " ",
                      g.leased_at_ms, "..", g.expires_at_ms);
}
std::string Show(const std::optional<LeaseGrant>& g) { return g ? Show(*g) : "no lease"; }
std::string Show(const std::vector<std::string>& v) { return absl::StrJoin(v, ","); }
std::string Show(const ReportResult& r) {
  return absl::StrCat(std::string(ReportDispositionName(r.disposition)), " ",
                      std::string(PhaseStateName(r.phase_state)));
}
std::string Show(const std::vector<ExpiredLease>& v) {
  std::string out;
  for (const ExpiredLease& e : v)
    absl::StrAppend(&out, Show(e.lease), "->", std::string(PhaseStateName(e.phase_state)), ";");
  return out;
}
std::string Show(const std::vector<LeaseGrant>& v) {
  std::string out;
  for (const LeaseGrant& g : v) absl::StrAppend(&out, Show(g), ";");
  return out;
}
std::string Show(const std::optional<PhaseRecord>& p) {
  if (!p) return "no phase";
  return absl::StrCat(p->spec.run_id, "/", p->spec.phase_id, " i", p->spec.phase_index, " p",
                      p->spec.priority, " [", p->spec.last_error, "] {",
                      absl::StrJoin(p->spec.labels, ","), "} ", p->spec.metadata_json, " ",
                      std::string(PhaseStateName(p->state)), " a", p->attempts, " q", p->requeues,
                      " l", p->current_lease_id, " f",
                      p->final_outcome ? std::string(OutcomeName(*p->final_outcome)) : "-", " t",
                      p->telemetry_events, " u", p->updated_at_ms);
}
std::string Show(const std::vector<RunStats>& v) {
  std::string out;
  for (const RunStats& r : v) {
    absl::StrAppend(&out, r.run_id, ":", r.pending, ",", r.leased, ",", r.succeeded, ",", r.failed,
                    ",", r.attempts, ",", r.successes, ",", r.timeouts, ",", r.telemetry_events,
                    ",", r.run_ms, ",", r.best_pending_priority, ";");
  }
  return out;
}
std::string Show(const PhaseCounts& c) {
  return absl::StrCat(c.pending, ",", c.leased, ",", c.succeeded, ",", c.failed);
}
std::string Show(const std::vector<WorkerInfo>& v) {
  std::string out;
  for (const WorkerInfo& w : v) {
    absl::StrAppend(&out, w.worker_id, " ", w.host, " ", w.slots, " ", absl::StrJoin(w.labels, ","),
                    " ", w.version, " ", w.last_seen_ms, ";");
  }
  return out;
}
std::string Show(const std::optional<SessionRecord>& s) {
  if (!s) return "no session";
  const SessionSettings& t = s->settings;
  return absl::StrCat(s->session_id, " ", std::string(SessionStateName(s->state)), " ",
                      s->started_at_ms, "..", s->ended_at_ms, " [", s->end_reason, "] ",
                      t.batch_size, ",", t.phase_timeout_seconds, ",", t.max_total_minutes, ",",
                      t.max_attempts_per_phase, ",", t.max_requeues_per_phase, ",",
                      absl::StrJoin(t.run_ids, "+"), ",", absl::StrJoin(t.skip_run_prefixes, "+"));
}
std::string Show(const std::vector<AttemptRecord>& v) {
  std::string out;
  for (const AttemptRecord& a : v) {
    std::string types;
    for (const auto& [k, n] : a.telemetry_by_type) absl::StrAppend(&types, k, "=", n, " ");
    absl::StrAppend(&out, a.lease_id, " ", a.run_id, "/", a.phase_id, " a", a.attempt, " e",
                    a.epoch, " ", a.worker_id, " ", a.session_id, " ",
                    std::string(OutcomeName(a.outcome)), " ", a.exit_code, " ", a.signal, " ",
                    a.duration_ms, " [", a.error_text, "] [", a.fingerprint, "] ",
                    a.telemetry_events, " {", types, "} [", a.stdout_tail, "] [", a.stderr_tail,
                    "] ", a.started_at_ms, "..", a.ended_at_ms, ";\n");
  }
  return out;
}
std::string Show(int64_t n) { return std::to_string(n); }

template <typename T>
std::string Show(const absl::StatusOr<T>& r) {
  return r.ok() ? Show(*r) : Show(r.status());
}

class Differential {
 public:
  Differential(StateStore& reference, StateStore& subject, uint32_t seed)
      : ref_(reference), sub_(subject), rng_(seed) {}

  void Run(int steps) {
    for (int i = 0; i < steps && !::testing::Test::HasFailure(); ++i) {
      Step(i);
      if (i % 10 == 9) CompareState(i);
    }
    CompareState(steps);
  }

 private:
  template <typename F>
  void Same(const std::string& what, int step, F call) {
    const std::string a = Show(call(ref_));
    const std::string b = Show(call(sub_));
    EXPECT_EQ(a, b) << "step " << step << ": " << what;
  }

  int Pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
  template <typename T>
  const T& PickOf(const std::vector<T>& v) {
    return v[static_cast<size_t>(Pick(static_cast<int>(v.size())))];
  }
  std::vector<std::string> Subset(const std::vector<std::string>& from) {
    std::vector<std::string> out;
    for (const std::string& s : from) {
      if (Pick(2) == 0) out.push_back(s);
    }
    return out;
  }

  PhaseSpec RandomSpec() {
    static const std::vector<int64_t> kPriorities = {
        INT64_MIN, -1, 0, 0, 1, 5, (int64_t{1} << 53) + 1, INT64_MAX};
    static const std::vector<int64_t> kIndexes = {0, 1, 2, -3, INT64_MAX, INT64_MIN};
    PhaseSpec s;
    s.run_id = PickOf(runs_);
    s.phase_id = PickOf(phases_);
    s.phase_index = PickOf(kIndexes);
    s.priority = PickOf(kPriorities);
    s.last_error = Pick(3) == 0 ? "boom" : "";
    s.labels = Subset(labels_);
    s.metadata_json = Pick(3) == 0 ? R"({"k":1})" : "{}";
    return s;
  }

  void Step(int step) {
    now_ += Pick(4) * 7'000;
    switch (Pick(12)) {
      case 0: {
        std::vector<PhaseSpec> batch;
        for (int n = Pick(5) + 1; n > 0; --n) batch.push_back(RandomSpec());
        Same("import", step, [&](StateStore& s) { return s.ImportPhases(batch); });
        break;
      }
      case 1:
      case 2:
      case 3: {
        LeaseParams p;
        p.run_id = PickOf(runs_);
        p.worker_id = PickOf(workers_);
        p.session_id = PickOf(sessions_);
        p.lease_id = Pick(20) == 0 && !leases_.empty() ? PickOf(leases_).lease_id
                                                       : absl::StrCat("L", next_lease_++);
        p.timeout_seconds = 60;
        p.now_ms = now_;
        p.ttl_ms = PickOf(std::vector<int64_t>{0, 10'000, kTtl});
        p.worker_labels = Subset(labels_);
        absl::StatusOr<std::optional<LeaseGrant>> a = ref_.LeaseNextInRun(p);
        absl::StatusOr<std::optional<LeaseGrant>> b = sub_.LeaseNextInRun(p);
        EXPECT_EQ(Show(a), Show(b)) << "step " << step << ": lease";
        if (a.ok() && *a) leases_.push_back(**a);
        break;
      }
      case 4: {
        std::vector<std::string> ids;
        for (int n = Pick(3); n > 0 && !leases_.empty(); --n)
          ids.push_back(PickOf(leases_).lease_id);
        if (Pick(4) == 0) ids.push_back("nope");
        const std::string worker = PickOf(workers_);
        const int64_t ttl = PickOf(std::vector<int64_t>{0, kTtl});
        Same("renew", step, [&](StateStore& s) { return s.RenewLeases(worker, ids, now_, ttl); });
        break;
      }
      case 5:
      case 6:
      case 7: {
        if (leases_.empty()) break;
        const LeaseGrant& g = PickOf(leases_);
        ReportParams p;
        p.report.lease_id = Pick(15) == 0 ? "unknown" : g.lease_id;
        p.report.epoch = Pick(8) == 0 ? g.epoch + 1 : g.epoch;
        p.report.worker_id = Pick(8) == 0 ? "intruder" : g.worker_id;
        p.report.outcome = static_cast<Outcome>(Pick(5));  // kSucceeded..kCancelled
        p.report.exit_code = Pick(3) - 1;
        p.report.signal = Pick(2) * 9;
        p.report.duration_ms = Pick(5000);
        p.report.stdout_tail = "out";
        p.report.stderr_tail = Pick(2) == 0 ? "" : "err line";
        p.report.error_text = "E";
        p.report.telemetry_events = Pick(3) == 0 ? (int64_t{1} << 60) : Pick(100);
        if (Pick(2) == 0) p.report.telemetry_by_type = {{"a", 1}, {"b", 2}};
        p.fingerprint = "fp";
        p.now_ms = now_;
        p.max_attempts_per_phase = Pick(3) + 1;
        Same("report", step, [&](StateStore& s) { return s.RecordReport(p); });
        break;
      }
      case 8: {
        const int32_t max_requeues = Pick(3);
        Same("expire", step, [&](StateStore& s) { return s.ExpireLeases(now_, max_requeues); });
        break;
      }
      case 9: {
        WorkerInfo w;
        w.worker_id = PickOf(workers_);
        w.host = absl::StrCat("h", Pick(3));
        w.slots = Pick(4) + 1;
        w.labels = Subset(labels_);
        w.version = "1.0";
        w.last_seen_ms = now_;
        Same("upsert worker", step, [&](StateStore& s) { return s.UpsertWorker(w); });
        break;
      }
      case 10: {
        SessionRecord r;
        r.session_id = PickOf(sessions_);
        r.state = Pick(5) == 0 ? SessionState::kStopped : SessionState::kActive;
        r.started_at_ms = Pick(2) == 0 ? kT0 : now_;  // ties exercise the creation order
        r.settings.batch_size = Pick(10);
        r.settings.run_ids = Subset(runs_);
        Same("create session", step, [&](StateStore& s) { return s.CreateSession(r); });
        break;
      }
      default: {
        const std::string id = PickOf(sessions_);
        const SessionState state = Pick(2) == 0 ? SessionState::kStopped : SessionState::kFinished;
        Same("end session", step,
             [&](StateStore& s) { return s.EndSession(id, state, now_, "because"); });
        break;
      }
    }
  }

  void CompareState(int step) {
    for (const std::string& run : runs_) {
      for (const std::string& phase : phases_) {
        Same(absl::StrCat("phase ", run, "/", phase), step, [&](StateStore& s) {
          return s.GetPhase({run, phase});
        });
      }
    }
    Same("run stats", step, [](StateStore& s) { return s.ListRunStats(); });
    Same("counts", step, [](StateStore& s) { return s.CountPhases(); });
    Same("active leases", step, [](StateStore& s) { return s.ListActiveLeases(); });
    Same("workers", step, [](StateStore& s) { return s.ListWorkers(); });
    Same("latest session", step, [](StateStore& s) { return s.LatestSession(); });
    Same("all attempts", step, [](StateStore& s) { return s.ListAttempts(""); });
    for (const std::string& id : sessions_) {
      Same("session " + id, step, [&](StateStore& s) { return s.GetSession(id); });
      Same("attempts of " + id, step, [&](StateStore& s) { return s.ListAttempts(id); });
      Same("count of " + id, step, [&](StateStore& s) { return s.CountSessionAttempts(id); });
    }
  }

  StateStore& ref_;
  StateStore& sub_;
  std::mt19937 rng_;
  int64_t now_ = kT0;
  int next_lease_ = 0;
  std::vector<LeaseGrant> leases_;
  const std::vector<std::string> runs_ = {"r1", "r:2", "r"};
  const std::vector<std::string> phases_ = {"p0", "p1", "p2", "p10", "2:p", "P", "p:3"};
  const std::vector<std::string> labels_ = {"gpu", "big"};
  const std::vector<std::string> workers_ = {"w1", "w2"};
  const std::vector<std::string> sessions_ = {"s1", "s2", "s3"};
};

TEST(RedisDifferentialTest, MatchesSqliteOnRandomOperations) {
  RedisServer& server = SharedServer();
  for (uint32_t seed = 1; seed <= 12 && !HasFailure(); ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    std::unique_ptr<SqliteStateStore> reference = Ok(SqliteStateStore::Open(":memory:"));
    std::unique_ptr<RedisStateStore> subject = OpenStore(server, FreshNamespace("diff"));
    Differential(*reference, *subject, seed).Run(300);
  }
}

// ---------------------------------------------------------------------------
// Redis-only behaviour

PhaseSpec Spec(const std::string& run, const std::string& phase, int64_t priority = 0,
               std::vector<std::string> labels = {}) {
  PhaseSpec s;
  s.run_id = run;
  s.phase_id = phase;
  s.priority = priority;
  s.labels = std::move(labels);
  return s;
}

LeaseParams Lease(const std::string& run, const std::string& lease_id, int64_t now = kT0) {
  LeaseParams p;
  p.run_id = run;
  p.worker_id = "w1";
  p.session_id = "s1";
  p.lease_id = lease_id;
  p.timeout_seconds = 60;
  p.now_ms = now;
  p.ttl_ms = kTtl;
  return p;
}

LeaseGrant MustLease(StateStore& store, const LeaseParams& p) {
  std::optional<LeaseGrant> g = Ok(store.LeaseNextInRun(p));
  if (!g) throw std::runtime_error("nothing to lease in " + p.run_id);
  return *std::move(g);
}

ReportParams Report(const LeaseGrant& g, Outcome outcome) {
  ReportParams p;
  p.report.lease_id = g.lease_id;
  p.report.epoch = g.epoch;
  p.report.worker_id = g.worker_id;
  p.report.outcome = outcome;
  p.report.duration_ms = 100;
  p.report.telemetry_events = 3;
  p.fingerprint = "fp";
  p.now_ms = g.leased_at_ms + 100;
  return p;
}

// Everything a store can say about itself, for before/after comparisons.
std::string Snapshot(StateStore& s) {
  std::string out;
  absl::StrAppend(&out, Show(s.ListRunStats()), "\n", Show(s.CountPhases()), "\n",
                  Show(s.ListActiveLeases()), "\n", Show(s.ListAttempts("")), "\n",
                  Show(s.ListWorkers()), "\n", Show(s.LatestSession()), "\n");
  for (const char* run : {"r1", "r2"}) {
    for (const char* phase : {"p1", "p2", "p3"})
      absl::StrAppend(&out, Show(s.GetPhase({run, phase})), "\n");
  }
  return out;
}

WorkerInfo Worker(const std::string& id) {
  WorkerInfo w;
  w.worker_id = id;
  return w;
}

// Polls `f` until it returns OK or 10 s pass.
template <typename F>
auto Eventually(F f) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  auto r = f();
  while (!r.ok() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    r = f();
  }
  return r;
}

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
    EXPECT_PRED1(unavailable, store->ExpireLeases(kT0 + kTtl * 10, 5).status());
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

  absl::StatusOr<std::vector<ExpiredLease>> expired = store->ExpireLeases(kT0 + kTtl * 2, 5);
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

TEST(RedisStoreTest, SelectsTheDatabaseFromTheUrl) {
  std::unique_ptr<RedisServer> server = StartOrThrow();
  RedisOptions o = Ok(ParseRedisUrl("redis+unix://" + server->socket_path() + "?db=5"));
  std::unique_ptr<RedisStateStore> db5 = Ok(RedisStateStore::Open(o));
  Ok(db5->ImportPhases({Spec("r1", "p1")}));
  std::unique_ptr<RedisStateStore> db0 = OpenStore(*server);
  EXPECT_EQ(Ok(db0->CountPhases()).total(), 0);
  EXPECT_EQ(Ok(db5->CountPhases()).total(), 1);
  EXPECT_THAT(Ok(server->Command({"INFO", "keyspace"})), HasSubstr("db5:keys=5,"));
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
  Ok(store->ExpireLeases(kT0 + kTtl * 3, 5));
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

TEST(RedisStoreTest, ReloadsScriptsAfterScriptFlush) {
  std::unique_ptr<RedisServer> server = StartOrThrow();
  std::unique_ptr<RedisStateStore> store = OpenStore(*server);
  Ok(store->ImportPhases({Spec("r1", "p1")}));
  ASSERT_TRUE(server->Command({"SCRIPT", "FLUSH"}).ok());
  EXPECT_TRUE(Ok(store->LeaseNextInRun(Lease("r1", "L1"))).has_value());
  EXPECT_EQ(Ok(store->CountPhases()).leased, 1);
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
}  // namespace sluice
