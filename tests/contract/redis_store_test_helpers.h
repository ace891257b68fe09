// Helpers shared by the Redis store's test files (redis_store_test.cc,
// redis_differential_test.cc, redis_store_ops_test.cc), one executable: a
// redis-server per test or one shared server, stores on fresh namespaces,
// lease and report builders.
#pragma once

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
#include "tests/testing/status_matchers.h"

namespace sluice::redis_test {

using ::sluice::contract::StoreFactory;
using ::sluice::contract::StoreFactoryName;
using ::sluice::testing::RedisServer;
using ::sluice::testing::RedisServerOptions;
using ::testing::HasSubstr;
using ::testing::Not;

inline constexpr int64_t kT0 = 1'700'000'000'000;
inline constexpr int64_t kTtl = 30'000;

using ::sluice::testing::Ok;

inline std::unique_ptr<RedisServer> StartOrThrow(RedisServerOptions options = {}) {
  absl::StatusOr<std::unique_ptr<RedisServer>> server = RedisServer::Start(std::move(options));
  if (!server.ok()) throw std::runtime_error(server.status().ToString());
  return *std::move(server);
}

inline std::unique_ptr<RedisStateStore> OpenStore(const RedisServer& server,
                                                  const std::string& key_namespace = "sluice") {
  RedisOptions o = Ok(ParseRedisUrl(server.Url(key_namespace)));
  return Ok(RedisStateStore::Open(o));
}

// A namespace no other store of this process used: stores on the shared
// server start empty, also under --gtest_repeat.
inline std::string FreshNamespace(const std::string& base) {
  static int n = 0;
  return absl::StrCat(base, "_", ++n);
}

// One server for the whole binary; each store gets a namespace of its own, so
// it starts empty.
inline RedisServer& SharedServer() {
  static std::unique_ptr<RedisServer> server = StartOrThrow();
  return *server;
}

inline PhaseSpec Spec(const std::string& run, const std::string& phase, int64_t priority = 0,
                      std::vector<std::string> labels = {}) {
  PhaseSpec s;
  s.run_id = run;
  s.phase_id = phase;
  s.priority = priority;
  s.labels = std::move(labels);
  return s;
}

// One line per value, for comparing stores and snapshots.
inline std::string Show(const absl::Status& s) { return absl::StatusCodeToString(s.code()); }
inline std::string Show(const ImportResult& r) {
  return absl::StrCat("import ", r.inserted, "/", r.updated, "/", r.unchanged);
}
inline std::string Show(const LeaseGrant& g) {
  return absl::StrCat("lease ", g.lease_id, " ", g.run_id, "/", g.phase_id, " a", g.attempt, " e",
                      g.epoch, " ", g.worker_id, " ", g.session_id, " t", g.timeout_seconds, " ",
                      g.leased_at_ms, "..", g.expires_at_ms);
}
inline std::string Show(const std::optional<LeaseGrant>& g) { return g ? Show(*g) : "no lease"; }
inline std::string Show(const std::vector<std::string>& v) { return absl::StrJoin(v, ","); }
inline std::string Show(const ReportResult& r) {
  return absl::StrCat(std::string(ReportDispositionName(r.disposition)), " ",
                      std::string(PhaseStateName(r.phase_state)));
}
inline std::string Show(const std::vector<ExpiredLease>& v) {
  std::string out;
  for (const ExpiredLease& e : v)
    absl::StrAppend(&out, Show(e.lease), "->", std::string(PhaseStateName(e.phase_state)), ";");
  return out;
}
inline std::string Show(const std::vector<LeaseGrant>& v) {
  std::string out;
  for (const LeaseGrant& g : v) absl::StrAppend(&out, Show(g), ";");
  return out;
}
inline std::string Show(const std::optional<PhaseRecord>& p) {
  if (!p) return "no phase";
  return absl::StrCat(p->spec.run_id, "/", p->spec.phase_id, " i", p->spec.phase_index, " p",
                      p->spec.priority, " [", p->spec.last_error, "] {",
                      absl::StrJoin(p->spec.labels, ","), "} ", p->spec.metadata_json, " ",
                      std::string(PhaseStateName(p->state)), " a", p->attempts, " q", p->requeues,
                      " l", p->current_lease_id, " f",
                      p->final_outcome ? std::string(OutcomeName(*p->final_outcome)) : "-", " t",
                      p->telemetry_events, " u", p->updated_at_ms);
}
inline std::string Show(const std::vector<RunStats>& v) {
  std::string out;
  for (const RunStats& r : v) {
    absl::StrAppend(&out, r.run_id, ":", r.pending, ",", r.leased, ",", r.succeeded, ",", r.failed,
                    ",", r.attempts, ",", r.successes, ",", r.timeouts, ",", r.telemetry_events,
                    ",", r.run_ms, ",", r.unknown_telemetry_ms, ",", r.best_pending_priority, ";");
  }
  return out;
}
inline std::string Show(const PhaseCounts& c) {
  return absl::StrCat(c.pending, ",", c.leased, ",", c.succeeded, ",", c.failed);
}
inline std::string Show(const std::vector<WorkerInfo>& v) {
  std::string out;
  for (const WorkerInfo& w : v) {
    absl::StrAppend(&out, w.worker_id, " ", w.host, " ", w.slots, " ", absl::StrJoin(w.labels, ","),
                    " ", w.version, " ", w.last_seen_ms, ";");
  }
  return out;
}
inline std::string Show(const std::optional<SessionRecord>& s) {
  if (!s) return "no session";
  const SessionSettings& t = s->settings;
  return absl::StrCat(s->session_id, " ", std::string(SessionStateName(s->state)), " ",
                      s->started_at_ms, "..", s->ended_at_ms, " [", s->end_reason, "] ",
                      t.batch_size, ",", t.phase_timeout_seconds, ",", t.max_total_minutes, ",",
                      t.max_attempts_per_phase, ",", t.max_requeues_per_phase, ",",
                      absl::StrJoin(t.run_ids, "+"), ",", absl::StrJoin(t.skip_run_prefixes, "+"));
}
inline std::string Show(const std::vector<AttemptRecord>& v) {
  std::string out;
  for (const AttemptRecord& a : v) {
    std::string types;
    for (const auto& [k, n] : a.telemetry_by_type) absl::StrAppend(&types, k, "=", n, " ");
    absl::StrAppend(
        &out, a.lease_id, " ", a.run_id, "/", a.phase_id, " a", a.attempt, " e", a.epoch, " ",
        a.worker_id, " ", a.session_id, " ", std::string(OutcomeName(a.outcome)), " ", a.exit_code,
        " ", a.signal, " ", a.duration_ms, " [", a.error_text, "] [", a.fingerprint, "] ",
        a.telemetry_events, " {", types, "} [", a.stdout_tail, "] [", a.stderr_tail, "] ",
        a.started_at_ms, "..", a.ended_at_ms, a.telemetry_unknown ? " unknown" : "", ";\n");
  }
  return out;
}
inline std::string Show(int64_t n) { return std::to_string(n); }

template <typename T>
inline std::string Show(const absl::StatusOr<T>& r) {
  return r.ok() ? Show(*r) : Show(r.status());
}

inline LeaseParams Lease(const std::string& run, const std::string& lease_id, int64_t now = kT0) {
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

inline LeaseGrant MustLease(StateStore& store, const LeaseParams& p) {
  std::optional<LeaseGrant> g = Ok(store.LeaseNextInRun(p));
  if (!g) throw std::runtime_error("nothing to lease in " + p.run_id);
  return *std::move(g);
}

inline ReportParams Report(const LeaseGrant& g, Outcome outcome) {
  ReportParams p;
  p.report.lease_id = g.lease_id;
  p.report.epoch = g.epoch;
  p.report.worker_id = g.worker_id;
  p.report.outcome = outcome;
  p.report.duration_ms = 100;
  p.report.telemetry_events = 3;
  p.fingerprint = "fp";
  p.now_ms = g.leased_at_ms + 100;
  p.transition = TransitionAfterOutcome(PhaseBudget{}, outcome, true);
  return p;
}

// Everything a store can say about itself, for before/after comparisons.
inline std::string Snapshot(StateStore& s) {
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

inline WorkerInfo Worker(const std::string& id) {
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

}  // namespace sluice::redis_test
