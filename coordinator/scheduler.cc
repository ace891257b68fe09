#include "coordinator/scheduler.h"

#include <algorithm>
#include <tuple>

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
                                        const SessionSettings& settings) const {
  struct Candidate {
    RunRanking ranking;
    const RunStats* stats;
  };
  std::vector<Candidate> candidates;
  candidates.reserve(runs.size());
  for (const RunStats& run : runs) {
    if (run.pending <= 0 || !RunAllowed(settings, run.run_id)) continue;
    candidates.push_back({Estimate(run), &run});
  }
  std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
    // Higher priority, unexplored first, higher yield, fewer in flight, run id.
    return std::make_tuple(-a.stats->best_pending_priority, a.ranking.explored,
                           -a.ranking.expected_yield, a.stats->leased, a.ranking.run_id) <
           std::make_tuple(-b.stats->best_pending_priority, b.ranking.explored,
                           -b.ranking.expected_yield, b.stats->leased, b.ranking.run_id);
  });
  std::vector<RunRanking> out;
  out.reserve(candidates.size());
  for (Candidate& c : candidates) out.push_back(std::move(c.ranking));
  return out;
}

}  // namespace sluice
