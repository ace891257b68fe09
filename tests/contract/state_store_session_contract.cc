// The StateStore contract suite, sessions, history, workers and concurrency; see
// state_store_contract.h for how a backend gets the whole suite.
#include <algorithm>
#include <atomic>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "coordinator/coordinator.h"
#include "gmock/gmock.h"
#include "tests/contract/contract_fixture.h"
#include "tests/contract/state_store_contract.h"

namespace sluice::contract {
// Identity

TEST_P(StateStoreContractTest, AStoreHasAClusterIdFromItsCreation) {
  // Issue #16 item 2: a store had no identity, so nothing could tell a worker
  // or an operator which cluster a coordinator serves.
  EXPECT_THAT(store().ClusterId(), ::testing::MatchesRegex("cl-[0-9a-f]{16}"));
  Ok(store().ImportPhases({Spec("r1", "p1")}));
  EXPECT_THAT(store().ClusterId(), ::testing::MatchesRegex("cl-[0-9a-f]{16}"));
}

// Sessions

TEST_P(StateStoreContractTest, SessionRoundTripsItsSettings) {
  SessionRecord s = Session("s1", kT0);
  s.settings.batch_size = 12;
  s.settings.phase_timeout_seconds = 77;
  s.settings.max_total_minutes = 30;
  s.settings.max_attempts_per_phase = 4;
  s.settings.max_requeues_per_phase = 0;
  s.settings.run_ids = {"r1", "r2"};
  s.settings.skip_run_prefixes = {"tmp-"};
  s.settings.on_telemetry_loss = TelemetryLossAction::kPause;
  Ok(store().CreateSession(s));
  std::optional<SessionRecord> got = Ok(store().GetSession("s1"));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->session_id, "s1");
  EXPECT_EQ(got->state, SessionState::kActive);
  EXPECT_EQ(got->started_at_ms, kT0);
  EXPECT_EQ(got->ended_at_ms, 0);
  EXPECT_EQ(got->end_reason, "");
  EXPECT_EQ(got->settings.batch_size, 12);
  EXPECT_EQ(got->settings.phase_timeout_seconds, 77);
  EXPECT_EQ(got->settings.max_total_minutes, 30);
  EXPECT_EQ(got->settings.max_attempts_per_phase, 4);
  EXPECT_EQ(got->settings.max_requeues_per_phase, 0);
  EXPECT_THAT(got->settings.run_ids, ElementsAre("r1", "r2"));
  EXPECT_THAT(got->settings.skip_run_prefixes, ElementsAre("tmp-"));
  EXPECT_EQ(got->settings.on_telemetry_loss, TelemetryLossAction::kPause);
  EXPECT_FALSE(Ok(store().GetSession("nope")).has_value());
}

TEST_P(StateStoreContractTest, PolicyRecordsReplaceByKeyAndKeepKindsApart) {
  EXPECT_THAT(Ok(store().ListPolicyRecords("leasing_pause")), IsEmpty());
  Ok(store().PutPolicyRecord("leasing_pause", "s1", R"({"paused":true})"));
  Ok(store().PutPolicyRecord("leasing_pause", "s2", R"({"paused":true})"));
  Ok(store().PutPolicyRecord("fingerprint_unblock", "s1", "123"));
  Ok(store().PutPolicyRecord("leasing_pause", "s1", R"({"paused":false})"));
  const std::map<std::string, std::string> pauses = Ok(store().ListPolicyRecords("leasing_pause"));
  EXPECT_EQ(pauses, (std::map<std::string, std::string>{{"s1", R"({"paused":false})"},
                                                        {"s2", R"({"paused":true})"}}));
  EXPECT_EQ(Ok(store().ListPolicyRecords("fingerprint_unblock")),
            (std::map<std::string, std::string>{{"s1", "123"}}));
}

// The pause of leasing lives in the store: a second coordinator on the same
// store (a restart, or `sluice resume --store`) sees it and can end it.
TEST_P(StateStoreContractTest, LeasingPauseSurvivesACoordinatorRestart) {
  FakeClock clock(kT0);
  Ok(store().ImportPhases(
      {Spec("r1", "p1", 0), Spec("r1", "p2", 1), Spec("r1", "p3", 2), Spec("r1", "p4", 3)}));
  SessionSettings settings;
  settings.on_telemetry_loss = TelemetryLossAction::kPause;
  WorkerInfo w;
  w.worker_id = "w1";
  w.host = "h";
  w.slots = 1;
  {
    Coordinator first(store(), clock);
    Ok(first.Register(w));
    Ok(first.StartSession(settings, "s1"));
    for (int i = 0; i < 3; ++i) {
      clock.AdvanceMs(1'000);
      LeaseResult leased = Ok(first.Lease("w1", absl::StrCat("q", i), 1, 0));
      ASSERT_EQ(leased.leases.size(), 1u);
      AttemptReport r;
      r.lease_id = leased.leases[0].lease_id;
      r.epoch = leased.leases[0].epoch;
      r.worker_id = "w1";
      r.outcome = Outcome::kSucceeded;
      r.duration_ms = 1'000;
      Ok(first.Report(r));  // no telemetry events
    }
    Ok(first.Tick());
    ASSERT_TRUE(Ok(first.Status()).pause.has_value());
  }
  Coordinator second(store(), clock);
  Ok(second.Register(w));
  EXPECT_THAT(Ok(second.Lease("w1", "q-after", 1, 0)).leases, IsEmpty());
  const CoordinatorStatus status = Ok(second.Status());
  ASSERT_TRUE(status.pause.has_value());
  EXPECT_THAT(status.pause->reason, ::testing::HasSubstr("telemetry loss"));
  Ok(second.ResumeLeasing(""));
  Coordinator third(store(), clock);
  Ok(third.Register(w));
  EXPECT_FALSE(Ok(third.Status()).pause.has_value());
  EXPECT_EQ(Ok(third.Lease("w1", "q-resumed", 1, 0)).leases.size(), 1u);
}

TEST_P(StateStoreContractTest, OnlyOneSessionMayBeActive) {
  Ok(store().CreateSession(Session("s1", kT0)));
  absl::Status st = store().CreateSession(Session("s2", kT0 + 1));
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  EXPECT_FALSE(Ok(store().GetSession("s2")).has_value());
  Ok(store().EndSession("s1", SessionState::kStopped, kT0 + 2, "enough"));
  Ok(store().CreateSession(Session("s2", kT0 + 3)));
  EXPECT_EQ(Ok(store().LatestSession())->session_id, "s2");
}

TEST_P(StateStoreContractTest, ReusedSessionIdIsAlreadyExists) {
  Ok(store().CreateSession(Session("s1", kT0)));
  Ok(store().EndSession("s1", SessionState::kFinished, kT0 + 1, "done"));
  absl::Status st = store().CreateSession(Session("s1", kT0 + 2));
  EXPECT_EQ(st.code(), absl::StatusCode::kAlreadyExists) << st;
  std::optional<SessionRecord> s = Ok(store().GetSession("s1"));
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->state, SessionState::kFinished);  // the old one is untouched
  EXPECT_EQ(s->started_at_ms, kT0);
}

TEST_P(StateStoreContractTest, EndSessionRecordsStateTimeAndReasonOnce) {
  Ok(store().CreateSession(Session("s1", kT0)));
  Ok(store().EndSession("s1", SessionState::kFinished, kT0 + 60'000, "batch_size reached"));
  std::optional<SessionRecord> s = Ok(store().GetSession("s1"));
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->state, SessionState::kFinished);
  EXPECT_EQ(s->ended_at_ms, kT0 + 60'000);
  EXPECT_EQ(s->end_reason, "batch_size reached");

  // An ended session stays as it ended.
  absl::Status again = store().EndSession("s1", SessionState::kStopped, kT0 + 90'000, "late stop");
  EXPECT_EQ(again.code(), absl::StatusCode::kFailedPrecondition) << again;
  s = Ok(store().GetSession("s1"));
  EXPECT_EQ(s->state, SessionState::kFinished);
  EXPECT_EQ(s->end_reason, "batch_size reached");
  EXPECT_FALSE(store().EndSession("unknown", SessionState::kStopped, kT0, "x").ok());
}

TEST_P(StateStoreContractTest, LatestSessionPrefersActiveThenNewestStarted) {
  EXPECT_FALSE(Ok(store().LatestSession()).has_value());
  Ok(store().CreateSession(Session("old", kT0 + 100)));
  Ok(store().EndSession("old", SessionState::kStopped, kT0 + 150, ""));
  Ok(store().CreateSession(Session("newest", kT0 + 300)));
  Ok(store().EndSession("newest", SessionState::kFinished, kT0 + 350, ""));
  EXPECT_EQ(Ok(store().LatestSession())->session_id, "newest");

  // Active wins even when it started earlier (a clock step back).
  Ok(store().CreateSession(Session("active", kT0 + 200)));
  EXPECT_EQ(Ok(store().LatestSession())->session_id, "active");
  Ok(store().EndSession("active", SessionState::kStopped, kT0 + 400, ""));
  EXPECT_EQ(Ok(store().LatestSession())->session_id, "newest");
}

TEST_P(StateStoreContractTest, LatestSessionBreaksStartTimeTiesByCreationOrder) {
  SessionRecord first = Session("b-first", kT0);
  first.state = SessionState::kFinished;
  SessionRecord second = Session("a-second", kT0);
  second.state = SessionState::kStopped;
  Ok(store().CreateSession(first));
  Ok(store().CreateSession(second));
  EXPECT_EQ(Ok(store().LatestSession())->session_id, "a-second");
}

// ---------------------------------------------------------------------------
// Attempts by session

TEST_P(StateStoreContractTest, ListAttemptsIsInEndOrderAndFiltersBySession) {
  Contract c(store());
  c.Import({Spec("r1", "p1"), Spec("r1", "p2", 1), Spec("r1", "p3", 2)});
  c.set_session("sA");
  LeaseGrant a1 = c.MustLease("r1", "w1", kT0);
  LeaseGrant a2 = c.MustLease("r1", "w1", kT0 + 1);
  c.set_session("sB");
  LeaseGrant b1 = c.MustLease("r1", "w1", kT0 + 2);
  // End in another order than leased.
  c.Record(b1, Outcome::kSucceeded);
  c.Record(a2, Outcome::kFailed);
  Ok(store().ExpireLeases(a1.expires_at_ms, LostLeaseTransition(5)));

  std::vector<std::string> all;
  for (const AttemptRecord& a : Ok(store().ListAttempts(""))) all.push_back(a.lease_id);
  EXPECT_THAT(all, ElementsAre(b1.lease_id, a2.lease_id, a1.lease_id));
  std::vector<std::string> in_a;
  for (const AttemptRecord& a : Ok(store().ListAttempts("sA"))) {
    EXPECT_EQ(a.session_id, "sA");
    in_a.push_back(a.lease_id);
  }
  EXPECT_THAT(in_a, ElementsAre(a2.lease_id, a1.lease_id));
  EXPECT_THAT(Ok(store().ListAttempts("none")), IsEmpty());
}

TEST_P(StateStoreContractTest, ListAttemptsFromReadsOnFromItsCursorSeeingEachAttemptOnce) {
  Contract c(store());
  std::vector<PhaseSpec> specs;
  for (int i = 0; i < 7; ++i) specs.push_back(Spec("r1", absl::StrCat("p", i), i));
  c.Import(specs);
  std::vector<std::string> recorded;  // session sA's lease ids, in end order
  auto record = [&](const std::string& session) {
    c.set_session(session);
    LeaseGrant g = c.MustLease("r1");
    c.Record(g, Outcome::kFailed);
    if (session == "sA") recorded.push_back(g.lease_id);
  };
  for (const char* session : {"sA", "sB", "sA", "sA", "sB"}) record(session);

  // Pages of two, then what was recorded after the last page was read.
  std::vector<std::string> seen;
  int64_t cursor = 0;
  auto read_on = [&] {
    while (true) {
      AttemptBatch batch = Ok(store().ListAttemptsFrom("sA", cursor, 2));
      for (const AttemptRecord& a : batch.rows) {
        EXPECT_EQ(a.session_id, "sA");
        EXPECT_EQ(a.stdout_tail, "");
        seen.push_back(a.lease_id);
      }
      if (batch.rows.empty()) {
        EXPECT_EQ(batch.next_cursor, cursor) << "nothing read, no move";
      }
      cursor = batch.next_cursor;
      if (batch.rows.size() < 2) break;
    }
  };
  read_on();
  EXPECT_EQ(seen, recorded);
  record("sB");
  record("sA");
  record("sA");
  read_on();
  EXPECT_EQ(seen, recorded) << "the two new ones once, nothing twice";
  ASSERT_EQ(recorded.size(), 5u);

  EXPECT_EQ(Ok(store().ListAttemptsFrom("", 0, 100)).rows.size(), 8u) << "'' is every session";
  EXPECT_THAT(Ok(store().ListAttemptsFrom("none", 0, 10)).rows, IsEmpty());
  EXPECT_EQ(store().ListAttemptsFrom("sA", -1, 10).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store().ListAttemptsFrom("sA", 0, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(StateStoreContractTest, CountSessionAttemptsExcludesLostAndCancelled) {
  Contract c(store());
  c.Import({Spec("r1", "ok"), Spec("r1", "fail", 1), Spec("r1", "timeout", 2),
            Spec("r1", "killed", 3), Spec("r1", "cancel", 4), Spec("r1", "lost", 5),
            Spec("r1", "other-session", 6)});
  c.Record(c.MustLease("r1"), Outcome::kSucceeded);
  c.Record(c.MustLease("r1"), Outcome::kFailed, 0, 0, /*max_attempts=*/1);
  c.Record(c.MustLease("r1"), Outcome::kTimedOut, 0, 0, 1);
  c.Record(c.MustLease("r1"), Outcome::kKilled, 0, 0, 1);
  LeaseGrant cancel = c.MustLease("r1");
  ASSERT_EQ(cancel.phase_id, "cancel");
  LeaseGrant lost = c.MustLease("r1", "w1", kT0 - 1);  // expires first
  ASSERT_EQ(lost.phase_id, "lost");
  c.Record(cancel, Outcome::kCancelled);
  Ok(store().ExpireLeases(lost.expires_at_ms, LostLeaseTransition(5)));
  c.set_session("s2");
  c.Record(c.MustLease("r1"), Outcome::kSucceeded);  // "cancel" again, other session

  EXPECT_EQ(Ok(store().CountSessionAttempts("s1")), 4);
  EXPECT_EQ(Ok(store().ListAttempts("s1")).size(), 6u);
  EXPECT_EQ(Ok(store().CountSessionAttempts("s2")), 1);
  EXPECT_EQ(Ok(store().CountSessionAttempts("none")), 0);
}

// ---------------------------------------------------------------------------
// Workers

TEST_P(StateStoreContractTest, UpsertWorkerInsertsThenReplaces) {
  WorkerInfo w;
  w.worker_id = "w1";
  w.host = "host-a";
  w.slots = 4;
  w.labels = {"linux", "gpu"};
  w.version = "1.0";
  w.last_seen_ms = kT0;
  Ok(store().UpsertWorker(w));
  WorkerInfo other = w;
  other.worker_id = "w0";
  other.labels = {};
  Ok(store().UpsertWorker(other));

  w.host = "host-b";
  w.slots = 8;
  w.labels = {"arm"};
  w.version = "1.1";
  w.last_seen_ms = kT0 + 5;
  Ok(store().UpsertWorker(w));

  std::vector<WorkerInfo> workers = Ok(store().ListWorkers());
  ASSERT_EQ(workers.size(), 2u);
  auto it = std::find_if(workers.begin(), workers.end(),
                         [](const WorkerInfo& x) { return x.worker_id == "w1"; });
  ASSERT_NE(it, workers.end());
  EXPECT_EQ(it->host, "host-b");
  EXPECT_EQ(it->slots, 8);
  EXPECT_THAT(it->labels, ElementsAre("arm"));
  EXPECT_EQ(it->version, "1.1");
  EXPECT_EQ(it->last_seen_ms, kT0 + 5);
  auto w0 = std::find_if(workers.begin(), workers.end(),
                         [](const WorkerInfo& x) { return x.worker_id == "w0"; });
  ASSERT_NE(w0, workers.end());
  EXPECT_THAT(w0->labels, IsEmpty());
}

// ---------------------------------------------------------------------------
// Concurrency

TEST_P(StateStoreContractTest, ConcurrentLeasesNeverGrantAPhaseTwice) {
  constexpr int kThreads = 8;
  constexpr int kPhases = 120;
  std::vector<PhaseSpec> specs;
  for (int i = 0; i < kPhases; ++i) specs.push_back(Spec("r1", absl::StrCat("p", i), i));
  Ok(store().ImportPhases(specs));

  std::vector<std::vector<LeaseGrant>> grants(kThreads);
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int n = 0;; ++n) {
        LeaseParams p;
        p.run_id = "r1";
        p.worker_id = absl::StrCat("w", t);
        p.session_id = "s1";
        p.lease_id = absl::StrCat("L", t, "-", n);
        p.now_ms = kT0;
        p.ttl_ms = kTtl;
        absl::StatusOr<std::optional<LeaseGrant>> g = store().LeaseNextInRun(p);
        if (!g.ok()) {
          ++errors;
          return;
        }
        if (!g->has_value()) return;
        // Report every other grant so leases and reports interleave.
        if (n % 2 == 0) {
          absl::StatusOr<ReportResult> r =
              store().RecordReport(Contract::Report(**g, Outcome::kSucceeded, 1, 10));
          if (!r.ok() || r->disposition != ReportDisposition::kAccepted) ++errors;
        }
        grants[static_cast<size_t>(t)].push_back(**g);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);

  std::set<std::string> phases;
  std::set<int64_t> epochs;
  size_t total = 0;
  for (const auto& per_thread : grants) {
    for (const LeaseGrant& g : per_thread) {
      phases.insert(g.phase_id);
      epochs.insert(g.epoch);
      ++total;
    }
  }
  EXPECT_EQ(total, static_cast<size_t>(kPhases));
  EXPECT_EQ(phases.size(), static_cast<size_t>(kPhases));
  EXPECT_EQ(epochs.size(), static_cast<size_t>(kPhases));
  PhaseCounts counts = Ok(store().CountPhases());
  EXPECT_EQ(counts.pending, 0);
  EXPECT_EQ(counts.leased + counts.succeeded, kPhases);
  RunStats stats = Contract(store()).Stats("r1");
  EXPECT_EQ(stats.attempts, counts.succeeded);
  EXPECT_EQ(stats.telemetry_events, counts.succeeded);
  EXPECT_EQ(static_cast<int64_t>(Ok(store().ListActiveLeases()).size()), counts.leased);
}
}  // namespace sluice::contract
