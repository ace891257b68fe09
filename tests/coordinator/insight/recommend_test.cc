// `sluice recommend` over constructed histories.
#include "coordinator/insight/recommend.h"

#include <cmath>
#include <string>
#include <vector>

#include "coordinator/store/sqlite/sqlite_state_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/attempts.h"

namespace sluice {
namespace {

using ::sluice::testing::Attempt;
using ::testing::Contains;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr char kCiImportError[] =
    "ImportError while importing test module '/ci/tests/test_api.py'.\n"
    "E   ModuleNotFoundError: No module named 'ci_helpers'";

const RecommendedSetting& Setting(const Recommendation& r, const std::string& flag) {
  for (const RecommendedSetting& s : r.settings) {
    if (s.flag == flag) return s;
  }
  throw std::runtime_error("no setting " + flag);
}

RunStats RunRow(const std::string& id, int64_t pending, int64_t failed = 0, int64_t succeeded = 0) {
  RunStats s;
  s.run_id = id;
  s.pending = pending;
  s.failed = failed;
  s.succeeded = succeeded;
  return s;
}

PhaseCounts Totals(const std::vector<RunStats>& runs) {
  PhaseCounts c;
  for (const RunStats& s : runs) {
    c.pending += s.pending;
    c.leased += s.leased;
    c.succeeded += s.succeeded;
    c.failed += s.failed;
  }
  return c;
}

// The seed's situation: one phase done, failed with a CI import error after
// 441 s with 1 telemetry event; a backlog of 274 phases in 56 runs.
RecommendInput SeedSituation() {
  RecommendInput in;
  // 56 runs in 14 families of 4 versions; 274 phases: sizes 1..9 spread.
  int64_t total = 0;
  for (int f = 0; f < 14; ++f) {
    for (int v = 1; v <= 4; ++v) {
      const int64_t size = 2 + (f * 4 + v) % 7;  // 3..8 phases
      in.runs.push_back(RunRow("system" + std::to_string(f) + "-v" + std::to_string(v), size));
      total += size;
    }
  }
  // Make the total exactly 274 by adjusting the first run.
  in.runs[0].pending += 274 - total;
  // The one phase done belongs to the first run: failed.
  in.runs[0].pending -= 1;
  in.runs[0].failed = 1;
  in.phases = Totals(in.runs);
  in.attempts.push_back(Attempt(in.runs[0].run_id, "p0", Outcome::kFailed, 441, 1, 441, "worker-1",
                                1, kCiImportError));
  return in;
}

TEST(RecommendTest, SeedSituationIsInsufficientAndProposesADiagnosticBatch) {
  RecommendInput in = SeedSituation();
  ASSERT_EQ(in.phases.total(), 274);
  ASSERT_EQ(in.runs.size(), 56u);
  RecommendOptions o;
  o.workers = 2;
  Recommendation r = Recommend(in, o);
  EXPECT_FALSE(r.sufficient_data);
  EXPECT_THAT(r.diagnostic_justification, HasSubstr("insufficient data"));
  EXPECT_THAT(r.diagnostic_justification, HasSubstr("1 finished attempts"));
  EXPECT_EQ(r.diagnostic_phases, 10);
  ASSERT_EQ(r.diagnostic_runs.size(), 10u);
  // One per run, spread across families (10 distinct families of 14).
  std::set<std::string> runs(r.diagnostic_runs.begin(), r.diagnostic_runs.end());
  EXPECT_EQ(runs.size(), 10u);
  std::set<std::string> families;
  for (const std::string& id : r.diagnostic_runs) families.insert(id.substr(0, id.find('-')));
  EXPECT_EQ(families.size(), 10u);
  // The largest runs of the largest families come first.
  EXPECT_EQ(Setting(r, "--batch-size").value, "10");
  EXPECT_EQ(Setting(r, "--max-attempts-per-phase").value, "1");
  // 900 s default covers twice the 441 s seen.
  EXPECT_EQ(Setting(r, "--phase-timeout-seconds").value, "900");
  EXPECT_THAT(Setting(r, "--phase-timeout-seconds").justification, HasSubstr("441"));
  // 10 phases on 2 slots: 5 rounds of at most 15 minutes.
  EXPECT_EQ(Setting(r, "--max-total-minutes").value, "75");
  EXPECT_THAT(r.drain_command, StartsWith("sluice drain BACKLOG.jsonl --exec "));
  EXPECT_THAT(r.drain_command, HasSubstr("--batch-size 10"));
  EXPECT_THAT(r.drain_command, HasSubstr("--run-id " + r.diagnostic_runs[0]));
  const std::string text = RecommendationText(r);
  EXPECT_THAT(text, HasSubstr("insufficient data"));
  EXPECT_THAT(text, EndsWith(r.drain_command + "\n"));
  auto j = nlohmann::json::parse(RecommendationJson(r));
  EXPECT_FALSE(j["sufficient_data"].get<bool>());
  EXPECT_EQ(j["diagnostic_batch"]["phases"], 10);
}

TEST(RecommendTest, DiagnosticBatchFromARealStore) {
  auto store = *SqliteStateStore::Open(":memory:");
  std::vector<PhaseSpec> specs;
  for (int run = 0; run < 3; ++run) {
    for (int p = 0; p <= run; ++p) {
      PhaseSpec s;
      s.run_id = "svc" + std::to_string(run) + "-a";
      s.phase_id = "p" + std::to_string(p);
      specs.push_back(s);
    }
  }
  ASSERT_TRUE(store->ImportPhases(specs).ok());
  Recommendation r = *RecommendFromStore(*store, RecommendOptions{});
  EXPECT_FALSE(r.sufficient_data);
  EXPECT_EQ(r.diagnostic_phases, 3);          // only three runs
  EXPECT_EQ(r.diagnostic_runs[0], "svc2-a");  // the largest family first
}

// A history where one deterministic fingerprint covers every run of the
// research-system family, while another family drains fine.
TEST(RecommendTest, FingerprintCoveringARunFamilyIsNamedFirstToFix) {
  RecommendInput in;
  for (int v = 1; v <= 3; ++v)
    in.runs.push_back(RunRow("research-system-v" + std::to_string(v), 8, 2));
  in.runs.push_back(RunRow("build-2024-01-05", 10, 0, 6));
  in.runs.push_back(RunRow("tools-a", 5, 1, 0));
  in.phases = Totals(in.runs);
  int64_t t = 0;
  for (int v = 1; v <= 3; ++v) {
    for (int p = 0; p < 2; ++p) {
      in.attempts.push_back(Attempt("research-system-v" + std::to_string(v),
                                    "p" + std::to_string(p), Outcome::kFailed, 90, 0, t += 100,
                                    "w1", 1, kCiImportError));
    }
  }
  for (int p = 0; p < 6; ++p) {
    in.attempts.push_back(Attempt("build-2024-01-05", "b" + std::to_string(p), Outcome::kSucceeded,
                                  200 + 10 * p, 50, t += 100));
  }
  in.attempts.push_back(Attempt("tools-a", "t0", Outcome::kFailed, 30, 0, t += 100, "w1", 1,
                                "AssertionError: expected 3 got 4"));
  Recommendation r = Recommend(in, RecommendOptions{});
  ASSERT_TRUE(r.sufficient_data);
  ASSERT_FALSE(r.fix_first.empty());
  const FixFirstItem& first = r.fix_first[0];
  EXPECT_EQ(first.family, "research-system");
  EXPECT_EQ(first.phases_failed, 6);
  EXPECT_EQ(first.runs_failed, 3);
  EXPECT_EQ(first.family_runs, 3);
  EXPECT_EQ(first.pending_phases_at_risk, 24);
  EXPECT_DOUBLE_EQ(first.minutes_at_risk, 24 * 1.5);  // 24 pending x 90 s
  EXPECT_THAT(first.justification, StartsWith("fix research-system first"));
  EXPECT_EQ(r.fix_first.size(), 1u);  // the assertion failure hit one phase only
  // The family is skipped in the command line, the productive one prioritised.
  EXPECT_THAT(r.drain_command, HasSubstr("--skip-run-prefix research-system-"));
  ASSERT_FALSE(r.families.empty());
  EXPECT_EQ(r.families[0].family, "build");
  EXPECT_EQ(r.families[0].action, "prioritise");
  const std::string text = RecommendationText(r);
  EXPECT_LT(text.find("fix first"), text.find("fix research-system first"));
}

// A deterministic failure in every phase of `failing` runs (2 phases each,
// 8 pending), six successes with telemetry in `working`: enough evidence.
RecommendInput FailingAndWorkingRuns(const std::vector<std::string>& failing,
                                     const std::string& working) {
  RecommendInput in;
  for (const std::string& run : failing) in.runs.push_back(RunRow(run, 8, 2));
  in.runs.push_back(RunRow(working, 10, 0, 6));
  in.phases = Totals(in.runs);
  int64_t t = 0;
  for (const std::string& run : failing) {
    for (int p = 0; p < 2; ++p) {
      in.attempts.push_back(Attempt(run, "p" + std::to_string(p), Outcome::kFailed, 90, 0, t += 100,
                                    "w1", 1, kCiImportError));
    }
  }
  for (int p = 0; p < 6; ++p) {
    in.attempts.push_back(
        Attempt(working, "b" + std::to_string(p), Outcome::kSucceeded, 200, 50, t += 100));
  }
  return in;
}

// Issue #13: recommend grouped runs by the default rule only, so with a
// drain's --family-pattern its family advice named other families than the
// scheduler and the report.
TEST(RecommendTest, FamilyAdviceFollowsTheFamilyPattern) {
  const RecommendInput in = FailingAndWorkingRuns({"svc-east-v1", "svc-west-v2"}, "web-1");
  const Recommendation by_default = Recommend(in, RecommendOptions{});
  ASSERT_FALSE(by_default.fix_first.empty());
  EXPECT_EQ(by_default.fix_first[0].families, (std::vector<std::string>{"svc-east", "svc-west"}));

  RecommendOptions o;
  o.family_rule = RunFamilyRule::Compile("([a-z]+)-.*").value();
  const Recommendation r = Recommend(in, o);
  ASSERT_TRUE(r.sufficient_data);
  ASSERT_FALSE(r.fix_first.empty());
  EXPECT_EQ(r.fix_first[0].family, "svc");
  EXPECT_EQ(r.fix_first[0].families, (std::vector<std::string>{"svc"}));
  EXPECT_EQ(r.fix_first[0].family_runs, 2);
  EXPECT_EQ(r.fix_first[0].pending_phases_at_risk, 16);
  std::vector<std::string> families;
  for (const FamilyAdvice& f : r.families) families.push_back(f.family + ":" + f.action);
  EXPECT_EQ(families, (std::vector<std::string>{"web:prioritise", "svc:skip"}));
  // The drain it proposes groups runs the same way.
  EXPECT_THAT(r.drain_command, HasSubstr("--family-pattern '([a-z]+)-.*'"));
  EXPECT_THAT(r.drain_command, HasSubstr("--skip-run-prefix svc-"));
  EXPECT_THAT(by_default.drain_command, Not(HasSubstr("--family-pattern")));
}

// A pattern whose group is not the start of the run id: the skip prefix is
// what the family's runs share, and none is proposed when they share nothing.
TEST(RecommendTest, SkipPrefixOfAFamilyThatDoesNotStartItsRunIdsIsTheirSharedPrefix) {
  RecommendOptions o;
  o.family_rule = RunFamilyRule::Compile("[a-z]+-([a-z]+)-v[0-9]+").value();
  Recommendation r = Recommend(FailingAndWorkingRuns({"eu-api-v1", "eu-api-v2"}, "eu-web-v1"), o);
  ASSERT_FALSE(r.families.empty());
  EXPECT_EQ(r.families.back().family, "api");
  EXPECT_EQ(r.families.back().skip_prefix, "eu-api-v");
  EXPECT_THAT(r.drain_command, HasSubstr("--skip-run-prefix eu-api-v"));

  r = Recommend(FailingAndWorkingRuns({"eu-api-v1", "us-api-v2"}, "eu-web-v1"), o);
  ASSERT_FALSE(r.families.empty());
  EXPECT_EQ(r.families.back().family, "api");
  EXPECT_EQ(r.families.back().action, "skip");
  EXPECT_EQ(r.families.back().skip_prefix, "");
  EXPECT_THAT(r.drain_command, Not(HasSubstr("--skip-run-prefix")));
}

// Enough successes: the timeout follows their duration distribution.
TEST(RecommendTest, TimeoutFollowsTheSuccessfulDurationDistribution) {
  RecommendInput in;
  in.runs.push_back(RunRow("app-v1", 40, 0, 20));
  in.phases = Totals(in.runs);
  // Durations 100, 110, ..., 290 s: nearest-rank p95 (19th of 20) = 280 s.
  for (int i = 0; i < 20; ++i) {
    in.attempts.push_back(Attempt("app-v1", "p" + std::to_string(i), Outcome::kSucceeded,
                                  100 + 10 * i, 12, 1000 * i));
  }
  Recommendation r = Recommend(in, RecommendOptions{});
  ASSERT_TRUE(r.sufficient_data);
  // 280 s x 1.5 = 420 s, already a whole minute.
  EXPECT_EQ(Setting(r, "--phase-timeout-seconds").value, "420");
  EXPECT_THAT(Setting(r, "--phase-timeout-seconds").justification, HasSubstr("p95"));
  EXPECT_THAT(Setting(r, "--phase-timeout-seconds").justification, HasSubstr("280s"));

  // Slower phases move it: every duration doubled gives p95 560 s -> 840 s.
  for (AttemptRecord& a : in.attempts) a.duration_ms *= 2;
  r = Recommend(in, RecommendOptions{});
  EXPECT_EQ(Setting(r, "--phase-timeout-seconds").value, "840");
  // And a different margin is honoured and rounded up to a minute: 560 x 1.2 = 672 -> 720.
  RecommendOptions o;
  o.timeout_margin = 1.2;
  EXPECT_EQ(Setting(Recommend(in, o), "--phase-timeout-seconds").value, "720");
}

TEST(RecommendTest, RetriesOnlyClassesWhereARetryEverSucceeded) {
  RecommendInput in;
  in.runs.push_back(RunRow("svc-v1", 10, 1, 5));
  in.phases = Totals(in.runs);
  // p0 timed out once, then succeeded; p1 failed twice with exit 1.
  in.attempts = {
      Attempt("svc-v1", "p0", Outcome::kTimedOut, 900, 0, 900, "w1", 1, "timed out"),
      Attempt("svc-v1", "p0", Outcome::kSucceeded, 100, 5, 1000, "w1", 2),
      Attempt("svc-v1", "p1", Outcome::kFailed, 50, 0, 1050, "w1", 1, "boom"),
      Attempt("svc-v1", "p1", Outcome::kFailed, 50, 0, 1100, "w1", 2, "boom"),
  };
  for (int i = 2; i < 6; ++i) {
    in.attempts.push_back(
        Attempt("svc-v1", "p" + std::to_string(i), Outcome::kSucceeded, 120, 5, 1200 + i));
  }
  Recommendation r = Recommend(in, RecommendOptions{});
  ASSERT_TRUE(r.sufficient_data);
  ASSERT_EQ(r.retry_classes.size(), 1u);
  EXPECT_THAT(r.retry_classes[0], StartsWith("timed_out|"));
  EXPECT_EQ(Setting(r, "--max-attempts-per-phase").value, "2");
  EXPECT_EQ(Setting(r, "--max-timeouts-per-run").value, "3");  // a timeout has recovered
  EXPECT_THAT(r.drain_command, HasSubstr("--retry-on '^timed_out"));
  EXPECT_THAT(r.drain_command, Not(HasSubstr("--retry-on '^failed")));
}

TEST(RecommendTest, SessionCapAndBatchScaleWithWorkers) {
  RecommendInput in;
  in.runs.push_back(RunRow("app", 600, 0, 10));
  in.phases = Totals(in.runs);
  for (int i = 0; i < 10; ++i) {
    in.attempts.push_back(Attempt("app", "p" + std::to_string(i), Outcome::kSucceeded, 120, 3, i));
  }
  RecommendOptions o;
  o.workers = 4;
  o.target_phases = 100;
  Recommendation r = Recommend(in, o);
  // 2 min per phase: 30 per slot-hour, 120 for 4 slots; the target caps it at 100.
  EXPECT_EQ(Setting(r, "--batch-size").value, "100");
  // 100 x 2 min / 4 slots x 1.2 = 60 min.
  EXPECT_EQ(Setting(r, "--max-total-minutes").value, "60");
  o.workers = 1;
  r = Recommend(in, o);
  EXPECT_EQ(Setting(r, "--batch-size").value, "30");
  EXPECT_THAT(Setting(r, "--max-total-minutes").justification, HasSubstr("all 100 target"));
  EXPECT_THAT(r.drain_command, HasSubstr("--workers 1 --slots 1"));
}

}  // namespace
}  // namespace sluice

namespace sluice {
namespace {

TEST(RecommendTest, TelemetryLossIsReportedBeforeTheSettings) {
  RecommendInput in;
  in.runs.push_back(RunRow("app", 50, 0, 6));
  in.phases = Totals(in.runs);
  for (int i = 0; i < 6; ++i) {
    in.attempts.push_back(Attempt("app", "p" + std::to_string(i), Outcome::kSucceeded, 60, 0, i));
  }
  Recommendation r = Recommend(in, RecommendOptions{});
  ASSERT_EQ(r.telemetry_warnings.size(), 1u);
  const std::string text = RecommendationText(r);
  EXPECT_LT(text.find("WARNING: telemetry looks lost"), text.find("settings:"));
  auto j = nlohmann::json::parse(RecommendationJson(r));
  EXPECT_EQ(j["telemetry_warnings"][0]["kind"], "zero_event_phases");
}

}  // namespace
}  // namespace sluice
