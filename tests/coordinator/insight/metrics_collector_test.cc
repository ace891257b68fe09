// The coordinator's metrics collector (RegisterCoordinatorMetrics) over a
// real in-memory SQLite store, rendered without HTTP: what a scrape reads and
// what it reports (issue #14 item 8). The endpoint itself is in
// tests/integration/metrics_test.cc.
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "coordinator/coordinator.h"
#include "coordinator/insight/metrics.h"
#include "coordinator/store/sqlite/sqlite_state_store.h"
#include "gtest/gtest.h"
#include "tests/coordinator/coordinator_fixture.h"
#include "tests/testing/prometheus_text.h"
#include "tests/testing/scan_counting_state_store.h"
#include "tests/testing/status_matchers.h"

namespace sluice::testing {
namespace {

// The fixture's report builder, without its store and coordinator.
struct Reports : CoordinatorTest {
  using CoordinatorTest::ReportOf;
};

class MetricsCollectorTest : public ::testing::Test {
 protected:
  static constexpr int64_t kTtl = 30'000;

  MetricsCollectorTest()
      : store_(Ok(SqliteStateStore::Open(":memory:"))),
        // The collector reads the wall clock; the coordinator's starts 5 TTLs
        // before it and catches up.
        clock_(SystemClock::Default().NowMs() - 5 * kTtl),
        coordinator_(store_, clock_, Config()) {
    RegisterCoordinatorMetrics(registry_, coordinator_);
    WorkerInfo w;
    w.worker_id = "w1";
    w.host = "h";
    w.slots = 2;
    Ok(coordinator_.Register(w));
    std::vector<PhaseSpec> specs;
    for (const char* run : {"run-a", "run-b", "other"}) {
      for (int i = 0; i < 3; ++i) {
        PhaseSpec s;
        s.run_id = run;
        s.phase_id = "p" + std::to_string(i);
        specs.push_back(s);
      }
    }
    Ok(coordinator_.ImportBacklog(specs));
  }

  static CoordinatorConfig Config() {
    CoordinatorConfig c;
    c.lease_ttl_ms = kTtl;
    c.heartbeat_interval_ms = 10'000;
    return c;
  }

  double Scrape(const std::string& name) {
    const Exposition e = ParseExposition(registry_.Render());
    EXPECT_TRUE(e.errors.empty());
    const Sample* s = Find(e, name);
    return s == nullptr ? -1 : s->value;
  }

  ScanCountingStateStore store_;
  FakeClock clock_;
  Coordinator coordinator_;
  MetricsRegistry registry_;
};

TEST_F(MetricsCollectorTest, ABusyWorkerIsConnectedLongAfterItRegistered) {
  // Bug (#14 item 8, insight/metrics.cc:247): "connected" compared the
  // stored last-seen time, which is the registration time, with the TTL, so
  // a worker busy for longer than one TTL dropped out of
  // sluice_workers_connected while it heartbeated.
  Ok(coordinator_.StartSession(SessionSettings{}, "s1"));
  LeaseResult leased = Ok(coordinator_.Lease("w1", "req-1", 1, 0));
  ASSERT_EQ(leased.leases.size(), 1u);
  clock_.SetMs(SystemClock::Default().NowMs());  // 5 TTLs later
  Ok(coordinator_.Heartbeat("w1", {leased.leases[0].lease_id}));
  EXPECT_EQ(Scrape("sluice_workers_connected"), 1);
  EXPECT_EQ(Scrape("sluice_worker_slots_available"), 1);
}

TEST_F(MetricsCollectorTest, AScrapeReadsCountersNotEveryRunsAggregates) {
  // Bug (#14 item 8): every GET /metrics read every run's aggregates (10,000
  // rows at 10,000 runs) to add up events, run time and the ready backlog.
  Ok(coordinator_.StartSession(SessionSettings{}, "s1"));
  LeaseResult leased = Ok(coordinator_.Lease("w1", "req-1", 1, 0));
  ASSERT_EQ(leased.leases.size(), 1u);
  Ok(coordinator_.Report(Reports::ReportOf(leased.leases[0], Outcome::kSucceeded,
                                           /*events=*/42, /*duration_ms=*/120'000)));
  Ok(coordinator_.Lease("w1", "req-2", 1, 0));  // one in flight: the session is not ending
  store_.run_scans = 0;
  EXPECT_EQ(Scrape("sluice_telemetry_events_total"), 42);
  EXPECT_EQ(Scrape("sluice_phase_run_seconds_total"), 120);
  EXPECT_EQ(Scrape("sluice_ready_backlog"), 7);
  EXPECT_EQ(store_.run_scans, 0);
}

TEST_F(MetricsCollectorTest, TheReadyBacklogFollowsTheSessionsRunSelectionFromCounters) {
  SessionSettings skip;
  skip.skip_run_prefixes = {"run-", "run-b"};  // run-b inside run-: subtracted once
  Ok(coordinator_.StartSession(skip, "s1"));
  EXPECT_EQ(Scrape("sluice_ready_backlog"), 3);  // only "other"
  Ok(coordinator_.StopSession("s1", ""));
  SessionSettings only;
  only.run_ids = {"run-b", "other", "no-such-run"};
  only.skip_run_prefixes = {"oth"};
  Ok(coordinator_.StartSession(only, "s2"));
  EXPECT_EQ(Scrape("sluice_ready_backlog"), 3);  // run-b's
}

}  // namespace
}  // namespace sluice::testing
