#include "bench/policy_sim/fleet.h"

#include <algorithm>
#include <functional>
#include <map>
#include <queue>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "bench/policy_sim/model.h"

namespace sluice {
namespace sim {

Metrics Measure(std::vector<AttemptLog> log, int64_t attainable) {
  Metrics m;
  std::sort(log.begin(), log.end(),
            [](const AttemptLog& a, const AttemptLog& b) { return a.end_s < b.end_s; });
  double worker_s = 0;
  std::map<std::string, double> cause_first_end;  // root cause -> first end time
  for (const AttemptLog& a : log) {
    worker_s += a.end_s - a.start_s;
    m.events += a.events;
    m.wall_minutes = std::max(m.wall_minutes, a.end_s / 60);
    if (a.deterministic_failure) {
      auto it = cause_first_end.find(a.cause);
      if (it != cause_first_end.end() && it->second <= a.start_s) {
        m.repeat_minutes += (a.end_s - a.start_s) / 60;
      }
      if (it == cause_first_end.end()) cause_first_end[a.cause] = a.end_s;
    }
  }
  m.attempts = static_cast<int64_t>(log.size());
  std::set<const SimPhase*> succeeded;
  for (const AttemptLog& a : log) {
    if (a.succeeded) succeeded.insert(a.phase);
  }
  m.phases_succeeded = static_cast<int64_t>(succeeded.size());
  m.worker_minutes = worker_s / 60;
  m.events_per_worker_minute =
      m.worker_minutes > 0 ? static_cast<double>(m.events) / m.worker_minutes : 0;
  int64_t own = 0;
  for (const AttemptLog& a : log) {
    own += a.events;
    if (m.events > 0 && own * 10 >= m.events * 9) {
      m.wall_minutes_to_90_own = a.end_s / 60;
      break;
    }
  }
  // The moment 90 % of the attainable events are in; worker time spent by
  // then counts attempts still running at that moment up to it.
  int64_t cumulative = 0;
  for (const AttemptLog& a : log) {
    cumulative += a.events;
    if (cumulative * 10 >= attainable * 9) {
      const double t = a.end_s;
      double spent = 0;
      for (const AttemptLog& b : log) {
        if (b.start_s < t) spent += std::min(b.end_s, t) - b.start_s;
      }
      m.minutes_to_90 = spent / 60;
      break;
    }
  }
  return m;
}

std::string Breakdown(std::vector<AttemptLog> log, int64_t target) {
  std::sort(log.begin(), log.end(),
            [](const AttemptLog& a, const AttemptLog& b) { return a.end_s < b.end_s; });
  double t90 = -1;
  int64_t cumulative = 0;
  for (const AttemptLog& a : log) {
    cumulative += a.events;
    if (cumulative * 10 >= target * 9) {
      t90 = a.end_s;
      break;
    }
  }
  static const char* const kNames[] = {"events", "no-events", "deterministic",
                                       "hang",   "transient", "phase-fail"};
  double all[6][2] = {}, early[6][2] = {};
  std::map<const SimPhase*, int> seen;
  for (const AttemptLog& a : log) {
    const int k = static_cast<int>(a.phase->kind);
    const int retry = seen[a.phase]++ > 0 ? 1 : 0;
    all[k][retry] += (a.end_s - a.start_s) / 60;
    if (t90 >= 0 && a.start_s < t90) early[k][retry] += (std::min(a.end_s, t90) - a.start_s) / 60;
  }
  std::string out;
  for (int k = 0; k < 6; ++k) {
    absl::StrAppend(&out, " ", kNames[k], " ", static_cast<int>(all[k][0]), "+",
                    static_cast<int>(all[k][1]), " (to 90%: ", static_cast<int>(early[k][0]), "+",
                    static_cast<int>(early[k][1]), ")");
  }
  return out;
}

std::vector<AttemptLog> RunSimulation(Policy& policy, int workers, uint64_t seed) {
  struct Running {
    double end_s;
    int worker;
    Assignment a;
    AttemptResult r;
    double start_s;
    bool operator>(const Running& o) const {
      return std::tie(end_s, worker) > std::tie(o.end_s, o.worker);
    }
  };
  std::priority_queue<Running, std::vector<Running>, std::greater<>> running;
  std::vector<bool> busy(workers, false);
  std::map<const SimPhase*, int> starts;
  std::vector<AttemptLog> log;
  double now = 0;
  const double kIdleStepS = 5;  // when nothing runs and nothing is leasable yet
  for (int guard = 0; guard < 1'000'000; ++guard) {
    for (int w = 0; w < workers; ++w) {
      if (busy[w]) continue;
      std::optional<Assignment> a = policy.Next(absl::StrCat("sim-", w), now);
      if (!a) break;
      const int n = ++starts[a->phase];
      AttemptResult r = Simulate(*a->phase, n, a->timeout_s, seed, a->idle_timeout_s);
      busy[w] = true;
      running.push({now + r.duration_s, w, *a, r, now});
    }
    if (running.empty()) {
      if (policy.Done(now)) return log;
      now += kIdleStepS;
      continue;
    }
    Running done = running.top();
    running.pop();
    now = done.end_s;
    busy[done.worker] = false;
    policy.Finished(absl::StrCat("sim-", done.worker), done.a, done.r, now);
    log.push_back({done.start_s, done.end_s, done.r.events,
                   done.r.outcome == Outcome::kFailed && !done.r.cause.empty(), done.r.cause,
                   done.a.phase, done.r.outcome == Outcome::kSucceeded});
  }
  Die("simulation did not end");
  return log;
}

}  // namespace sim
}  // namespace sluice
