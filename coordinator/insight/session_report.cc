#include "coordinator/insight/session_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/fingerprint.h"
#include "common/run_family.h"
#include "common/status_macros.h"
#include "coordinator/insight/marginal_curve.h"
#include "nlohmann/json.hpp"

namespace sluice {
namespace {

constexpr size_t kTopErrors = 10;
constexpr int64_t kMinuteMs = 60'000;
// At most this many timeline buckets; longer sessions get wider buckets.
constexpr int64_t kMaxTimelineBuckets = 60;

bool IsFailure(Outcome o) {
  return o == Outcome::kFailed || o == Outcome::kTimedOut || o == Outcome::kKilled;
}

std::string Percent(int64_t part, int64_t whole) {
  return whole == 0 ? "-" : absl::StrFormat("%.1f%%", 100.0 * Rate(part, whole));
}

// Events, run time and unknown telemetry of `a` into any row that has them.
template <typename Row>
void AddTelemetry(Row& row, const AttemptRecord& a) {
  row.telemetry_events += a.telemetry_events;
  row.run_ms += a.duration_ms;
  row.unknown_telemetry_ms += UnknownTelemetryMs(a);
  if constexpr (requires { row.unknown_telemetry_attempts; }) {
    if (a.telemetry_unknown) ++row.unknown_telemetry_attempts;
  }
}

void Count(GroupReportRow& g, const AttemptRecord& a) {
  ++g.attempts;
  if (a.outcome == Outcome::kSucceeded) {
    ++g.succeeded;
    // An unknown count is not a zero-event success.
    if (a.telemetry_events == 0 && !a.telemetry_unknown) ++g.zero_event_successes;
  }
  if (IsFailure(a.outcome)) ++g.failed;
  if (a.outcome == Outcome::kTimedOut) ++g.timed_out;
  AddTelemetry(g, a);
}

void AddCounts(PhaseCounts& into, const PhaseCounts& c) {
  into.pending += c.pending;
  into.leased += c.leased;
  into.succeeded += c.succeeded;
  into.failed += c.failed;
}

nlohmann::json PhasesJson(const PhaseCounts& p) {
  return {{"pending", p.pending},
          {"leased", p.leased},
          {"succeeded", p.succeeded},
          {"failed", p.failed}};
}

PhaseCounts PhasesFromJson(const nlohmann::json& p) {
  return PhaseCounts{p.at("pending").get<int64_t>(), p.at("leased").get<int64_t>(),
                     p.at("succeeded").get<int64_t>(), p.at("failed").get<int64_t>()};
}

nlohmann::json DurationsJson(const DurationStats& d) {
  return {{"count", d.count},
          {"p50_ms", d.p50_ms},
          {"p90_ms", d.p90_ms},
          {"p95_ms", d.p95_ms},
          {"max_ms", d.max_ms}};
}

DurationStats DurationsFromJson(const nlohmann::json& j) {
  DurationStats d;
  d.count = j.at("count").get<int64_t>();
  d.p50_ms = j.at("p50_ms").get<int64_t>();
  d.p90_ms = j.at("p90_ms").get<int64_t>();
  d.p95_ms = j.at("p95_ms").get<int64_t>();
  d.max_ms = j.at("max_ms").get<int64_t>();
  return d;
}

// Yield in JSON: null when no run time with known telemetry was recorded
// (no evidence, not 0).
template <typename Row>
nlohmann::json YieldJson(const Row& row) {
  if (row.telemetry_ms() <= 0) return nullptr;
  return YieldPerMinute(row.telemetry_events, row.telemetry_ms());
}

// The unknown-telemetry keys every row with them carries.
template <typename Row>
void UnknownTelemetryJson(const Row& row, nlohmann::json& j) {
  if constexpr (requires { row.unknown_telemetry_attempts; }) {
    j["unknown_telemetry_attempts"] = row.unknown_telemetry_attempts;
  }
  j["unknown_telemetry_run_ms"] = row.unknown_telemetry_ms;
}

template <typename Row>
void UnknownTelemetryFromJson(const nlohmann::json& j, Row& row) {
  if constexpr (requires { row.unknown_telemetry_attempts; }) {
    row.unknown_telemetry_attempts = j.value("unknown_telemetry_attempts", int64_t{0});
  }
  row.unknown_telemetry_ms = j.value("unknown_telemetry_run_ms", int64_t{0});
}

// Events as the text tables print them: "unknown" when every attempt of the
// row had unknown telemetry (0 would read as zero yield).
std::string EventsText(int64_t events, int64_t attempts, int64_t unknown) {
  if (attempts > 0 && unknown == attempts) return "unknown";
  return absl::StrCat(events);
}

nlohmann::json GroupJson(const GroupReportRow& g, const char* key_name) {
  nlohmann::json j = {{key_name, g.key},
                      {"runs", g.runs},
                      {"attempts", g.attempts},
                      {"succeeded", g.succeeded},
                      {"failed", g.failed},
                      {"timed_out", g.timed_out},
                      {"zero_event_successes", g.zero_event_successes},
                      {"telemetry_events", g.telemetry_events},
                      {"run_ms", g.run_ms},
                      {"worker_minutes", static_cast<double>(g.run_ms) / kMinuteMs},
                      {"yield_events_per_minute", YieldJson(g)}};
  UnknownTelemetryJson(g, j);
  return j;
}

GroupReportRow GroupFromJson(const nlohmann::json& j, const char* key_name) {
  GroupReportRow g;
  g.key = j.at(key_name).get<std::string>();
  g.runs = j.at("runs").get<int64_t>();
  g.attempts = j.at("attempts").get<int64_t>();
  g.succeeded = j.at("succeeded").get<int64_t>();
  g.failed = j.at("failed").get<int64_t>();
  g.timed_out = j.at("timed_out").get<int64_t>();
  g.zero_event_successes = j.at("zero_event_successes").get<int64_t>();
  g.telemetry_events = j.at("telemetry_events").get<int64_t>();
  g.run_ms = j.at("run_ms").get<int64_t>();
  UnknownTelemetryFromJson(j, g);
  if (j.contains("phases")) g.phases = PhasesFromJson(j.at("phases"));
  return g;
}

std::string Seconds(int64_t ms) { return absl::StrFormat("%.1fs", static_cast<double>(ms) / 1e3); }

std::string OneLine(std::string text, size_t max) {
  if (text.size() > max) text.resize(max);
  std::replace(text.begin(), text.end(), '\n', ' ');
  return text;
}

}  // namespace

double YieldPerMinute(int64_t events, int64_t run_ms) {
  return run_ms <= 0 ? 0.0 : static_cast<double>(events) / (static_cast<double>(run_ms) / 60'000.0);
}

std::string YieldText(int64_t events, int64_t run_ms, int decimals) {
  if (run_ms <= 0) return "-";
  return absl::StrFormat("%.*f", decimals, YieldPerMinute(events, run_ms));
}

double Rate(int64_t count, int64_t whole) {
  return whole <= 0 ? 0.0 : static_cast<double>(count) / static_cast<double>(whole);
}

DurationStats ComputeDurationStats(std::vector<int64_t> durations_ms) {
  DurationStats d;
  if (durations_ms.empty()) return d;
  std::sort(durations_ms.begin(), durations_ms.end());
  const size_t n = durations_ms.size();
  auto rank = [&](int p) {
    // Nearest rank: the smallest value with at least p% of values at or below it.
    size_t k = static_cast<size_t>((static_cast<uint64_t>(p) * n + 99) / 100);
    return durations_ms[std::clamp<size_t>(k, 1, n) - 1];
  };
  d.count = static_cast<int64_t>(n);
  d.p50_ms = rank(50);
  d.p90_ms = rank(90);
  d.p95_ms = rank(95);
  d.max_ms = durations_ms.back();
  return d;
}

SessionReport ComputeSessionReport(const SessionRecord& session,
                                   const std::vector<AttemptRecord>& attempts,
                                   const std::vector<RunStats>& run_stats,
                                   const PhaseCounts& phases,
                                   const TelemetryAlarmOptions& alarm_options,
                                   const RunFamilyRule& family_rule) {
  SessionReport report;
  report.session_id = session.session_id;
  report.state = std::string(SessionStateName(session.state));
  report.end_reason = session.end_reason;
  report.started_at_ms = session.started_at_ms;
  report.ended_at_ms = session.ended_at_ms;
  report.phases = phases;

  std::map<std::string, RunReportRow> runs;
  std::map<std::string, ErrorReportRow> errors;
  std::map<std::string, std::set<std::string>> error_runs;
  std::map<std::string, std::set<std::pair<std::string, std::string>>> error_phases;
  std::map<std::string, std::set<std::string>> error_families;
  std::map<std::string, GroupReportRow> families, workers, fingerprints;
  std::map<std::string, std::set<std::string>> family_runs, worker_runs, fingerprint_runs;
  std::vector<int64_t> success_ms, failure_ms;
  for (const AttemptRecord& a : attempts) {
    const std::string family = family_rule.Family(a.run_id);
    ++report.attempts;
    ++report.outcomes[std::string(OutcomeName(a.outcome))];
    AddTelemetry(report, a);
    if (a.outcome == Outcome::kSucceeded) success_ms.push_back(a.duration_ms);
    if (IsFailure(a.outcome)) failure_ms.push_back(a.duration_ms);

    RunReportRow& run = runs[a.run_id];
    run.run_id = a.run_id;
    run.family = family;
    ++run.attempts;
    AddTelemetry(run, a);
    if (a.outcome == Outcome::kSucceeded) ++run.succeeded;
    if (IsFailure(a.outcome)) ++run.failed;
    if (a.outcome == Outcome::kTimedOut) ++run.timed_out;

    Count(families[family], a);
    family_runs[family].insert(a.run_id);
    Count(workers[a.worker_id], a);
    worker_runs[a.worker_id].insert(a.run_id);
    Count(fingerprints[a.fingerprint], a);
    fingerprint_runs[a.fingerprint].insert(a.run_id);

    if (a.outcome != Outcome::kSucceeded) {
      ErrorReportRow& e = errors[a.fingerprint];
      e.fingerprint = a.fingerprint;
      e.fingerprint_id = FingerprintId(a.fingerprint);
      if (e.example_error.empty()) e.example_error = a.error_text;
      ++e.attempts;
      e.run_ms += a.duration_ms;
      error_runs[a.fingerprint].insert(a.run_id);
      error_phases[a.fingerprint].insert({a.run_id, a.phase_id});
      error_families[a.fingerprint].insert(family);
    }
  }
  report.yield_per_minute = YieldPerMinute(report.telemetry_events, report.telemetry_ms());
  report.success_durations = ComputeDurationStats(std::move(success_ms));
  report.failure_durations = ComputeDurationStats(std::move(failure_ms));

  for (const RunStats& s : run_stats) {
    auto it = runs.find(s.run_id);
    if (it == runs.end()) continue;
    it->second.phases = PhaseCounts{s.pending, s.leased, s.succeeded, s.failed};
    AddCounts(families[it->second.family].phases, it->second.phases);
  }
  for (auto& [id, row] : runs) report.runs.push_back(row);
  auto collect = [](std::map<std::string, GroupReportRow>& groups,
                    std::map<std::string, std::set<std::string>>& group_runs,
                    std::vector<GroupReportRow>* out) {
    for (auto& [key, row] : groups) {
      row.key = key;
      row.runs = static_cast<int64_t>(group_runs[key].size());
      out->push_back(row);
    }
  };
  collect(families, family_runs, &report.families);
  collect(workers, worker_runs, &report.workers);
  collect(fingerprints, fingerprint_runs, &report.fingerprints);
  std::stable_sort(report.fingerprints.begin(), report.fingerprints.end(),
                   [](const GroupReportRow& a, const GroupReportRow& b) {
                     return YieldPerMinute(a.telemetry_events, a.telemetry_ms()) >
                            YieldPerMinute(b.telemetry_events, b.telemetry_ms());
                   });

  for (auto& [fp, row] : errors) {
    row.runs = static_cast<int64_t>(error_runs[fp].size());
    row.phases = static_cast<int64_t>(error_phases[fp].size());
    row.families.assign(error_families[fp].begin(), error_families[fp].end());
    report.top_errors.push_back(row);
  }
  std::sort(report.top_errors.begin(), report.top_errors.end(),
            [](const ErrorReportRow& a, const ErrorReportRow& b) {
              return std::tie(b.attempts, a.fingerprint) < std::tie(a.attempts, b.fingerprint);
            });
  if (report.top_errors.size() > kTopErrors) report.top_errors.resize(kTopErrors);

  // Timeline: attempt end times from the session start, in whole-minute
  // buckets, widened so a long session still fits in kMaxTimelineBuckets.
  if (!attempts.empty()) {
    int64_t first = session.started_at_ms;
    int64_t last = session.started_at_ms;
    for (const AttemptRecord& a : attempts) {
      if (first <= 0 || a.ended_at_ms < first) first = a.ended_at_ms;
      last = std::max(last, a.ended_at_ms);
    }
    const int64_t span = std::max<int64_t>(last - first, 0);
    const int64_t minutes = (span / kMinuteMs + kMaxTimelineBuckets) / kMaxTimelineBuckets;
    report.timeline_bucket_ms = std::max<int64_t>(minutes, 1) * kMinuteMs;
    report.timeline.resize(static_cast<size_t>(span / report.timeline_bucket_ms + 1));
    for (size_t i = 0; i < report.timeline.size(); ++i) {
      report.timeline[i].start_ms = first + static_cast<int64_t>(i) * report.timeline_bucket_ms;
    }
    for (const AttemptRecord& a : attempts) {
      TimelineBucket& b = report.timeline[static_cast<size_t>(
          std::max<int64_t>(a.ended_at_ms - first, 0) / report.timeline_bucket_ms)];
      ++b.finished;
      if (a.outcome == Outcome::kSucceeded) ++b.succeeded;
      if (IsFailure(a.outcome)) ++b.failed;
      AddTelemetry(b, a);
    }
  }
  report.telemetry_warnings = DetectTelemetryLoss(attempts, alarm_options);
  return report;
}

int64_t CountLateReportsOf(const std::vector<AttemptRecord>& attempts,
                           const std::vector<LateReportRecord>& late) {
  std::set<std::string> leases;
  for (const AttemptRecord& a : attempts) leases.insert(a.lease_id);
  int64_t n = 0;
  for (const LateReportRecord& l : late) n += leases.contains(l.lease_id) ? 1 : 0;
  return n;
}

absl::StatusOr<SessionReport> BuildSessionReport(StateStore& store, const std::string& session_id,
                                                 const RunFamilyRule& family_rule) {
  SLUICE_ASSIGN_OR_RETURN(std::optional<SessionRecord> session, store.GetSession(session_id));
  if (!session) return absl::NotFoundError(absl::StrCat("no session ", session_id));
  SLUICE_ASSIGN_OR_RETURN(PhaseCounts phases, store.CountPhases());
  SLUICE_ASSIGN_OR_RETURN(std::vector<AttemptRecord> attempts, store.ListAttempts(session_id));
  SLUICE_ASSIGN_OR_RETURN(std::vector<RunStats> stats, store.ListRunStats());
  SLUICE_ASSIGN_OR_RETURN(std::vector<LateReportRecord> late, store.ListLateReports());
  SessionReport report = ComputeSessionReport(*session, attempts, stats, phases, {}, family_rule);
  report.late_reports = CountLateReportsOf(attempts, late);
  return report;
}

std::string SessionReportJson(const SessionReport& r) {
  nlohmann::json j;
  j["session_id"] = r.session_id;
  j["state"] = r.state;
  j["end_reason"] = r.end_reason;
  j["started_at_ms"] = r.started_at_ms;
  j["ended_at_ms"] = r.ended_at_ms;
  j["attempts"] = r.attempts;
  j["outcomes"] = r.outcomes;
  nlohmann::json rates = nlohmann::json::object();
  for (const auto& [name, n] : r.outcomes) rates[name] = Rate(n, r.attempts);
  j["outcome_rates"] = rates;
  j["telemetry_events"] = r.telemetry_events;
  j["run_ms"] = r.run_ms;
  j["worker_minutes"] = static_cast<double>(r.run_ms) / kMinuteMs;
  j["yield_events_per_minute"] = YieldJson(r);
  UnknownTelemetryJson(r, j);
  j["unknown_telemetry_worker_minutes"] = static_cast<double>(r.unknown_telemetry_ms) / kMinuteMs;
  j["phases"] = PhasesJson(r.phases);
  j["durations"] = {{"succeeded", DurationsJson(r.success_durations)},
                    {"failed", DurationsJson(r.failure_durations)}};
  j["top_errors"] = nlohmann::json::array();
  for (const ErrorReportRow& e : r.top_errors) {
    j["top_errors"].push_back({{"fingerprint", e.fingerprint},
                               {"fingerprint_id", e.fingerprint_id},
                               {"example_error", e.example_error},
                               {"attempts", e.attempts},
                               {"runs", e.runs},
                               {"phases", e.phases},
                               {"families", e.families},
                               {"run_ms", e.run_ms},
                               {"worker_minutes", static_cast<double>(e.run_ms) / kMinuteMs}});
  }
  j["runs"] = nlohmann::json::array();
  for (const RunReportRow& run : r.runs) {
    nlohmann::json row = {{"run_id", run.run_id},
                          {"family", run.family},
                          {"attempts", run.attempts},
                          {"succeeded", run.succeeded},
                          {"failed", run.failed},
                          {"timed_out", run.timed_out},
                          {"telemetry_events", run.telemetry_events},
                          {"run_ms", run.run_ms},
                          {"yield_events_per_minute", YieldJson(run)},
                          {"phases", PhasesJson(run.phases)}};
    UnknownTelemetryJson(run, row);
    j["runs"].push_back(std::move(row));
  }
  j["families"] = nlohmann::json::array();
  for (const GroupReportRow& g : r.families) {
    nlohmann::json row = GroupJson(g, "family");
    row["phases"] = PhasesJson(g.phases);
    j["families"].push_back(std::move(row));
  }
  j["workers"] = nlohmann::json::array();
  for (const GroupReportRow& g : r.workers) j["workers"].push_back(GroupJson(g, "worker_id"));
  j["fingerprints"] = nlohmann::json::array();
  for (const GroupReportRow& g : r.fingerprints) {
    nlohmann::json row = GroupJson(g, "fingerprint");
    row["fingerprint_id"] = FingerprintId(g.key);
    j["fingerprints"].push_back(std::move(row));
  }
  j["timeline_bucket_ms"] = r.timeline_bucket_ms;
  j["timeline"] = nlohmann::json::array();
  for (const TimelineBucket& b : r.timeline) {
    nlohmann::json row = {{"start_ms", b.start_ms},
                          {"finished", b.finished},
                          {"succeeded", b.succeeded},
                          {"failed", b.failed},
                          {"telemetry_events", b.telemetry_events},
                          {"run_ms", b.run_ms},
                          {"yield_events_per_minute", YieldJson(b)}};
    UnknownTelemetryJson(b, row);
    j["timeline"].push_back(std::move(row));
  }
  // Derived from the timeline (so never parsed back): see marginal_curve.h.
  j["marginal_curve"] = nlohmann::json::array();
  for (const MarginalStep& s : ComputeMarginalCurve(r.timeline)) {
    j["marginal_curve"].push_back({{"worker_minutes", s.worker_minutes},
                                   {"telemetry_events", s.events},
                                   {"step_yield_events_per_minute", s.step_yield}});
  }
  j["late_reports"] = r.late_reports;
  j["telemetry_warnings"] = nlohmann::json::array();
  for (const TelemetryWarning& w : r.telemetry_warnings) {
    j["telemetry_warnings"].push_back({{"kind", std::string(TelemetryWarningKindName(w.kind))},
                                       {"worker_id", w.worker_id},
                                       {"attempts", w.attempts},
                                       {"zero_event_attempts", w.zero_event_attempts},
                                       {"message", w.message}});
  }
  j["skipped"] = nlohmann::json::array();
  for (const SkipRow& k : r.skipped) {
    j["skipped"].push_back({{"kind", k.kind},
                            {"run_id", k.run_id},
                            {"phase_id", k.phase_id},
                            {"phases", k.phases},
                            {"reason", k.reason}});
  }
  return j.dump(2);
}

std::string SkipRowsText(const std::vector<SkipRow>& rows) {
  if (rows.empty()) return "";
  std::string out = "not leased now:\n";
  for (const SkipRow& k : rows) {
    const std::string what = k.phase_id.empty() ? absl::StrCat("run ", k.run_id)
                                                : absl::StrCat(k.run_id, "/", k.phase_id);
    absl::StrAppendFormat(&out, "  %-18s %s (%d phase%s): %s\n", k.kind, what, k.phases,
                          k.phases == 1 ? "" : "s", k.reason);
  }
  return out;
}

std::string SessionReportText(const SessionReport& r) {
  std::string out;
  auto count = [&](const char* name) {
    auto it = r.outcomes.find(name);
    return it == r.outcomes.end() ? int64_t{0} : it->second;
  };
  absl::StrAppend(&out, "session ", r.session_id, " (", r.state,
                  r.end_reason.empty() ? "" : ": " + r.end_reason, ")\n");
  for (const TelemetryWarning& w : r.telemetry_warnings) {
    absl::StrAppend(&out, "WARNING: ", w.message, "\n");
  }
  absl::StrAppendFormat(&out, "attempts %d", r.attempts);
  for (const char* name :
       {"succeeded", "failed", "timed_out", "killed", "cancelled", "lost", "start_failed"}) {
    absl::StrAppendFormat(&out, "  %s %d (%s)", name, count(name),
                          Percent(count(name), r.attempts));
  }
  absl::StrAppendFormat(&out,
                        "\ntelemetry events %d over %.1f phase-minutes: yield %s events/min\n",
                        r.telemetry_events, static_cast<double>(r.telemetry_ms()) / 60'000.0,
                        YieldText(r.telemetry_events, r.telemetry_ms()));
  if (r.unknown_telemetry_attempts > 0) {
    absl::StrAppendFormat(&out,
                          "telemetry unknown for %d attempts (%.1f phase-minutes): the worker "
                          "could not count their events; left out of yield\n",
                          r.unknown_telemetry_attempts,
                          static_cast<double>(r.unknown_telemetry_ms) / 60'000.0);
  }
  absl::StrAppendFormat(&out, "phases now: %d pending, %d leased, %d succeeded, %d failed\n",
                        r.phases.pending, r.phases.leased, r.phases.succeeded, r.phases.failed);
  if (r.late_reports > 0) {
    absl::StrAppendFormat(&out,
                          "late reports %d (workers reported after their lease expired; "
                          "kept for the record, not counted)\n",
                          r.late_reports);
  }
  for (const auto& [label, d] :
       {std::pair<const char*, const DurationStats&>{"successes", r.success_durations},
        {"failures", r.failure_durations}}) {
    if (d.count == 0) continue;
    absl::StrAppendFormat(&out, "durations of %d %s: p50 %s  p90 %s  p95 %s  max %s\n", d.count,
                          label, Seconds(d.p50_ms), Seconds(d.p90_ms), Seconds(d.p95_ms),
                          Seconds(d.max_ms));
  }
  if (!r.top_errors.empty()) {
    absl::StrAppend(&out, "\nmost frequent errors:\n");
    absl::StrAppendFormat(&out, "  %8s  %-12s %6s %6s %9s  %s\n", "attempts", "fingerprint",
                          "phases", "runs", "worker-min", "example / families");
    for (const ErrorReportRow& e : r.top_errors) {
      std::string example = OneLine(e.example_error, 100);
      absl::StrAppendFormat(&out, "  %8d  %-12s %6d %6d %9.1f  %s\n", e.attempts, e.fingerprint_id,
                            e.phases, e.runs, static_cast<double>(e.run_ms) / kMinuteMs,
                            example.empty() ? e.fingerprint : example);
      absl::StrAppend(&out, "  ", std::string(47, ' '),
                      " families: ", absl::StrJoin(e.families, ", "), "\n");
    }
  }
  auto group_table = [&](const char* title, const std::vector<GroupReportRow>& rows) {
    if (rows.empty()) return;
    absl::StrAppendFormat(&out, "\n%-32s %5s %8s %9s %7s %8s %7s %10s %9s\n", title, "runs",
                          "attempts", "succeeded", "failed", "timeouts", "events", "worker-min",
                          "yield/min");
    for (const GroupReportRow& g : rows) {
      absl::StrAppendFormat(
          &out, "%-32s %5d %8d %9d %7d %8d %7s %10.1f %9s\n", g.key, g.runs, g.attempts,
          g.succeeded, g.failed, g.timed_out,
          EventsText(g.telemetry_events, g.attempts, g.unknown_telemetry_attempts),
          static_cast<double>(g.run_ms) / kMinuteMs,
          YieldText(g.telemetry_events, g.telemetry_ms()));
    }
  };
  if (!r.runs.empty()) {
    absl::StrAppendFormat(&out, "\n%-32s %8s %9s %7s %8s %7s %9s %s\n", "run", "attempts",
                          "succeeded", "failed", "timeouts", "events", "yield/min", "pending");
    for (const RunReportRow& run : r.runs) {
      absl::StrAppendFormat(
          &out, "%-32s %8d %9d %7d %8d %7s %9s %7d\n", run.run_id, run.attempts, run.succeeded,
          run.failed, run.timed_out,
          EventsText(run.telemetry_events, run.attempts, run.unknown_telemetry_attempts),
          YieldText(run.telemetry_events, run.telemetry_ms()), run.phases.pending);
    }
  }
  group_table("family", r.families);
  group_table("worker", r.workers);
  if (!r.timeline.empty()) {
    absl::StrAppendFormat(&out, "\ntimeline (%d-minute buckets from the session start):\n",
                          r.timeline_bucket_ms / kMinuteMs);
    absl::StrAppendFormat(&out, "  %6s %8s %9s %7s %7s %9s\n", "minute", "finished", "succeeded",
                          "failed", "events", "yield/min");
    const int64_t base = r.timeline.front().start_ms;
    for (const TimelineBucket& b : r.timeline) {
      absl::StrAppendFormat(&out, "  %6d %8d %9d %7d %7d %9s\n", (b.start_ms - base) / kMinuteMs,
                            b.finished, b.succeeded, b.failed, b.telemetry_events,
                            YieldText(b.telemetry_events, b.telemetry_ms()));
    }
  }
  if (const std::string curve = MarginalCurveText(ComputeMarginalCurve(r.timeline));
      !curve.empty()) {
    absl::StrAppend(&out, "\n", curve);
  }
  if (!r.skipped.empty()) absl::StrAppend(&out, "\n", SkipRowsText(r.skipped));
  return out;
}

absl::StatusOr<SessionReport> SessionReportFromJson(const std::string& json) {
  auto j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return absl::InvalidArgumentError("report is not a JSON object");
  try {
    SessionReport r;
    r.session_id = j.at("session_id").get<std::string>();
    r.state = j.at("state").get<std::string>();
    r.end_reason = j.at("end_reason").get<std::string>();
    r.started_at_ms = j.at("started_at_ms").get<int64_t>();
    r.ended_at_ms = j.at("ended_at_ms").get<int64_t>();
    r.attempts = j.at("attempts").get<int64_t>();
    r.outcomes = j.at("outcomes").get<std::map<std::string, int64_t>>();
    r.telemetry_events = j.at("telemetry_events").get<int64_t>();
    r.run_ms = j.at("run_ms").get<int64_t>();
    UnknownTelemetryFromJson(j, r);
    // null: no run time with known telemetry recorded (YieldJson).
    r.yield_per_minute = YieldPerMinute(r.telemetry_events, r.telemetry_ms());
    r.phases = PhasesFromJson(j.at("phases"));
    r.late_reports = j.value("late_reports", int64_t{0});
    for (const auto& e : j.at("top_errors")) {
      ErrorReportRow row;
      row.fingerprint = e.at("fingerprint").get<std::string>();
      row.fingerprint_id = e.at("fingerprint_id").get<std::string>();
      row.example_error = e.at("example_error").get<std::string>();
      row.attempts = e.at("attempts").get<int64_t>();
      row.runs = e.at("runs").get<int64_t>();
      row.run_ms = e.at("run_ms").get<int64_t>();
      row.phases = e.value("phases", int64_t{0});
      row.families = e.value("families", std::vector<std::string>{});
      r.top_errors.push_back(std::move(row));
    }
    for (const auto& e : j.at("runs")) {
      RunReportRow row;
      row.run_id = e.at("run_id").get<std::string>();
      row.family = e.value("family", RunFamily(row.run_id));
      row.attempts = e.at("attempts").get<int64_t>();
      row.succeeded = e.at("succeeded").get<int64_t>();
      row.failed = e.at("failed").get<int64_t>();
      row.timed_out = e.at("timed_out").get<int64_t>();
      row.telemetry_events = e.at("telemetry_events").get<int64_t>();
      row.run_ms = e.at("run_ms").get<int64_t>();
      UnknownTelemetryFromJson(e, row);
      row.phases = PhasesFromJson(e.at("phases"));
      r.runs.push_back(std::move(row));
    }
    // Keys added for issue 5: optional, so older reports still parse.
    if (j.contains("durations")) {
      r.success_durations = DurationsFromJson(j.at("durations").at("succeeded"));
      r.failure_durations = DurationsFromJson(j.at("durations").at("failed"));
    }
    for (const auto& e : j.value("families", nlohmann::json::array())) {
      r.families.push_back(GroupFromJson(e, "family"));
    }
    for (const auto& e : j.value("workers", nlohmann::json::array())) {
      r.workers.push_back(GroupFromJson(e, "worker_id"));
    }
    for (const auto& e : j.value("fingerprints", nlohmann::json::array())) {
      r.fingerprints.push_back(GroupFromJson(e, "fingerprint"));
    }
    r.timeline_bucket_ms = j.value("timeline_bucket_ms", int64_t{60'000});
    for (const auto& e : j.value("timeline", nlohmann::json::array())) {
      TimelineBucket b;
      b.start_ms = e.at("start_ms").get<int64_t>();
      b.finished = e.at("finished").get<int64_t>();
      b.succeeded = e.at("succeeded").get<int64_t>();
      b.failed = e.at("failed").get<int64_t>();
      b.telemetry_events = e.at("telemetry_events").get<int64_t>();
      b.run_ms = e.at("run_ms").get<int64_t>();
      UnknownTelemetryFromJson(e, b);
      r.timeline.push_back(b);
    }
    for (const auto& e : j.value("telemetry_warnings", nlohmann::json::array())) {
      TelemetryWarning w;
      w.kind = ParseTelemetryWarningKind(e.at("kind").get<std::string>());
      w.worker_id = e.at("worker_id").get<std::string>();
      w.attempts = e.at("attempts").get<int64_t>();
      w.zero_event_attempts = e.at("zero_event_attempts").get<int64_t>();
      w.message = e.at("message").get<std::string>();
      r.telemetry_warnings.push_back(std::move(w));
    }
    for (const auto& e : j.value("skipped", nlohmann::json::array())) {
      SkipRow k;
      k.kind = e.at("kind").get<std::string>();
      k.run_id = e.at("run_id").get<std::string>();
      k.phase_id = e.value("phase_id", "");
      k.phases = e.at("phases").get<int64_t>();
      k.reason = e.at("reason").get<std::string>();
      r.skipped.push_back(std::move(k));
    }
    return r;
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(std::string("malformed report: ") + e.what());
  }
}

}  // namespace sluice
