// Coordinator: sessions (start, stop, what ends one), Status and Import.
// Fixture and helpers: coordinator_fixture.h (FakeClock, in-memory SQLite).
#include <map>
#include <string>
#include <vector>

#include "tests/coordinator/coordinator_fixture.h"
#include "tests/testing/scan_counting_state_store.h"

namespace sluice::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

TEST_F(CoordinatorTest, StartSessionRejectsBadSettingsNamingTheSetting) {
  struct Case {
    std::string field;
    SessionSettings settings;
  };
  std::vector<Case> cases;
  cases.push_back({"batch_size", {}});
  cases.back().settings.batch_size = -1;
  cases.push_back({"phase_timeout_seconds", {}});
  cases.back().settings.phase_timeout_seconds = 0;
  cases.push_back({"max_total_minutes", {}});
  cases.back().settings.max_total_minutes = -1;
  cases.push_back({"max_attempts_per_phase", {}});
  cases.back().settings.max_attempts_per_phase = 0;
  cases.push_back({"max_requeues_per_phase", {}});
  cases.back().settings.max_requeues_per_phase = -1;
  cases.push_back({"run_id", {}});
  cases.back().settings.run_ids = {"ok", "not ok"};
  cases.push_back({"skip_run_prefix", {}});
  cases.back().settings.skip_run_prefixes = {"a/b"};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.field);
    absl::Status st = Err(coord_.StartSession(c.settings, ""));
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(st.message()), HasSubstr(c.field));
  }
  EXPECT_EQ(Err(coord_.StartSession({}, "bad id")).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(Ok(store_.LatestSession()).has_value());
}

TEST_F(CoordinatorTest, StartSessionWhileOneIsActiveIsFailedPrecondition) {
  Import({Spec("r1", "p1")});  // an empty store is refused for its own reason
  SessionRecord s = Start({}, "");
  EXPECT_FALSE(s.session_id.empty());
  EXPECT_EQ(s.state, SessionState::kActive);
  EXPECT_EQ(s.started_at_ms, clock_.NowMs());
  EXPECT_EQ(Err(coord_.StartSession({}, "s2")).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Ok(store_.LatestSession())->session_id, s.session_id);
}

TEST_F(CoordinatorTest, StopSessionWithoutAnActiveOneIsFailedPrecondition) {
  EXPECT_EQ(Err(coord_.StopSession("", "")).code(), absl::StatusCode::kFailedPrecondition);
  Import({Spec("r1", "p1")});
  Start();
  clock_.AdvanceMs(5'000);
  SessionRecord stopped = Ok(coord_.StopSession("", ""));
  EXPECT_EQ(stopped.state, SessionState::kStopped);
  EXPECT_EQ(stopped.ended_at_ms, clock_.NowMs());
  EXPECT_EQ(stopped.end_reason, "stopped by operator");
  EXPECT_EQ(Err(coord_.StopSession("", "")).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Err(coord_.StopSession("s1", "again")).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Session().end_reason, "stopped by operator");
}

TEST_F(CoordinatorTest, StoppedSessionLeasesNothing) {
  RegisterWorker("w1");
  Import({Spec("r1", "p1")});
  Start();
  Ok(coord_.StopSession("s1", "enough"));
  LeaseResult r = LeaseNow("w1");
  EXPECT_THAT(r.leases, IsEmpty());
  EXPECT_FALSE(r.session_active);
  EXPECT_EQ(Session().end_reason, "enough");
}

TEST_F(CoordinatorTest, TickEndsSessionWhenNothingIsLeftToLease) {
  RegisterWorker("w1");
  Import({Spec("r1", "p1"), Spec("r1", "p2", 1)});
  Start();
  LeaseResult r = LeaseNow("w1", 2);
  ASSERT_EQ(r.leases.size(), 2u);
  ReportNow(r.leases[0], Outcome::kSucceeded);
  Ok(coord_.Tick());
  EXPECT_EQ(Session().state, SessionState::kActive);  // a lease is still in flight
  ReportNow(r.leases[1], Outcome::kSucceeded);
  clock_.AdvanceMs(1'000);
  Ok(coord_.Tick());
  SessionRecord s = Session();
  EXPECT_EQ(s.state, SessionState::kFinished);
  EXPECT_EQ(s.end_reason, "nothing left to lease");
  EXPECT_EQ(s.ended_at_ms, clock_.NowMs());
}

TEST_F(CoordinatorTest, TickEndsSessionAtOnceWhenFiltersExcludeEveryRun) {
  Import({Spec("r1", "p1")});
  SessionSettings settings;
  settings.skip_run_prefixes = {"r"};
  Start(settings);
  Ok(coord_.Tick());
  EXPECT_EQ(Session().end_reason, "nothing left to lease");
}

TEST_F(CoordinatorTest, TickEndsSessionWhenBatchSizeIsReached) {
  RegisterWorker("w1");
  Import({Spec("r1", "p1"), Spec("r1", "p2", 1), Spec("r1", "p3", 2)});
  SessionSettings settings;
  settings.batch_size = 2;
  Start(settings);
  LeaseResult r = LeaseNow("w1", 3);
  ASSERT_EQ(r.leases.size(), 2u);
  ReportNow(r.leases[0], Outcome::kFailed);
  Ok(coord_.Tick());
  EXPECT_EQ(Session().state, SessionState::kActive);
  ReportNow(r.leases[1], Outcome::kSucceeded);
  Ok(coord_.Tick());
  EXPECT_EQ(Session().state, SessionState::kFinished);
  EXPECT_EQ(Session().end_reason, "batch_size reached");
  EXPECT_FALSE(LeaseNow("w1").session_active);
}

TEST_F(CoordinatorTest, TickEndsSessionWhenMaxTotalMinutesPass) {
  RegisterWorker("w1");
  Import({Spec("r1", "p1"), Spec("r1", "p2", 1)});
  SessionSettings settings;
  settings.max_total_minutes = 2;
  Start(settings);
  LeaseGrant g = LeaseOne();
  clock_.AdvanceMs(2 * 60'000 - 1);
  Ok(coord_.Heartbeat("w1", {g.lease_id}));
  Ok(coord_.Tick());
  EXPECT_EQ(Session().state, SessionState::kActive);
  clock_.AdvanceMs(1);
  // Past the deadline the session is over for leasing even before Tick.
  LeaseResult late = LeaseNow("w1");
  EXPECT_FALSE(late.session_active);
  EXPECT_THAT(late.leases, IsEmpty());
  EXPECT_THAT(Ok(coord_.Heartbeat("w1", {g.lease_id})), ElementsAre(g.lease_id));
  Ok(coord_.Tick());
  SessionRecord s = Session();
  EXPECT_EQ(s.state, SessionState::kFinished);
  EXPECT_EQ(s.end_reason, "max_total_minutes reached");
  EXPECT_EQ(s.ended_at_ms, clock_.NowMs());
}

TEST_F(CoordinatorTest, StatusReportsCountsWorkersLeasesAndSessionProgress) {
  RegisterWorker("w1");
  RegisterWorker("w2");
  Import({Spec("r1", "p1"), Spec("r1", "p2", 1), Spec("r2", "q1"), Spec("r2", "q2", 1)});
  CoordinatorStatus before = Ok(coord_.Status());
  EXPECT_FALSE(before.session.has_value());
  EXPECT_EQ(before.phases.pending, 4);
  EXPECT_EQ(before.workers.size(), 2u);

  Start();
  LeaseResult a = LeaseNow("w1", 2);
  LeaseResult b = LeaseNow("w2", 1);
  ASSERT_EQ(a.leases.size(), 2u);
  ASSERT_EQ(b.leases.size(), 1u);
  ReportNow(a.leases[0], Outcome::kSucceeded);

  CoordinatorStatus s = Ok(coord_.Status());
  EXPECT_EQ(s.phases.pending, 1);
  EXPECT_EQ(s.phases.leased, 2);
  EXPECT_EQ(s.phases.succeeded, 1);
  EXPECT_EQ(s.active_leases.size(), 2u);
  EXPECT_EQ(s.active_leases_by_worker, (std::map<std::string, int32_t>{{"w1", 1}, {"w2", 1}}));
  ASSERT_TRUE(s.session.has_value());
  EXPECT_EQ(s.session->session_id, "s1");
  EXPECT_EQ(s.session_finished, 1);
  EXPECT_FALSE(s.session_done);

  ReportNow(a.leases[1], Outcome::kSucceeded);
  ReportNow(b.leases[0], Outcome::kFailed);  // pending again (attempt 1 of 2)
  ReportNow(LeaseOne("w1"), Outcome::kSucceeded);
  ReportNow(LeaseOne("w1"), Outcome::kSucceeded);
  s = Ok(coord_.Status());
  EXPECT_EQ(s.phases.succeeded, 4);
  EXPECT_EQ(s.session_finished, 5);
  EXPECT_TRUE(s.session_done);
  EXPECT_THAT(s.active_leases_by_worker, IsEmpty());
}

// Bug: a coordinator's first status with failed runs walked the whole
// history twice, once for the policy's replay and once for the failed rows'
// spent attempts (1.9 s more at 1M attempts).
TEST_F(CoordinatorTest, ARestartedCoordinatorsFirstStatusWalksTheHistoryOnce) {
  RegisterWorker("w1");
  Import({Spec("bad", "x"), Spec("ok", "y")});
  SessionSettings settings;
  settings.max_attempts_per_phase = 1;
  Start(settings);
  for (int i = 0; i < 2; ++i) {
    const LeaseGrant g = LeaseOne();
    ReportNow(g, g.run_id == "bad" ? Outcome::kFailed : Outcome::kSucceeded, 0, 1'000,
              g.run_id == "bad" ? "boom" : "");
  }

  ScanCountingStateStore counting(store_);
  Coordinator restarted(counting, clock_, Config());
  const CoordinatorStatus status = Ok(restarted.Status(/*explain_skips=*/true));
  EXPECT_EQ(counting.attempt_scans, 1);
  ASSERT_THAT(status.skipped, SizeIs(1));
  EXPECT_EQ(status.skipped[0].run_id, "bad");
  EXPECT_EQ(status.skipped[0].reason,
            "failed for good: attempts exhausted (max_attempts_per_phase 1)");
  // Later attempts are read on from where the replay stopped.
  EXPECT_EQ(Ok(restarted.Status(true)).skipped.size(), 1u);
  EXPECT_EQ(counting.attempt_scans, 1);
}

TEST_F(CoordinatorTest, StartSessionOnAnEmptyStoreIsRefusedUnlessAllowed) {
  // Issue #16 item 2: a session on an empty store (a mistyped store path) was
  // accepted, and the drain looked finished with nothing done.
  absl::Status st = Err(coord_.StartSession({}, "s1"));
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(st.message()), HasSubstr("holds no phases"));
  EXPECT_THAT(std::string(st.message()), HasSubstr("--allow-empty"));
  EXPECT_THAT(std::string(st.message()), HasSubstr(store_.ClusterId()));
  EXPECT_FALSE(Ok(store_.LatestSession()).has_value());
  EXPECT_EQ(Ok(coord_.StartSession({}, "s1", /*allow_empty=*/true)).session_id, "s1");
  Ok(coord_.StopSession("s1", ""));
  Import({Spec("r1", "p1")});
  EXPECT_EQ(Ok(coord_.StartSession({}, "s2")).session_id, "s2");
}

TEST_F(CoordinatorTest, RegisterWithAnotherClustersIdIsRefusedAndWritesNothing) {
  // Issue #16 item 2: nothing tied a worker to the store it was pointed at.
  const std::string cluster_id = store_.ClusterId();
  ASSERT_FALSE(cluster_id.empty());
  WorkerInfo w;
  w.worker_id = "w1";
  w.host = "h";
  w.cluster_id = "cl-00000000000000ff";
  absl::Status st = Err(coord_.Register(w));
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(st.message()), HasSubstr("cl-00000000000000ff"));
  EXPECT_THAT(std::string(st.message()), HasSubstr(cluster_id));
  EXPECT_THAT(Ok(store_.ListWorkers()), IsEmpty());

  w.cluster_id = cluster_id;
  EXPECT_EQ(Ok(coord_.Register(w)).cluster_id, cluster_id);
  w.cluster_id.clear();  // unchecked
  EXPECT_EQ(Ok(coord_.Register(w)).cluster_id, cluster_id);
  EXPECT_EQ(Ok(coord_.Status()).cluster_id, cluster_id);
}

TEST_F(CoordinatorTest, StatusListsAWorkerSilentPastTheGoneWindowAsGone) {
  // Issue #16 item 7: a worker that exited stayed listed as connected.
  RegisterWorker("quiet");
  RegisterWorker("busy");
  const int64_t window = coord_.GoneAfterMs();
  EXPECT_EQ(window, 40'000);  // max(TTL 30 s, long-poll 30 s) + one 10 s heartbeat
  clock_.AdvanceMs(window);
  Ok(coord_.Heartbeat("busy", {}));
  EXPECT_THAT(Ok(coord_.Status()).gone_workers, IsEmpty()) << "at the window: not gone yet";
  clock_.AdvanceMs(1);
  CoordinatorStatus s = Ok(coord_.Status());
  EXPECT_THAT(s.gone_workers, ElementsAre("quiet"));
  EXPECT_EQ(s.workers.size(), 2u) << "a gone worker is still listed, with its last contact";
  // Heard from again (a lease poll): connected.
  LeaseNow("quiet");
  EXPECT_THAT(Ok(coord_.Status()).gone_workers, IsEmpty());
}

TEST_F(CoordinatorTest, ImportValidatesEveryPhaseBeforeStoringAny) {
  EXPECT_EQ(Err(coord_.ImportBacklog({})).code(), absl::StatusCode::kInvalidArgument);
  absl::Status st = Err(coord_.ImportBacklog({Spec("r1", "ok"), Spec("r1", "bad id")}));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("phase #2"));
  EXPECT_THAT(std::string(st.message()), HasSubstr("phase_id"));
  EXPECT_EQ(Ok(store_.CountPhases()).total(), 0);
  ImportResult r = Ok(coord_.ImportBacklog({Spec("r1", "ok")}));
  EXPECT_EQ(r.inserted, 1);
}

}  // namespace
}  // namespace sluice::testing
