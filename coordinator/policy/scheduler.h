// Ranks runs for leasing. Pure: it sees per-run aggregates (never the
// backlog), so its cost grows with the number of runs, not phases.
//
// Estimates. Each run gets a success probability and an expected yield
// (telemetry events per minute of worker time), shrunk in three levels:
//   global  = all runs' record + a fixed prior worth `prior_weight` attempts
//             (Beta(p0*w, (1-p0)*w) on success, Gamma-style pseudo-counts
//             p0*e0*w events over m0*w minutes on yield);
//   family  = the run's siblings (same family, the run itself excluded) +
//             the global estimate worth `family_weight` pseudo-attempts;
//   run     = the run's own record + the family estimate worth `run_weight`
//             pseudo-attempts.
// A run with little evidence therefore looks like its family, and a family
// with little evidence like the whole backlog.
//
// Order of the eligible runs:
//   1. higher pending priority first;
//   2. runs not deferred before deferred ones. A run is deferred when its own
//      sampled phases failed deterministically and none succeeded, or when it
//      has no success and its family's other runs failed deterministically
//      with no success either, or when it reached --max-timeouts-per-run (the
//      timeout rule excludes a run only at twice the limit, and only when it
//      has nothing to show: no success, no telemetry; so a run that mixes
//      hangs with productive phases is deprioritised, not given up, issue
//      #13). Deferred runs are
//      still leased once nothing else is eligible (the repeat rule then
//      blocks the failing ones for good);
//   Aging (no starvation): a run waiting to be leased for longer than
//      max_deferral_minutes is no longer deferred, and every eligible run's
//      score grows by waited / aging_minutes (doubles after aging_minutes);
//   3. unexplored runs before explored ones: every run is sampled once
//      before any run gets a second look;
//   4. higher score = expected yield x (1 + waited / aging_minutes) /
//      (1 + leases in flight), so several workers spread over the best runs
//      instead of piling onto one, and waiting work ages in; a run whose
//      untried phases are done (RunPolicyState::retry_tier) has its expected
//      yield scaled by what retry-tier attempts yield (retry_tier.h);
//   5. run id.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/model.h"
#include "common/run_family.h"
#include "coordinator/policy/reasons.h"

namespace sluice {

struct RunRanking {
  std::string run_id;
  std::string family;
  double expected_yield = 0;       // telemetry events per worker-minute (posterior mean)
  double success_probability = 0;  // posterior mean
  // Worker-minutes one attempt of the run is expected to take: its own
  // minutes per attempt shrunk toward its family's and the backlog's, with
  // the same weights as the yield, so a run whose attempts hang costs its
  // timeouts. expected_yield x expected_minutes = its events per attempt.
  double expected_minutes = 0;
  bool explored = false;  // sampled: an attempt finished or is in flight
  // kDeferredOwnFailures / kDeferredFamilyFailures, or empty (not deferred).
  PolicyReason deferred;
};

// What the coordinator's policy knows about a run beyond its counts.
struct RunPolicyState {
  std::string blocked_by_fingerprint;  // the repeat rule blocked it ("" = not blocked)
  int64_t backoff_until_ms = 0;        // deferred after a transient failure
  // Deterministic (non-transient kFailed) failures since the last unblock of
  // their fingerprint, and the most frequent of those fingerprints.
  int64_t deterministic_failures = 0;
  std::string failure_fingerprint;
  // Since when the run has waited for a lease (its last lease, or when the
  // policy first saw it pending); 0 = unknown (no aging).
  int64_t waiting_since_ms = 0;
  // Its last grant came from its retry tier (RetryTier): its expected yield
  // is multiplied by retry_tier_factor (<= 1).
  bool retry_tier = false;
  double retry_tier_factor = 1.0;
};

// One run's fate in a ranking: eligible (`excluded` empty) or why it is
// excluded. An eligible run may still be deferred (ranking.deferred).
struct RunDecision {
  RunRanking ranking;
  // excluded.Text(): what plan shows and the operator API carries (its
  // messages have no code). Code branches on `excluded`, never on this.
  std::string excluded_reason;
  int64_t pending = 0;
  PolicyReason excluded;  // an exclusion (IsExclusion) or empty
};

struct SchedulerOptions {
  // The global prior: an unexplored backlog is assumed to succeed with
  // prior_success_probability and yield prior_events_per_success events per
  // success, over prior_minutes_per_attempt minutes per attempt; worth
  // prior_weight pseudo-attempts.
  double prior_success_probability = 0.5;
  double prior_events_per_success = 1.0;
  double prior_minutes_per_attempt = 1.0;
  double prior_weight = 2.0;
  double family_weight = 2.0;  // pseudo-attempts the family estimate is worth for a run
  double run_weight = 2.0;     // ... and the global estimate for a family
  RunFamilyRule family_rule;   // which runs are siblings
  // Aging: a waiting run's score is multiplied by 1 + waited / aging_minutes
  // (<= 0: off), and a deferred run that waited longer than
  // max_deferral_minutes is ranked as if not deferred (<= 0: never).
  double aging_minutes = 60.0;
  double max_deferral_minutes = 120.0;
};

// The aging factor of a run that waited `waited_ms` (>= 1).
double AgingFactor(const SchedulerOptions& options, int64_t waited_ms);

class Scheduler {
 public:
  explicit Scheduler(SchedulerOptions options = {}) : options_(std::move(options)) {}

  // True when the session's filters allow this run.
  static bool RunAllowed(const SessionSettings& settings, const std::string& run_id);

  // Eligible runs, best first (deferred ones last).
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

  // Estimates for every run in `runs` (family and global levels from all of
  // them), in the same order. No deferral: that needs the policy state.
  std::vector<RunRanking> EstimateAll(const std::vector<RunStats>& runs) const;
  // One run on its own: its record shrunk toward the global prior.
  RunRanking Estimate(const RunStats& run) const;

  const SchedulerOptions& options() const { return options_; }

 private:
  std::vector<RunRanking> EstimateWithPolicy(
      const std::vector<RunStats>& runs, const std::map<std::string, RunPolicyState>& policy) const;

  SchedulerOptions options_;
};

}  // namespace sluice
