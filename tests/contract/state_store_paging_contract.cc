// The StateStore contract suite, the bounded reads behind the web view
// (issue #15, "no page load scans the store"): ListRunStatsPage against
// StateStore's own default (which sorts every run), ListPhaseAttempts against
// its default (which filters every attempt), and RemoveWorker.
// See state_store_contract.h for how a backend gets the whole suite.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "tests/contract/contract_fixture.h"
#include "tests/contract/state_store_contract.h"

namespace sluice::contract {
namespace {

using ::testing::ElementsAre;

std::vector<std::string> RunIds(const std::vector<RunStats>& runs) {
  std::vector<std::string> out;
  for (const RunStats& r : runs) out.push_back(r.run_id);
  return out;
}

std::vector<std::string> LeaseIds(const std::vector<AttemptRecord>& attempts) {
  std::vector<std::string> out;
  for (const AttemptRecord& a : attempts) out.push_back(a.lease_id);
  return out;
}

}  // namespace

TEST_P(StateStoreContractTest, RunStatsPagesAreTheDefaultsSortedFilteredAndCut) {
  Contract c(store());
  // Runs with different attempts, events, run time, pending and failures;
  // equal keys (ties) are broken by run id.
  std::vector<PhaseSpec> specs;
  for (const char* run : {"app-1", "app-2", "lib-1", "lib-10", "zeta"}) {
    for (int i = 0; i < 3; ++i) specs.push_back(Spec(run, absl::StrCat("p", i), i));
  }
  c.Import(specs);
  c.Record(c.MustLease("app-1"), Outcome::kSucceeded, 30, 60'000);
  c.Record(c.MustLease("app-1"), Outcome::kSucceeded, 5, 10'000);
  c.Record(c.MustLease("lib-1"), Outcome::kFailed, 0, 5'000, /*max_attempts=*/1);
  c.Record(c.MustLease("lib-10"), Outcome::kSucceeded, 30, 30'000);
  c.MustLease("zeta");  // leased, not reported

  for (const std::string sort :
       {"run_id", "attempts", "successes", "events", "yield", "pending", "failed", "run_ms"}) {
    for (const bool descending : {false, true}) {
      for (const std::string state : {"", "active", "done", "failed"}) {
        for (const std::string prefix : {"", "lib-1", "app"}) {
          RunStatsQuery q;
          q.sort = sort;
          q.descending = descending;
          q.state = state;
          q.run_id_prefix = prefix;
          q.contains = prefix.empty() ? "-" : "";
          q.offset = 1;
          q.limit = 2;
          SCOPED_TRACE(
              absl::StrCat(sort, descending ? " desc" : "", " state=", state, " prefix=", prefix));
          const RunStatsPage got = Ok(store().ListRunStatsPage(q));
          const RunStatsPage want = Ok(store().StateStore::ListRunStatsPage(q));
          EXPECT_EQ(got.total, want.total);
          ExpectSameRunStats(got.rows, want.rows);
          ExpectSameRunStats({got.sum}, {want.sum});
        }
      }
    }
  }

  RunStatsQuery q;
  q.sort = "events";
  q.descending = true;
  q.limit = 3;
  const RunStatsPage page = Ok(store().ListRunStatsPage(q));
  EXPECT_EQ(page.total, 5);
  // app-1 has 35 events, lib-10 30; the three runs without any tie at 0.
  EXPECT_THAT(RunIds(page.rows), ElementsAre("app-1", "lib-10", "app-2"));
  EXPECT_EQ(page.sum.telemetry_events, 65);
  EXPECT_EQ(page.sum.pending, 15 - 5);
  q.run_id_prefix = "lib-1";
  q.limit = 0;
  const RunStatsPage lib = Ok(store().ListRunStatsPage(q));
  EXPECT_TRUE(lib.rows.empty());
  EXPECT_EQ(lib.total, 2);  // lib-1 and lib-10, not app-1
  EXPECT_EQ(lib.sum.failed, 1);

  q = {};
  q.sort = "name; DROP TABLE runs";
  EXPECT_EQ(store().ListRunStatsPage(q).status().code(), absl::StatusCode::kInvalidArgument);
  q = {};
  q.state = "skipped";
  EXPECT_EQ(store().ListRunStatsPage(q).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(StateStoreContractTest, PhaseAttemptsAreNewestFirstPagedAndCarryTheirTails) {
  Contract c(store());
  c.Import({Spec("r1", "p1"), Spec("r1", "p2"), Spec("r2", "p1")});
  std::vector<std::string> p1_leases;  // in end order
  int64_t now = kT0;
  // r1/p1: failed, lost, failed, succeeded; r1/p2 and r2/p1 (same phase id
  // in another run) in between, so a filter by phase id alone would show.
  auto record = [&](const std::string& run, Outcome outcome, const std::string& tail) {
    LeaseGrant g = c.MustLease(run, "w1", now);
    ReportParams p = Contract::Report(g, outcome, 1, 100, now + 1, /*max_attempts=*/9);
    p.report.stderr_tail = tail;
    Ok(store().RecordReport(p));
    now += 10;
    return g;
  };
  LeaseGrant g = record("r1", Outcome::kFailed, "first");
  ASSERT_EQ(g.phase_id, "p1");
  p1_leases.push_back(g.lease_id);
  record("r2", Outcome::kSucceeded, "other run");
  g = c.MustLease("r1", "w1", now);
  ASSERT_EQ(g.phase_id, "p1");
  ASSERT_EQ(Ok(store().ExpireLeases(g.expires_at_ms, LostLeaseTransition(5))).size(), 1u);
  p1_leases.push_back(g.lease_id);
  now = g.expires_at_ms + 1;
  g = record("r1", Outcome::kFailed, "third");
  ASSERT_EQ(g.phase_id, "p1");
  p1_leases.push_back(g.lease_id);
  g = record("r1", Outcome::kSucceeded, "fourth");
  ASSERT_EQ(g.phase_id, "p1");
  p1_leases.push_back(g.lease_id);
  record("r1", Outcome::kSucceeded, "p2's");

  const PhaseKey key{"r1", "p1"};
  const AttemptPage all = Ok(store().ListPhaseAttempts(key, 0, 100));
  EXPECT_EQ(all.total, 4);
  EXPECT_THAT(LeaseIds(all.rows),
              ElementsAre(p1_leases[3], p1_leases[2], p1_leases[1], p1_leases[0]));
  EXPECT_EQ(all.rows[0].stderr_tail, "fourth");
  EXPECT_EQ(all.rows[2].outcome, Outcome::kLost);
  EXPECT_EQ(all.rows[3].stderr_tail, "first");
  for (const auto& [offset, limit] :
       std::vector<std::pair<int64_t, int64_t>>{{0, 1}, {1, 2}, {3, 5}, {4, 1}, {9, 1}, {0, 0}}) {
    SCOPED_TRACE(absl::StrCat(offset, "+", limit));
    const AttemptPage got = Ok(store().ListPhaseAttempts(key, offset, limit));
    const AttemptPage want = Ok(store().StateStore::ListPhaseAttempts(key, offset, limit));
    EXPECT_EQ(got.total, want.total);
    EXPECT_EQ(LeaseIds(got.rows), LeaseIds(want.rows));
  }
  const AttemptPage none = Ok(store().ListPhaseAttempts({"r9", "p1"}, 0, 10));
  EXPECT_EQ(none.total, 0);
  EXPECT_TRUE(none.rows.empty());
}

TEST_P(StateStoreContractTest, RemoveWorkerForgetsOnlyThatWorker) {
  for (const char* id : {"w1", "w2"}) {
    WorkerInfo w;
    w.worker_id = id;
    w.host = "h";
    w.slots = 1;
    w.last_seen_ms = kT0;
    Ok(store().UpsertWorker(w));
  }
  Ok(store().RemoveWorker("w1"));
  Ok(store().RemoveWorker("never-registered"));
  const std::vector<WorkerInfo> left = Ok(store().ListWorkers());
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].worker_id, "w2");
}

}  // namespace sluice::contract
