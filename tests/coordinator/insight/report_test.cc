// The session report over constructed histories: outcome counts and rates,
// duration percentiles, families, workers, fingerprints, timeline, yield,
// telemetry warnings, and the JSON round trip.
#include <string>
#include <vector>

#include "coordinator/insight/session_report.h"
#include "coordinator/store/sqlite/sqlite_state_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/attempts.h"

namespace sluice {
namespace {

using ::sluice::testing::Attempt;
using ::sluice::testing::kT0;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kImportError[] = "ImportError: No module named 'foo'";

SessionRecord Session() {
  SessionRecord s;
  s.session_id = "s1";
  s.started_at_ms = kT0;
  return s;
}

// Two families: research-system (v1, v2) and build (dated); two workers.
std::vector<AttemptRecord> History() {
  return {
      Attempt("research-system-v1", "p1", Outcome::kSucceeded, 60, 30, 60, "w1"),
      Attempt("research-system-v1", "p2", Outcome::kSucceeded, 120, 90, 130, "w2"),
      Attempt("research-system-v2", "p1", Outcome::kSucceeded, 180, 0, 200, "w1"),
      Attempt("research-system-v2", "p2", Outcome::kFailed, 30, 1, 210, "w2", 1, kImportError),
      Attempt("build-2024-01-05", "b1", Outcome::kFailed, 40, 0, 250, "w1", 1, kImportError),
      Attempt("build-2024-01-05", "b2", Outcome::kTimedOut, 900, 0, 1000, "w2", 1, "timed out"),
      Attempt("build-2024-01-06", "b1", Outcome::kLost, 0, 0, 1300, "w1"),
  };
}

TEST(ReportTest, CountsAndRatesPerOutcome) {
  SessionReport r = ComputeSessionReport(Session(), History(), {}, {});
  EXPECT_EQ(r.attempts, 7);
  EXPECT_EQ(r.outcomes.at("succeeded"), 3);
  EXPECT_EQ(r.outcomes.at("failed"), 2);
  EXPECT_EQ(r.outcomes.at("timed_out"), 1);
  EXPECT_EQ(r.outcomes.at("lost"), 1);
  auto j = nlohmann::json::parse(SessionReportJson(r));
  EXPECT_DOUBLE_EQ(j["outcome_rates"]["succeeded"].get<double>(), 3.0 / 7.0);
  EXPECT_DOUBLE_EQ(j["outcome_rates"]["lost"].get<double>(), 1.0 / 7.0);
  EXPECT_THAT(SessionReportText(r), HasSubstr("succeeded 3 (42.9%)"));
}

TEST(ReportTest, YieldEqualsEventsOverRunMinutesComputedIndependently) {
  const std::vector<AttemptRecord> h = History();
  int64_t events = 0;
  int64_t ms = 0;
  for (const AttemptRecord& a : h) {
    events += a.telemetry_events;
    ms += a.duration_ms;
  }
  const double expected = static_cast<double>(events) / (static_cast<double>(ms) / 60'000.0);
  SessionReport r = ComputeSessionReport(Session(), h, {}, {});
  EXPECT_EQ(r.telemetry_events, 121);
  EXPECT_EQ(r.run_ms, 1'330'000);
  EXPECT_DOUBLE_EQ(r.yield_per_minute, expected);
  auto j = nlohmann::json::parse(SessionReportJson(r));
  EXPECT_DOUBLE_EQ(j["yield_events_per_minute"].get<double>(), expected);
  // The family row uses the same definition: 121 events in 390 s.
  ASSERT_EQ(r.families.size(), 2u);
  EXPECT_EQ(r.families[1].key, "research-system");
  EXPECT_DOUBLE_EQ(YieldPerMinute(r.families[1].telemetry_events, r.families[1].run_ms),
                   121.0 / (390.0 / 60.0));
}

// Issue #13: the report grouped runs by the default rule only, so with a
// --family-pattern its family table disagreed with the scheduler and the
// web view.
TEST(ReportTest, FamilyTableFollowsTheFamilyPattern) {
  // Versions are siblings, dated builds are not: each build is its own family.
  const RunFamilyRule rule = RunFamilyRule::Compile("(.*)-v[0-9]+").value();
  std::vector<RunStats> stats(1);
  stats[0].run_id = "build-2024-01-05";
  stats[0].pending = 2;
  const SessionReport r = ComputeSessionReport(Session(), History(), stats, {}, {}, rule);
  std::vector<std::string> keys;
  for (const GroupReportRow& f : r.families) keys.push_back(f.key);
  EXPECT_THAT(keys, ElementsAre("build-2024-01-05", "build-2024-01-06", "research-system"));
  EXPECT_EQ(r.families[0].attempts, 2);
  EXPECT_EQ(r.families[0].phases.pending, 2);
  EXPECT_EQ(r.families[2].runs, 2);
  ASSERT_EQ(r.runs.size(), 4u);
  EXPECT_EQ(r.runs[0].family, "build-2024-01-05");
  ASSERT_FALSE(r.top_errors.empty());
  EXPECT_THAT(r.top_errors[0].families, ElementsAre("build-2024-01-05", "research-system"));
  EXPECT_THAT(SessionReportText(r), HasSubstr("build-2024-01-06"));
}

TEST(ReportTest, UnknownTelemetryIsCountedApartAndLeftOutOfYield) {
  // Issue #16 item 6: an attempt whose telemetry the worker could not count
  // entered yield as 0 events over its minutes.
  std::vector<AttemptRecord> h = {
      Attempt("run-1", "p1", Outcome::kSucceeded, 60, 30, 60),
      Attempt("run-1", "p2", Outcome::kSucceeded, 120, 0, 180),
      Attempt("run-2", "p1", Outcome::kSucceeded, 60, 0, 240),
  };
  h[1].telemetry_unknown = true;
  h[2].telemetry_unknown = true;
  SessionReport r = ComputeSessionReport(Session(), h, {}, {});
  EXPECT_EQ(r.run_ms, 240'000);
  EXPECT_EQ(r.unknown_telemetry_attempts, 2);
  EXPECT_EQ(r.unknown_telemetry_ms, 180'000);
  EXPECT_DOUBLE_EQ(r.yield_per_minute, 30.0);  // 30 events in the 1 known minute
  ASSERT_EQ(r.workers.size(), 1u);
  EXPECT_EQ(r.workers[0].zero_event_successes, 0) << "unknown is not a silent success";
  ASSERT_EQ(r.runs.size(), 2u);
  EXPECT_EQ(r.runs[1].unknown_telemetry_attempts, 1);

  auto j = nlohmann::json::parse(SessionReportJson(r));
  EXPECT_DOUBLE_EQ(j["yield_events_per_minute"].get<double>(), 30.0);
  EXPECT_EQ(j["unknown_telemetry_attempts"], 2);
  EXPECT_EQ(j["unknown_telemetry_run_ms"], 180'000);
  EXPECT_DOUBLE_EQ(j["unknown_telemetry_worker_minutes"].get<double>(), 3.0);
  EXPECT_DOUBLE_EQ(j["runs"][0]["yield_events_per_minute"].get<double>(), 30.0);
  // A run with only unknown telemetry has no yield, not zero.
  EXPECT_TRUE(j["runs"][1]["yield_events_per_minute"].is_null()) << j["runs"][1].dump();
  const std::string text = SessionReportText(r);
  EXPECT_THAT(text, HasSubstr("telemetry unknown for 2 attempts (3.0 phase-minutes)"));
  EXPECT_THAT(text, ::testing::ContainsRegex("run-2 +1 +1 +0 +0 +unknown +- "));

  SessionReport back = *SessionReportFromJson(SessionReportJson(r));
  EXPECT_EQ(back.unknown_telemetry_attempts, 2);
  EXPECT_DOUBLE_EQ(back.yield_per_minute, 30.0);
  EXPECT_EQ(back.runs[1].unknown_telemetry_ms, 60'000);
  EXPECT_EQ(back.workers[0].unknown_telemetry_attempts, 2);
  EXPECT_EQ(back.timeline.size(), r.timeline.size());
}

TEST(ReportTest, DurationPercentilesForSuccessesAndFailures) {
  std::vector<AttemptRecord> h;
  for (int i = 1; i <= 20; ++i) {
    h.push_back(Attempt("r", "p" + std::to_string(i), Outcome::kSucceeded, i * 10, 1, i * 10));
  }
  h.push_back(Attempt("r", "f1", Outcome::kFailed, 5, 0, 300, "w1", 1, "boom"));
  h.push_back(Attempt("r", "f2", Outcome::kKilled, 7, 0, 310, "w1", 1, "killed"));
  SessionReport r = ComputeSessionReport(Session(), h, {}, {});
  EXPECT_EQ(r.success_durations.count, 20);
  EXPECT_EQ(r.success_durations.p50_ms, 100'000);  // nearest rank: 10th of 20
  EXPECT_EQ(r.success_durations.p90_ms, 180'000);
  EXPECT_EQ(r.success_durations.p95_ms, 190'000);
  EXPECT_EQ(r.success_durations.max_ms, 200'000);
  EXPECT_EQ(r.failure_durations.count, 2);
  EXPECT_EQ(r.failure_durations.p50_ms, 5'000);
  EXPECT_EQ(r.failure_durations.p95_ms, 7'000);
  EXPECT_THAT(SessionReportText(r), HasSubstr("durations of 20 successes: p50 100.0s"));
}

TEST(ReportTest, FingerprintsCarryRunsPhasesFamiliesAndWorkerMinutes) {
  SessionReport r = ComputeSessionReport(Session(), History(), {}, {});
  ASSERT_FALSE(r.top_errors.empty());
  const ErrorReportRow& top = r.top_errors[0];
  EXPECT_EQ(top.example_error, kImportError);
  EXPECT_EQ(top.attempts, 2);
  EXPECT_EQ(top.runs, 2);
  EXPECT_EQ(top.phases, 2);
  EXPECT_EQ(top.run_ms, 70'000);
  EXPECT_THAT(top.families, ElementsAre("build", "research-system"));
  auto j = nlohmann::json::parse(SessionReportJson(r));
  EXPECT_DOUBLE_EQ(j["top_errors"][0]["worker_minutes"].get<double>(), 70.0 / 60.0);
  // Every fingerprint, successes too, with its yield; highest yield first.
  ASSERT_FALSE(r.fingerprints.empty());
  EXPECT_TRUE(r.fingerprints[0].key.starts_with("succeeded|"));
}

TEST(ReportTest, PerRunFamilyAndWorkerRows) {
  std::vector<RunStats> stats(1);
  stats[0].run_id = "research-system-v2";
  stats[0].pending = 4;
  stats[0].succeeded = 1;
  SessionReport r = ComputeSessionReport(Session(), History(), stats, {});
  ASSERT_EQ(r.runs.size(), 4u);
  EXPECT_EQ(r.runs[0].run_id, "build-2024-01-05");
  EXPECT_EQ(r.runs[0].family, "build");
  ASSERT_EQ(r.families.size(), 2u);
  EXPECT_EQ(r.families[0].key, "build");
  EXPECT_EQ(r.families[0].runs, 2);
  EXPECT_EQ(r.families[0].attempts, 3);
  EXPECT_EQ(r.families[0].timed_out, 1);
  EXPECT_EQ(r.families[1].runs, 2);
  EXPECT_EQ(r.families[1].succeeded, 3);
  EXPECT_EQ(r.families[1].zero_event_successes, 1);
  EXPECT_EQ(r.families[1].phases.pending, 4);
  ASSERT_EQ(r.workers.size(), 2u);
  EXPECT_EQ(r.workers[0].key, "w1");
  EXPECT_EQ(r.workers[0].attempts, 4);
  EXPECT_EQ(r.workers[0].telemetry_events, 30);
  EXPECT_EQ(r.workers[1].telemetry_events, 91);
  const std::string text = SessionReportText(r);
  EXPECT_THAT(text, HasSubstr("research-system"));
  EXPECT_THAT(text, HasSubstr("worker "));
}

TEST(ReportTest, TimelineBucketsAttemptEndsPerMinute) {
  SessionReport r = ComputeSessionReport(Session(), History(), {}, {});
  EXPECT_EQ(r.timeline_bucket_ms, 60'000);
  ASSERT_EQ(r.timeline.size(), 22u);  // 0 .. 1300 s
  EXPECT_EQ(r.timeline[0].start_ms, kT0);
  EXPECT_EQ(r.timeline[0].finished, 0);  // ended at 60 s: bucket 1
  EXPECT_EQ(r.timeline[1].finished, 1);
  EXPECT_EQ(r.timeline[1].telemetry_events, 30);
  EXPECT_EQ(r.timeline[2].finished, 1);
  EXPECT_EQ(r.timeline[3].finished, 2);  // 200 s and 210 s
  EXPECT_EQ(r.timeline[3].failed, 1);
  int64_t total = 0;
  for (const TimelineBucket& b : r.timeline) total += b.finished;
  EXPECT_EQ(total, 7);
}

TEST(ReportTest, LongSessionsGetWiderBuckets) {
  std::vector<AttemptRecord> h = {Attempt("r", "a", Outcome::kSucceeded, 1, 1, 10),
                                  Attempt("r", "b", Outcome::kSucceeded, 1, 1, 5 * 3600)};
  SessionReport r = ComputeSessionReport(Session(), h, {}, {});
  EXPECT_EQ(r.timeline_bucket_ms, 6 * 60'000);  // 300 minutes in at most 60 buckets
  EXPECT_LE(r.timeline.size(), 61u);
  EXPECT_EQ(r.timeline.back().finished, 1);
}

TEST(ReportTest, TelemetryWarningsAppearInJsonAndText) {
  std::vector<AttemptRecord> h;
  for (int i = 0; i < 4; ++i) {
    h.push_back(Attempt("r", "a" + std::to_string(i), Outcome::kSucceeded, 60, 0, 60 * i, "wa"));
    h.push_back(Attempt("r", "b" + std::to_string(i), Outcome::kSucceeded, 60, 9, 60 * i, "wb"));
  }
  SessionReport r = ComputeSessionReport(Session(), h, {}, {});
  ASSERT_EQ(r.telemetry_warnings.size(), 1u);
  auto j = nlohmann::json::parse(SessionReportJson(r));
  ASSERT_EQ(j["telemetry_warnings"].size(), 1u);
  EXPECT_EQ(j["telemetry_warnings"][0]["kind"], "silent_worker");
  EXPECT_EQ(j["telemetry_warnings"][0]["worker_id"], "wa");
  EXPECT_THAT(SessionReportText(r), HasSubstr("WARNING: worker wa"));
}

TEST(ReportTest, JsonRoundTripsTheNewSections) {
  SessionReport r = ComputeSessionReport(Session(), History(), {}, {});
  SessionReport back = *SessionReportFromJson(SessionReportJson(r));
  EXPECT_EQ(SessionReportJson(back), SessionReportJson(r));
}

TEST(ReportTest, SkippedRowsRoundTripAndPrint) {
  SessionReport r = ComputeSessionReport(Session(), History(), {}, {});
  EXPECT_THAT(SessionReportText(r), ::testing::Not(HasSubstr("not leased now")));
  r.skipped = {{"excluded", "build-2024-01-05", "", 3, "max_timeouts_per_run reached (2 timeouts)"},
               {"waiting_for_labels", "gpu-run", "p7", 1, "waiting for a worker with labels gpu"}};
  auto j = nlohmann::json::parse(SessionReportJson(r));
  ASSERT_EQ(j["skipped"].size(), 2u);
  EXPECT_EQ(j["skipped"][1]["kind"], "waiting_for_labels");
  EXPECT_EQ(j["skipped"][1]["phase_id"], "p7");
  EXPECT_EQ(j["skipped"][0]["phases"], 3);
  SessionReport back = *SessionReportFromJson(j.dump());
  ASSERT_EQ(back.skipped.size(), 2u);
  EXPECT_EQ(back.skipped[0].reason, "max_timeouts_per_run reached (2 timeouts)");
  const std::string text = SessionReportText(back);
  EXPECT_THAT(text, HasSubstr("not leased now:"));
  EXPECT_THAT(text, HasSubstr("gpu-run/p7 (1 phase): waiting for a worker with labels gpu"));
  EXPECT_THAT(text, HasSubstr("run build-2024-01-05 (3 phases): max_timeouts_per_run reached"));
}

TEST(ReportTest, OlderJsonWithoutTheNewKeysStillParses) {
  SessionReport r = ComputeSessionReport(Session(), History(), {}, {});
  auto j = nlohmann::json::parse(SessionReportJson(r));
  for (const char* key :
       {"durations", "families", "workers", "fingerprints", "timeline", "timeline_bucket_ms",
        "telemetry_warnings", "outcome_rates", "skipped", "late_reports"}) {
    j.erase(key);
  }
  absl::StatusOr<SessionReport> back = SessionReportFromJson(j.dump());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->attempts, 7);
  EXPECT_TRUE(back->timeline.empty());
}

TEST(ReportTest, LateReportsCountOnlyThisSessionsLeasesAndShowInJsonAndText) {
  std::vector<AttemptRecord> history = History();
  LateReportRecord mine;
  mine.lease_id = history.back().lease_id;  // the lost attempt's worker came back
  LateReportRecord other;
  other.lease_id = "lease-of-another-session";
  ASSERT_FALSE(mine.lease_id.empty());
  EXPECT_EQ(CountLateReportsOf(history, {mine, other}), 1);
  EXPECT_EQ(CountLateReportsOf(history, {}), 0);

  SessionReport r = ComputeSessionReport(Session(), history, {}, {});
  EXPECT_THAT(SessionReportText(r), ::testing::Not(HasSubstr("late reports")));
  r.late_reports = 1;
  EXPECT_EQ(nlohmann::json::parse(SessionReportJson(r)).at("late_reports"), 1);
  EXPECT_THAT(SessionReportText(r), HasSubstr("late reports 1"));
  EXPECT_EQ(SessionReportFromJson(SessionReportJson(r))->late_reports, 1);
}

TEST(ReportTest, BuildsFromTheStore) {
  auto store = *SqliteStateStore::Open(":memory:");
  SessionRecord s = Session();
  ASSERT_TRUE(store->CreateSession(s).ok());
  SessionReport r = *BuildSessionReport(*store, "s1");
  EXPECT_EQ(r.attempts, 0);
  EXPECT_TRUE(r.timeline.empty());
  EXPECT_TRUE(r.telemetry_warnings.empty());
  EXPECT_EQ(BuildSessionReport(*store, "nope").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace sluice
