// The fixture of the Coordinator tests (coordinator_*_test.cc): the
// Coordinator facade over a real in-memory SqliteStateStore, wrapped in an
// unarmed FailingStateStore, and a FakeClock. No sleeps: every Lease call
// uses wait_ms = 0 so it returns at once.
//
// Not in an anonymous namespace: the topic files link into one binary, and
// gtest requires every TEST_F of a suite to use the same fixture type.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "coordinator/coordinator.h"
#include "coordinator/store/sqlite/sqlite_state_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/failing_state_store.h"
#include "tests/testing/status_matchers.h"

namespace sluice::testing {

inline std::unique_ptr<StateStore> MemoryStore() { return Ok(SqliteStateStore::Open(":memory:")); }

inline PhaseSpec Spec(const std::string& run, const std::string& phase, int64_t index = 0,
                      std::vector<std::string> labels = {}) {
  PhaseSpec s;
  s.run_id = run;
  s.phase_id = phase;
  s.phase_index = index;
  s.labels = std::move(labels);
  return s;
}

// The status code and message of a call that must fail.
template <typename T>
absl::Status Err(const absl::StatusOr<T>& result) {
  EXPECT_FALSE(result.ok()) << "expected an error";
  return result.status();
}

class CoordinatorTest : public ::testing::Test {
 protected:
  static constexpr int64_t kTtl = 30'000;

  CoordinatorTest() : store_(MemoryStore()), coord_(store_, clock_, Config()) {}

  static CoordinatorConfig Config() {
    CoordinatorConfig c;
    c.lease_ttl_ms = kTtl;
    c.heartbeat_interval_ms = 10'000;
    c.max_lease_wait_ms = 30'000;
    return c;
  }

  void RegisterWorker(const std::string& id, std::vector<std::string> labels = {}) {
    WorkerInfo w;
    w.worker_id = id;
    w.host = "host-" + id;
    w.slots = 2;
    w.labels = std::move(labels);
    w.version = "test";
    Ok(coord_.Register(w));
  }

  void Import(const std::vector<PhaseSpec>& phases) { Ok(coord_.ImportBacklog(phases)); }

  SessionRecord Start(SessionSettings settings = {}, const std::string& id = "s1") {
    return Ok(coord_.StartSession(settings, id));
  }

  // A fresh request id each call unless one is given.
  LeaseResult LeaseNow(const std::string& worker, int32_t max_phases = 1,
                       std::string request_id = "") {
    if (request_id.empty()) request_id = absl::StrCat("req-", ++next_request_);
    return Ok(coord_.Lease(worker, request_id, max_phases, /*wait_ms=*/0));
  }

  LeaseGrant LeaseOne(const std::string& worker = "w1") {
    LeaseResult r = LeaseNow(worker);
    if (r.leases.size() != 1) throw std::runtime_error("expected exactly one grant");
    return r.leases[0];
  }

  static AttemptReport ReportOf(const LeaseGrant& g, Outcome outcome, int64_t events = 0,
                                int64_t duration_ms = 1'000, const std::string& error = "") {
    AttemptReport r;
    r.lease_id = g.lease_id;
    r.epoch = g.epoch;
    r.worker_id = g.worker_id;
    r.outcome = outcome;
    r.exit_code = outcome == Outcome::kSucceeded ? 0 : (outcome == Outcome::kFailed ? 1 : -1);
    r.signal = outcome == Outcome::kTimedOut ? 15 : 0;
    r.duration_ms = duration_ms;
    r.telemetry_events = events;
    r.error_text = error;
    return r;
  }

  ReportAnswer ReportNow(const LeaseGrant& g, Outcome outcome, int64_t events = 0,
                         int64_t duration_ms = 1'000, const std::string& error = "") {
    return Ok(coord_.Report(ReportOf(g, outcome, events, duration_ms, error)));
  }

  PhaseRecord Phase(const std::string& run, const std::string& phase) {
    std::optional<PhaseRecord> p = Ok(store_.GetPhase(PhaseKey{run, phase}));
    if (!p) throw std::runtime_error("no phase " + run + "/" + phase);
    return *p;
  }

  SessionRecord Session(const std::string& id = "s1") {
    std::optional<SessionRecord> s = Ok(store_.GetSession(id));
    if (!s) throw std::runtime_error("no session " + id);
    return *s;
  }

  FakeClock clock_;
  FailingStateStore store_;  // unarmed unless a test arms it
  Coordinator coord_;
  int next_request_ = 0;
};

}  // namespace sluice::testing
