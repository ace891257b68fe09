// The StateStore contract suite, the counters and indexes a store keeps so
// that status and the lease broker never read the backlog (issue #12):
// CountPhases, GetRunStats, ListPendingLabelledPhases and
// ListAttemptsWithoutOutput, each compared with a full recount after random
// operations (a differential test against StateStore's own slow defaults).
// See state_store_contract.h for how a backend gets the whole suite.
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "tests/contract/contract_fixture.h"
#include "tests/contract/state_store_contract.h"

namespace sluice::contract {
namespace {

std::vector<std::string> Keys(const std::vector<PhaseRecord>& phases) {
  std::vector<std::string> out;
  for (const PhaseRecord& p : phases) out.push_back(p.spec.run_id + "/" + p.spec.phase_id);
  return out;
}

// Every counter and index the store keeps, against a recount from its rows.
void ExpectCountersMatchARecount(StateStore& store, const std::vector<PhaseKey>& all_phases) {
  PhaseCounts recount;
  for (const PhaseKey& key : all_phases) {
    std::optional<PhaseRecord> p = Ok(store.GetPhase(key));
    ASSERT_TRUE(p.has_value()) << key.run_id << "/" << key.phase_id;
    switch (p->state) {
      case PhaseState::kPending:
        ++recount.pending;
        break;
      case PhaseState::kLeased:
        ++recount.leased;
        break;
      case PhaseState::kSucceeded:
        ++recount.succeeded;
        break;
      case PhaseState::kFailed:
        ++recount.failed;
        break;
    }
  }
  const PhaseCounts counts = Ok(store.CountPhases());
  EXPECT_EQ(counts.pending, recount.pending);
  EXPECT_EQ(counts.leased, recount.leased);
  EXPECT_EQ(counts.succeeded, recount.succeeded);
  EXPECT_EQ(counts.failed, recount.failed);

  const std::vector<RunStats> runs = Ok(store.ListRunStats());
  for (const RunStats& run : runs) {
    std::optional<RunStats> one = Ok(store.GetRunStats(run.run_id));
    ASSERT_TRUE(one.has_value()) << run.run_id;
    ExpectSameRunStats({*one}, {run});
  }
  EXPECT_FALSE(Ok(store.GetRunStats("no-such-run")).has_value());

  // The store's index of labelled pending phases against the default, which
  // walks every run's pending phases.
  const std::vector<PhaseRecord> labelled = Ok(store.ListPendingLabelledPhases(1'000'000));
  EXPECT_EQ(Keys(labelled), Keys(Ok(store.StateStore::ListPendingLabelledPhases(1'000'000))));
  if (labelled.size() > 1) {
    EXPECT_EQ(Keys(Ok(store.ListPendingLabelledPhases(1))), Keys({labelled.front()}));
  }
}

}  // namespace

TEST_P(StateStoreContractTest, CountersEqualAFullRecountAfterRandomOperations) {
  Contract c(store());
  std::mt19937 rng(12);
  auto pick = [&rng](size_t n) {
    return static_cast<size_t>(std::uniform_int_distribution<size_t>(0, n - 1)(rng));
  };
  const std::vector<std::vector<std::string>> label_sets = {{}, {}, {"gpu"}, {"gpu", "big"}};
  std::vector<PhaseKey> phases;
  std::vector<std::string> runs;
  std::vector<LeaseGrant> held;
  int64_t now = kT0;
  int imported = 0;
  for (int step = 0; step < 300; ++step) {
    SCOPED_TRACE(absl::StrCat("step ", step));
    now += 1'000;
    const size_t op = pick(10);
    if (op < 2 || phases.empty()) {
      // Import new phases, and re-import a known one with other labels or priority.
      std::vector<PhaseSpec> specs;
      for (int i = 0; i < 3; ++i) {
        const std::string run = absl::StrCat("run-", pick(6));
        const std::string phase = absl::StrCat("p", ++imported);
        specs.push_back(Spec(run, phase, static_cast<int64_t>(pick(4)),
                             static_cast<int64_t>(pick(3)), label_sets[pick(label_sets.size())]));
        phases.push_back({run, phase});
        runs.push_back(run);
      }
      const PhaseKey& again = phases[pick(phases.size())];
      if (std::none_of(specs.begin(), specs.end(),
                       [&](const PhaseSpec& s) { return s.phase_id == again.phase_id; })) {
        specs.push_back(Spec(again.run_id, again.phase_id, static_cast<int64_t>(pick(4)),
                             static_cast<int64_t>(pick(3)), label_sets[pick(label_sets.size())]));
      }
      c.Import(specs);
    } else if (op < 6) {
      LeaseParams params = c.Params(runs[pick(runs.size())], "w1", now);
      params.worker_labels = label_sets[pick(label_sets.size())];
      if (std::optional<LeaseGrant> g = Ok(store().LeaseNextInRun(params))) held.push_back(*g);
    } else if (op < 9 && !held.empty()) {
      const size_t i = pick(held.size());
      const Outcome outcomes[] = {Outcome::kSucceeded, Outcome::kFailed, Outcome::kTimedOut,
                                  Outcome::kCancelled};
      const Outcome outcome = outcomes[pick(4)];
      ReportParams report = Contract::Report(held[i], outcome, static_cast<int64_t>(pick(5)),
                                             static_cast<int64_t>(pick(1'000)), now, 2);
      report.report.stdout_tail = absl::StrCat("out of ", held[i].lease_id);
      if (outcome == Outcome::kCancelled) {
        report.transition = TransitionAfterOutcome(PhaseBudget{2, 5}, outcome, false);
      }
      EXPECT_EQ(Ok(store().RecordReport(report)).disposition, ReportDisposition::kAccepted);
      held.erase(held.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      // Expire every lease granted over a TTL ago.
      for (const ExpiredLease& e : Ok(store().ExpireLeases(now, LostLeaseTransition(2)))) {
        std::erase_if(held, [&](const LeaseGrant& g) { return g.lease_id == e.lease.lease_id; });
      }
    }
    if (step % 25 == 0) ExpectCountersMatchARecount(store(), phases);
  }
  ExpectCountersMatchARecount(store(), phases);
  EXPECT_GT(Ok(store().CountPhases()).total(), 0);
}

TEST_P(StateStoreContractTest, AttemptsWithoutOutputAreTheAttemptsWithEmptyTails) {
  Contract c(store());
  c.Import({Spec("r1", "p1"), Spec("r1", "p2")});
  for (const char* phase : {"p1", "p2"}) {
    SCOPED_TRACE(phase);
    LeaseGrant g = c.MustLease("r1", "w1", kT0);
    ReportParams p = Contract::Report(g, Outcome::kFailed, 3, 100, kT0 + 1'000);
    p.report.stdout_tail = std::string(1'000, 'o');
    p.report.stderr_tail = "err";
    Ok(store().RecordReport(p));
  }
  for (const std::string session : {"", "s1"}) {
    std::vector<AttemptRecord> full = Ok(store().ListAttempts(session));
    std::vector<AttemptRecord> lean = Ok(store().ListAttemptsWithoutOutput(session));
    ASSERT_EQ(full.size(), 2u);
    ASSERT_EQ(lean.size(), full.size());
    for (size_t i = 0; i < full.size(); ++i) {
      EXPECT_EQ(full[i].stdout_tail.size(), 1'000u);
      EXPECT_EQ(lean[i].stdout_tail, "");
      EXPECT_EQ(lean[i].stderr_tail, "");
      EXPECT_EQ(lean[i].lease_id, full[i].lease_id);
      EXPECT_EQ(lean[i].outcome, full[i].outcome);
      EXPECT_EQ(lean[i].fingerprint, full[i].fingerprint);
      EXPECT_EQ(lean[i].error_text, full[i].error_text);
      EXPECT_EQ(lean[i].telemetry_events, full[i].telemetry_events);
      EXPECT_EQ(lean[i].ended_at_ms, full[i].ended_at_ms);
    }
  }
}

TEST_P(StateStoreContractTest, PendingLabelledPhasesFollowLeaseAndRequeue) {
  Contract c(store());
  c.Import(
      {Spec("r1", "plain"), Spec("r1", "gpu", 1, 0, {"gpu"}), Spec("r0", "big", 0, 0, {"big"})});
  EXPECT_THAT(Keys(Ok(store().ListPendingLabelledPhases(10))), ElementsAre("r0/big", "r1/gpu"));
  LeaseParams params = c.Params("r1");
  params.worker_labels = {"gpu"};
  Ok(store().LeaseNextInRun(params));  // plain
  params = c.Params("r1");
  params.worker_labels = {"gpu"};
  std::optional<LeaseGrant> gpu = Ok(store().LeaseNextInRun(params));
  ASSERT_TRUE(gpu.has_value());
  EXPECT_EQ(gpu->phase_id, "gpu");
  EXPECT_THAT(Keys(Ok(store().ListPendingLabelledPhases(10))), ElementsAre("r0/big"));
  // A failure with attempts left puts it back: it waits for a gpu worker again.
  Ok(store().RecordReport(Contract::Report(*gpu, Outcome::kFailed, 0, 10, kT0 + 1'000, 2)));
  EXPECT_THAT(Keys(Ok(store().ListPendingLabelledPhases(10))), ElementsAre("r0/big", "r1/gpu"));
  // Re-imported without labels, it no longer needs any.
  c.Import({Spec("r1", "gpu", 1, 0, {})});
  EXPECT_THAT(Keys(Ok(store().ListPendingLabelledPhases(10))), ElementsAre("r0/big"));
  EXPECT_THAT(Ok(store().ListPendingLabelledPhases(0)), IsEmpty());
}

}  // namespace sluice::contract
