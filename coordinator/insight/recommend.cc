#include "coordinator/insight/recommend.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/fingerprint.h"
#include "common/run_family.h"
#include "common/status_macros.h"
#include "coordinator/insight/recommend_evidence.h"
#include "coordinator/insight/session_report.h"
#include "coordinator/insight/telemetry_alarm.h"
#include "nlohmann/json.hpp"
#include "re2/re2.h"

namespace sluice {
namespace {

using recommend::Evidence;
using recommend::kMinuteMs;
using recommend::Minutes;

constexpr int32_t kDefaultTimeoutSeconds = 900;
constexpr int32_t kMaxAttemptsCap = 3;
// Session caps carry this margin over the expected wall time.
constexpr double kCapMargin = 1.2;

int64_t CeilDiv(int64_t a, int64_t b) { return b <= 0 ? 0 : (a + b - 1) / b; }

std::string ShellQuote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                        "0123456789_-./:=,{}+@%") == std::string::npos) {
    return s;
  }
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string OneLine(std::string text, size_t max) {
  if (text.size() > max) text.resize(max);
  std::replace(text.begin(), text.end(), '\n', ' ');
  return text;
}

// A setting's value and the line that justifies it.
struct Choice {
  int64_t value = 0;
  std::string why;
};

bool SufficientData(const Evidence& e, const RecommendOptions& o) {
  return e.attempts.n_finished >= o.min_finished_attempts &&
         e.attempts.n_success >= o.min_successes;
}

std::string EvidenceLine(const Evidence& e, const PhaseCounts& phases) {
  const recommend::AttemptEvidence& a = e.attempts;
  return absl::StrFormat(
      "%d finished attempts (%d succeeded) of %d phases, %.1f worker-minutes, %d telemetry "
      "events (%.2f events/min); backlog: %d phases (%d pending) in %d runs, %d families",
      a.n_finished, a.n_success, a.phases.size(), Minutes(a.finished_ms), a.events,
      YieldPerMinute(a.events, a.finished_ms - a.unknown_telemetry_ms), phases.total(),
      phases.pending, e.backlog.runs, e.backlog.families.size());
}

// p95 of the successful durations x the margin, rounded up to a minute;
// without enough successes, the default or twice the longest attempt.
Choice PhaseTimeout(const Evidence& e, const RecommendOptions& o) {
  const recommend::AttemptEvidence& a = e.attempts;
  Choice c;
  if (a.n_success >= o.min_successes) {
    const double raw = static_cast<double>(a.success.p95_ms) / 1000.0 * o.timeout_margin;
    c.value = static_cast<int32_t>(
        std::max<int64_t>(60, CeilDiv(static_cast<int64_t>(std::ceil(raw)), 60) * 60));
    int64_t over = 0;
    for (int64_t ms : a.success_ms) over += ms > c.value * 1000 ? 1 : 0;
    c.why = absl::StrFormat(
        "p95 of %d successful durations is %.0fs (p50 %.0fs, max %.0fs); x%.1f margin = %.0fs, "
        "rounded up to a whole minute; %d of %d successes ran longer",
        a.n_success, static_cast<double>(a.success.p95_ms) / 1e3,
        static_cast<double>(a.success.p50_ms) / 1e3, static_cast<double>(a.success.max_ms) / 1e3,
        o.timeout_margin, raw, over, a.n_success);
    if (e.retries.timeouts > 0) {
      absl::StrAppendFormat(&c.why, "; %d attempts timed out before", e.retries.timeouts);
    }
  } else {
    const int64_t twice_longest = CeilDiv(2 * a.longest_ms, kMinuteMs) * 60;
    c.value = static_cast<int32_t>(std::max<int64_t>(kDefaultTimeoutSeconds, twice_longest));
    c.why = absl::StrFormat(
        "only %d successful durations (need %d) to derive it from; %ds is the default or twice "
        "the longest attempt seen (%.0fs), whichever is larger",
        a.n_success, o.min_successes, c.value, static_cast<double>(a.longest_ms) / 1e3);
  }
  return c;
}

// Attempts per phase: one more than the most failures a retry has recovered
// from (capped), and only for the fingerprints it recovered from.
Choice MaxAttempts(const recommend::RetryEvidence& r, std::vector<std::string>* retry_classes) {
  Choice c{1, ""};
  if (!r.recovered_fingerprints.empty()) {
    c.value = std::min<int64_t>(kMaxAttemptsCap, 1 + r.max_failures_before_success);
    retry_classes->assign(r.recovered_fingerprints.begin(), r.recovered_fingerprints.end());
    c.why = absl::StrFormat(
        "a retry succeeded after at most %d failure(s), only after %d fingerprint(s) (see "
        "--retry-on); %d retried phases never succeeded (%.1f worker-min on their retries): "
        "retry only those",
        r.max_failures_before_success, retry_classes->size(), r.retried_without_success,
        Minutes(r.wasted_retry_ms));
  } else if (r.retried_phases > 0) {
    c.why = absl::StrFormat(
        "%d phases were retried and no retry ever succeeded (%.1f worker-min spent on retries)",
        r.retried_phases, Minutes(r.wasted_retry_ms));
  } else {
    c.why =
        "no retry has ever succeeded (none was tried yet): a failure is final until evidence "
        "shows a class that recovers";
  }
  return c;
}

// Failure fingerprints no phase ever recovered from (lost and cancelled
// attempts aside), in fingerprint order.
std::vector<std::string> DeterministicFingerprints(const Evidence& e) {
  std::vector<std::string> deterministic;
  for (const auto& [fp, f] : e.failures) {
    if (e.retries.recovered_fingerprints.contains(fp) || fp.starts_with("lost|") ||
        fp.starts_with("cancelled|")) {
      continue;
    }
    deterministic.push_back(fp);
  }
  return deterministic;
}

// 3 repeats of a deterministic fingerprint, 2 when such failures are
// expensive (over 10 minutes an attempt), with what blocking would have saved.
Choice FingerprintRepeats(const Evidence& e, const std::vector<std::string>& deterministic) {
  double deterministic_ms = 0;
  int64_t deterministic_attempts = 0;
  for (const std::string& fp : deterministic) {
    const recommend::FingerprintTotals& f = e.failures.at(fp);
    deterministic_ms += static_cast<double>(f.run_ms);
    deterministic_attempts += f.attempts;
  }
  const double mean_deterministic_ms =
      deterministic_attempts == 0 ? 0
                                  : deterministic_ms / static_cast<double>(deterministic_attempts);
  const int32_t repeats = mean_deterministic_ms > 10.0 * kMinuteMs ? 2 : 3;
  int64_t beyond = 0;
  int64_t beyond_ms = 0;
  int64_t most_repeats = 0;
  for (const std::string& fp : deterministic) {
    std::vector<std::pair<int64_t, int64_t>> v = e.failures.at(fp).end_and_ms;
    std::sort(v.begin(), v.end());
    most_repeats = std::max<int64_t>(most_repeats, static_cast<int64_t>(v.size()));
    for (size_t i = static_cast<size_t>(repeats); i < v.size(); ++i) {
      ++beyond;
      beyond_ms += v[i].second;
    }
  }
  return Choice{
      repeats,
      absl::StrFormat(
          "%d deterministic fingerprints (no phase succeeded after them), mean %.1f min per "
          "attempt, most repeated %d times; blocking at %d would have saved %d attempts, %.1f "
          "worker-min%s",
          deterministic.size(), mean_deterministic_ms / kMinuteMs, most_repeats, repeats, beyond,
          Minutes(beyond_ms), repeats == 2 ? " (2, not 3: these failures are expensive)" : "")};
}

// 2 by default; 3 when a retry after a timeout has succeeded, 1 when none has.
Choice TimeoutsPerRun(const recommend::RetryEvidence& r) {
  Choice c{2, ""};
  int64_t worst_run_timeouts = 0;
  for (const auto& [run, n] : r.timeouts_by_run) {
    worst_run_timeouts = std::max(worst_run_timeouts, n);
  }
  if (r.timeouts == 0) {
    c.why = "no attempt has timed out yet; 2 stops a run that hangs twice";
  } else if (r.timeout_recovered) {
    c.value = 3;
    c.why = absl::StrFormat(
        "%d timeouts in %d runs (at most %d in one run); a retry after a timeout has succeeded, "
        "so a run gets one more",
        r.timeouts, r.timeouts_by_run.size(), worst_run_timeouts);
  } else {
    c.value = 1;
    c.why = absl::StrFormat(
        "%d timeouts in %d runs (at most %d in one run) and no phase ever succeeded after one: a "
        "run that hangs once hangs again",
        r.timeouts, r.timeouts_by_run.size(), worst_run_timeouts);
  }
  return c;
}

// Deterministic fingerprints covering several phases: what would still
// waste time first, then the widest failures.
std::vector<FixFirstItem> FixFirst(const Evidence& e,
                                   const std::vector<std::string>& deterministic) {
  std::vector<FixFirstItem> items;
  for (const std::string& fp : deterministic) {
    const recommend::FingerprintTotals& f = e.failures.at(fp);
    if (f.phases.size() < 2) continue;
    FixFirstItem item;
    item.fingerprint = fp;
    item.fingerprint_id = FingerprintId(fp);
    item.example_error = OneLine(f.example, 160);
    item.phases_failed = static_cast<int64_t>(f.phases.size());
    item.runs_failed = static_cast<int64_t>(f.runs.size());
    item.worker_minutes_spent = Minutes(f.run_ms);
    int64_t best = -1;
    for (const auto& [family, n] : f.family_phases) {
      item.families.push_back(family);
      if (n > best) {
        best = n;
        item.family = family;
      }
      // Every failure's family is known: GatherBacklog counts every finished attempt.
      const recommend::FamilyTotals& totals = e.backlog.families.at(family);
      item.family_runs += totals.runs;
      item.pending_phases_at_risk += totals.pending;
    }
    item.minutes_at_risk = static_cast<double>(item.pending_phases_at_risk) *
                           static_cast<double>(f.run_ms) / static_cast<double>(f.attempts) /
                           kMinuteMs;
    item.justification = absl::StrFormat(
        "fix %s first: fingerprint %s (%s) failed %d phases in %d of its %d runs, never "
        "recovered, %.1f worker-min spent; its %d pending phases would waste ~%.0f min",
        absl::StrJoin(item.families, ", "), item.fingerprint_id,
        item.example_error.empty() ? fp : item.example_error, item.phases_failed, item.runs_failed,
        item.family_runs, item.worker_minutes_spent, item.pending_phases_at_risk,
        item.minutes_at_risk);
    items.push_back(std::move(item));
  }
  std::sort(items.begin(), items.end(), [](const FixFirstItem& a, const FixFirstItem& b) {
    const bool a_risk = a.pending_phases_at_risk > 0;
    const bool b_risk = b.pending_phases_at_risk > 0;
    return std::tie(b_risk, b.phases_failed, b.minutes_at_risk, a.fingerprint) <
           std::tie(a_risk, a.phases_failed, a.minutes_at_risk, b.fingerprint);
  });
  return items;
}

// Families to prioritise (yield at or above the cluster's, best first), then
// families to skip (hit by a fix-first failure, or 3+ attempts and no success).
std::vector<FamilyAdvice> AdviseFamilies(const Evidence& e,
                                         const std::vector<FixFirstItem>& fix_first) {
  const double cluster_yield =
      YieldPerMinute(e.attempts.events, e.attempts.finished_ms - e.attempts.unknown_telemetry_ms);
  std::set<std::string> fix_families;
  for (const FixFirstItem& f : fix_first) fix_families.insert(f.families.begin(), f.families.end());
  std::vector<FamilyAdvice> prioritise, skip;
  for (const auto& [family, f] : e.backlog.families) {
    if (f.attempts == 0) continue;
    FamilyAdvice adv;
    adv.family = family;
    adv.yield_events_per_minute = YieldPerMinute(f.events, f.run_ms - f.unknown_telemetry_ms);
    adv.attempts = f.attempts;
    adv.succeeded = f.succeeded;
    adv.pending = f.pending;
    if (f.pending > 0 && (fix_families.contains(family) || (f.attempts >= 3 && f.succeeded == 0))) {
      adv.action = "skip";
      adv.skip_prefix = f.skip_prefix;
      adv.justification = absl::StrFormat(
          "skip %s until fixed: %d attempts, %d succeeded%s; %d pending phases", family, f.attempts,
          f.succeeded, fix_families.contains(family) ? ", a deterministic failure" : "", f.pending);
      skip.push_back(std::move(adv));
    } else if (f.succeeded > 0 && adv.yield_events_per_minute >= cluster_yield &&
               adv.yield_events_per_minute > 0) {
      adv.action = "prioritise";
      adv.justification = absl::StrFormat(
          "prioritise %s: %.2f events/min vs %.2f cluster-wide, %d of %d attempts succeeded; "
          "%d pending phases",
          family, adv.yield_events_per_minute, cluster_yield, f.succeeded, f.attempts, f.pending);
      prioritise.push_back(std::move(adv));
    }
  }
  std::sort(prioritise.begin(), prioritise.end(), [](const FamilyAdvice& a, const FamilyAdvice& b) {
    return a.yield_events_per_minute > b.yield_events_per_minute;
  });
  std::vector<FamilyAdvice> advice = prioritise;
  advice.insert(advice.end(), skip.begin(), skip.end());
  return advice;
}

// Insufficient data: one phase per run, the largest run of each family
// (largest families first), then the second largest, until the batch is full.
void ChooseDiagnosticBatch(const RecommendInput& input, const Evidence& e,
                           const RecommendOptions& o, int64_t slots_total, Recommendation* rec) {
  std::map<std::string, std::vector<const RunStats*>> by_family;
  for (const RunStats& s : input.runs) {
    if (s.pending > 0) by_family[o.family_rule.Family(s.run_id)].push_back(&s);
  }
  std::vector<std::pair<std::string, std::vector<const RunStats*>>> order(by_family.begin(),
                                                                          by_family.end());
  for (auto& [family, runs] : order) {
    std::stable_sort(runs.begin(), runs.end(), [](const RunStats* a, const RunStats* b) {
      return std::tie(b->pending, a->run_id) < std::tie(a->pending, b->run_id);
    });
  }
  const std::map<std::string, recommend::FamilyTotals>& families = e.backlog.families;
  std::stable_sort(order.begin(), order.end(), [&](const auto& a, const auto& b) {
    return families.at(a.first).pending > families.at(b.first).pending;
  });
  const int64_t wanted = std::min<int64_t>(e.backlog.runs_with_pending,
                                           std::max<int64_t>(o.diagnostic_phases, slots_total));
  for (size_t round = 0; static_cast<int64_t>(rec->diagnostic_runs.size()) < wanted; ++round) {
    for (auto& [family, runs] : order) {
      if (round < runs.size() && static_cast<int64_t>(rec->diagnostic_runs.size()) < wanted) {
        rec->diagnostic_runs.push_back(runs[round]->run_id);
      }
    }
  }
  rec->diagnostic_phases = static_cast<int32_t>(rec->diagnostic_runs.size());
  std::set<std::string> diag_families;
  for (const std::string& r : rec->diagnostic_runs) {
    diag_families.insert(o.family_rule.Family(r));
  }
  rec->diagnostic_justification = absl::StrFormat(
      "insufficient data: %d finished attempts (need %d) and %d successes (need %d). Run a "
      "diagnostic batch of %d phases, one from each of the %d largest runs across %d of %d "
      "families, without retries, then run `sluice recommend` again",
      e.attempts.n_finished, o.min_finished_attempts, e.attempts.n_success, o.min_successes,
      rec->diagnostic_phases, rec->diagnostic_phases, diag_families.size(), families.size());
}

struct BatchChoice {
  Choice batch;  // --batch-size
  Choice cap;    // --max-total-minutes
};

// The diagnostic batch, capped at its worst case: every phase hits the timeout.
BatchChoice DiagnosticBatchAndCap(int32_t diagnostic_phases, int64_t slots_total,
                                  int64_t timeout_s) {
  BatchChoice c;
  c.batch.value = diagnostic_phases;
  c.batch.why = absl::StrFormat("the diagnostic batch: %d phases, one per run", c.batch.value);
  const int64_t rounds = CeilDiv(c.batch.value, slots_total);
  c.cap.value = CeilDiv(rounds * timeout_s, 60);
  c.cap.why =
      absl::StrFormat("worst case: %d phases on %d slots = %d rounds of at most %ds (the timeout)",
                      c.batch.value, slots_total, rounds, timeout_s);
  return c;
}

// About an hour of work per batch, capped at the target; the session cap is
// the batch's expected wall time with a margin.
BatchChoice HourBatchAndCap(const Evidence& e, int64_t target, int64_t max_attempts,
                            int64_t slots_total) {
  const recommend::AttemptEvidence& a = e.attempts;
  BatchChoice c;
  const double per_phase_ms =
      a.mean_attempt_ms * std::min<double>(a.attempts_per_phase, static_cast<double>(max_attempts));
  const int64_t per_hour =
      std::max<int64_t>(1, static_cast<int64_t>(std::floor(static_cast<double>(kMinuteMs) * 60.0 /
                                                           std::max(per_phase_ms, 1.0))));
  const int64_t batch = std::min<int64_t>(std::max<int64_t>(target, 1), slots_total * per_hour);
  c.batch.value = batch;
  c.batch.why = absl::StrFormat(
      "about an hour of work: %d slots x %d phases/hour at %.1f min per phase (%.2f attempts "
      "x %.1f min), capped at the target of %d; review the report after each batch",
      slots_total, per_hour, per_phase_ms / kMinuteMs,
      std::min<double>(a.attempts_per_phase, static_cast<double>(max_attempts)),
      a.mean_attempt_ms / kMinuteMs, target);
  const double wall_ms =
      static_cast<double>(batch) * per_phase_ms / static_cast<double>(slots_total) * kCapMargin;
  c.cap.value = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(wall_ms / kMinuteMs)));
  c.cap.why =
      absl::StrFormat("%d phases x %.1f min per phase / %d slots x %.1f margin = %d min", batch,
                      per_phase_ms / kMinuteMs, slots_total, kCapMargin, c.cap.value);
  if (batch < target) {
    const double all_ms =
        static_cast<double>(target) * per_phase_ms / static_cast<double>(slots_total) * kCapMargin;
    absl::StrAppendFormat(&c.cap.why, " (all %d target phases: ~%.0f min in %d batches)", target,
                          all_ms / kMinuteMs, CeilDiv(target, batch));
  }
  return c;
}

// Whether a fixed per-phase cost (an API server's start-up) may dominate:
// judged from how close the shortest success is to the median.
std::string ApiServerAdvice(const Evidence& e, const RecommendOptions& o) {
  const recommend::AttemptEvidence& a = e.attempts;
  if (a.n_success < o.min_successes || a.success.p50_ms <= 0) {
    return "no evidence yet: needs successful durations and the phase's own start-up time (log or "
           "emit it); share one per worker (`sluice-worker --service`) when start-up is a large "
           "part of a phase";
  }
  const int64_t shortest = *std::min_element(a.success_ms.begin(), a.success_ms.end());
  const double ratio = static_cast<double>(shortest) / static_cast<double>(a.success.p50_ms);
  if (ratio >= 0.5) {
    return absl::StrFormat(
        "probably share: the shortest success took %.0fs, %.0f%% of the median %.0fs, so a "
        "fixed per-phase cost (such as starting an API server) may dominate; run one per "
        "worker with `sluice-worker --service CMD --service-health URL` and pass its address "
        "with --env. Missing evidence: the phase's own start-up time (log or emit it) to "
        "confirm",
        static_cast<double>(shortest) / 1e3, 100 * ratio,
        static_cast<double>(a.success.p50_ms) / 1e3);
  }
  return absl::StrFormat(
      "sharing saves at most %.0fs per phase (the shortest success), %.0f%% of the median "
      "%.0fs: not the first thing to do. Missing evidence: the phase's own start-up time",
      static_cast<double>(shortest) / 1e3, 100 * ratio,
      static_cast<double>(a.success.p50_ms) / 1e3);
}

// The complete `sluice drain` command line of the recommendation.
std::string DrainCommand(const Recommendation& rec, const RecommendOptions& o) {
  std::string cmd =
      absl::StrCat("sluice drain ", ShellQuote(o.backlog_path), " --exec ", ShellQuote(o.exec),
                   " --workers ", o.workers, " --slots ", std::max(o.slots, 1));
  for (const std::string& e : o.env) absl::StrAppend(&cmd, " --env ", ShellQuote(e));
  // The advice is per family under this rule: the drain must group alike.
  if (!o.family_rule.pattern().empty()) {
    absl::StrAppend(&cmd, " --family-pattern ", ShellQuote(o.family_rule.pattern()));
  }
  for (const RecommendedSetting& s : rec.settings) {
    absl::StrAppend(&cmd, " ", s.flag, " ", ShellQuote(s.value));
  }
  if (rec.sufficient_data) {
    for (const std::string& c : rec.retry_classes) {
      absl::StrAppend(&cmd, " --retry-on ", ShellQuote("^" + RE2::QuoteMeta(c) + "$"));
    }
    for (const FamilyAdvice& f : rec.families) {
      if (f.action == "skip" && f.pending > 0 && !f.skip_prefix.empty()) {
        absl::StrAppend(&cmd, " --skip-run-prefix ", ShellQuote(f.skip_prefix));
      }
    }
  } else {
    for (const std::string& r : rec.diagnostic_runs) {
      absl::StrAppend(&cmd, " --run-id ", ShellQuote(r));
    }
  }
  return cmd;
}

}  // namespace

// One named step per setting or section, in order; each reads the Evidence
// gathered once (recommend_evidence.h) and the results of the steps before it.
Recommendation Recommend(const RecommendInput& input, const RecommendOptions& o) {
  const Evidence e = recommend::GatherEvidence(input, o.family_rule);
  const int64_t slots_total = std::max<int64_t>(1, int64_t{o.workers} * std::max(o.slots, 1));
  const int64_t remaining = input.phases.pending + input.phases.leased;
  const int64_t target = o.target_phases > 0 ? o.target_phases : remaining;

  Recommendation rec;
  rec.sufficient_data = SufficientData(e, o);
  rec.evidence = EvidenceLine(e, input.phases);
  rec.telemetry_warnings = DetectTelemetryLoss(input.attempts);
  const Choice timeout = PhaseTimeout(e, o);
  const Choice attempts = MaxAttempts(e.retries, &rec.retry_classes);
  const std::vector<std::string> deterministic = DeterministicFingerprints(e);
  const Choice repeats = FingerprintRepeats(e, deterministic);
  const Choice timeouts_per_run = TimeoutsPerRun(e.retries);
  rec.fix_first = FixFirst(e, deterministic);
  rec.families = AdviseFamilies(e, rec.fix_first);
  if (!rec.sufficient_data) ChooseDiagnosticBatch(input, e, o, slots_total, &rec);
  const BatchChoice batch =
      rec.sufficient_data
          ? HourBatchAndCap(e, target, attempts.value, slots_total)
          : DiagnosticBatchAndCap(rec.diagnostic_phases, slots_total, timeout.value);
  rec.settings = {
      {"--phase-timeout-seconds", absl::StrCat(timeout.value), timeout.why},
      {"--max-total-minutes", absl::StrCat(batch.cap.value), batch.cap.why},
      {"--batch-size", absl::StrCat(batch.batch.value), batch.batch.why},
      {"--max-attempts-per-phase", absl::StrCat(rec.sufficient_data ? attempts.value : 1),
       rec.sufficient_data ? attempts.why : "a diagnostic batch samples each run once: no retries"},
      {"--max-fingerprint-repeats", absl::StrCat(repeats.value), repeats.why},
      {"--max-timeouts-per-run", absl::StrCat(timeouts_per_run.value), timeouts_per_run.why},
  };
  rec.api_server = ApiServerAdvice(e, o);
  rec.drain_command = DrainCommand(rec, o);
  return rec;
}
absl::StatusOr<Recommendation> RecommendFromStore(StateStore& store,
                                                  const RecommendOptions& options) {
  RecommendInput input;
  SLUICE_ASSIGN_OR_RETURN(input.attempts, store.ListAttempts(""));
  SLUICE_ASSIGN_OR_RETURN(input.runs, store.ListRunStats());
  SLUICE_ASSIGN_OR_RETURN(input.phases, store.CountPhases());
  return Recommend(input, options);
}

std::string RecommendationJson(const Recommendation& r) {
  nlohmann::json j;
  j["sufficient_data"] = r.sufficient_data;
  j["evidence"] = r.evidence;
  j["telemetry_warnings"] = nlohmann::json::array();
  for (const TelemetryWarning& w : r.telemetry_warnings) {
    j["telemetry_warnings"].push_back({{"kind", std::string(TelemetryWarningKindName(w.kind))},
                                       {"worker_id", w.worker_id},
                                       {"message", w.message}});
  }
  j["diagnostic_batch"] = r.sufficient_data
                              ? nlohmann::json(nullptr)
                              : nlohmann::json{{"phases", r.diagnostic_phases},
                                               {"runs", r.diagnostic_runs},
                                               {"justification", r.diagnostic_justification}};
  j["settings"] = nlohmann::json::array();
  for (const RecommendedSetting& s : r.settings) {
    j["settings"].push_back(
        {{"flag", s.flag}, {"value", s.value}, {"justification", s.justification}});
  }
  j["retry_classes"] = r.retry_classes;
  j["fix_first"] = nlohmann::json::array();
  for (const FixFirstItem& f : r.fix_first) {
    j["fix_first"].push_back({{"family", f.family},
                              {"families", f.families},
                              {"fingerprint", f.fingerprint},
                              {"fingerprint_id", f.fingerprint_id},
                              {"example_error", f.example_error},
                              {"phases_failed", f.phases_failed},
                              {"runs_failed", f.runs_failed},
                              {"family_runs", f.family_runs},
                              {"worker_minutes_spent", f.worker_minutes_spent},
                              {"pending_phases_at_risk", f.pending_phases_at_risk},
                              {"minutes_at_risk", f.minutes_at_risk},
                              {"justification", f.justification}});
  }
  j["families"] = nlohmann::json::array();
  for (const FamilyAdvice& f : r.families) {
    j["families"].push_back({{"family", f.family},
                             {"action", f.action},
                             {"yield_events_per_minute", f.yield_events_per_minute},
                             {"attempts", f.attempts},
                             {"succeeded", f.succeeded},
                             {"pending", f.pending},
                             {"skip_prefix", f.skip_prefix},
                             {"justification", f.justification}});
  }
  j["api_server"] = r.api_server;
  j["drain_command"] = r.drain_command;
  return j.dump(2);
}

std::string RecommendationText(const Recommendation& r) {
  std::string out = absl::StrCat("evidence: ", r.evidence, "\n");
  for (const TelemetryWarning& w : r.telemetry_warnings) {
    absl::StrAppend(&out, "WARNING: ", w.message, " (fix this before draining for telemetry)\n");
  }
  if (!r.sufficient_data)
    absl::StrAppend(&out, "\n", r.diagnostic_justification, ":\n  ",
                    absl::StrJoin(r.diagnostic_runs, " "), "\n");
  absl::StrAppend(&out, "\nsettings:\n");
  for (const RecommendedSetting& s : r.settings) {
    absl::StrAppendFormat(&out, "  %-26s %-6s %s\n", s.flag, s.value, s.justification);
  }
  if (!r.fix_first.empty()) {
    absl::StrAppend(&out, "\nfix first:\n");
    for (const FixFirstItem& f : r.fix_first) absl::StrAppend(&out, "  ", f.justification, "\n");
  }
  if (!r.families.empty()) {
    absl::StrAppend(&out, "\nprioritise / skip:\n");
    for (const FamilyAdvice& f : r.families) absl::StrAppend(&out, "  ", f.justification, "\n");
  }
  absl::StrAppend(&out, "\nAPI server: ", r.api_server, "\n");
  absl::StrAppend(&out, "\n", r.drain_command, "\n");
  return out;
}

}  // namespace sluice
