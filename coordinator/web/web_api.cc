#include "coordinator/web/web_api.h"

#include <algorithm>
#include <map>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/insight/fingerprint_json.h"
#include "coordinator/insight/session_report.h"
#include "coordinator/store/store_codec.h"

namespace sluice {
namespace {

using nlohmann::json;

// The rate and ETA look at the last few minutes, not the whole history: a
// drain's speed changes as workers come and go.
constexpr int64_t kRateWindowMs = 5 * 60'000;

json PageJson(const PageQuery& page, size_t total) {
  return {{"offset", page.offset}, {"limit", page.limit}, {"total", total}};
}

template <typename T>
std::vector<T> Slice(std::vector<T> rows, const PageQuery& page) {
  const auto begin = std::min<size_t>(static_cast<size_t>(page.offset), rows.size());
  const auto end = std::min<size_t>(begin + static_cast<size_t>(page.limit), rows.size());
  return std::vector<T>(std::make_move_iterator(rows.begin() + static_cast<ptrdiff_t>(begin)),
                        std::make_move_iterator(rows.begin() + static_cast<ptrdiff_t>(end)));
}

json PhasesJson(const PhaseCounts& p) {
  return {{"pending", p.pending},           {"leased", p.leased},
          {"succeeded", p.succeeded},       {"failed", p.failed},
          {"done", p.succeeded + p.failed}, {"total", p.total()}};
}

json SessionJson(const CoordinatorStatus& status) {
  if (!status.session) return nullptr;
  const SessionRecord& s = *status.session;
  return {
      {"session_id", s.session_id},       {"state", SessionStateName(s.state)},
      {"started_at_ms", s.started_at_ms}, {"ended_at_ms", s.ended_at_ms},
      {"end_reason", s.end_reason},       {"finished_attempts", status.session_finished},
      {"done", status.session_done},      {"settings", json::parse(SettingsToJson(s.settings))}};
}

json PauseJson(const CoordinatorStatus& status) {
  if (!status.pause) return nullptr;
  return {{"session_id", status.pause->session_id},
          {"reason", status.pause->reason},
          {"paused_at_ms", status.pause->paused_at_ms}};
}

json WarningsJson(const std::vector<TelemetryWarning>& warnings) {
  json out = json::array();
  for (const TelemetryWarning& w : warnings) {
    out.push_back({{"kind", TelemetryWarningKindName(w.kind)},
                   {"worker_id", w.worker_id},
                   {"attempts", w.attempts},
                   {"zero_event_attempts", w.zero_event_attempts},
                   {"message", w.message}});
  }
  return out;
}

// One row of the runs page: a run, or a family's runs added up.
struct RunRow {
  std::string run_id;  // the family's name for family rows
  std::string family;
  int64_t runs = 1;
  RunStats stats;
  std::vector<const SkipRow*> skips;
  double yield() const {
    return YieldPerMinute(stats.telemetry_events, stats.run_ms - stats.unknown_telemetry_ms);
  }
};

bool KeepRow(const RunRow& r, const RunsQuery& q) {
  if (!q.contains.empty() && !absl::StrContains(r.run_id, q.contains) &&
      !absl::StrContains(r.family, q.contains)) {
    return false;
  }
  if (q.state == "active") return r.stats.pending + r.stats.leased > 0;
  if (q.state == "done") return r.stats.pending + r.stats.leased == 0;
  if (q.state == "failed") return r.stats.failed > 0;
  if (q.state == "skipped") return !r.skips.empty();
  return true;
}

// Sorts by the query's key; ties by run id so pages are stable.
void SortRows(std::vector<RunRow>& rows, const RunsQuery& q) {
  auto key = [&q](const RunRow& r) -> double {
    const RunStats& s = r.stats;
    if (q.sort == "attempts") return static_cast<double>(s.attempts);
    if (q.sort == "successes") return static_cast<double>(s.successes);
    if (q.sort == "events") return static_cast<double>(s.telemetry_events);
    if (q.sort == "yield") return r.yield();
    if (q.sort == "pending") return static_cast<double>(s.pending);
    if (q.sort == "failed") return static_cast<double>(s.failed);
    return static_cast<double>(s.run_ms);  // run_ms
  };
  const bool by_text = q.sort == "run_id" || q.sort == "family";
  std::stable_sort(rows.begin(), rows.end(), [&](const RunRow& a, const RunRow& b) {
    if (by_text) {
      const std::string& ka = q.sort == "family" ? a.family : a.run_id;
      const std::string& kb = q.sort == "family" ? b.family : b.run_id;
      if (ka != kb) return q.descending ? ka > kb : ka < kb;
    } else if (key(a) != key(b)) {
      return q.descending ? key(a) > key(b) : key(a) < key(b);
    }
    return a.run_id < b.run_id;
  });
}

json RunRowJson(const RunRow& r, bool by_family) {
  const RunStats& s = r.stats;
  json skips = json::array();
  for (const SkipRow* k : r.skips) {
    skips.push_back({{"kind", k->kind},
                     {"code", SkipReasonName(k->code)},
                     {"run_id", k->run_id},
                     {"phase_id", k->phase_id},
                     {"phases", k->phases},
                     {"reason", k->reason}});
  }
  json row = {{by_family ? "family" : "run_id", r.run_id},
              {"phases",
               {{"pending", s.pending},
                {"leased", s.leased},
                {"succeeded", s.succeeded},
                {"failed", s.failed}}},
              {"attempts", s.attempts},
              {"successes", s.successes},
              {"timeouts", s.timeouts},
              {"telemetry_events", s.telemetry_events},
              {"run_ms", s.run_ms},
              {"unknown_telemetry_run_ms", s.unknown_telemetry_ms},
              {"yield_per_minute", r.yield()},
              {"skips", std::move(skips)}};
  if (by_family) {
    row["runs"] = r.runs;
  } else {
    row["family"] = r.family;
  }
  return row;
}

json AttemptJson(const AttemptRecord& a) {
  return {{"lease_id", a.lease_id},
          {"attempt", a.attempt},
          {"worker_id", a.worker_id},
          {"session_id", a.session_id},
          {"outcome", OutcomeName(a.outcome)},
          {"exit_code", a.exit_code},
          {"signal", a.signal},
          {"duration_ms", a.duration_ms},
          {"started_at_ms", a.started_at_ms},
          {"ended_at_ms", a.ended_at_ms},
          {"fingerprint", a.fingerprint},
          {"error_text", a.error_text},
          // null: the worker could not count them (not 0 events).
          {"telemetry_events", a.telemetry_unknown ? json() : json(a.telemetry_events)},
          {"telemetry_unknown", a.telemetry_unknown},
          {"stdout_tail", a.stdout_tail},
          {"stderr_tail", a.stderr_tail}};
}

}  // namespace

WebApi::WebApi(Coordinator& coordinator, const Clock& clock, WebApiOptions options)
    : coordinator_(coordinator),
      clock_(clock),
      run_table_(
          clock, [this] { return ReadRunTable(); },
          // The page polls every 2 s: a fresher snapshot would not be seen.
          RunTableOptions{.background = options.background_run_table,
                          .min_refresh_ms = 2'000,
                          .keep_warm_ms = 60'000}) {
  // The coordinator validated its pattern at start-up; the default rule is
  // only a fallback for a pattern that no longer compiles.
  if (auto rule = RunFamilyRule::Compile(coordinator.config().family_pattern); rule.ok()) {
    family_rule_ = *std::move(rule);
  }
}

absl::Status WebApi::ValidatePage(const PageQuery& page) {
  if (page.offset < 0) return absl::InvalidArgumentError("offset must be >= 0");
  if (page.limit < 1 || page.limit > kMaxPageSize) {
    return absl::InvalidArgumentError(absl::StrCat("limit must be 1..", kMaxPageSize));
  }
  return absl::OkStatus();
}

absl::StatusOr<WebSample> WebApi::TakeSample(const PhaseCounts& phases) {
  WebSample sample;
  sample.at_ms = clock_.NowMs();
  sample.done = phases.succeeded + phases.failed;
  sample.total = phases.total();
  SLUICE_ASSIGN_OR_RETURN(auto outcomes, coordinator_.OutcomeTotals());
  for (const auto& [outcome, n] : outcomes) sample.outcomes[std::string(OutcomeName(outcome))] = n;
  SLUICE_ASSIGN_OR_RETURN(DrainPolicy::EffortTotals effort, coordinator_.Effort());
  sample.telemetry_events = effort.telemetry_events;
  sample.run_ms = effort.run_ms;
  sample.unknown_telemetry_ms = effort.unknown_telemetry_ms;
  history_.Add(sample);
  return sample;
}

absl::Status WebApi::Sample() {
  // Counters only (phase counts, outcome and effort totals): a sample costs
  // the same at 10 runs as at 10,000.
  SLUICE_RETURN_IF_ERROR(coordinator_.CheckLeader());
  SLUICE_ASSIGN_OR_RETURN(PhaseCounts phases, coordinator_.store().CountPhases());
  return TakeSample(phases).status();
}

absl::StatusOr<json> WebApi::Overview() {
  SLUICE_ASSIGN_OR_RETURN(CoordinatorStatus status, coordinator_.Status());
  SLUICE_ASSIGN_OR_RETURN(WebSample now, TakeSample(status.phases));
  int64_t attempts = 0;
  for (const auto& [outcome, n] : now.outcomes) attempts += n;
  const double rate = history_.DonePerMinute(kRateWindowMs);
  const int64_t remaining = status.phases.pending + status.phases.leased;
  const bool active = status.session && status.session->state == SessionState::kActive;
  json history = json::array();
  for (const WebSample& s : history_.Samples()) {
    history.push_back({{"at_ms", s.at_ms},
                       {"done", s.done},
                       {"outcomes", s.outcomes},
                       {"telemetry_events", s.telemetry_events},
                       {"run_ms", s.run_ms},
                       {"unknown_telemetry_run_ms", s.unknown_telemetry_ms},
                       {"yield_per_minute",
                        YieldPerMinute(s.telemetry_events, s.run_ms - s.unknown_telemetry_ms)}});
  }
  return json{{"now_ms", now.at_ms},
              {"phases", PhasesJson(status.phases)},
              {"attempts", attempts},
              {"attempts_by_outcome", now.outcomes},
              {"telemetry_events", now.telemetry_events},
              {"run_ms", now.run_ms},
              {"worker_minutes", static_cast<double>(now.run_ms) / 60000.0},
              {"unknown_telemetry_run_ms", now.unknown_telemetry_ms},
              // The report's definition (session_report.h): events per minute of the
              // run time with known telemetry.
              {"yield_per_minute",
               YieldPerMinute(now.telemetry_events, now.run_ms - now.unknown_telemetry_ms)},
              {"done_per_minute", rate},
              // No ETA once the session is over: what is left waits for an operator.
              {"eta_seconds",
               rate > 0 && active ? json(static_cast<double>(remaining) * 60.0 / rate) : json()},
              {"workers", status.workers.size()},
              {"active_leases", status.active_leases.size()},
              {"late_reports", status.late_reports},
              {"session", SessionJson(status)},
              {"pause", PauseJson(status)},
              {"telemetry_warnings", WarningsJson(status.telemetry_warnings)},
              {"history", std::move(history)}};
}

absl::StatusOr<json> WebApi::Runs(const RunsQuery& query) {
  SLUICE_RETURN_IF_ERROR(ValidatePage(query.page));
  static const std::vector<std::string> kSorts = {"run_id",    "family", "attempts",
                                                  "successes", "events", "yield",
                                                  "pending",   "failed", "run_ms"};
  if (std::find(kSorts.begin(), kSorts.end(), query.sort) == kSorts.end()) {
    return absl::InvalidArgumentError(absl::StrCat("sort: unknown key \"", query.sort, "\""));
  }
  if (!query.state.empty() && query.state != "active" && query.state != "done" &&
      query.state != "failed" && query.state != "skipped") {
    return absl::InvalidArgumentError("state must be active, done, failed or skipped");
  }
  // Runs one by one, by a stored column: the store filters, sorts and cuts
  // the page. Families, the family sort and the skipped filter need every
  // run: they read the run table's last snapshot.
  if (!query.by_family && query.sort != "family" && query.state != "skipped") {
    return RunsFromStorePage(query);
  }
  SLUICE_RETURN_IF_ERROR(coordinator_.CheckLeader());
  SLUICE_ASSIGN_OR_RETURN(std::shared_ptr<const RunTableSnapshot> table, run_table_.Get());
  if (table == nullptr) {
    // The first snapshot since start is still being read: the page polls.
    return json{{"page", PageJson(query.page, 0)},
                {"rows", json::array()},
                {"as_of_ms", nullptr},
                {"loading", true}};
  }
  return RunsFromSnapshot(query, *table);
}

absl::StatusOr<RunTableSnapshot> WebApi::ReadRunTable() {
  SLUICE_RETURN_IF_ERROR(coordinator_.CheckLeader());
  RunTableSnapshot table;
  SLUICE_ASSIGN_OR_RETURN(table.runs, coordinator_.store().ListRunStats());
  SLUICE_ASSIGN_OR_RETURN(auto session, coordinator_.store().LatestSession());
  // Run-level reasons only, as on the store's pages: the phase-level ones of
  // `sluice status` (labels no worker has, failed for good) read phases and
  // every attempt, and failed phases show in phases.failed.
  SLUICE_ASSIGN_OR_RETURN(
      table.skips,
      coordinator_.ExplainRunSkips(table.runs, session ? session->settings : SessionSettings{}));
  return table;
}

json WebApi::RunsFromSnapshot(const RunsQuery& query, const RunTableSnapshot& table) const {
  const std::vector<RunStats>& stats = table.runs;
  std::map<std::string, std::vector<const SkipRow*>> skips_by_run;
  for (const SkipRow& k : table.skips) skips_by_run[k.run_id].push_back(&k);

  std::vector<RunRow> rows;
  std::map<std::string, size_t> family_index;
  for (const RunStats& s : stats) {
    const std::string family = family_rule_.Family(s.run_id);
    auto skips = skips_by_run.find(s.run_id);
    if (!query.by_family) {
      RunRow row{.run_id = s.run_id, .family = family, .runs = 1, .stats = s, .skips = {}};
      if (skips != skips_by_run.end()) row.skips = skips->second;
      rows.push_back(std::move(row));
      continue;
    }
    auto [it, added] = family_index.try_emplace(family, rows.size());
    if (added)
      rows.push_back(
          RunRow{.run_id = family, .family = family, .runs = 0, .stats = {}, .skips = {}});
    RunRow& row = rows[it->second];
    ++row.runs;
    AddRunStats(row.stats, s);
    if (skips != skips_by_run.end()) {
      row.skips.insert(row.skips.end(), skips->second.begin(), skips->second.end());
    }
  }
  std::erase_if(rows, [&](const RunRow& r) { return !KeepRow(r, query); });
  SortRows(rows, query);
  const size_t total = rows.size();
  json out = {{"page", PageJson(query.page, total)},
              {"rows", json::array()},
              {"as_of_ms", table.taken_at_ms},
              {"loading", false}};
  for (const RunRow& r : Slice(std::move(rows), query.page)) {
    out["rows"].push_back(RunRowJson(r, query.by_family));
  }
  return out;
}

absl::StatusOr<json> WebApi::RunsFromStorePage(const RunsQuery& query) {
  SLUICE_RETURN_IF_ERROR(coordinator_.CheckLeader());
  RunStatsQuery q;
  q.contains = query.contains;
  q.state = query.state;
  q.sort = query.sort;
  q.descending = query.descending;
  q.offset = query.page.offset;
  q.limit = query.page.limit;
  SLUICE_ASSIGN_OR_RETURN(RunStatsPage page, coordinator_.store().ListRunStatsPage(q));
  SLUICE_ASSIGN_OR_RETURN(auto session, coordinator_.store().LatestSession());
  // Why the page's runs are excluded or deferred, decided for them alone.
  SLUICE_ASSIGN_OR_RETURN(
      std::vector<SkipRow> skipped,
      coordinator_.ExplainRunSkips(page.rows, session ? session->settings : SessionSettings{}));
  json out = {{"page", PageJson(query.page, static_cast<size_t>(page.total))},
              {"rows", json::array()},
              {"as_of_ms", nullptr},  // read now
              {"loading", false}};
  for (const RunStats& s : page.rows) {
    RunRow row{.run_id = s.run_id,
               .family = family_rule_.Family(s.run_id),
               .runs = 1,
               .stats = s,
               .skips = {}};
    for (const SkipRow& k : skipped) {
      if (k.run_id == s.run_id) row.skips.push_back(&k);
    }
    out["rows"].push_back(RunRowJson(row, /*by_family=*/false));
  }
  return out;
}

absl::StatusOr<json> WebApi::Fingerprints(const PageQuery& page) {
  SLUICE_RETURN_IF_ERROR(ValidatePage(page));
  SLUICE_ASSIGN_OR_RETURN(std::vector<FingerprintInfo> list, coordinator_.ListFingerprints());
  SLUICE_ASSIGN_OR_RETURN(auto session, coordinator_.store().LatestSession());
  // The repeat rule of the latest session decides what blocks (as `sluice fingerprints`).
  const int32_t max_repeats = session ? session->settings.max_fingerprint_repeats
                                      : SessionSettings{}.max_fingerprint_repeats;
  const size_t total = list.size();
  json out = {{"page", PageJson(page, total)},
              {"max_fingerprint_repeats", max_repeats},
              {"rows", json::array()}};
  for (const FingerprintInfo& f : Slice(std::move(list), page)) {
    out["rows"].push_back(FingerprintJson(f, max_repeats));
  }
  return out;
}

absl::StatusOr<json> WebApi::Workers(bool serving) {
  SLUICE_ASSIGN_OR_RETURN(CoordinatorStatus status, coordinator_.Status());
  const int64_t now = clock_.NowMs();
  // A busy worker that missed two heartbeats is close to losing its leases
  // (the TTL is a few heartbeat intervals).
  const int64_t stale_after_ms = 2 * coordinator_.config().heartbeat_interval_ms;
  std::map<std::string, std::vector<const LeaseGrant*>> leases;
  for (const LeaseGrant& l : status.active_leases) leases[l.worker_id].push_back(&l);
  std::map<std::string, const TelemetryWarning*> silent;
  for (const TelemetryWarning& w : status.telemetry_warnings) {
    if (!w.worker_id.empty()) silent[w.worker_id] = &w;
  }
  json rows = json::array();
  for (const WorkerInfo& w : status.workers) {
    json current = json::array();
    // The store keeps no heartbeat time; a renewal sets a lease's expiry to
    // now + TTL, so a busy worker's last heartbeat is its latest expiry - TTL.
    // An idle worker only long-polls for leases: its last contact is unknown.
    std::optional<int64_t> last_heartbeat;
    for (const LeaseGrant* l : leases[w.worker_id]) {
      current.push_back({{"lease_id", l->lease_id},
                         {"run_id", l->run_id},
                         {"phase_id", l->phase_id},
                         {"attempt", l->attempt},
                         {"elapsed_ms", std::max<int64_t>(0, now - l->leased_at_ms)},
                         {"timeout_seconds", l->timeout_seconds}});
      const int64_t renewed = l->expires_at_ms - coordinator_.config().lease_ttl_ms;
      last_heartbeat = std::max(last_heartbeat.value_or(renewed), renewed);
    }
    std::string health = "idle";
    if (last_heartbeat) health = now - *last_heartbeat <= stale_after_ms ? "ok" : "stale";
    if (silent.contains(w.worker_id)) health = "silent";
    rows.push_back({{"worker_id", w.worker_id},
                    {"host", w.host},
                    {"version", w.version},
                    {"labels", w.labels},
                    {"slots", w.slots},
                    {"slots_in_use", current.size()},
                    {"registered_at_ms", w.last_seen_ms},
                    {"last_heartbeat_ms", last_heartbeat ? json(*last_heartbeat) : json()},
                    {"since_last_heartbeat_ms",
                     last_heartbeat ? json(std::max<int64_t>(0, now - *last_heartbeat)) : json()},
                    {"health", health},
                    {"current", std::move(current)}});
  }
  return json{{"now_ms", now},
              {"coordinator_serving", serving},
              {"heartbeat_interval_ms", coordinator_.config().heartbeat_interval_ms},
              {"pause", PauseJson(status)},
              {"telemetry_warnings", WarningsJson(status.telemetry_warnings)},
              {"rows", std::move(rows)}};
}

absl::StatusOr<json> WebApi::Phase(const std::string& run_id, const std::string& phase_id,
                                   const PageQuery& page) {
  SLUICE_RETURN_IF_ERROR(ValidatePage(page));
  if (run_id.empty() || phase_id.empty()) {
    return absl::InvalidArgumentError("run and phase are required");
  }
  SLUICE_RETURN_IF_ERROR(coordinator_.CheckLeader());
  SLUICE_ASSIGN_OR_RETURN(auto phase, coordinator_.store().GetPhase({run_id, phase_id}));
  if (!phase) return absl::NotFoundError(absl::StrCat("no phase ", run_id, "/", phase_id));
  SLUICE_ASSIGN_OR_RETURN(auto session, coordinator_.store().LatestSession());
  // Every session's attempts of this phase, newest first, one page of them
  // read through the store's index by phase (with their tails: only here).
  SLUICE_ASSIGN_OR_RETURN(AttemptPage attempts, coordinator_.store().ListPhaseAttempts(
                                                    {run_id, phase_id}, page.offset, page.limit));
  const size_t total = static_cast<size_t>(attempts.total);
  json rows = json::array();
  for (const AttemptRecord& a : attempts.rows) rows.push_back(AttemptJson(a));
  const PhaseRecord& p = *phase;
  return json{{"run_id", p.spec.run_id},
              {"phase_id", p.spec.phase_id},
              {"family", family_rule_.Family(p.spec.run_id)},
              {"state", PhaseStateName(p.state)},
              {"attempts", p.attempts},
              {"requeues", p.requeues},
              {"final_outcome", p.final_outcome ? json(OutcomeName(*p.final_outcome)) : json()},
              {"telemetry_events", p.telemetry_events},
              {"labels", p.spec.labels},
              {"priority", p.spec.priority},
              {"last_error", p.spec.last_error},
              {"session_id", session ? session->session_id : ""},
              {"page", PageJson(page, total)},
              {"rows", std::move(rows)}};
}

absl::StatusOr<json> WebApi::Unblock(const std::string& fingerprint) {
  SLUICE_ASSIGN_OR_RETURN(std::string key, coordinator_.UnblockFingerprint(fingerprint));
  run_table_.Invalidate();  // its runs' skip reasons are gone
  return json{{"unblocked", key}};
}

absl::StatusOr<json> WebApi::Resume() {
  SLUICE_ASSIGN_OR_RETURN(LeasingPause pause, coordinator_.ResumeLeasing(""));
  return json{{"session_id", pause.session_id}, {"was_paused_for", pause.reason}};
}

}  // namespace sluice
