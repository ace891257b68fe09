// ReadyIndex over an in-memory SqliteStateStore and a FakeClock, pinned
// against a ranking from scratch (ListRunStats + the same ranking function)
// on random operations: grants by workers with and without labels, reports
// (successes and failures), lease expiry, exclusions that change without a
// touch, and time passing.
#include "coordinator/lease/ready_index.h"

#include <memory>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "coordinator/insight/telemetry_watch.h"
#include "coordinator/policy/drain_policy.h"
#include "coordinator/policy/phase_budget.h"
#include "coordinator/store/sqlite/sqlite_state_store.h"
#include "gtest/gtest.h"
#include "tests/testing/forwarding_state_store.h"

namespace sluice {
namespace {

constexpr int kRuns = 150;  // above exact_below_runs: the index's own order is used

std::vector<PhaseSpec> Backlog(std::mt19937& rng) {
  std::vector<PhaseSpec> specs;
  for (int r = 0; r < kRuns; ++r) {
    const int phases = 1 + static_cast<int>(rng() % 5);
    for (int p = 0; p < phases; ++p) {
      PhaseSpec spec;
      spec.run_id = absl::StrCat("run", r);
      spec.phase_id = absl::StrCat("p", p);
      spec.phase_index = p;
      spec.priority = rng() % 10 == 0 ? 1 : 0;
      if (rng() % 4 == 0) spec.labels = {"gpu"};
      specs.push_back(spec);
    }
  }
  return specs;
}

void ExpectSameStats(const std::vector<RunStats>& got, const std::vector<RunStats>& want,
                     int step) {
  ASSERT_EQ(got.size(), want.size()) << "step " << step;
  for (size_t i = 0; i < got.size(); ++i) {
    const RunStats& a = got[i];
    const RunStats& b = want[i];
    EXPECT_EQ(std::tie(a.run_id, a.pending, a.leased, a.succeeded, a.failed, a.attempts,
                       a.successes, a.timeouts, a.telemetry_events, a.run_ms,
                       a.unknown_telemetry_ms, a.best_pending_priority),
              std::tie(b.run_id, b.pending, b.leased, b.succeeded, b.failed, b.attempts,
                       b.successes, b.timeouts, b.telemetry_events, b.run_ms,
                       b.unknown_telemetry_ms, b.best_pending_priority))
        << "step " << step << " run " << b.run_id;
  }
}

class ReadyIndexTest : public ::testing::Test {
 protected:
  ReadyIndexTest() : store_(SqliteStateStore::Open(":memory:").value()) {
    session_.session_id = "s1";
    session_.state = SessionState::kActive;
    session_.settings.max_fingerprint_repeats = 2;
    session_.started_at_ms = clock_.NowMs();
    EXPECT_TRUE(store_->CreateSession(session_).ok());
  }

  // A lease of the next phase of `run` under a new lease id.
  LeaseParams ParamsFor(const std::string& run, const std::vector<std::string>& labels = {}) {
    LeaseParams params;
    params.run_id = run;
    params.worker_id = "w";
    params.session_id = session_.session_id;
    params.lease_id = absl::StrCat("L", ++lease_counter_);
    params.timeout_seconds = 60;
    params.now_ms = clock_.NowMs();
    params.ttl_ms = 30'000;
    params.worker_labels = labels;
    return params;
  }

  // Mimics LeaseBroker::TryLease for one grant: the run granted from, or "".
  std::string GrantOne(ReadyIndex& index, const std::vector<std::string>& labels,
                       std::vector<LeaseGrant>* held) {
    std::set<std::string> empty_runs;
    while (true) {
      auto best = index.Best(session_, labels, empty_runs).value();
      if (!best) return "";
      const LeaseParams params = ParamsFor(best->stats.run_id, labels);
      auto grant = store_->LeaseNextInRun(params).value();
      if (!grant) {
        index.Missed(params.run_id, labels);
        empty_runs.insert(params.run_id);
        continue;
      }
      index.Granted(params.run_id);
      held->push_back(*grant);
      return params.run_id;
    }
  }

  FakeClock clock_;
  std::unique_ptr<SqliteStateStore> store_;
  SessionRecord session_;
  int lease_counter_ = 0;
};

// A ranking that depends on each run alone (not on the others, not on the
// time), so the order the index keeps for an unchanged run is exactly the
// order from scratch: fewer attempts first, then more pending, then run id.
// Runs in `*blocked` are excluded, an exclusion that changes without Touch.
ReadyIndex::RankFn PerRunRank(const std::set<std::string>* blocked) {
  return [blocked](const std::vector<RunStats>& runs, const SessionSettings&, int64_t) {
    std::vector<const RunStats*> eligible;
    for (const RunStats& r : runs) {
      if (r.pending > 0 && !blocked->contains(r.run_id)) eligible.push_back(&r);
    }
    std::sort(eligible.begin(), eligible.end(), [](const RunStats* a, const RunStats* b) {
      return std::make_tuple(-a->best_pending_priority, a->attempts + a->leased, -a->pending,
                             a->run_id) < std::make_tuple(-b->best_pending_priority,
                                                          b->attempts + b->leased, -b->pending,
                                                          b->run_id);
    });
    std::vector<RunRanking> out;
    for (const RunStats* r : eligible) {
      RunRanking ranking;
      ranking.run_id = r->run_id;
      out.push_back(ranking);
    }
    return absl::StatusOr<std::vector<RunRanking>>(std::move(out));
  };
}

// The first run of a from-scratch ranking, not in `unusable`, that has a
// phase leasable with `labels` (asked of a copy-free probe: the pending
// phases' labels in the store).
std::string FirstLeasable(SqliteStateStore& store, const ReadyIndex::RankFn& rank,
                          const SessionSettings& settings, int64_t now_ms,
                          const std::vector<std::string>& labels,
                          const std::set<std::string>& unusable,
                          const std::map<std::string, std::vector<PhaseSpec>>& specs) {
  const std::vector<RunRanking> ranked =
      rank(store.ListRunStats().value(), settings, now_ms).value();
  for (const RunRanking& r : ranked) {
    if (unusable.contains(r.run_id)) continue;
    for (const PhaseSpec& spec : specs.at(r.run_id)) {
      auto phase = store.GetPhase({spec.run_id, spec.phase_id}).value();
      if (!phase || phase->state != PhaseState::kPending) continue;
      bool has_all = true;
      for (const std::string& need : spec.labels) {
        has_all = has_all && std::find(labels.begin(), labels.end(), need) != labels.end();
      }
      if (has_all) return r.run_id;
    }
  }
  return "";
}

TEST_F(ReadyIndexTest,
       OffersTheFromScratchBestAmongRunsUnchangedSinceItsRankingOnRandomOperations) {
  std::mt19937 rng(12);
  const std::vector<PhaseSpec> backlog = Backlog(rng);
  std::map<std::string, std::vector<PhaseSpec>> specs;
  for (const PhaseSpec& s : backlog) specs[s.run_id].push_back(s);
  ASSERT_TRUE(store_->ImportPhases(backlog).ok());
  std::set<std::string> blocked;
  const ReadyIndex::RankFn rank = PerRunRank(&blocked);
  ReadyIndex index(*store_, clock_, rank, ReadyIndexOptions{});
  std::set<std::string> changed;  // granted, reported, expired or re-blocked since its ranking
  std::vector<LeaseGrant> held;
  int grants = 0;
  int rankings_seen = 0;
  for (int step = 0; step < 1500; ++step) {
    if (step % 7 == 0) {
      // A status read between offers sees the store's statistics exactly
      // and changes none of the offers checked below.
      ExpectSameStats(index.Snapshot().value(), store_->ListRunStats().value(), step);
    }
    const int op = static_cast<int>(rng() % 10);
    if (op < 5) {
      const std::vector<std::string> labels =
          rng() % 2 == 0 ? std::vector<std::string>{} : std::vector<std::string>{"gpu"};
      const uint64_t before = index.rankings();
      // What the index should offer, computed before the grant changes the store.
      std::set<std::string> unusable = changed;
      const std::string expect_if_stale =
          FirstLeasable(*store_, rank, session_.settings, clock_.NowMs(), labels, unusable, specs);
      const std::string expect_if_ranked =
          FirstLeasable(*store_, rank, session_.settings, clock_.NowMs(), labels, {}, specs);
      const std::string got = GrantOne(index, labels, &held);
      if (index.rankings() != before) {
        ++rankings_seen;
        changed.clear();
        EXPECT_EQ(got, expect_if_ranked) << "step " << step << " (ranked again)";
      } else {
        EXPECT_EQ(got, expect_if_stale) << "step " << step;
      }
      if (!got.empty()) {
        changed.insert(got);
        ++grants;
      }
    } else if (op < 8 && !held.empty()) {
      // A report: success, or a failure that sends the phase back to pending.
      const size_t i = rng() % held.size();
      const LeaseGrant lease = held[i];
      held.erase(held.begin() + static_cast<std::ptrdiff_t>(i));
      ReportParams params;
      params.report.lease_id = lease.lease_id;
      params.report.epoch = lease.epoch;
      params.report.worker_id = "w";
      params.report.outcome = rng() % 3 == 0 ? Outcome::kFailed : Outcome::kSucceeded;
      params.report.exit_code = params.report.outcome == Outcome::kSucceeded ? 0 : 1;
      params.report.duration_ms = 1000;
      params.now_ms = clock_.NowMs();
      params.transition =
          TransitionAfterOutcome(PhaseBudget{3, 3}, params.report.outcome, /*counts=*/true);
      ASSERT_TRUE(store_->RecordReport(params).ok());
      index.Touch(lease.run_id);
      changed.insert(lease.run_id);
    } else if (op == 8) {
      // An exclusion that changes with no touch of that run (the repeat rule
      // made run-wide by another run's report, an unblock elsewhere).
      const std::string run = absl::StrCat("run", rng() % kRuns);
      if (!blocked.erase(run)) blocked.insert(run);
      changed.insert(run);  // the index learns of an unblock at its next ranking
    } else {
      clock_.AdvanceMs(static_cast<int64_t>(rng() % 400));
      if (rng() % 8 == 0) {
        clock_.AdvanceMs(31'000);
        auto expired =
            store_->ExpireLeases(clock_.NowMs(), DrainPolicy::ExpiryTransition(session_)).value();
        for (const ExpiredLease& e : expired) {
          index.Touch(e.lease.run_id);
          changed.insert(e.lease.run_id);
          std::erase_if(held, [&e](const LeaseGrant& g) { return g.lease_id == e.lease.lease_id; });
        }
      }
    }
  }
  EXPECT_GT(grants, 300);
  // Both paths were taken: offers from a standing ranking and fresh rankings.
  EXPECT_GT(rankings_seen, 5);
  EXPECT_LT(rankings_seen, grants / 2);
}

TEST_F(ReadyIndexTest, EveryRunOfferedByTheRealPolicyIsEligibleFromScratchAndTheDrainCompletes) {
  std::mt19937 rng(7);
  std::vector<PhaseSpec> backlog = Backlog(rng);
  for (PhaseSpec& s : backlog) s.labels.clear();
  ASSERT_TRUE(store_->ImportPhases(backlog).ok());
  DrainPolicy policy(*store_, clock_, {});
  ASSERT_TRUE(policy.EnsureLoaded().ok());
  const ReadyIndex::RankFn rank = [&policy](const std::vector<RunStats>& runs,
                                            const SessionSettings& settings, int64_t now_ms) {
    return policy.Rank(runs, settings, now_ms);
  };
  ReadyIndex index(*store_, clock_, rank, ReadyIndexOptions{});
  std::vector<LeaseGrant> held;
  int grants = 0;
  for (int step = 0; step < 4000; ++step) {
    if (rng() % 2 == 0 || held.empty()) {
      const std::vector<RunRanking> scratch =
          rank(store_->ListRunStats().value(), session_.settings, clock_.NowMs()).value();
      const std::string got = GrantOne(index, {}, &held);
      if (got.empty()) {
        // Nothing offered only when nothing is eligible from scratch either.
        EXPECT_TRUE(scratch.empty()) << "step " << step;
        if (held.empty()) break;
        continue;
      }
      ++grants;
      EXPECT_TRUE(std::any_of(scratch.begin(), scratch.end(),
                              [&got](const RunRanking& r) { return r.run_id == got; }))
          << "step " << step << ": " << got << " is excluded from scratch";
      continue;
    }
    const size_t i = rng() % held.size();
    const LeaseGrant lease = held[i];
    held.erase(held.begin() + static_cast<std::ptrdiff_t>(i));
    AttemptReport report;
    report.lease_id = lease.lease_id;
    report.epoch = lease.epoch;
    report.worker_id = "w";
    // Runs whose number ends in 7 fail alike (one fingerprint, the repeat
    // rule blocks them); the rest succeed with telemetry.
    const bool fails = lease.run_id.back() == '7';
    report.outcome = fails ? Outcome::kFailed : Outcome::kSucceeded;
    report.exit_code = fails ? 1 : 0;
    report.error_text = fails ? "ImportError: no module named foo" : "";
    report.telemetry_events = fails ? 0 : 1 + static_cast<int64_t>(rng() % 5);
    report.duration_ms = 1000 + static_cast<int64_t>(rng() % 5000);
    clock_.AdvanceMs(50);
    const ReportParams params = policy.PrepareReport(report, session_.settings).value();
    const ReportResult result = store_->RecordReport(params).value();
    policy.Observe(params, result, session_);
    index.Touch(lease.run_id);
  }
  EXPECT_GT(grants, 300);
  // Drained: nothing left that the policy from scratch would lease.
  EXPECT_TRUE(
      rank(store_->ListRunStats().value(), session_.settings, clock_.NowMs()).value().empty());
}

TEST_F(ReadyIndexTest, SmallBacklogsAreRankedFromScratchAtEveryOffer) {
  std::vector<PhaseSpec> backlog;
  for (int r = 0; r < 5; ++r) {
    PhaseSpec s;
    s.run_id = absl::StrCat("r", r);
    s.phase_id = "p";
    backlog.push_back(s);
  }
  ASSERT_TRUE(store_->ImportPhases(backlog).ok());
  std::set<std::string> blocked;
  ReadyIndex index(*store_, clock_, PerRunRank(&blocked), ReadyIndexOptions{});
  std::vector<LeaseGrant> held;
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(GrantOne(index, {}, &held), absl::StrCat("r", i));
    EXPECT_EQ(index.rankings(), static_cast<uint64_t>(i + 1));
  }
  EXPECT_EQ(GrantOne(index, {}, &held), "");
}

TEST_F(ReadyIndexTest, InvalidateReloadsRunsImportedBehindItsBack) {
  std::mt19937 rng(3);
  ASSERT_TRUE(store_->ImportPhases(Backlog(rng)).ok());
  std::set<std::string> blocked;
  ReadyIndex index(*store_, clock_, PerRunRank(&blocked), ReadyIndexOptions{});
  std::vector<LeaseGrant> held;
  ASSERT_NE(GrantOne(index, {}, &held), "");
  PhaseSpec urgent;
  urgent.run_id = "urgent";
  urgent.phase_id = "p";
  urgent.priority = 9;
  ASSERT_TRUE(store_->ImportPhases({urgent}).ok());
  index.Invalidate();
  EXPECT_EQ(GrantOne(index, {}, &held), "urgent");
}

// Counts GetRunStats, the read the index makes of a dirty run, and
// ListRunStats, its whole load.
class CountingReads : public testing::ForwardingStateStore {
 public:
  using ForwardingStateStore::ForwardingStateStore;
  absl::StatusOr<std::optional<RunStats>> GetRunStats(const std::string& run_id) override {
    ++reads;
    return target().GetRunStats(run_id);
  }
  absl::StatusOr<std::vector<RunStats>> ListRunStats() override {
    ++whole_loads;
    return target().ListRunStats();
  }
  int reads = 0;
  int whole_loads = 0;
};

TEST_F(ReadyIndexTest, SnapshotReadsOnlyTheRunsChangedSinceAndReloadsWhenTheCountersDisagree) {
  std::mt19937 rng(5);
  ASSERT_TRUE(store_->ImportPhases(Backlog(rng)).ok());
  CountingReads counting(*store_);
  std::set<std::string> blocked;
  ReadyIndexOptions options;
  options.reload_every = absl::Hours(1);  // no timed reload in this test
  ReadyIndex index(counting, clock_, PerRunRank(&blocked), options);
  ExpectSameStats(index.Snapshot().value(), store_->ListRunStats().value(), 0);
  EXPECT_EQ(counting.whole_loads, 1);
  EXPECT_EQ(counting.reads, 0);

  // Three grants and a report through the index: a snapshot reads those
  // runs again, one read each however often they changed, and nothing else.
  std::vector<LeaseGrant> held;
  std::set<std::string> granted;
  for (int i = 0; i < 3; ++i) granted.insert(GrantOne(index, {}, &held));
  ASSERT_FALSE(held.empty());
  const int loads_after_grants = counting.whole_loads;
  const int reads_after_grants = counting.reads;
  ReportParams report;
  report.report.lease_id = held[0].lease_id;
  report.report.epoch = held[0].epoch;
  report.report.worker_id = "w";
  report.report.outcome = Outcome::kSucceeded;
  report.now_ms = clock_.NowMs();
  report.transition = TransitionAfterOutcome(PhaseBudget{}, Outcome::kSucceeded, true);
  ASSERT_TRUE(store_->RecordReport(report).ok());
  index.Touch(held[0].run_id);
  ExpectSameStats(index.Snapshot().value(), store_->ListRunStats().value(), 1);
  EXPECT_EQ(counting.whole_loads, loads_after_grants);
  EXPECT_EQ(counting.reads - reads_after_grants, static_cast<int>(granted.size()));
  ExpectSameStats(index.Snapshot().value(), store_->ListRunStats().value(), 2);
  EXPECT_EQ(counting.reads - reads_after_grants, static_cast<int>(granted.size()))
      << "a snapshot with nothing changed read the store";

  // Another writer (an import straight into the store, by another process)
  // that adds phases: the store's phase counters no longer add up, so the
  // next snapshot reloads whole, untold.
  PhaseSpec late;
  late.run_id = "late";
  late.phase_id = "p";
  ASSERT_TRUE(store_->ImportPhases({late}).ok());
  ExpectSameStats(index.Snapshot().value(), store_->ListRunStats().value(), 3);
  EXPECT_EQ(counting.whole_loads, loads_after_grants + 1);
  // One that moves no phase (a new priority) shows once the index is told
  // (Invalidate) or at its timed reload.
  late.priority = 7;
  ASSERT_TRUE(store_->ImportPhases({late}).ok());
  const std::vector<RunStats> before_told = index.Snapshot().value();
  ASSERT_EQ(before_told.front().run_id, "late");
  EXPECT_EQ(before_told.front().best_pending_priority, 0);
  index.Invalidate();
  ExpectSameStats(index.Snapshot().value(), store_->ListRunStats().value(), 4);
  EXPECT_EQ(counting.whole_loads, loads_after_grants + 2);
}

TEST_F(ReadyIndexTest, StatisticsAnsweredWithEveryChangeAreNotReadAgain) {
  std::vector<PhaseSpec> backlog;
  for (int r = 0; r < 3; ++r) {
    for (int p = 0; p < 4; ++p) {
      PhaseSpec s;
      s.run_id = absl::StrCat("r", r);
      s.phase_id = absl::StrCat("p", p);
      backlog.push_back(s);
    }
  }
  ASSERT_TRUE(store_->ImportPhases(backlog).ok());
  CountingReads counting(*store_);
  std::set<std::string> blocked;
  ReadyIndex index(counting, clock_, PerRunRank(&blocked), ReadyIndexOptions{});
  // Small backlog: ranked from scratch at every offer, from the statistics
  // the grants and reports answered (read here from the store itself, as
  // the Redis store's scripts answer them).
  for (int i = 0; i < 6; ++i) {
    auto best = index.Best(session_, {}).value();
    ASSERT_TRUE(best.has_value());
    const std::string run = best->stats.run_id;
    const LeaseGrant grant = store_->LeaseNextInRun(ParamsFor(run)).value().value();
    index.Granted(run, store_->GetRunStats(run).value());
    ReportParams report;
    report.report.lease_id = grant.lease_id;
    report.report.epoch = grant.epoch;
    report.report.worker_id = "w";
    report.report.outcome = Outcome::kSucceeded;
    report.now_ms = clock_.NowMs();
    report.transition = TransitionAfterOutcome(PhaseBudget{}, Outcome::kSucceeded, true);
    ASSERT_TRUE(store_->RecordReport(report).ok());
    index.Touch(run, store_->GetRunStats(run).value());
  }
  EXPECT_EQ(counting.reads, 0);
  // The ranking saw every change: fewest attempts first, so two each.
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(store_->GetRunStats(absl::StrCat("r", r)).value()->attempts, 2);
  }

  // Answers reaching the index out of order (a report answered on another
  // thread after a later grant's): the newer statistics win.
  const std::string run = index.Best(session_, {}).value()->stats.run_id;
  const RunStats before = store_->GetRunStats(run).value().value();
  ASSERT_TRUE(store_->LeaseNextInRun(ParamsFor(run)).value().has_value());
  const RunStats after = store_->GetRunStats(run).value().value();
  index.Granted(run, after);
  index.Touch(run, before);
  auto offered = index.Best(session_, {}).value();
  ASSERT_TRUE(offered.has_value());
  EXPECT_EQ(counting.reads, 0);
  // The run leased from now has one more leased phase, so another run leads.
  EXPECT_NE(offered->stats.run_id, run);

  // A change that came without statistics (an expiry) is read.
  index.Touch(run);
  index.Granted(run, after);
  ASSERT_TRUE(index.Best(session_, {}).value().has_value());
  EXPECT_EQ(counting.reads, 1);
}

}  // namespace
}  // namespace sluice
