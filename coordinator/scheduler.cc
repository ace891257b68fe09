#include "coordinator/scheduler.h"

#include <algorithm>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "common/fingerprint.h"

namespace sluice {

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

RunRanking Scheduler::Estimate(const RunStats& run) const {
  const double w = options_.prior_weight;
  const auto attempts = static_cast<double>(run.attempts);
  const auto successes = static_cast<double>(run.successes);
  const auto events = static_cast<double>(run.telemetry_events);
  const double minutes = static_cast<double>(run.run_ms) / 60'000.0;
  RunRanking r;
  r.run_id = run.run_id;
  r.explored = run.attempts > 0 || run.leased > 0;
  r.success_probability = (successes + w * options_.prior_success_probability) / (attempts + w);
  const double prior_events =
      w * options_.prior_success_probability * options_.prior_events_per_success;
  const double prior_minutes = w * options_.prior_minutes_per_attempt;
  r.expected_yield = (events + prior_events) / (minutes + prior_minutes);
  return r;
}

std::vector<RunRanking> Scheduler::Rank(const std::vector<RunStats>& runs,
                                        const SessionSettings& settings,
                                        const std::map<std::string, RunPolicyState>& policy,
                                        int64_t now_ms) const {
  std::vector<RunRanking> out;
  for (RunDecision& d : Decide(runs, settings, policy, now_ms)) {
    if (d.excluded_reason.empty()) out.push_back(std::move(d.ranking));
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
  };
  std::vector<Candidate> eligible;
  std::vector<RunDecision> excluded;
  for (const RunStats& run : runs) {
    if (run.pending <= 0) continue;
    RunDecision d{Estimate(run), "", run.pending};
    auto p = policy.find(run.run_id);
    if (!RunAllowed(settings, run.run_id)) {
      d.excluded_reason =
          settings.run_ids.empty() ? "skipped by --skip-run-prefix" : "not selected by --run-id";
    } else if (p != policy.end() && !p->second.blocked_by_fingerprint.empty()) {
      d.excluded_reason =
          absl::StrCat("blocked by fingerprint ", FingerprintId(p->second.blocked_by_fingerprint),
                       " (", p->second.blocked_by_fingerprint.substr(0, 120), ")");
    } else if (settings.max_timeouts_per_run > 0 && run.timeouts >= settings.max_timeouts_per_run) {
      d.excluded_reason =
          absl::StrCat("max_timeouts_per_run reached (", run.timeouts, " timeouts)");
    } else if (p != policy.end() && p->second.backoff_until_ms > now_ms) {
      d.excluded_reason = absl::StrCat("backing off after a transient failure for ",
                                       (p->second.backoff_until_ms - now_ms + 999) / 1000, " s");
    }
    if (d.excluded_reason.empty()) {
      eligible.push_back({std::move(d), &run});
    } else {
      excluded.push_back(std::move(d));
    }
  }
  std::sort(eligible.begin(), eligible.end(), [](const Candidate& a, const Candidate& b) {
    const RunRanking& ra = a.decision.ranking;
    const RunRanking& rb = b.decision.ranking;
    // Higher priority, unexplored first, higher yield, fewer in flight, run id.
    return std::make_tuple(-a.stats->best_pending_priority, ra.explored, -ra.expected_yield,
                           a.stats->leased, ra.run_id) <
           std::make_tuple(-b.stats->best_pending_priority, rb.explored, -rb.expected_yield,
                           b.stats->leased, rb.run_id);
  });
  std::vector<RunDecision> out;
  out.reserve(eligible.size() + excluded.size());
  for (Candidate& c : eligible) out.push_back(std::move(c.decision));
  for (RunDecision& d : excluded) out.push_back(std::move(d));
  return out;
}

}  // namespace sluice
