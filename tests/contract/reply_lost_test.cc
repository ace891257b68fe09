// "The write happened but the reply was lost" (issue #14): the Coordinator
// over each real store (SQLite, and a real redis-server), behind a
// FailingStateStore that performs a call and then answers UNAVAILABLE. A
// worker retries the lease with the same request id and the report as it
// was; the tests prove nothing is counted twice and nothing is lost: one
// lease per phase, one attempt per report, the events once.
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "coordinator/coordinator.h"
#include "coordinator/store/redis/redis_state_store.h"
#include "coordinator/store/sqlite/sqlite_state_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/failing_state_store.h"
#include "tests/testing/redis_server.h"
#include "tests/testing/status_matchers.h"

namespace sluice {
namespace {

using ::sluice::testing::FailingStateStore;
using ::sluice::testing::Ok;
using ::sluice::testing::RedisServer;
using ::testing::ElementsAre;
using ::testing::SizeIs;

struct StoreCase {
  std::string name;
  std::function<std::unique_ptr<StateStore>()> open;
};

// Test names and failure messages name the store, not its bytes.
void PrintTo(const StoreCase& c, std::ostream* os) { *os << c.name; }

RedisServer& SharedRedis() {
  static std::unique_ptr<RedisServer> server = Ok(RedisServer::Start());
  return *server;
}

std::unique_ptr<StateStore> OpenRedis() {
  static int n = 0;
  RedisOptions o = Ok(ParseRedisUrl(SharedRedis().Url("reply_lost_" + std::to_string(++n))));
  return Ok(RedisStateStore::Open(o));
}

class ReplyLostTest : public ::testing::TestWithParam<StoreCase> {
 protected:
  ReplyLostTest() : store_(GetParam().open()), coord_(store_, clock_, Config()) {
    WorkerInfo w;
    w.worker_id = "w1";
    w.host = "h1";
    w.slots = 2;
    w.version = "test";
    Ok(coord_.Register(w));
    std::vector<PhaseSpec> phases;
    for (const char* id : {"p0", "p1"}) {
      PhaseSpec s;
      s.run_id = "r1";
      s.phase_id = id;
      phases.push_back(s);
    }
    Ok(coord_.ImportBacklog(phases));
    Ok(coord_.StartSession(SessionSettings{}, "s1"));
  }

  static CoordinatorConfig Config() {
    CoordinatorConfig c;
    c.lease_ttl_ms = 30'000;
    c.heartbeat_interval_ms = 10'000;
    c.max_lease_wait_ms = 1'000;
    return c;
  }

  // A lease with `request_id`, retried once (same id) after an error, as
  // the worker's retrying client does.
  LeaseResult LeaseWithRetry(const std::string& request_id) {
    absl::StatusOr<LeaseResult> first = coord_.Lease("w1", request_id, 1, /*wait_ms=*/0);
    if (first.ok()) return *first;
    EXPECT_EQ(first.status().code(), absl::StatusCode::kUnavailable) << first.status();
    return Ok(coord_.Lease("w1", request_id, 1, /*wait_ms=*/0));
  }

  static AttemptReport Succeeded(const LeaseGrant& g, int64_t events) {
    AttemptReport r;
    r.lease_id = g.lease_id;
    r.epoch = g.epoch;
    r.worker_id = g.worker_id;
    r.outcome = Outcome::kSucceeded;
    r.duration_ms = 1'000;
    r.telemetry_events = events;
    r.telemetry_by_type = {{"step", events}};
    return r;
  }

  FakeClock clock_;
  FailingStateStore store_;
  Coordinator coord_;
};

// The lease script committed a grant whose reply was lost: the retried
// request (same request id) must get that very grant, not lease a second
// phase and leave the first leased to nobody until it expires as `lost`.
TEST_P(ReplyLostTest, RetriedLeaseAfterALostReplyGetsTheCommittedGrant) {
  store_.LoseReplyOfNextCallTo("LeaseNextInRun");
  const LeaseResult leased = LeaseWithRetry("req-1");
  ASSERT_THAT(leased.leases, SizeIs(1));
  EXPECT_THAT(store_.failed_calls(), ElementsAre("LeaseNextInRun"));
  const LeaseGrant grant = leased.leases[0];
  // Exactly one phase leased, and it is the one the worker holds.
  EXPECT_EQ(Ok(store_.CountPhases()).leased, 1);
  const std::vector<LeaseGrant> active = Ok(store_.ListActiveLeases());
  ASSERT_THAT(active, SizeIs(1));
  EXPECT_EQ(active[0].lease_id, grant.lease_id);
  // The worker finishes the drain; past every TTL nothing is lost.
  Ok(coord_.Report(Succeeded(grant, 3)));
  const LeaseResult next = Ok(coord_.Lease("w1", "req-2", 1, /*wait_ms=*/0));
  ASSERT_THAT(next.leases, SizeIs(1));
  Ok(coord_.Report(Succeeded(next.leases[0], 4)));
  clock_.AdvanceMs(120'000);
  Ok(coord_.Tick());
  const PhaseCounts counts = Ok(store_.CountPhases());
  EXPECT_EQ(counts.succeeded, 2);
  EXPECT_EQ(counts.leased + counts.pending + counts.failed, 0);
  const std::vector<AttemptRecord> attempts = Ok(store_.ListAttempts(""));
  ASSERT_THAT(attempts, SizeIs(2));
  for (const AttemptRecord& a : attempts) EXPECT_EQ(a.outcome, Outcome::kSucceeded);
}

// The report committed but its reply was lost: the worker sends it again;
// the attempt, the success and the events are counted once.
TEST_P(ReplyLostTest, RetriedReportAfterALostReplyIsCountedOnce) {
  const LeaseResult leased = Ok(coord_.Lease("w1", "req-1", 1, /*wait_ms=*/0));
  ASSERT_THAT(leased.leases, SizeIs(1));
  const AttemptReport report = Succeeded(leased.leases[0], 5);
  store_.LoseReplyOfNextCallTo("RecordReport");
  absl::StatusOr<ReportAnswer> first = coord_.Report(report);
  EXPECT_THAT(store_.failed_calls(), ElementsAre("RecordReport"));
  if (!first.ok()) {
    EXPECT_EQ(first.status().code(), absl::StatusCode::kUnavailable) << first.status();
    const ReportAnswer retried = Ok(coord_.Report(report));
    EXPECT_EQ(retried.result.phase_state, PhaseState::kSucceeded);
  }
  const std::vector<AttemptRecord> attempts = Ok(store_.ListAttempts(""));
  ASSERT_THAT(attempts, SizeIs(1));
  EXPECT_EQ(attempts[0].telemetry_events, 5);
  const std::vector<RunStats> runs = Ok(store_.ListRunStats());
  ASSERT_THAT(runs, SizeIs(1));
  EXPECT_EQ(runs[0].attempts, 1);
  EXPECT_EQ(runs[0].successes, 1);
  EXPECT_EQ(runs[0].telemetry_events, 5);
  EXPECT_EQ(Ok(store_.CountPhases()).succeeded, 1);
  // Nothing was taken for a late report either.
  EXPECT_EQ(Ok(store_.CountLateReports()), 0);
}

INSTANTIATE_TEST_SUITE_P(Stores, ReplyLostTest,
                         ::testing::Values(StoreCase{"Sqlite",
                                                     [] {
                                                       return std::unique_ptr<StateStore>(
                                                           Ok(SqliteStateStore::Open(":memory:")));
                                                     }},
                                           StoreCase{"Redis", OpenRedis}),
                         [](const ::testing::TestParamInfo<StoreCase>& param) {
                           return param.param.name;
                         });

}  // namespace
}  // namespace sluice
