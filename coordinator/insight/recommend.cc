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
#include "coordinator/insight/session_report.h"
#include "coordinator/telemetry_alarm.h"
#include "nlohmann/json.hpp"
#include "re2/re2.h"

namespace sluice {
namespace {

constexpr int64_t kMinuteMs = 60'000;
constexpr int32_t kDefaultTimeoutSeconds = 900;
constexpr int32_t kMaxAttemptsCap = 3;
// Session caps carry this margin over the expected wall time.
constexpr double kCapMargin = 1.2;

bool OwnOutcome(Outcome o) { return o != Outcome::kLost && o != Outcome::kCancelled; }

double Minutes(int64_t ms) { return static_cast<double>(ms) / kMinuteMs; }

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

struct PhaseHistory {
  std::vector<const AttemptRecord*> attempts;  // own outcomes, by attempt number
};

struct FamilyTotals {
  int64_t runs = 0;
  int64_t pending = 0;
  int64_t attempts = 0;
  int64_t succeeded = 0;
  int64_t events = 0;
  int64_t run_ms = 0;
  std::string skip_prefix;
};

}  // namespace

Recommendation Recommend(const RecommendInput& input, const RecommendOptions& o) {
  Recommendation rec;
  const int64_t slots_total = std::max<int64_t>(1, int64_t{o.workers} * std::max(o.slots, 1));

  // ---- Evidence ----------------------------------------------------------
  std::vector<const AttemptRecord*> finished;
  std::vector<int64_t> success_ms;
  int64_t finished_ms = 0;
  int64_t longest_ms = 0;
  int64_t events = 0;
  std::map<PhaseKey, PhaseHistory> phases;
  for (const AttemptRecord& a : input.attempts) {
    longest_ms = std::max(longest_ms, a.duration_ms);
    if (!OwnOutcome(a.outcome)) continue;
    finished.push_back(&a);
    finished_ms += a.duration_ms;
    events += a.telemetry_events;
    if (a.outcome == Outcome::kSucceeded) success_ms.push_back(a.duration_ms);
    phases[PhaseKey{a.run_id, a.phase_id}].attempts.push_back(&a);
  }
  for (auto& [key, h] : phases) {
    std::stable_sort(
        h.attempts.begin(), h.attempts.end(), [](const AttemptRecord* x, const AttemptRecord* y) {
          return std::tie(x->attempt, x->ended_at_ms) < std::tie(y->attempt, y->ended_at_ms);
        });
  }
  const auto n_finished = static_cast<int64_t>(finished.size());
  const auto n_success = static_cast<int64_t>(success_ms.size());
  const DurationStats success = ComputeDurationStats(success_ms);
  const double mean_attempt_ms =
      n_finished == 0 ? 0.0 : static_cast<double>(finished_ms) / static_cast<double>(n_finished);
  const double attempts_per_phase =
      phases.empty() ? 1.0 : static_cast<double>(n_finished) / static_cast<double>(phases.size());

  int64_t backlog_runs = 0;
  int64_t runs_with_pending = 0;
  std::map<std::string, FamilyTotals> families;
  for (const RunStats& s : input.runs) {
    ++backlog_runs;
    if (s.pending > 0) ++runs_with_pending;
    const std::string family = RunFamily(s.run_id);
    FamilyTotals& f = families[family];
    ++f.runs;
    f.pending += s.pending;
    if (f.skip_prefix.empty()) {
      f.skip_prefix =
          s.run_id.size() > family.size() ? s.run_id.substr(0, family.size() + 1) : s.run_id;
    }
  }
  for (const AttemptRecord* a : finished) {
    FamilyTotals& f = families[RunFamily(a->run_id)];
    ++f.attempts;
    if (a->outcome == Outcome::kSucceeded) ++f.succeeded;
    f.events += a->telemetry_events;
    f.run_ms += a->duration_ms;
  }
  const int64_t remaining = input.phases.pending + input.phases.leased;
  const int64_t target = o.target_phases > 0 ? o.target_phases : remaining;

  rec.sufficient_data = n_finished >= o.min_finished_attempts && n_success >= o.min_successes;
  rec.evidence = absl::StrFormat(
      "%d finished attempts (%d succeeded) of %d phases, %.1f worker-minutes, %d telemetry "
      "events (%.2f events/min); backlog: %d phases (%d pending) in %d runs, %d families",
      n_finished, n_success, phases.size(), Minutes(finished_ms), events,
      YieldPerMinute(events, finished_ms), input.phases.total(), input.phases.pending, backlog_runs,
      families.size());

  rec.telemetry_warnings = DetectTelemetryLoss(input.attempts);

  // ---- Retries: which failure classes has a retry ever recovered? --------
  std::set<std::string> recovered_classes;
  int64_t max_failures_before_success = 0;
  int64_t retried_phases = 0;
  int64_t retried_without_success = 0;
  int64_t wasted_retry_ms = 0;
  std::set<std::string> recovered_fingerprints;  // some phase succeeded after it
  int64_t timeouts = 0;
  bool timeout_recovered = false;
  std::map<std::string, int64_t> timeouts_by_run;
  for (const auto& [key, h] : phases) {
    int64_t failures = 0;
    bool succeeded = false;
    for (size_t i = 0; i < h.attempts.size(); ++i) {
      const AttemptRecord& a = *h.attempts[i];
      if (a.outcome == Outcome::kTimedOut) {
        ++timeouts;
        ++timeouts_by_run[a.run_id];
      }
      if (a.outcome == Outcome::kSucceeded) {
        succeeded = true;
        if (failures > 0) {
          max_failures_before_success = std::max(max_failures_before_success, failures);
          for (size_t k = 0; k < i; ++k) {
            recovered_classes.insert(h.attempts[k]->fingerprint);
            recovered_fingerprints.insert(h.attempts[k]->fingerprint);
            if (h.attempts[k]->outcome == Outcome::kTimedOut) timeout_recovered = true;
          }
        }
        break;
      }
      ++failures;
      if (i > 0) wasted_retry_ms += a.duration_ms;
    }
    if (h.attempts.size() > 1) {
      ++retried_phases;
      if (!succeeded) ++retried_without_success;
    }
  }

  // ---- Fingerprints ------------------------------------------------------
  struct FpTotals {
    std::set<PhaseKey> phases;
    std::set<std::string> runs;
    std::map<std::string, int64_t> family_phases;
    int64_t attempts = 0;
    int64_t run_ms = 0;
    std::string example;
    std::vector<int64_t> durations_by_end;  // for repeats
    std::vector<std::pair<int64_t, int64_t>> end_and_ms;
  };
  std::map<std::string, FpTotals> fps;
  for (const AttemptRecord* a : finished) {
    if (a->outcome == Outcome::kSucceeded) continue;
    FpTotals& f = fps[a->fingerprint];
    if (f.phases.insert(PhaseKey{a->run_id, a->phase_id}).second) {
      ++f.family_phases[RunFamily(a->run_id)];
    }
    f.runs.insert(a->run_id);
    ++f.attempts;
    f.run_ms += a->duration_ms;
    if (f.example.empty()) f.example = a->error_text;
    f.end_and_ms.emplace_back(a->ended_at_ms, a->duration_ms);
  }

  // ---- Phase timeout -----------------------------------------------------
  int32_t timeout_s = kDefaultTimeoutSeconds;
  std::string timeout_why;
  if (n_success >= o.min_successes) {
    const double raw = static_cast<double>(success.p95_ms) / 1000.0 * o.timeout_margin;
    timeout_s = static_cast<int32_t>(
        std::max<int64_t>(60, CeilDiv(static_cast<int64_t>(std::ceil(raw)), 60) * 60));
    int64_t over = 0;
    for (int64_t ms : success_ms) over += ms > int64_t{timeout_s} * 1000 ? 1 : 0;
    timeout_why = absl::StrFormat(
        "p95 of %d successful durations is %.0fs (p50 %.0fs, max %.0fs); x%.1f margin = %.0fs, "
        "rounded up to a whole minute; %d of %d successes ran longer",
        n_success, static_cast<double>(success.p95_ms) / 1e3,
        static_cast<double>(success.p50_ms) / 1e3, static_cast<double>(success.max_ms) / 1e3,
        o.timeout_margin, raw, over, n_success);
    if (timeouts > 0) {
      absl::StrAppendFormat(&timeout_why, "; %d attempts timed out before", timeouts);
    }
  } else {
    const int64_t twice_longest = CeilDiv(2 * longest_ms, kMinuteMs) * 60;
    timeout_s = static_cast<int32_t>(std::max<int64_t>(kDefaultTimeoutSeconds, twice_longest));
    timeout_why = absl::StrFormat(
        "only %d successful durations (need %d) to derive it from; %ds is the default or twice "
        "the longest attempt seen (%.0fs), whichever is larger",
        n_success, o.min_successes, timeout_s, static_cast<double>(longest_ms) / 1e3);
  }

  // ---- Attempts per phase and retry classes -------------------------------
  int32_t max_attempts = 1;
  std::string attempts_why;
  if (!recovered_classes.empty()) {
    max_attempts =
        static_cast<int32_t>(std::min<int64_t>(kMaxAttemptsCap, 1 + max_failures_before_success));
    rec.retry_classes.assign(recovered_classes.begin(), recovered_classes.end());
    attempts_why = absl::StrFormat(
        "a retry succeeded after at most %d failure(s), only after %d fingerprint(s) (see "
        "--retry-on); %d retried phases never succeeded (%.1f worker-min on their retries): "
        "retry only those",
        max_failures_before_success, rec.retry_classes.size(), retried_without_success,
        Minutes(wasted_retry_ms));
  } else if (retried_phases > 0) {
    attempts_why = absl::StrFormat(
        "%d phases were retried and no retry ever succeeded (%.1f worker-min spent on retries)",
        retried_phases, Minutes(wasted_retry_ms));
  } else {
    attempts_why =
        "no retry has ever succeeded (none was tried yet): a failure is final until evidence "
        "shows a class that recovers";
  }

  // ---- Fingerprint repeats -------------------------------------------------
  std::vector<std::string> deterministic;
  double deterministic_ms = 0;
  int64_t deterministic_attempts = 0;
  for (const auto& [fp, f] : fps) {
    if (recovered_fingerprints.contains(fp) || fp.starts_with("lost|") ||
        fp.starts_with("cancelled|")) {
      continue;
    }
    deterministic.push_back(fp);
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
    std::vector<std::pair<int64_t, int64_t>> v = fps[fp].end_and_ms;
    std::sort(v.begin(), v.end());
    most_repeats = std::max<int64_t>(most_repeats, static_cast<int64_t>(v.size()));
    for (size_t i = static_cast<size_t>(repeats); i < v.size(); ++i) {
      ++beyond;
      beyond_ms += v[i].second;
    }
  }
  const std::string repeats_why = absl::StrFormat(
      "%d deterministic fingerprints (no phase succeeded after them), mean %.1f min per attempt, "
      "most repeated %d times; blocking at %d would have saved %d attempts, %.1f worker-min%s",
      deterministic.size(), mean_deterministic_ms / kMinuteMs, most_repeats, repeats, beyond,
      Minutes(beyond_ms), repeats == 2 ? " (2, not 3: these failures are expensive)" : "");

  // ---- Timeouts per run ------------------------------------------------------
  int32_t timeouts_per_run = 2;
  std::string timeouts_why;
  int64_t worst_run_timeouts = 0;
  for (const auto& [run, n] : timeouts_by_run) worst_run_timeouts = std::max(worst_run_timeouts, n);
  if (timeouts == 0) {
    timeouts_why = "no attempt has timed out yet; 2 stops a run that hangs twice";
  } else if (timeout_recovered) {
    timeouts_per_run = 3;
    timeouts_why = absl::StrFormat(
        "%d timeouts in %d runs (at most %d in one run); a retry after a timeout has succeeded, "
        "so a run gets one more",
        timeouts, timeouts_by_run.size(), worst_run_timeouts);
  } else {
    timeouts_per_run = 1;
    timeouts_why = absl::StrFormat(
        "%d timeouts in %d runs (at most %d in one run) and no phase ever succeeded after one: a "
        "run that hangs once hangs again",
        timeouts, timeouts_by_run.size(), worst_run_timeouts);
  }

  // ---- Fix first: deterministic fingerprints covering several phases --------
  std::map<std::string, int64_t> family_runs_in_backlog;
  for (const RunStats& s : input.runs) ++family_runs_in_backlog[RunFamily(s.run_id)];
  for (const std::string& fp : deterministic) {
    const FpTotals& f = fps[fp];
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
      item.family_runs += family_runs_in_backlog[family];
      item.pending_phases_at_risk += families[family].pending;
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
    rec.fix_first.push_back(std::move(item));
  }
  std::sort(rec.fix_first.begin(), rec.fix_first.end(),
            [](const FixFirstItem& a, const FixFirstItem& b) {
              // What would still waste time first, then the widest failures.
              const bool a_risk = a.pending_phases_at_risk > 0;
              const bool b_risk = b.pending_phases_at_risk > 0;
              return std::tie(b_risk, b.phases_failed, b.minutes_at_risk, a.fingerprint) <
                     std::tie(a_risk, a.phases_failed, a.minutes_at_risk, b.fingerprint);
            });

  // ---- Prioritise or skip families by yield -----------------------------------
  const double cluster_yield = YieldPerMinute(events, finished_ms);
  std::set<std::string> fix_families;
  for (const FixFirstItem& f : rec.fix_first)
    fix_families.insert(f.families.begin(), f.families.end());
  std::vector<FamilyAdvice> prioritise, skip;
  for (const auto& [family, f] : families) {
    if (f.attempts == 0) continue;
    FamilyAdvice adv;
    adv.family = family;
    adv.yield_events_per_minute = YieldPerMinute(f.events, f.run_ms);
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
  rec.families = prioritise;
  rec.families.insert(rec.families.end(), skip.begin(), skip.end());

  // ---- Diagnostic batch (insufficient data) --------------------------------
  if (!rec.sufficient_data) {
    // One phase per run: the largest run of each family (largest families
    // first), then the second largest, until the batch is full.
    std::map<std::string, std::vector<const RunStats*>> by_family;
    for (const RunStats& s : input.runs) {
      if (s.pending > 0) by_family[RunFamily(s.run_id)].push_back(&s);
    }
    std::vector<std::pair<std::string, std::vector<const RunStats*>>> order(by_family.begin(),
                                                                            by_family.end());
    for (auto& [family, runs] : order) {
      std::stable_sort(runs.begin(), runs.end(), [](const RunStats* a, const RunStats* b) {
        return std::tie(b->pending, a->run_id) < std::tie(a->pending, b->run_id);
      });
    }
    std::stable_sort(order.begin(), order.end(), [&](const auto& a, const auto& b) {
      return families[a.first].pending > families[b.first].pending;
    });
    const int64_t wanted =
        std::min<int64_t>(runs_with_pending, std::max<int64_t>(o.diagnostic_phases, slots_total));
    for (size_t round = 0; static_cast<int64_t>(rec.diagnostic_runs.size()) < wanted; ++round) {
      for (auto& [family, runs] : order) {
        if (round < runs.size() && static_cast<int64_t>(rec.diagnostic_runs.size()) < wanted) {
          rec.diagnostic_runs.push_back(runs[round]->run_id);
        }
      }
    }
    rec.diagnostic_phases = static_cast<int32_t>(rec.diagnostic_runs.size());
    std::set<std::string> diag_families;
    for (const std::string& r : rec.diagnostic_runs) diag_families.insert(RunFamily(r));
    rec.diagnostic_justification = absl::StrFormat(
        "insufficient data: %d finished attempts (need %d) and %d successes (need %d). Run a "
        "diagnostic batch of %d phases, one from each of the %d largest runs across %d of %d "
        "families, without retries, then run `sluice recommend` again",
        n_finished, o.min_finished_attempts, n_success, o.min_successes, rec.diagnostic_phases,
        rec.diagnostic_phases, diag_families.size(), families.size());
  }

  // ---- Batch size and session cap -------------------------------------------
  int64_t batch = 0;
  std::string batch_why;
  int64_t cap_minutes = 0;
  std::string cap_why;
  if (!rec.sufficient_data) {
    batch = rec.diagnostic_phases;
    batch_why = absl::StrFormat("the diagnostic batch: %d phases, one per run", batch);
    const int64_t rounds = CeilDiv(batch, slots_total);
    cap_minutes = CeilDiv(rounds * timeout_s, 60);
    cap_why = absl::StrFormat(
        "worst case: %d phases on %d slots = %d rounds of at most %ds (the timeout)", batch,
        slots_total, rounds, timeout_s);
  } else {
    const double per_phase_ms =
        mean_attempt_ms * std::min<double>(attempts_per_phase, static_cast<double>(max_attempts));
    const int64_t per_hour =
        std::max<int64_t>(1, static_cast<int64_t>(std::floor(static_cast<double>(kMinuteMs) * 60.0 /
                                                             std::max(per_phase_ms, 1.0))));
    batch = std::min<int64_t>(std::max<int64_t>(target, 1), slots_total * per_hour);
    batch_why = absl::StrFormat(
        "about an hour of work: %d slots x %d phases/hour at %.1f min per phase (%.2f attempts "
        "x %.1f min), capped at the target of %d; review the report after each batch",
        slots_total, per_hour, per_phase_ms / kMinuteMs,
        std::min<double>(attempts_per_phase, max_attempts), mean_attempt_ms / kMinuteMs, target);
    const double wall_ms =
        static_cast<double>(batch) * per_phase_ms / static_cast<double>(slots_total) * kCapMargin;
    cap_minutes = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(wall_ms / kMinuteMs)));
    cap_why =
        absl::StrFormat("%d phases x %.1f min per phase / %d slots x %.1f margin = %d min", batch,
                        per_phase_ms / kMinuteMs, slots_total, kCapMargin, cap_minutes);
    if (batch < target) {
      const double all_ms = static_cast<double>(target) * per_phase_ms /
                            static_cast<double>(slots_total) * kCapMargin;
      absl::StrAppendFormat(&cap_why, " (all %d target phases: ~%.0f min in %d batches)", target,
                            all_ms / kMinuteMs, CeilDiv(target, batch));
    }
  }

  const int32_t attempts_setting = rec.sufficient_data ? max_attempts : 1;
  rec.settings = {
      {"--phase-timeout-seconds", absl::StrCat(timeout_s), timeout_why},
      {"--max-total-minutes", absl::StrCat(cap_minutes), cap_why},
      {"--batch-size", absl::StrCat(batch), batch_why},
      {"--max-attempts-per-phase", absl::StrCat(attempts_setting),
       rec.sufficient_data ? attempts_why : "a diagnostic batch samples each run once: no retries"},
      {"--max-fingerprint-repeats", absl::StrCat(repeats), repeats_why},
      {"--max-timeouts-per-run", absl::StrCat(timeouts_per_run), timeouts_why},
  };

  // ---- API server ------------------------------------------------------------
  if (n_success >= o.min_successes && success.p50_ms > 0) {
    const int64_t shortest = *std::min_element(success_ms.begin(), success_ms.end());
    const double ratio = static_cast<double>(shortest) / static_cast<double>(success.p50_ms);
    if (ratio >= 0.5) {
      rec.api_server = absl::StrFormat(
          "probably share: the shortest success took %.0fs, %.0f%% of the median %.0fs, so a "
          "fixed per-phase cost (such as starting an API server) may dominate; run one per "
          "worker with `sluice-worker --service CMD --service-health URL` and pass its address "
          "with --env. Missing evidence: the phase's own start-up time (log or emit it) to "
          "confirm",
          static_cast<double>(shortest) / 1e3, 100 * ratio,
          static_cast<double>(success.p50_ms) / 1e3);
    } else {
      rec.api_server = absl::StrFormat(
          "sharing saves at most %.0fs per phase (the shortest success), %.0f%% of the median "
          "%.0fs: not the first thing to do. Missing evidence: the phase's own start-up time",
          static_cast<double>(shortest) / 1e3, 100 * ratio,
          static_cast<double>(success.p50_ms) / 1e3);
    }
  } else {
    rec.api_server =
        "no evidence yet: needs successful durations and the phase's own start-up time (log or "
        "emit it); share one per worker (`sluice-worker --service`) when start-up is a large "
        "part of a phase";
  }

  // ---- The command line -------------------------------------------------------
  std::string cmd =
      absl::StrCat("sluice drain ", ShellQuote(o.backlog_path), " --exec ", ShellQuote(o.exec),
                   " --workers ", o.workers, " --slots ", std::max(o.slots, 1));
  for (const std::string& e : o.env) absl::StrAppend(&cmd, " --env ", ShellQuote(e));
  for (const RecommendedSetting& s : rec.settings) {
    absl::StrAppend(&cmd, " ", s.flag, " ", ShellQuote(s.value));
  }
  if (rec.sufficient_data) {
    for (const std::string& c : rec.retry_classes) {
      absl::StrAppend(&cmd, " --retry-on ", ShellQuote("^" + RE2::QuoteMeta(c) + "$"));
    }
    for (const FamilyAdvice& f : rec.families) {
      if (f.action == "skip" && f.pending > 0) {
        absl::StrAppend(&cmd, " --skip-run-prefix ", ShellQuote(f.skip_prefix));
      }
    }
  } else {
    for (const std::string& r : rec.diagnostic_runs) {
      absl::StrAppend(&cmd, " --run-id ", ShellQuote(r));
    }
  }
  rec.drain_command = std::move(cmd);
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
