// The evidence `sluice recommend` rests on, gathered in one pass over its
// input: finished attempts and their durations, each phase's attempt
// history, retries that recovered, timeouts, failure fingerprints, and the
// backlog's run families. recommend.cc turns it into settings; this header is
// internal to it.
//
// Pure; the pointers in an Evidence point into the RecommendInput it was
// gathered from, which must outlive it.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/model.h"
#include "coordinator/insight/recommend.h"
#include "coordinator/insight/session_report.h"

namespace sluice::recommend {

inline constexpr int64_t kMinuteMs = 60'000;

double Minutes(int64_t ms);

struct PhaseHistory {
  std::vector<const AttemptRecord*> attempts;  // own outcomes, by attempt number
};

struct FamilyTotals {
  int64_t runs = 0;     // runs of the family in the backlog
  int64_t pending = 0;  // their pending phases
  int64_t attempts = 0;
  int64_t succeeded = 0;
  int64_t events = 0;
  int64_t run_ms = 0;
  int64_t unknown_telemetry_ms = 0;  // part of run_ms with unknown telemetry: not in yield
  // For --skip-run-prefix: the family's first run id, cut after the family;
  // when the family does not start its run ids (a --family-pattern), the
  // prefix its runs share, "" if none.
  std::string skip_prefix;
};

// One failure fingerprint (successes are not counted).
struct FingerprintTotals {
  std::set<PhaseKey> phases;
  std::set<std::string> runs;
  std::map<std::string, int64_t> family_phases;  // phases it hit per run family
  int64_t attempts = 0;
  int64_t run_ms = 0;
  std::string example;                                  // the first attempt's error text
  std::vector<std::pair<int64_t, int64_t>> end_and_ms;  // (ended_at_ms, duration_ms) per attempt
};

struct AttemptEvidence {
  std::vector<const AttemptRecord*> finished;  // own outcomes, in input order
  std::vector<int64_t> success_ms;             // durations of the successes
  int64_t finished_ms = 0;
  int64_t longest_ms = 0;  // of every attempt, lost and cancelled ones included
  int64_t events = 0;
  int64_t unknown_telemetry_ms = 0;  // part of finished_ms with unknown telemetry: not in yield
  std::map<PhaseKey, PhaseHistory> phases;
  int64_t n_finished = 0;
  int64_t n_success = 0;
  DurationStats success;
  double mean_attempt_ms = 0;
  double attempts_per_phase = 1.0;
};

struct BacklogEvidence {
  int64_t runs = 0;
  int64_t runs_with_pending = 0;
  // Every family of the backlog's runs and of the finished attempts.
  std::map<std::string, FamilyTotals> families;
};

// What retries of the same phase showed.
struct RetryEvidence {
  // Fingerprints after which a retry of the same phase succeeded.
  std::set<std::string> recovered_fingerprints;
  int64_t max_failures_before_success = 0;
  int64_t retried_phases = 0;
  int64_t retried_without_success = 0;
  int64_t wasted_retry_ms = 0;  // failed attempts after a phase's first
  int64_t timeouts = 0;
  bool timeout_recovered = false;  // a phase succeeded after timing out
  std::map<std::string, int64_t> timeouts_by_run;
};

struct Evidence {
  AttemptEvidence attempts;
  BacklogEvidence backlog;
  RetryEvidence retries;
  std::map<std::string, FingerprintTotals> failures;  // by fingerprint
};

// Families by `family_rule` (RecommendOptions::family_rule).
Evidence GatherEvidence(const RecommendInput& input, const RunFamilyRule& family_rule);

}  // namespace sluice::recommend
