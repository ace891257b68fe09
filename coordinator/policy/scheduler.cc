#include "coordinator/policy/scheduler.h"

#include <algorithm>
#include <tuple>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/fingerprint.h"

namespace sluice {
namespace {

// What a group of runs (one run, a family, all runs) has shown so far.
struct Record {
  double attempts = 0;
  double successes = 0;
  double events = 0;
  double minutes = 0;
  // Minutes whose telemetry is known: yield divides by these, so an attempt
  // whose probe failed (unknown, reported as 0 events) drags nothing to 0.
  double telemetry_minutes = 0;
  int64_t deterministic_failures = 0;
  std::string failure_fingerprint;  // of the run with most deterministic failures
  int64_t fingerprint_failures = 0;

  void Add(const RunStats& run, const RunPolicyState* policy) {
    attempts += static_cast<double>(run.attempts);
    successes += static_cast<double>(run.successes);
    events += static_cast<double>(run.telemetry_events);
    minutes += static_cast<double>(run.run_ms) / 60'000.0;
    telemetry_minutes += static_cast<double>(run.run_ms - run.unknown_telemetry_ms) / 60'000.0;
    if (policy == nullptr) return;
    deterministic_failures += policy->deterministic_failures;
    if (policy->deterministic_failures > fingerprint_failures) {
      fingerprint_failures = policy->deterministic_failures;
      failure_fingerprint = policy->failure_fingerprint;
    }
  }
};

const RunPolicyState* Find(const std::map<std::string, RunPolicyState>& policy,
                           const std::string& run_id) {
  auto it = policy.find(run_id);
  return it == policy.end() ? nullptr : &it->second;
}

// The policy state of each of `runs` (nullptr: none), aligned with `runs`.
// Every store lists runs sorted by id, and the policy map is sorted too, so
// one walk of both matches them: a whole ranking at 10,000 runs otherwise
// searched the map three times per run.
struct PolicyOfRuns {
  std::vector<const RunPolicyState*> of;
  bool runs_sorted = false;  // by run id
};

PolicyOfRuns AlignPolicy(const std::vector<RunStats>& runs,
                         const std::map<std::string, RunPolicyState>& policy) {
  PolicyOfRuns out;
  out.of.assign(runs.size(), nullptr);
  out.runs_sorted =
      std::is_sorted(runs.begin(), runs.end(),
                     [](const RunStats& a, const RunStats& b) { return a.run_id < b.run_id; });
  if (!out.runs_sorted) {
    for (size_t i = 0; i < runs.size(); ++i) out.of[i] = Find(policy, runs[i].run_id);
    return out;
  }
  auto it = policy.begin();
  for (size_t i = 0; i < runs.size() && it != policy.end(); ++i) {
    while (it != policy.end() && it->first < runs[i].run_id) ++it;
    if (it != policy.end() && it->first == runs[i].run_id) out.of[i] = &it->second;
  }
  return out;
}

std::string FingerprintNote(const std::string& fingerprint) {
  if (fingerprint.empty()) return "";
  return absl::StrCat(" (fingerprint ", FingerprintId(fingerprint), ")");
}

}  // namespace

double AgingFactor(const SchedulerOptions& options, int64_t waited_ms) {
  if (options.aging_minutes <= 0 || waited_ms <= 0) return 1.0;
  return 1.0 + static_cast<double>(waited_ms) / 60'000.0 / options.aging_minutes;
}

bool Scheduler::RunAllowed(const SessionSettings& settings, const std::string& run_id) {
  if (!settings.run_ids.empty() && std::find(settings.run_ids.begin(), settings.run_ids.end(),
                                             run_id) == settings.run_ids.end()) {
    return false;
  }
  for (const std::string& prefix : settings.skip_run_prefixes) {
    if (run_id.starts_with(prefix)) return false;
  }
  return true;
}

RunRanking Scheduler::Estimate(const RunStats& run) const { return EstimateAll({run}).front(); }

std::vector<RunRanking> Scheduler::EstimateAll(const std::vector<RunStats>& runs) const {
  return EstimateWithPolicy(runs, {});
}

namespace {

std::vector<RunRanking> EstimateAligned(const SchedulerOptions& o,
                                        const std::vector<RunStats>& runs,
                                        const std::vector<const RunPolicyState*>& policy_of) {
  std::vector<std::string> families;
  families.reserve(runs.size());
  Record global;
  std::unordered_map<std::string, Record> by_family;
  for (size_t i = 0; i < runs.size(); ++i) {
    const RunStats& run = runs[i];
    families.push_back(o.family_rule.Family(run.run_id));
    global.Add(run, policy_of[i]);
    by_family[families.back()].Add(run, policy_of[i]);
  }
  // Level 1: the global estimate, from every run plus the fixed prior.
  const double w0 = o.prior_weight;
  const double p_global =
      (global.successes + w0 * o.prior_success_probability) / (global.attempts + w0);
  const double prior_minutes = w0 * o.prior_minutes_per_attempt;
  const double y_global =
      (global.events + w0 * o.prior_success_probability * o.prior_events_per_success) /
      (global.telemetry_minutes + prior_minutes);
  // Pseudo-attempts become pseudo-minutes at the backlog's minutes per attempt.
  const double minutes_per_attempt = (global.minutes + prior_minutes) / (global.attempts + w0);

  std::vector<RunRanking> out;
  out.reserve(runs.size());
  for (size_t i = 0; i < runs.size(); ++i) {
    const RunStats& run = runs[i];
    const RunPolicyState* p = policy_of[i];
    Record own;
    own.Add(run, p);
    // Level 2: the run's siblings (its family without itself).
    const Record& fam = by_family[families[i]];
    Record sib;
    sib.attempts = fam.attempts - own.attempts;
    sib.successes = fam.successes - own.successes;
    sib.events = fam.events - own.events;
    sib.minutes = fam.minutes - own.minutes;
    sib.telemetry_minutes = fam.telemetry_minutes - own.telemetry_minutes;
    sib.deterministic_failures = fam.deterministic_failures - own.deterministic_failures;
    const double wf = o.family_weight;
    const double p_family = (sib.successes + wf * p_global) / (sib.attempts + wf);
    const double y_family = (sib.events + wf * minutes_per_attempt * y_global) /
                            (sib.telemetry_minutes + wf * minutes_per_attempt);
    // All minutes, not just those with known telemetry: a worker spends them.
    const double m_family = (sib.minutes + wf * minutes_per_attempt) / (sib.attempts + wf);
    // Level 3: the run itself.
    const double wr = o.run_weight;
    RunRanking r;
    r.run_id = run.run_id;
    r.family = families[i];
    r.explored = run.attempts > 0 || run.leased > 0;
    r.success_probability = (own.successes + wr * p_family) / (own.attempts + wr);
    r.expected_yield = (own.events + wr * minutes_per_attempt * y_family) /
                       (own.telemetry_minutes + wr * minutes_per_attempt);
    r.expected_minutes = (own.minutes + wr * m_family) / (own.attempts + wr);
    if (p != nullptr && p->retry_tier) r.expected_yield *= p->retry_tier_factor;
    if (run.successes == 0) {
      if (own.deterministic_failures > 0) {
        r.deferred = {SkipReason::kDeferredOwnFailures,
                      absl::StrCat(own.deterministic_failures, " time(s), none succeeded",
                                   FingerprintNote(p->failure_fingerprint))};
      } else if (sib.deterministic_failures > 0 && sib.successes == 0) {
        r.deferred = {
            SkipReason::kDeferredFamilyFailures,
            absl::StrCat("'", families[i], "' failed deterministically ",
                         sib.deterministic_failures, " time(s) in its other runs, none succeeded",
                         FingerprintNote(fam.failure_fingerprint))};
      }
    }
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace

std::vector<RunRanking> Scheduler::EstimateWithPolicy(
    const std::vector<RunStats>& runs, const std::map<std::string, RunPolicyState>& policy) const {
  return EstimateAligned(options_, runs, AlignPolicy(runs, policy).of);
}

std::vector<RunRanking> Scheduler::Rank(const std::vector<RunStats>& runs,
                                        const SessionSettings& settings,
                                        const std::map<std::string, RunPolicyState>& policy,
                                        int64_t now_ms) const {
  std::vector<RunRanking> out;
  for (RunDecision& d : Decide(runs, settings, policy, now_ms)) {
    if (d.excluded.empty()) out.push_back(std::move(d.ranking));
  }
  return out;
}

std::vector<RunDecision> Scheduler::Decide(const std::vector<RunStats>& runs,
                                           const SessionSettings& settings,
                                           const std::map<std::string, RunPolicyState>& policy,
                                           int64_t now_ms) const {
  struct Candidate {
    RunDecision decision;
    const RunStats* stats;
    double score;
  };
  // Estimates use every run's record, finished runs included: a family's
  // evidence does not vanish when its runs run out of pending phases.
  const PolicyOfRuns aligned = AlignPolicy(runs, policy);
  std::vector<RunRanking> estimates = EstimateAligned(options_, runs, aligned.of);
  std::vector<Candidate> eligible;
  std::vector<RunDecision> excluded;
  eligible.reserve(runs.size());
  for (size_t i = 0; i < runs.size(); ++i) {
    const RunStats& run = runs[i];
    if (run.pending <= 0) continue;
    RunDecision d{std::move(estimates[i]), "", run.pending, {}};
    const RunPolicyState* p = aligned.of[i];
    if (!RunAllowed(settings, run.run_id)) {
      d.excluded = {
          settings.run_ids.empty() ? SkipReason::kSkippedByPrefix : SkipReason::kNotSelected, ""};
    } else if (p != nullptr && !p->blocked_by_fingerprint.empty()) {
      d.excluded = {SkipReason::kFingerprintRepeats,
                    absl::StrCat(FingerprintId(p->blocked_by_fingerprint), " (",
                                 p->blocked_by_fingerprint.substr(0, 120), ")")};
    } else if (settings.max_timeouts_per_run > 0 && run.timeouts >= settings.max_timeouts_per_run) {
      // A deprioritisation with a cap: at the limit the run is deferred; only
      // a run with nothing to show (no success, no telemetry) is excluded,
      // and only at twice the limit. A run that mixes hangs with productive
      // phases keeps its productive ones (issue #13).
      const bool productive = run.successes > 0 || run.telemetry_events > 0;
      if (!productive && run.timeouts >= 2 * int64_t{settings.max_timeouts_per_run}) {
        d.excluded = {SkipReason::kTimeoutsPerRun, absl::StrCat(run.timeouts, " timeouts")};
      } else if (d.ranking.deferred.empty()) {
        d.ranking.deferred = {SkipReason::kDeferredTimeouts,
                              absl::StrCat(run.timeouts, " timeouts, ", run.successes,
                                           " successes, ", run.telemetry_events, " events")};
      }
    } else if (p != nullptr && p->backoff_until_ms > now_ms) {
      d.excluded = {SkipReason::kBackingOff,
                    absl::StrCat((p->backoff_until_ms - now_ms + 999) / 1000, " s")};
    }
    if ((d.excluded.empty() || d.excluded.code == SkipReason::kBackingOff) &&
        settings.min_expected_yield > 0 && d.ranking.expected_yield < settings.min_expected_yield) {
      // The stop rule: not worth a worker's minutes at the session's bar
      // (aging never lifts a run over it; new evidence from its family can).
      d.excluded = {SkipReason::kBelowMinExpectedYield,
                    absl::StrFormat("expected %.3f < %g events/min", d.ranking.expected_yield,
                                    settings.min_expected_yield)};
    }
    d.excluded_reason = d.excluded.Text();
    if (d.excluded.empty()) {
      const int64_t waited_ms =
          p != nullptr && p->waiting_since_ms > 0 ? now_ms - p->waiting_since_ms : 0;
      if (!d.ranking.deferred.empty() && options_.max_deferral_minutes > 0 &&
          static_cast<double>(waited_ms) >= options_.max_deferral_minutes * 60'000.0) {
        d.ranking.deferred = {};  // aged in: no starvation
      }
      const double score = d.ranking.expected_yield * AgingFactor(options_, waited_ms) /
                           (1.0 + static_cast<double>(run.leased));
      eligible.push_back({std::move(d), &run, score});
    } else {
      excluded.push_back(std::move(d));
    }
  }
  // Sorted by pointer: a Candidate is large, and a whole ranking sorts
  // 10,000 of them at a million phases.
  std::vector<Candidate*> order;
  order.reserve(eligible.size());
  for (Candidate& c : eligible) order.push_back(&c);
  const bool by_position = aligned.runs_sorted;
  std::sort(order.begin(), order.end(), [by_position](const Candidate* a, const Candidate* b) {
    const RunRanking& ra = a->decision.ranking;
    const RunRanking& rb = b->decision.ranking;
    // Higher priority, not deferred, unexplored, higher score, fewer in
    // flight, run id (runs sorted by id: their position says it without a
    // string comparison).
    const auto ka = std::make_tuple(-a->stats->best_pending_priority, !ra.deferred.empty(),
                                    ra.explored, -a->score, a->stats->leased);
    const auto kb = std::make_tuple(-b->stats->best_pending_priority, !rb.deferred.empty(),
                                    rb.explored, -b->score, b->stats->leased);
    if (ka != kb) return ka < kb;
    return by_position ? a->stats < b->stats : ra.run_id < rb.run_id;
  });
  std::vector<RunDecision> out;
  out.reserve(eligible.size() + excluded.size());
  for (Candidate* c : order) out.push_back(std::move(c->decision));
  for (RunDecision& d : excluded) out.push_back(std::move(d));
  return out;
}

}  // namespace sluice
