#include "coordinator/insight/recommend_evidence.h"

#include <algorithm>
#include <set>
#include <tuple>

#include "common/run_family.h"
#include "coordinator/policy/outcome_evidence.h"

namespace sluice::recommend {
namespace {

AttemptEvidence GatherAttempts(const std::vector<AttemptRecord>& attempts) {
  AttemptEvidence e;
  for (const AttemptRecord& a : attempts) {
    e.longest_ms = std::max(e.longest_ms, a.duration_ms);
    if (!SpendsAnAttempt(a.outcome)) continue;
    e.finished.push_back(&a);
    e.finished_ms += a.duration_ms;
    e.events += a.telemetry_events;
    e.unknown_telemetry_ms += UnknownTelemetryMs(a);
    if (a.outcome == Outcome::kSucceeded) e.success_ms.push_back(a.duration_ms);
    e.phases[PhaseKey{a.run_id, a.phase_id}].attempts.push_back(&a);
  }
  for (auto& [key, h] : e.phases) {
    std::stable_sort(
        h.attempts.begin(), h.attempts.end(), [](const AttemptRecord* x, const AttemptRecord* y) {
          return std::tie(x->attempt, x->ended_at_ms) < std::tie(y->attempt, y->ended_at_ms);
        });
  }
  e.n_finished = static_cast<int64_t>(e.finished.size());
  e.n_success = static_cast<int64_t>(e.success_ms.size());
  e.success = ComputeDurationStats(e.success_ms);
  e.mean_attempt_ms = e.n_finished == 0
                          ? 0.0
                          : static_cast<double>(e.finished_ms) / static_cast<double>(e.n_finished);
  e.attempts_per_phase =
      e.phases.empty() ? 1.0
                       : static_cast<double>(e.n_finished) / static_cast<double>(e.phases.size());
  return e;
}

BacklogEvidence GatherBacklog(const std::vector<RunStats>& runs,
                              const std::vector<const AttemptRecord*>& finished,
                              const RunFamilyRule& family_rule) {
  BacklogEvidence e;
  // Families whose name does not start their run ids (possible only with a
  // --family-pattern whose group is not a prefix): their skip prefix is the
  // prefix all their runs share instead.
  std::set<std::string> shared_prefix;
  for (const RunStats& s : runs) {
    ++e.runs;
    if (s.pending > 0) ++e.runs_with_pending;
    const std::string family = family_rule.Family(s.run_id);
    FamilyTotals& f = e.families[family];
    const bool first = f.runs++ == 0;
    f.pending += s.pending;
    if (first && s.run_id.starts_with(family)) {
      f.skip_prefix =
          s.run_id.size() > family.size() ? s.run_id.substr(0, family.size() + 1) : s.run_id;
    } else if (first) {
      shared_prefix.insert(family);
      f.skip_prefix = s.run_id;
    } else if (shared_prefix.contains(family)) {
      const auto [cut, unused] = std::mismatch(f.skip_prefix.begin(), f.skip_prefix.end(),
                                               s.run_id.begin(), s.run_id.end());
      f.skip_prefix.erase(cut, f.skip_prefix.end());
    }
  }
  for (const AttemptRecord* a : finished) {
    FamilyTotals& f = e.families[family_rule.Family(a->run_id)];
    ++f.attempts;
    if (a->outcome == Outcome::kSucceeded) ++f.succeeded;
    f.events += a->telemetry_events;
    f.run_ms += a->duration_ms;
    f.unknown_telemetry_ms += UnknownTelemetryMs(*a);
  }
  return e;
}

// Which failures has a retry of the same phase ever recovered from?
RetryEvidence GatherRetries(const std::map<PhaseKey, PhaseHistory>& phases) {
  RetryEvidence e;
  for (const auto& [key, h] : phases) {
    int64_t failures = 0;
    bool succeeded = false;
    for (size_t i = 0; i < h.attempts.size(); ++i) {
      const AttemptRecord& a = *h.attempts[i];
      if (a.outcome == Outcome::kTimedOut) {
        ++e.timeouts;
        ++e.timeouts_by_run[a.run_id];
      }
      if (a.outcome == Outcome::kSucceeded) {
        succeeded = true;
        if (failures > 0) {
          e.max_failures_before_success = std::max(e.max_failures_before_success, failures);
          for (size_t k = 0; k < i; ++k) {
            e.recovered_fingerprints.insert(h.attempts[k]->fingerprint);
            if (h.attempts[k]->outcome == Outcome::kTimedOut) e.timeout_recovered = true;
          }
        }
        break;
      }
      ++failures;
      if (i > 0) e.wasted_retry_ms += a.duration_ms;
    }
    if (h.attempts.size() > 1) {
      ++e.retried_phases;
      if (!succeeded) ++e.retried_without_success;
    }
  }
  return e;
}

std::map<std::string, FingerprintTotals> GatherFailures(
    const std::vector<const AttemptRecord*>& finished, const RunFamilyRule& family_rule) {
  std::map<std::string, FingerprintTotals> fps;
  for (const AttemptRecord* a : finished) {
    if (a->outcome == Outcome::kSucceeded) continue;
    FingerprintTotals& f = fps[a->fingerprint];
    if (f.phases.insert(PhaseKey{a->run_id, a->phase_id}).second) {
      ++f.family_phases[family_rule.Family(a->run_id)];
    }
    f.runs.insert(a->run_id);
    ++f.attempts;
    f.run_ms += a->duration_ms;
    if (f.example.empty()) f.example = a->error_text;
    f.end_and_ms.emplace_back(a->ended_at_ms, a->duration_ms);
  }
  return fps;
}

}  // namespace

double Minutes(int64_t ms) { return static_cast<double>(ms) / kMinuteMs; }

Evidence GatherEvidence(const RecommendInput& input, const RunFamilyRule& family_rule) {
  Evidence e;
  e.attempts = GatherAttempts(input.attempts);
  e.backlog = GatherBacklog(input.runs, e.attempts.finished, family_rule);
  e.retries = GatherRetries(e.attempts.phases);
  e.failures = GatherFailures(e.attempts.finished, family_rule);
  return e;
}

}  // namespace sluice::recommend
