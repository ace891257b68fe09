// Ranks runs for leasing. Pure: it sees per-run aggregates (never the
// backlog), so its cost grows with the number of runs, not phases.
//
// Order: eligible runs (pending work, allowed by the session's run filters)
// with the highest pending priority first; among equals, runs never tried
// come first (every run is sampled once before any run gets a second look),
// then by estimated telemetry yield per minute of worker time, with a prior
// so that a few lucky or unlucky attempts do not decide alone; ties break by
// fewest leases in flight, then run id, so no run starves the others.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/model.h"

namespace sluice {

struct RunRanking {
  std::string run_id;
  double expected_yield = 0;       // telemetry events per worker-minute (posterior mean)
  double success_probability = 0;  // posterior mean
  bool explored = false;           // sampled: an attempt finished or is in flight
};

// What the coordinator's policy knows about a run beyond its counts.
struct RunPolicyState {
  std::string blocked_by_fingerprint;  // the repeat rule blocked it ("" = not blocked)
  int64_t backoff_until_ms = 0;        // deferred after a transient failure
};

// One run's fate in a ranking: eligible (reason empty) or why it is excluded.
struct RunDecision {
  RunRanking ranking;
  std::string excluded_reason;
  int64_t pending = 0;
};

struct SchedulerOptions {
  // Beta/Gamma-style priors: an unexplored run is assumed to succeed with
  // prior_success_probability and yield prior_events_per_success events per
  // success, over prior_minutes_per_attempt minutes per attempt.
  double prior_success_probability = 0.5;
  double prior_events_per_success = 1.0;
  double prior_minutes_per_attempt = 1.0;
  double prior_weight = 2.0;  // how many pseudo-attempts the prior is worth
};

class Scheduler {
 public:
  explicit Scheduler(SchedulerOptions options = {}) : options_(options) {}

  // True when the session's filters allow this run.
  static bool RunAllowed(const SessionSettings& settings, const std::string& run_id);

  // Eligible runs, best first.
  std::vector<RunRanking> Rank(const std::vector<RunStats>& runs, const SessionSettings& settings,
                               const std::map<std::string, RunPolicyState>& policy = {},
                               int64_t now_ms = 0) const;

  // Every run with pending phases: the eligible ones first, best first, then
  // the excluded ones with their reason (run filters, blocked fingerprint,
  // timeouts per run, backoff). This is what status and --dry-run show.
  std::vector<RunDecision> Decide(const std::vector<RunStats>& runs,
                                  const SessionSettings& settings,
                                  const std::map<std::string, RunPolicyState>& policy,
                                  int64_t now_ms) const;

  RunRanking Estimate(const RunStats& run) const;

 private:
  SchedulerOptions options_;
};

}  // namespace sluice
