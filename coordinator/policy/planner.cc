#include "coordinator/policy/planner.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "coordinator/policy/outcome_evidence.h"

namespace sluice {
namespace {

SkipRow Row(const PolicyReason& reason, std::string run_id, std::string phase_id, int64_t phases) {
  return {std::string(SkipKindName(reason.code)),
          std::move(run_id),
          std::move(phase_id),
          phases,
          reason.Text(),
          reason.code};
}

}  // namespace

absl::StatusOr<LeasePlan> Planner::Plan(const SessionSettings& settings, int64_t limit) {
  SLUICE_ASSIGN_OR_RETURN(std::vector<RunStats> runs, run_stats_());
  const int64_t now = clock_.NowMs();
  LeasePlan plan;
  SLUICE_ASSIGN_OR_RETURN(std::vector<RunDecision> decisions, policy_.Decide(runs, settings, now));
  plan.curve = ComputeExpectedCurve(decisions);
  for (RunDecision& d : decisions) {
    if (!d.excluded.empty()) plan.excluded.push_back(std::move(d));
  }
  // Simulates one label-less worker leasing one phase at a time with no
  // outcome arriving: each lease marks its run as sampled and in flight,
  // exactly as the lease broker's re-ranking sees it.
  std::map<std::string, std::vector<PhaseRecord>> queues;
  std::map<std::string, size_t> next;
  while (static_cast<int64_t>(plan.leases.size()) < limit) {
    SLUICE_ASSIGN_OR_RETURN(const std::vector<RunRanking> ranked,
                            policy_.Rank(runs, settings, now));
    if (ranked.empty()) break;
    const RunRanking& best = ranked.front();
    const std::string run_id = best.run_id;
    auto stats = std::find_if(runs.begin(), runs.end(),
                              [&](const RunStats& r) { return r.run_id == run_id; });
    if (!queues.contains(run_id)) {
      SLUICE_ASSIGN_OR_RETURN(queues[run_id], store_.ListPendingPhases(run_id, stats->pending));
    }
    std::vector<PhaseRecord>& queue = queues[run_id];
    size_t& i = next[run_id];
    while (i < queue.size() && !queue[i].spec.labels.empty()) {
      plan.needs_labels.push_back(queue[i].spec);
      ++i;
    }
    if (i >= queue.size()) {
      stats->pending = 0;  // nothing a label-less worker could take
      continue;
    }
    plan.leases.push_back({queue[i].spec.run_id, queue[i].spec.phase_id,
                           queue[i].attempts + queue[i].requeues + 1,
                           !best.deferred.empty() ? best.deferred.Text()
                           : best.explored        ? "best estimated yield"
                                                  : "sampling a new run",
                           best.expected_yield});
    ++i;
    --stats->pending;
    ++stats->leased;
    // The next phase of this run is the new best of the run.
    stats->best_pending_priority = i < queue.size() ? queue[i].spec.priority : 0;
  }
  return plan;
}

absl::StatusOr<std::vector<SkipRow>> Planner::ExplainSkips(const SessionSettings& settings) {
  SLUICE_ASSIGN_OR_RETURN(std::vector<RunStats> runs, run_stats_());
  SLUICE_ASSIGN_OR_RETURN(std::vector<SkipRow> rows, ExplainRunSkips(runs, settings));
  SLUICE_ASSIGN_OR_RETURN(std::vector<WorkerInfo> workers, store_.ListWorkers());
  constexpr int64_t kMaxWaitingRows = 100;
  // Only phases that require labels can wait for a worker, and the store
  // lists those without reading the rest of the backlog; beyond this many
  // the rest is not checked (status must stay cheap at a million phases).
  constexpr int64_t kMaxLabelledChecked = 10'000;
  int64_t waiting = 0;
  {
    SLUICE_ASSIGN_OR_RETURN(std::vector<PhaseRecord> pending,
                            store_.ListPendingLabelledPhases(kMaxLabelledChecked));
    for (const PhaseRecord& p : pending) {
      const bool some_worker_fits =
          std::any_of(workers.begin(), workers.end(), [&](const WorkerInfo& w) {
            return std::all_of(
                p.spec.labels.begin(), p.spec.labels.end(), [&](const std::string& l) {
                  return std::find(w.labels.begin(), w.labels.end(), l) != w.labels.end();
                });
          });
      if (some_worker_fits) continue;
      if (++waiting > kMaxWaitingRows) continue;  // summarised below
      rows.push_back(Row({SkipReason::kNeedsLabels, absl::StrJoin(p.spec.labels, ",")},
                         p.spec.run_id, p.spec.phase_id, 1));
    }
  }
  if (waiting > kMaxWaitingRows) {
    // One row per phase would flood status; the rest is counted.
    rows.push_back(Row({SkipReason::kNeedsLabelsUnlisted, ""}, "*", "", waiting - kMaxWaitingRows));
  }
  SLUICE_RETURN_IF_ERROR(AddFailedForGoodRows(runs, settings, &rows));
  return rows;
}

absl::StatusOr<std::vector<SkipRow>> Planner::ExplainRunSkips(const std::vector<RunStats>& runs,
                                                              const SessionSettings& settings) {
  SLUICE_ASSIGN_OR_RETURN(std::vector<RunDecision> decisions,
                          policy_.Decide(runs, settings, clock_.NowMs()));
  std::vector<SkipRow> rows;
  for (const RunDecision& d : decisions) {
    if (!d.excluded.empty()) {
      rows.push_back(Row(d.excluded, d.ranking.run_id, "", d.pending));
    } else if (!d.ranking.deferred.empty()) {
      rows.push_back(Row(d.ranking.deferred, d.ranking.run_id, "", d.pending));
    }
  }
  return rows;
}

absl::Status Planner::AddFailedForGoodRows(const std::vector<RunStats>& runs,
                                           const SessionSettings& settings,
                                           std::vector<SkipRow>* rows) {
  if (std::none_of(runs.begin(), runs.end(), [](const RunStats& r) { return r.failed > 0; })) {
    return absl::OkStatus();
  }
  // Which budget ran out, per failed phase: its own outcomes (lost,
  // cancelled and start_failed ones are not its own) reached
  // max_attempts_per_phase, or else the requeue budget ended it.
  absl::MutexLock lock(&spent_mu_);
  SLUICE_RETURN_IF_ERROR(ReadOnSpentAttempts());
  // Only runs with failed phases are rows: only their phases are looked up.
  std::vector<std::pair<PhaseKey, int64_t>> attempts_spent;
  for (const RunStats& run : runs) {
    if (run.failed <= 0) continue;
    for (auto it = spent_.lower_bound(PhaseKey{run.run_id, ""});
         it != spent_.end() && it->first.run_id == run.run_id; ++it) {
      attempts_spent.push_back(*it);
    }
  }
  std::map<std::string, std::pair<int64_t, int64_t>> by_run;  // exhausted, requeues
  for (const auto& [key, spent] : attempts_spent) {
    SLUICE_ASSIGN_OR_RETURN(std::optional<PhaseRecord> phase, store_.GetPhase(key));
    if (!phase || phase->state != PhaseState::kFailed) continue;
    auto& [exhausted, requeues] = by_run[key.run_id];
    ++(spent >= settings.max_attempts_per_phase ? exhausted : requeues);
  }
  for (const RunStats& run : runs) {
    if (run.failed <= 0) continue;
    auto it = by_run.find(run.run_id);
    if (it == by_run.end()) {
      rows->push_back(Row(DrainPolicy::FailedForGood(settings), run.run_id, "", run.failed));
      continue;
    }
    const auto [exhausted, requeues] = it->second;
    if (exhausted > 0) {
      rows->push_back(Row(DrainPolicy::FailedForGood(settings, FailedBudget::kAttempts), run.run_id,
                          "", exhausted));
    }
    if (requeues > 0) {
      rows->push_back(Row(DrainPolicy::FailedForGood(settings, FailedBudget::kRequeues), run.run_id,
                          "", requeues));
    }
  }
  return absl::OkStatus();
}

namespace {

void CountSpent(const AttemptRecord& a, std::map<PhaseKey, int64_t>& spent) {
  PhaseKey key{a.run_id, a.phase_id};
  if (a.outcome == Outcome::kSucceeded) {
    spent.erase(key);
  } else if (SpendsAnAttempt(a.outcome)) {
    ++spent[std::move(key)];
  } else {
    spent.try_emplace(std::move(key), 0);  // requeued only: still a phase to explain
  }
}

}  // namespace

class Planner::SpentFollower : public HistoryFollower {
 public:
  explicit SpentFollower(Planner& planner) : planner_(planner), term_(planner.term_.load()) {}
  void Observe(const AttemptRecord& attempt) override { CountSpent(attempt, spent_); }
  void Done(int64_t cursor) override { planner_.AdoptSpent(std::move(spent_), cursor, term_); }

 private:
  Planner& planner_;
  const uint64_t term_;
  SpentByPhase spent_;
};

std::unique_ptr<HistoryFollower> Planner::FollowHistory() {
  return std::make_unique<SpentFollower>(*this);
}

void Planner::DropSpentIfStale() {
  const uint64_t term = term_.load();
  if (spent_term_ == term) return;
  spent_.clear();
  spent_cursor_ = 0;
  spent_term_ = term;
}

void Planner::AdoptSpent(SpentByPhase spent, int64_t cursor, uint64_t term) {
  absl::MutexLock lock(&spent_mu_);
  if (term != term_.load()) return;  // read before a new term began
  DropSpentIfStale();
  if (cursor <= spent_cursor_) return;  // a status read further meanwhile
  spent_ = std::move(spent);
  spent_cursor_ = cursor;
}

absl::Status Planner::ReadOnSpentAttempts() {
  DropSpentIfStale();
  // A chunk at a time. Usually only the tail since the policy's replay
  // (FollowHistory); without it the first status walks the whole history
  // once, holding one chunk of it.
  return ReadAttemptsOn(store_, "", &spent_cursor_,
                        [this](const AttemptRecord& a) { CountSpent(a, spent_); });
}

absl::StatusOr<SessionReport> Planner::ReportFor(const std::string& session_id) {
  SLUICE_ASSIGN_OR_RETURN(std::optional<SessionRecord> latest, store_.LatestSession());
  std::string id = session_id;
  if (id.empty()) {
    if (!latest) return absl::NotFoundError("no session yet");
    id = latest->session_id;
  }
  // The scheduler's family rule (--family-pattern): the report's family
  // table names the families the scheduler and the web view work with.
  SLUICE_ASSIGN_OR_RETURN(
      SessionReport report,
      BuildSessionReport(store_, id, policy_.scheduler().options().family_rule));
  if (latest && latest->session_id == id) {
    SLUICE_ASSIGN_OR_RETURN(report.skipped, ExplainSkips(latest->settings));
  }
  return report;
}

}  // namespace sluice
