#include "coordinator/session_report.h"

#include <algorithm>
#include <cstdio>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/fingerprint.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace sluice {
namespace {

constexpr size_t kTopErrors = 10;

bool IsFailure(Outcome o) {
  return o == Outcome::kFailed || o == Outcome::kTimedOut || o == Outcome::kKilled;
}

std::string Percent(int64_t part, int64_t whole) {
  return whole == 0 ? "-"
                    : absl::StrFormat(
                          "%.1f%%", 100.0 * static_cast<double>(part) / static_cast<double>(whole));
}

}  // namespace

double YieldPerMinute(int64_t events, int64_t run_ms) {
  return run_ms <= 0 ? 0.0 : static_cast<double>(events) / (static_cast<double>(run_ms) / 60'000.0);
}

absl::StatusOr<SessionReport> BuildSessionReport(StateStore& store, const std::string& session_id) {
  SLUICE_ASSIGN_OR_RETURN(std::optional<SessionRecord> session, store.GetSession(session_id));
  if (!session) return absl::NotFoundError(absl::StrCat("no session ", session_id));
  SessionReport report;
  report.session_id = session->session_id;
  report.state = std::string(SessionStateName(session->state));
  report.end_reason = session->end_reason;
  report.started_at_ms = session->started_at_ms;
  report.ended_at_ms = session->ended_at_ms;
  SLUICE_ASSIGN_OR_RETURN(report.phases, store.CountPhases());

  SLUICE_ASSIGN_OR_RETURN(std::vector<AttemptRecord> attempts, store.ListAttempts(session_id));
  std::map<std::string, RunReportRow> runs;
  std::map<std::string, ErrorReportRow> errors;
  std::map<std::string, std::set<std::string>> error_runs;
  for (const AttemptRecord& a : attempts) {
    ++report.attempts;
    ++report.outcomes[std::string(OutcomeName(a.outcome))];
    report.telemetry_events += a.telemetry_events;
    report.run_ms += a.duration_ms;
    RunReportRow& run = runs[a.run_id];
    run.run_id = a.run_id;
    ++run.attempts;
    run.telemetry_events += a.telemetry_events;
    run.run_ms += a.duration_ms;
    if (a.outcome == Outcome::kSucceeded) ++run.succeeded;
    if (IsFailure(a.outcome)) ++run.failed;
    if (a.outcome == Outcome::kTimedOut) ++run.timed_out;
    if (a.outcome != Outcome::kSucceeded) {
      ErrorReportRow& e = errors[a.fingerprint];
      e.fingerprint = a.fingerprint;
      e.fingerprint_id = FingerprintId(a.fingerprint);
      if (e.example_error.empty()) e.example_error = a.error_text;
      ++e.attempts;
      e.run_ms += a.duration_ms;
      error_runs[a.fingerprint].insert(a.run_id);
    }
  }
  report.yield_per_minute = YieldPerMinute(report.telemetry_events, report.run_ms);

  SLUICE_ASSIGN_OR_RETURN(std::vector<RunStats> stats, store.ListRunStats());
  for (const RunStats& s : stats) {
    auto it = runs.find(s.run_id);
    if (it == runs.end()) continue;
    it->second.phases = PhaseCounts{s.pending, s.leased, s.succeeded, s.failed};
  }
  for (auto& [id, row] : runs) report.runs.push_back(row);
  for (auto& [fp, row] : errors) {
    row.runs = static_cast<int64_t>(error_runs[fp].size());
    report.top_errors.push_back(row);
  }
  std::sort(report.top_errors.begin(), report.top_errors.end(),
            [](const ErrorReportRow& a, const ErrorReportRow& b) {
              return std::tie(b.attempts, a.fingerprint) < std::tie(a.attempts, b.fingerprint);
            });
  if (report.top_errors.size() > kTopErrors) report.top_errors.resize(kTopErrors);
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
  j["telemetry_events"] = r.telemetry_events;
  j["run_ms"] = r.run_ms;
  j["yield_events_per_minute"] = r.yield_per_minute;
  j["phases"] = {{"pending", r.phases.pending},
                 {"leased", r.phases.leased},
                 {"succeeded", r.phases.succeeded},
                 {"failed", r.phases.failed}};
  j["top_errors"] = nlohmann::json::array();
  for (const ErrorReportRow& e : r.top_errors) {
    j["top_errors"].push_back({{"fingerprint", e.fingerprint},
                               {"fingerprint_id", e.fingerprint_id},
                               {"example_error", e.example_error},
                               {"attempts", e.attempts},
                               {"runs", e.runs},
                               {"run_ms", e.run_ms}});
  }
  j["runs"] = nlohmann::json::array();
  for (const RunReportRow& run : r.runs) {
    j["runs"].push_back(
        {{"run_id", run.run_id},
         {"attempts", run.attempts},
         {"succeeded", run.succeeded},
         {"failed", run.failed},
         {"timed_out", run.timed_out},
         {"telemetry_events", run.telemetry_events},
         {"run_ms", run.run_ms},
         {"yield_events_per_minute", YieldPerMinute(run.telemetry_events, run.run_ms)},
         {"phases",
          {{"pending", run.phases.pending},
           {"leased", run.phases.leased},
           {"succeeded", run.phases.succeeded},
           {"failed", run.phases.failed}}}});
  }
  return j.dump(2);
}

std::string SessionReportText(const SessionReport& r) {
  std::string out;
  auto count = [&](const char* name) {
    auto it = r.outcomes.find(name);
    return it == r.outcomes.end() ? int64_t{0} : it->second;
  };
  absl::StrAppend(&out, "session ", r.session_id, " (", r.state,
                  r.end_reason.empty() ? "" : ": " + r.end_reason, ")\n");
  absl::StrAppendFormat(&out, "attempts %d", r.attempts);
  for (const char* name : {"succeeded", "failed", "timed_out", "killed", "cancelled", "lost"}) {
    absl::StrAppendFormat(&out, "  %s %d (%s)", name, count(name),
                          Percent(count(name), r.attempts));
  }
  absl::StrAppendFormat(
      &out, "\ntelemetry events %d over %.1f phase-minutes: yield %.2f events/min\n",
      r.telemetry_events, static_cast<double>(r.run_ms) / 60'000.0, r.yield_per_minute);
  absl::StrAppendFormat(&out, "phases now: %d pending, %d leased, %d succeeded, %d failed\n",
                        r.phases.pending, r.phases.leased, r.phases.succeeded, r.phases.failed);
  if (!r.top_errors.empty()) {
    absl::StrAppend(&out, "\nmost frequent errors:\n");
    for (const ErrorReportRow& e : r.top_errors) {
      std::string example = e.example_error.substr(0, 100);
      std::replace(example.begin(), example.end(), '\n', ' ');
      absl::StrAppendFormat(&out, "  %4d x  %s  runs=%d  %s\n", e.attempts, e.fingerprint_id,
                            e.runs, example.empty() ? e.fingerprint : example);
    }
  }
  if (!r.runs.empty()) {
    absl::StrAppendFormat(&out, "\n%-32s %8s %9s %7s %8s %7s %9s\n", "run", "attempts", "succeeded",
                          "failed", "timeouts", "events", "yield/min");
    for (const RunReportRow& run : r.runs) {
      absl::StrAppendFormat(&out, "%-32s %8d %9d %7d %8d %7d %9.2f\n", run.run_id, run.attempts,
                            run.succeeded, run.failed, run.timed_out, run.telemetry_events,
                            YieldPerMinute(run.telemetry_events, run.run_ms));
    }
  }
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
    r.yield_per_minute = j.at("yield_events_per_minute").get<double>();
    const auto& p = j.at("phases");
    r.phases = PhaseCounts{p.at("pending").get<int64_t>(), p.at("leased").get<int64_t>(),
                           p.at("succeeded").get<int64_t>(), p.at("failed").get<int64_t>()};
    for (const auto& e : j.at("top_errors")) {
      ErrorReportRow row;
      row.fingerprint = e.at("fingerprint").get<std::string>();
      row.fingerprint_id = e.at("fingerprint_id").get<std::string>();
      row.example_error = e.at("example_error").get<std::string>();
      row.attempts = e.at("attempts").get<int64_t>();
      row.runs = e.at("runs").get<int64_t>();
      row.run_ms = e.at("run_ms").get<int64_t>();
      r.top_errors.push_back(std::move(row));
    }
    for (const auto& e : j.at("runs")) {
      RunReportRow row;
      row.run_id = e.at("run_id").get<std::string>();
      row.attempts = e.at("attempts").get<int64_t>();
      row.succeeded = e.at("succeeded").get<int64_t>();
      row.failed = e.at("failed").get<int64_t>();
      row.timed_out = e.at("timed_out").get<int64_t>();
      row.telemetry_events = e.at("telemetry_events").get<int64_t>();
      row.run_ms = e.at("run_ms").get<int64_t>();
      const auto& rp = e.at("phases");
      row.phases = PhaseCounts{rp.at("pending").get<int64_t>(), rp.at("leased").get<int64_t>(),
                               rp.at("succeeded").get<int64_t>(), rp.at("failed").get<int64_t>()};
      r.runs.push_back(std::move(row));
    }
    return r;
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(std::string("malformed report: ") + e.what());
  }
}

}  // namespace sluice
