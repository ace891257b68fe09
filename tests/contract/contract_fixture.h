// Helpers shared by the contract suite's files (state_store_*_contract.cc):
// ids, specs, snapshots and the Contract driver. Kept out of
// state_store_contract.h so that header stays a small, stable interface for
// other backends.
#pragma once

#include <algorithm>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "coordinator/policy/phase_budget.h"
#include "coordinator/store/state_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace sluice::contract {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

inline constexpr int64_t kT0 = 1'700'000'000'000;
inline constexpr int64_t kTtl = 30'000;

using ::sluice::testing::Ok;

inline PhaseSpec Spec(const std::string& run, const std::string& phase, int64_t index = 0,
                      int64_t priority = 0, std::vector<std::string> labels = {}) {
  PhaseSpec s;
  s.run_id = run;
  s.phase_id = phase;
  s.phase_index = index;
  s.priority = priority;
  s.labels = std::move(labels);
  s.metadata_json = absl::StrCat(R"({"origin":")", phase, R"("})");
  return s;
}

inline SessionRecord Session(const std::string& id, int64_t started_at_ms) {
  SessionRecord s;
  s.session_id = id;
  s.started_at_ms = started_at_ms;
  return s;
}

// Everything a report can change, to compare before and after.
struct Snapshot {
  std::optional<PhaseRecord> phase;
  std::vector<RunStats> runs;
  PhaseCounts counts;
  std::vector<AttemptRecord> attempts;
  std::vector<LeaseGrant> leases;
};

inline void ExpectSameRunStats(const std::vector<RunStats>& a, const std::vector<RunStats>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    SCOPED_TRACE(a[i].run_id);
    EXPECT_EQ(a[i].run_id, b[i].run_id);
    EXPECT_EQ(a[i].pending, b[i].pending);
    EXPECT_EQ(a[i].leased, b[i].leased);
    EXPECT_EQ(a[i].succeeded, b[i].succeeded);
    EXPECT_EQ(a[i].failed, b[i].failed);
    EXPECT_EQ(a[i].attempts, b[i].attempts);
    EXPECT_EQ(a[i].successes, b[i].successes);
    EXPECT_EQ(a[i].timeouts, b[i].timeouts);
    EXPECT_EQ(a[i].telemetry_events, b[i].telemetry_events);
    EXPECT_EQ(a[i].run_ms, b[i].run_ms);
    EXPECT_EQ(a[i].best_pending_priority, b[i].best_pending_priority);
  }
}

inline void ExpectSameSnapshot(const Snapshot& a, const Snapshot& b) {
  ASSERT_EQ(a.phase.has_value(), b.phase.has_value());
  if (a.phase) {
    EXPECT_EQ(a.phase->state, b.phase->state);
    EXPECT_EQ(a.phase->attempts, b.phase->attempts);
    EXPECT_EQ(a.phase->requeues, b.phase->requeues);
    EXPECT_EQ(a.phase->current_lease_id, b.phase->current_lease_id);
    EXPECT_EQ(a.phase->final_outcome, b.phase->final_outcome);
    EXPECT_EQ(a.phase->telemetry_events, b.phase->telemetry_events);
  }
  ExpectSameRunStats(a.runs, b.runs);
  EXPECT_EQ(a.counts.pending, b.counts.pending);
  EXPECT_EQ(a.counts.leased, b.counts.leased);
  EXPECT_EQ(a.counts.succeeded, b.counts.succeeded);
  EXPECT_EQ(a.counts.failed, b.counts.failed);
  ASSERT_EQ(a.attempts.size(), b.attempts.size());
  for (size_t i = 0; i < a.attempts.size(); ++i) {
    EXPECT_EQ(a.attempts[i].lease_id, b.attempts[i].lease_id);
    EXPECT_EQ(a.attempts[i].outcome, b.attempts[i].outcome);
    EXPECT_EQ(a.attempts[i].telemetry_events, b.attempts[i].telemetry_events);
    EXPECT_EQ(a.attempts[i].duration_ms, b.attempts[i].duration_ms);
  }
  ASSERT_EQ(a.leases.size(), b.leases.size());
  for (size_t i = 0; i < a.leases.size(); ++i) {
    EXPECT_EQ(a.leases[i].lease_id, b.leases[i].lease_id);
    EXPECT_EQ(a.leases[i].expires_at_ms, b.leases[i].expires_at_ms);
  }
}

// The fixture's helpers, kept out of the shared header so that header stays
// a small, stable interface for other backends.
class Contract {
 public:
  explicit Contract(StateStore& store) : store_(store) {}

  void Import(const std::vector<PhaseSpec>& phases) { Ok(store_.ImportPhases(phases)); }

  PhaseRecord Phase(const std::string& run, const std::string& phase) {
    std::optional<PhaseRecord> p = Ok(store_.GetPhase(PhaseKey{run, phase}));
    if (!p) throw std::runtime_error(absl::StrCat("no phase ", run, "/", phase));
    return *p;
  }

  LeaseParams Params(const std::string& run, const std::string& worker = "w1", int64_t now = kT0) {
    LeaseParams p;
    p.run_id = run;
    p.worker_id = worker;
    p.session_id = session_;
    p.lease_id = absl::StrCat("lease-", ++next_lease_);
    p.timeout_seconds = 600;
    p.now_ms = now;
    p.ttl_ms = kTtl;
    return p;
  }

  std::optional<LeaseGrant> Lease(const std::string& run, const std::string& worker = "w1",
                                  int64_t now = kT0) {
    return Ok(store_.LeaseNextInRun(Params(run, worker, now)));
  }

  LeaseGrant MustLease(const std::string& run, const std::string& worker = "w1",
                       int64_t now = kT0) {
    std::optional<LeaseGrant> g = Lease(run, worker, now);
    if (!g) throw std::runtime_error(absl::StrCat("nothing to lease in run ", run));
    return *g;
  }

  static ReportParams Report(const LeaseGrant& g, Outcome outcome, int64_t events = 0,
                             int64_t duration_ms = 0, int64_t now = kT0 + 1'000,
                             int32_t max_attempts = 2) {
    ReportParams p;
    p.report.lease_id = g.lease_id;
    p.report.epoch = g.epoch;
    p.report.worker_id = g.worker_id;
    p.report.outcome = outcome;
    p.report.exit_code = outcome == Outcome::kSucceeded ? 0 : 1;
    p.report.duration_ms = duration_ms;
    p.report.telemetry_events = events;
    p.report.error_text = outcome == Outcome::kSucceeded ? "" : "boom";
    p.fingerprint = absl::StrCat(std::string(OutcomeName(outcome)), "|fp");
    p.now_ms = now;
    p.transition = TransitionAfterOutcome(PhaseBudget{max_attempts, 5}, outcome, true);
    return p;
  }

  ReportResult Record(const LeaseGrant& g, Outcome outcome, int64_t events = 0,
                      int64_t duration_ms = 0, int32_t max_attempts = 2) {
    return Ok(
        store_.RecordReport(Report(g, outcome, events, duration_ms, kT0 + 1'000, max_attempts)));
  }

  RunStats Stats(const std::string& run) {
    for (RunStats& r : Ok(store_.ListRunStats())) {
      if (r.run_id == run) return r;
    }
    throw std::runtime_error(absl::StrCat("no stats for run ", run));
  }

  Snapshot Snap(const std::string& run, const std::string& phase) {
    Snapshot s;
    s.phase = Ok(store_.GetPhase(PhaseKey{run, phase}));
    s.runs = Ok(store_.ListRunStats());
    std::sort(s.runs.begin(), s.runs.end(),
              [](const RunStats& a, const RunStats& b) { return a.run_id < b.run_id; });
    s.counts = Ok(store_.CountPhases());
    s.attempts = Ok(store_.ListAttempts(""));
    s.leases = Ok(store_.ListActiveLeases());
    return s;
  }

  void set_session(std::string session) { session_ = std::move(session); }

 private:
  StateStore& store_;
  std::string session_ = "s1";
  int next_lease_ = 0;
};

}  // namespace sluice::contract
