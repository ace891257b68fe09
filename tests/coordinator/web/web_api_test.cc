// The web view's JSON (coordinator/web/web_api.h) over the Coordinator
// facade: a real in-memory SqliteStateStore and a FakeClock, no network.
#include "coordinator/web/web_api.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "coordinator/insight/session_report.h"
#include "coordinator/policy/drain_policy.h"
#include "coordinator/web/web_assets.h"
#include "tests/coordinator/coordinator_fixture.h"
#include "tests/testing/scan_counting_state_store.h"
#include "tests/testing/status_matchers.h"

namespace sluice::testing {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;

class WebApiTest : public CoordinatorTest {
 protected:
  WebApiTest() : api_(coord_, clock_) {}

  // One attempt of the next phase on `worker`, reported with `outcome`.
  LeaseGrant Run(Outcome outcome, int64_t events, int64_t duration_ms,
                 const std::string& worker = "w1", const std::string& error = "") {
    LeaseGrant g = LeaseOne(worker);
    ReportNow(g, outcome, events, duration_ms, error);
    return g;
  }

  // Run a-1 (phases p1, p2, p3): p1 and p2 fail with `error`, which blocks
  // the run (and its pending p3) under a repeat rule of 1.
  void BlockRunWith(const std::string& error) {
    RegisterWorker("w1");
    Import({Spec("a-1", "p1", 1), Spec("a-1", "p2", 2), Spec("a-1", "p3", 3)});
    SessionSettings settings;
    settings.max_fingerprint_repeats = 1;
    settings.max_attempts_per_phase = 1;
    Start(settings);
    // Two phases failing alike: the repeat rule blocks only a fingerprint
    // that is run-wide, not one phase's own failure (#13).
    Run(Outcome::kFailed, 0, 1'000, "w1", error);
    Run(Outcome::kFailed, 0, 1'000, "w1", error);
  }

  static std::vector<std::string> Ids(const json& rows, const std::string& key) {
    std::vector<std::string> out;
    for (const json& r : rows) out.push_back(r[key].get<std::string>());
    return out;
  }

  WebApi api_;
};

TEST_F(WebApiTest, OverviewYieldIsTheSessionReportsYield) {
  RegisterWorker("w1");
  Import({Spec("a-1", "p1", 1), Spec("a-1", "p2", 2), Spec("b-1", "p1", 1)});
  Start();
  Run(Outcome::kSucceeded, 30, 60'000);
  Run(Outcome::kSucceeded, 7, 30'000);
  Run(Outcome::kFailed, 0, 10'000, "w1", "boom");

  const json o = Ok(api_.Overview());
  const SessionReport report = Ok(BuildSessionReport(store_, "s1"));
  EXPECT_DOUBLE_EQ(o["yield_per_minute"].get<double>(), report.yield_per_minute);
  EXPECT_DOUBLE_EQ(o["yield_per_minute"].get<double>(), 37.0 / (100'000.0 / 60'000.0));
  EXPECT_EQ(o["telemetry_events"], report.telemetry_events);
  EXPECT_EQ(o["attempts"], report.attempts);
  EXPECT_EQ(o["attempts_by_outcome"]["succeeded"], 2);
  EXPECT_EQ(o["attempts_by_outcome"]["failed"], 1);
  EXPECT_EQ(o["phases"]["done"], 2);  // the failed phase has an attempt left
  EXPECT_EQ(o["phases"]["total"], 3);
  EXPECT_EQ(o["session"]["session_id"], "s1");
  EXPECT_EQ(o["session"]["settings"]["max_attempts_per_phase"], 2);
  EXPECT_TRUE(o["pause"].is_null());
}

TEST_F(WebApiTest, RateAndEtaComeFromTheHistory) {
  RegisterWorker("w1");
  Import({Spec("a-1", "p1", 1), Spec("a-1", "p2", 2), Spec("a-1", "p3", 3)});
  Start();
  EXPECT_TRUE(Ok(api_.Overview())["eta_seconds"].is_null());  // one sample: no rate yet
  clock_.AdvanceMs(60'000);
  Run(Outcome::kSucceeded, 1, 1'000);
  const json o = Ok(api_.Overview());
  EXPECT_DOUBLE_EQ(o["done_per_minute"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(o["eta_seconds"].get<double>(), 120.0);  // 2 left at 1 per minute
  EXPECT_EQ(o["history"].size(), 2u);
  EXPECT_EQ(o["history"][1]["done"], 1);
  EXPECT_EQ(o["history"][1]["outcomes"]["succeeded"], 1);

  Ok(coord_.StopSession("s1", "operator"));
  clock_.AdvanceMs(60'000);
  EXPECT_TRUE(Ok(api_.Overview())["eta_seconds"].is_null()) << "no ETA after the session";
}

TEST_F(WebApiTest, RunsPaginateAfterSorting) {
  RegisterWorker("w1");
  Import({Spec("r1", "p", 1), Spec("r2", "p", 1), Spec("r3", "p", 1), Spec("r4", "p", 1),
          Spec("r5", "p", 1)});
  Start();
  SessionSettings s;
  for (int i = 0; i < 5; ++i) {
    LeaseGrant g = LeaseOne();
    ReportNow(g, Outcome::kSucceeded, /*events=*/g.run_id == "r3" ? 50 : 10 + i, 60'000);
  }
  RunsQuery q;
  q.sort = "events";
  q.descending = true;
  q.page = {.offset = 0, .limit = 2};
  json page = Ok(api_.Runs(q));
  EXPECT_EQ(page["page"]["total"], 5);
  ASSERT_EQ(page["rows"].size(), 2u);
  EXPECT_EQ(page["rows"][0]["run_id"], "r3");
  EXPECT_EQ(page["rows"][0]["telemetry_events"], 50);

  q.sort = "run_id";
  q.descending = false;
  q.page = {.offset = 3, .limit = 2};
  EXPECT_THAT(Ids(Ok(api_.Runs(q))["rows"], "run_id"), ElementsAre("r4", "r5"));
  q.page = {.offset = 10, .limit = 2};
  EXPECT_TRUE(Ok(api_.Runs(q))["rows"].empty());
}

TEST_F(WebApiTest, RunsFilterAndGroupByFamily) {
  RegisterWorker("w1");
  Import({Spec("svc-1", "p", 1), Spec("svc-2", "p", 1), Spec("lib-1", "p", 1)});
  Start();
  Run(Outcome::kSucceeded, 4, 60'000);
  RunsQuery q;
  q.contains = "svc";
  EXPECT_THAT(Ids(Ok(api_.Runs(q))["rows"], "run_id"), ElementsAre("svc-1", "svc-2"));
  q.contains = "";
  q.by_family = true;
  const json families = Ok(api_.Runs(q));
  EXPECT_THAT(Ids(families["rows"], "family"), ElementsAre("lib", "svc"));
  EXPECT_EQ(families["rows"][1]["runs"], 2);
  q.by_family = false;
  q.state = "done";
  EXPECT_EQ(Ok(api_.Runs(q))["rows"].size(), 1u);  // the one run that ran
  q.state = "active";
  EXPECT_EQ(Ok(api_.Runs(q))["rows"].size(), 2u);
}

TEST_F(WebApiTest, RunsCarryTheTypedSkipReason) {
  BlockRunWith("error: disk on fire");
  RunsQuery q;
  q.state = "skipped";
  const json page = Ok(api_.Runs(q));
  ASSERT_EQ(page["rows"].size(), 1u);
  const json& skip = page["rows"][0]["skips"][0];
  EXPECT_EQ(skip["code"], "fingerprint_repeats");
  EXPECT_EQ(skip["kind"], "excluded");
}

TEST_F(WebApiTest, BadParametersAreRefusedWithTheirName) {
  RunsQuery q;
  q.page.limit = 0;
  EXPECT_THAT(api_.Runs(q), StatusIs(absl::StatusCode::kInvalidArgument, "limit must be 1..500"));
  q.page = {.offset = -1, .limit = 10};
  EXPECT_THAT(api_.Runs(q), StatusIs(absl::StatusCode::kInvalidArgument, "offset must be >= 0"));
  q.page = {};
  q.sort = "drop table";
  EXPECT_THAT(api_.Runs(q).status().code(), absl::StatusCode::kInvalidArgument);
  q.sort = "run_id";
  q.state = "weird";
  EXPECT_THAT(api_.Runs(q).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(api_.Fingerprints({.offset = 0, .limit = 501}).status().code(),
              absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(api_.Phase("", "p", {}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(WebApiTest, FingerprintsShowBlockingAndUnblockReleasesTheRun) {
  BlockRunWith("<b>bold</b> failure");
  const json fps = Ok(api_.Fingerprints({}));
  ASSERT_EQ(fps["rows"].size(), 1u);
  const json& fp = fps["rows"][0];
  EXPECT_TRUE(fp["blocked"].get<bool>());
  EXPECT_EQ(fp["count"], 2);
  EXPECT_THAT(fp["runs"], ElementsAre("a-1"));
  EXPECT_EQ(fp["example_error"], "<b>bold</b> failure");  // JSON carries text; the page escapes

  const json unblocked = Ok(api_.Unblock(fp["id"].get<std::string>()));
  EXPECT_EQ(unblocked["unblocked"], fp["fingerprint"]);
  RunsQuery q;
  q.state = "skipped";
  // A named page: a range-for over Ok(...)["rows"] would iterate a temporary
  // that is destroyed before the loop runs (ASan: heap-use-after-free).
  const json runs = Ok(api_.Runs(q));
  for (const json& row : runs["rows"]) {
    for (const json& skip : row["skips"]) EXPECT_NE(skip["code"], "fingerprint_repeats") << skip;
  }
  EXPECT_THAT(api_.Unblock("no-such-fingerprint").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(WebApiTest, WorkersShowCurrentPhasesAgainstTheirTimeoutAndHealth) {
  RegisterWorker("w1", {"linux"});
  Import({Spec("a-1", "p1", 1)});
  SessionSettings settings;
  settings.phase_timeout_seconds = 600;
  Start(settings);
  LeaseOne("w1");
  clock_.AdvanceMs(5'000);
  json w = Ok(api_.Workers(true));
  ASSERT_EQ(w["rows"].size(), 1u);
  const json& row = w["rows"][0];
  EXPECT_EQ(row["labels"], json::array({"linux"}));
  EXPECT_EQ(row["slots"], 2);
  EXPECT_EQ(row["slots_in_use"], 1);
  EXPECT_EQ(row["current"][0]["phase_id"], "p1");
  EXPECT_EQ(row["current"][0]["elapsed_ms"], 5'000);
  EXPECT_EQ(row["current"][0]["timeout_seconds"], 600);
  EXPECT_EQ(row["health"], "ok");
  EXPECT_EQ(row["since_last_heartbeat_ms"], 5'000);  // the lease was granted 5 s ago
  EXPECT_TRUE(w["coordinator_serving"].get<bool>());

  clock_.AdvanceMs(2 * Config().heartbeat_interval_ms);  // two heartbeats missed, within the TTL
  EXPECT_EQ(Ok(api_.Workers(false))["rows"][0]["health"], "stale");
  const LeaseGrant held = Ok(store_.ListActiveLeases())[0];
  EXPECT_THAT(Ok(coord_.Heartbeat("w1", {held.lease_id})), ::testing::IsEmpty());
  w = Ok(api_.Workers(true));
  EXPECT_EQ(w["rows"][0]["health"], "ok");
  EXPECT_EQ(w["rows"][0]["since_last_heartbeat_ms"], 0);
}

TEST_F(WebApiTest, AnIdleWorkerIsIdleNotStale) {
  // The store records a worker's registration, not its lease polls: an idle
  // worker registered long ago is not "stale".
  RegisterWorker("w1");
  clock_.AdvanceMs(10 * Config().heartbeat_interval_ms);
  const json row = Ok(api_.Workers(true))["rows"][0];
  EXPECT_EQ(row["health"], "idle");
  EXPECT_TRUE(row["last_heartbeat_ms"].is_null());
  EXPECT_EQ(row["registered_at_ms"], clock_.NowMs() - 10 * Config().heartbeat_interval_ms);
}

TEST_F(WebApiTest, PhaseShowsItsAttemptsNewestFirstWithTails) {
  RegisterWorker("w1");
  Import({Spec("a-1", "p1", 1)});
  Start();
  LeaseGrant first = LeaseOne();
  AttemptReport r = ReportOf(first, Outcome::kFailed, 0, 2'000, "boom");
  r.stderr_tail = "<script>alert(1)</script>";
  r.stdout_tail = "out";
  Ok(coord_.Report(r));
  Run(Outcome::kSucceeded, 9, 3'000);

  const json p = Ok(api_.Phase("a-1", "p1", {}));
  EXPECT_EQ(p["state"], "succeeded");
  EXPECT_EQ(p["page"]["total"], 2);
  ASSERT_EQ(p["rows"].size(), 2u);
  EXPECT_EQ(p["rows"][0]["outcome"], "succeeded");
  EXPECT_EQ(p["rows"][0]["telemetry_events"], 9);
  EXPECT_EQ(p["rows"][1]["outcome"], "failed");
  EXPECT_EQ(p["rows"][1]["stderr_tail"], "<script>alert(1)</script>");
  EXPECT_EQ(p["rows"][1]["duration_ms"], 2'000);
  EXPECT_FALSE(p["rows"][1]["fingerprint"].get<std::string>().empty());

  const json second_page = Ok(api_.Phase("a-1", "p1", {.offset = 1, .limit = 1}));
  ASSERT_EQ(second_page["rows"].size(), 1u);
  EXPECT_EQ(second_page["rows"][0]["outcome"], "failed");
  EXPECT_THAT(api_.Phase("a-1", "nope", {}).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(WebApiTest, ResumeWithoutAPauseIsRefused) {
  Import({Spec("a-1", "p1", 1)});
  EXPECT_THAT(api_.Resume().status().code(), absl::StatusCode::kFailedPrecondition);
  Start();
  EXPECT_THAT(api_.Resume().status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(WebApiTest, APausedDrainShowsTheAlarmAndResumeEndsThePause) {
  RegisterWorker("w1");
  std::vector<PhaseSpec> specs;
  for (int i = 0; i < 6; ++i) specs.push_back(Spec("r1", absl::StrCat("p", i), i));
  Import(specs);
  SessionSettings settings;
  settings.on_telemetry_loss = TelemetryLossAction::kPause;
  Start(settings);
  for (int i = 0; i < 3; ++i) {
    clock_.AdvanceMs(1'000);
    Run(Outcome::kSucceeded, /*events=*/0, 1'000);  // telemetry lost
  }
  Ok(coord_.Tick());

  const json w = Ok(api_.Workers(true));
  ASSERT_TRUE(w["pause"].is_object());
  EXPECT_THAT(w["pause"]["reason"].get<std::string>(), ::testing::HasSubstr("telemetry loss"));
  ASSERT_EQ(w["telemetry_warnings"].size(), 1u);
  EXPECT_EQ(w["telemetry_warnings"][0]["kind"], "zero_event_phases");
  EXPECT_TRUE(Ok(api_.Overview())["pause"].is_object());

  const json resumed = Ok(api_.Resume());
  EXPECT_EQ(resumed["session_id"], "s1");
  EXPECT_TRUE(Ok(api_.Workers(true))["pause"].is_null());
  EXPECT_EQ(LeaseNow("w1").leases.size(), 1u);  // leasing again
}

class WebApiScaleTest : public WebApiTest {
 protected:
  WebApiScaleTest()
      : counting_(store_), coord2_(counting_, clock_, Config()), api2_(coord2_, clock_) {
    RegisterWorker("w1");
    Import(
        {Spec("a-1", "p1", 1), Spec("a-1", "p2", 2), Spec("b-1", "p1", 1), Spec("c-1", "p1", 1)});
    Start();
    failed_ = Run(Outcome::kFailed, 0, 2'000, "w1", "boom");
    Run(Outcome::kSucceeded, 12, 60'000);
    Run(Outcome::kSucceeded, 3, 30'000);
    // The history is read once per coordinator term (start-up): not per page.
    Ok(coord2_.OutcomeTotals());
    counting_.run_scans = counting_.attempt_scans = 0;
  }

  ScanCountingStateStore counting_;
  LeaseGrant failed_;
  Coordinator coord2_;
  WebApi api2_;
};

TEST_F(WebApiScaleTest, TheHistorySamplerReadsCountersNotEveryRun) {
  // Bug (#15): the sampler read every run's aggregates every 5 s whenever
  // HTTP was on (10,000 rows a sample at 10,000 runs).
  Ok(api2_.Sample());
  Ok(api2_.Sample());
  EXPECT_EQ(counting_.run_scans, 0);
  EXPECT_EQ(counting_.attempt_scans, 0);
  const json o = Ok(api2_.Overview());
  // Same numbers as a full recount from the run aggregates.
  int64_t events = 0, run_ms = 0;
  for (const RunStats& r : Ok(store_.ListRunStats())) {
    events += r.telemetry_events;
    run_ms += r.run_ms;
  }
  EXPECT_EQ(o["telemetry_events"], events);
  EXPECT_EQ(o["run_ms"], run_ms);
  EXPECT_EQ(o["history"].back()["telemetry_events"], 15);
}

TEST_F(WebApiScaleTest, ARunsPageIsCutByTheStoreNotSortedFromEveryRun) {
  // Bug (#15): the runs page read every run's aggregates and explained the
  // skips of every run (reading every attempt once a phase had failed for
  // good) on each load, then sorted and cut in the coordinator.
  RunsQuery q;
  q.sort = "events";
  q.descending = true;
  q.page = {.offset = 0, .limit = 2};
  const json page = Ok(api2_.Runs(q));
  EXPECT_EQ(counting_.run_scans, 0);
  EXPECT_EQ(counting_.attempt_scans, 0);
  // The same page cut from every run, as the coordinator used to.
  std::vector<RunStats> all = Ok(store_.ListRunStats());
  std::stable_sort(all.begin(), all.end(), [](const RunStats& a, const RunStats& b) {
    return a.telemetry_events > b.telemetry_events;
  });
  EXPECT_EQ(page["page"]["total"], all.size());
  EXPECT_THAT(Ids(page["rows"], "run_id"), ElementsAre(all[0].run_id, all[1].run_id));
  EXPECT_EQ(page["rows"][0]["telemetry_events"], all[0].telemetry_events);
  q.by_family = true;  // families add up every run: that read is documented
  EXPECT_EQ(Ok(api2_.Runs(q))["page"]["total"], 3);
}

TEST_F(WebApiScaleTest, FamilyAndSkippedViewsReadTheBackgroundSnapshotNotTheStore) {
  // Bug (#15): runs by family, sorted by family or filtered to skipped read
  // every run's aggregates on each page load (100-650 ms at 10,000 runs).
  WebApi api(coord2_, clock_, WebApiOptions{.background_run_table = true});
  RunsQuery q;
  q.by_family = true;
  const json loading = Ok(api.Runs(q));
  EXPECT_TRUE(loading["loading"].get<bool>());
  EXPECT_TRUE(loading["rows"].empty());
  EXPECT_EQ(counting_.run_scans, 0);

  Ok(api.RefreshRunTable());  // the host's background thread
  EXPECT_EQ(counting_.run_scans, 1);
  const int64_t taken = clock_.NowMs();
  clock_.AdvanceMs(100);
  const json families = Ok(api.Runs(q));
  q.by_family = false;
  q.sort = "family";
  const json by_family_name = Ok(api.Runs(q));
  q.sort = "run_id";
  q.state = "skipped";
  Ok(api.Runs(q));
  EXPECT_EQ(counting_.run_scans, 1) << "a page load read every run";
  EXPECT_FALSE(families["loading"].get<bool>());
  EXPECT_EQ(families["as_of_ms"], taken);
  // The same rows as a request that reads the store itself.
  RunsQuery fresh;
  fresh.by_family = true;
  EXPECT_EQ(Ok(api2_.Runs(fresh))["rows"], families["rows"]);
  fresh.by_family = false;
  fresh.sort = "family";
  EXPECT_EQ(Ok(api2_.Runs(fresh))["rows"], by_family_name["rows"]);
  // A page read by the store (one run at a time) is live: no snapshot time.
  EXPECT_TRUE(Ok(api.Runs(RunsQuery{}))["as_of_ms"].is_null());
}

TEST_F(WebApiTest, AnUnblockFromThePageIsInTheSkippedViewAtTheNextSnapshot) {
  BlockRunWith("error: disk on fire");
  WebApi api(coord_, clock_, WebApiOptions{.background_run_table = true});
  RunsQuery q;
  q.state = "skipped";
  (void)Ok(api.Runs(q));
  Ok(api.RefreshRunTable());
  ASSERT_EQ(Ok(api.Runs(q))["rows"].size(), 1u);
  const std::string id = Ok(api.Fingerprints({}))["rows"][0]["id"].get<std::string>();
  Ok(api.Unblock(id));
  Ok(api.RefreshRunTable());  // at once, however young the snapshot
  EXPECT_TRUE(Ok(api.Runs(q))["rows"].empty());
}

TEST_F(WebApiScaleTest, PollsReuseTheSessionEndVerdictWhileNothingChanged) {
  // Bug (#15): with nothing leased, every overview, workers page and
  // /metrics scrape asked whether the session is over by deciding every run
  // (a read of every run's aggregates per poll; the tick already asks twice
  // a second).
  // Since #12 a decision reads the statistics the ready index keeps (one
  // whole read, at the first): the decisions themselves are counted.
  const uint64_t before = coord2_.SessionEndDecisions();
  Ok(api2_.Overview());
  EXPECT_EQ(coord2_.SessionEndDecisions() - before, 1u);
  Ok(api2_.Overview());
  Ok(api2_.Workers(true));
  Ok(coord2_.Status());
  EXPECT_EQ(coord2_.SessionEndDecisions() - before, 1u);
  clock_.AdvanceMs(DrainPolicy::kEndVerdictMaxAgeMs);
  Ok(api2_.Overview());
  EXPECT_EQ(coord2_.SessionEndDecisions() - before, 2u) << "an old verdict is decided again";
  EXPECT_EQ(counting_.run_scans, 1) << "a decision read every run from the store";
}

TEST_F(WebApiScaleTest, TheTickDecidesAgainBeforeAPollFindsTheVerdictOld) {
  // Bug: the verdict was decided again by whoever found it 2 s old first,
  // now and then a page poll (100-150 ms at 10,000 runs).
  const uint64_t before = coord2_.SessionEndDecisions();
  Ok(api2_.Overview());
  clock_.AdvanceMs(DrainPolicy::kTickEndVerdictMaxAgeMs);
  Ok(coord2_.Tick());
  EXPECT_EQ(coord2_.SessionEndDecisions() - before, 2u)
      << "the tick decides at half the age polls accept";
  clock_.AdvanceMs(DrainPolicy::kEndVerdictMaxAgeMs - DrainPolicy::kTickEndVerdictMaxAgeMs - 1);
  Ok(api2_.Overview());
  EXPECT_EQ(coord2_.SessionEndDecisions() - before, 2u) << "a poll decided";
}

// A store whose reads of the attempt history take a while (real time), so a
// second reader can arrive while the first is in flight.
class SlowHistoryStore : public ScanCountingStateStore {
 public:
  using ScanCountingStateStore::ScanCountingStateStore;
  absl::StatusOr<AttemptBatch> ListAttemptsFrom(const std::string& session, int64_t cursor,
                                                int64_t limit) override {
    absl::SleepFor(absl::Milliseconds(300));
    return ScanCountingStateStore::ListAttemptsFrom(session, cursor, limit);
  }
};

TEST_F(WebApiTest, APageLoadDuringStartUpWaitsForTheHistoryReadInsteadOfRepeatingIt) {
  // Bug (#15): the first page load after start-up read the whole attempt
  // history (108 s on Redis at 1M attempts) even while the tick was reading
  // it too: two reads and twice the memory.
  RegisterWorker("w1");
  Import({Spec("a-1", "p1", 1), Spec("a-1", "p2", 2)});
  Start();
  Run(Outcome::kSucceeded, 3, 1'000);
  SlowHistoryStore slow(store_);
  Coordinator coord(slow, clock_, Config());  // a coordinator just started on this store
  WebApi api(coord, clock_);
  std::thread tick_thread([&coord] { Ok(coord.LoadPolicy()); });
  absl::SleepFor(absl::Milliseconds(100));
  const json o = Ok(api.Overview());
  tick_thread.join();
  EXPECT_EQ(slow.attempt_scans, 1);
  EXPECT_EQ(o["attempts"], 1);
  EXPECT_EQ(o["telemetry_events"], 3);
}

TEST_F(WebApiTest, AReusedSessionEndVerdictFollowsImportsReportsAndUnblocks) {
  // The reuse must never show a stale "done": whatever can change the
  // verdict is part of its key, with no time passing at all.
  BlockRunWith("error: disk on fire");
  EXPECT_TRUE(Ok(api_.Overview())["session"]["done"].get<bool>()) << "only a blocked run is left";
  // Another process imports into the same store (not through this coordinator).
  Ok(store_.ImportPhases({Spec("b-1", "p1", 1)}));
  EXPECT_FALSE(Ok(api_.Overview())["session"]["done"].get<bool>());
  // The broker's ready index sees another process's import at its next
  // whole reload (seconds); the same import through the coordinator now.
  Import({Spec("b-1", "p1", 1)});
  Run(Outcome::kSucceeded, 5, 1'000);  // b-1's phase
  EXPECT_TRUE(Ok(api_.Overview())["session"]["done"].get<bool>());
  // An unblock changes no counter: the policy's own change is part of the key.
  const std::string id = Ok(api_.Fingerprints({}))["rows"][0]["id"].get<std::string>();
  Ok(api_.Unblock(id));
  EXPECT_FALSE(Ok(api_.Overview())["session"]["done"].get<bool>()) << "a-1/p3 is leasable again";
}

TEST_F(WebApiScaleTest, APhasePageReadsThatPhasesAttemptsOnly) {
  // Bug (#15): the Phase page read the latest session's every attempt, with
  // stdout/stderr tails, and filtered them.
  const json p = Ok(api2_.Phase(failed_.run_id, failed_.phase_id, {.offset = 0, .limit = 1}));
  EXPECT_EQ(counting_.attempt_scans, 0);
  std::vector<AttemptRecord> want;  // the phase's attempts, by a full read
  for (const AttemptRecord& a : Ok(store_.ListAttempts(""))) {
    if (a.run_id == failed_.run_id && a.phase_id == failed_.phase_id) want.push_back(a);
  }
  ASSERT_FALSE(want.empty());
  EXPECT_EQ(p["page"]["total"], want.size());
  ASSERT_EQ(p["rows"].size(), 1u);
  EXPECT_EQ(p["rows"][0]["lease_id"], want.back().lease_id);  // newest first
}

TEST(WebAssetsTest, TheOutcomeLegendNamesEveryOutcome) {
  // Bug (#15): the overview's outcome chart had no colour (and no legend
  // entry) for start_failed.
  const std::string js(web_assets::kAppJs);
  const size_t begin = js.find("const OUTCOME_COLORS");
  ASSERT_NE(begin, std::string::npos);
  const std::string legend = js.substr(begin, js.find("};", begin) - begin);
  for (Outcome o : {Outcome::kSucceeded, Outcome::kFailed, Outcome::kTimedOut, Outcome::kKilled,
                    Outcome::kCancelled, Outcome::kLost, Outcome::kStartFailed}) {
    EXPECT_NE(legend.find(" " + std::string(OutcomeName(o)) + ": '#"), std::string::npos)
        << OutcomeName(o);
  }
}

}  // namespace
}  // namespace sluice::testing
