// Three drain policies on one synthetic backlog (issue #4): sluice's own
// policy (the real Coordinator and scheduler over a real SQLite store, driven
// by K simulated workers on a FakeClock), FIFO, and the reference's policy.
// A deterministic discrete-event simulation: no process runs, no thread
// sleeps; an attempt's outcome and duration come from the backlog model, and
// time jumps from one attempt end to the next. Times are at full scale
// (simulated seconds), so nothing needs scaling down.
//
// The backlog (fixed seed): about 270 phases in 55 runs with heavy-tailed
// (Pareto) run sizes, runs grouped into families named like real ones
// ("ingest-api-v1", "ingest-api-v2", "report-2024-03-05"); 40-50 % of the
// phases belong to families that fail deterministically (one root cause per
// family; the error text carries per-phase paths and line numbers and a
// per-attempt request id); a few runs hang often, other phases hang rarely;
// some fail transiently once (a connection reset) and then behave normally; a
// minority succeed with 1-3 telemetry events, the rest succeed with none.
// Every attempt pays a 20-40 s start-up cost.
//
// Metrics, per policy, over the whole drain (until the policy leases nothing
// more):
//   events/worker-min   telemetry events / summed attempt minutes
//   min to 90 %         worker-minutes spent until 90 % of the attainable
//                       events (those of phases that can succeed within two
//                       attempts) were collected; "-" if never
//   repeat min          minutes of attempts that failed deterministically
//                       with a root cause already seen failing (an attempt of
//                       that cause had ended before this one started)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/clock.h"
#include "common/fingerprint.h"
#include "coordinator/coordinator.h"
#include "coordinator/store/sqlite/sqlite_state_store.h"
#include "re2/re2.h"
#include "spdlog/spdlog.h"

namespace sluice {
namespace {

void Die(const std::string& what) {
  std::fprintf(stderr, "policy_bench: %s\n", what.c_str());
  std::exit(1);
}

template <typename T>
T Ok(absl::StatusOr<T> v, const char* what) {
  if (!v.ok()) Die(absl::StrCat(what, ": ", v.status().ToString()));
  return *std::move(v);
}

// ---------------------------------------------------------------- backlog

enum class Kind { kEvents, kNoEvents, kDeterministic, kHang, kTransientOnce };

struct SimPhase {
  std::string run_id;
  std::string phase_id;
  int64_t index = 0;
  Kind kind = Kind::kNoEvents;
  int events = 0;          // for kEvents and kTransientOnce (after the retry)
  double startup_s = 0;    // 20-40 s
  double work_s = 0;       // after start-up, for a normal end
  std::string cause;       // kDeterministic: the family's root cause
  std::string cause_text;  // its error message
};

struct Backlog {
  std::vector<SimPhase> phases;  // backlog (import) order
  int64_t attainable_events = 0;
  int runs = 0;
  int families = 0;
  int deterministic_phases = 0;
  int hang_phases = 0;
  int transient_phases = 0;
  int event_phases = 0;
  int largest_run = 0;
};

const char* const kWords[] = {"ingest", "report", "billing", "search", "render", "auth",
                              "sync",   "export", "import",  "media",  "notify", "graph",
                              "quota",  "ledger", "crawl",   "index",  "audit",  "geo"};
const char* const kCauses[] = {
    "ModuleNotFoundError: No module named '%s_client'",
    "ImportError: cannot import name 'Session' from '%s.core'",
    "FileNotFoundError: [Errno 2] No such file or directory: '/data/%s/fixtures.json'",
    "AssertionError: schema version mismatch in %s: expected 7, got 6",
    "KeyError: '%s_API_TOKEN' is not set",
};

Backlog MakeBacklog(uint64_t seed, int target_phases, int target_runs) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  // Heavy-tailed run sizes: Pareto(alpha 1.1), scaled to the target, no run
  // above 12 % of the backlog (a single giant run would decide every metric).
  const int cap =
      std::max({1, target_phases * 12 / 100, (target_phases + target_runs - 1) / target_runs});
  std::vector<double> raw(target_runs);
  for (double& r : raw) r = 1.0 / std::pow(1.0 - u(rng) * 0.999, 1.0 / 1.1);
  double sum = 0;
  for (double r : raw) sum += r;
  std::vector<int> sizes(target_runs);
  int total = 0;
  for (int i = 0; i < target_runs; ++i) {
    sizes[i] = std::clamp(static_cast<int>(std::lround(raw[i] * target_phases / sum)), 1, cap);
    total += sizes[i];
  }
  // Hand out (or take back) the rounding remainder one phase at a time,
  // biggest runs first, within the cap.
  std::vector<int> by_size(target_runs);
  for (int i = 0; i < target_runs; ++i) by_size[i] = i;
  std::sort(by_size.begin(), by_size.end(), [&](int a, int b) { return sizes[a] > sizes[b]; });
  for (size_t k = 0; total != target_phases; k = (k + 1) % by_size.size()) {
    int& size = sizes[by_size[k]];
    if (total < target_phases && size < cap) {
      ++size;
      ++total;
    } else if (total > target_phases && size > 1) {
      --size;
      --total;
    }
  }

  // Families of 1-3 runs with realistic variant suffixes.
  struct Family {
    std::string name;
    std::vector<int> runs;
    int phases = 0;
    bool deterministic = false;
    std::string cause_text;
  };
  std::vector<Family> families;
  std::vector<std::string> run_ids(target_runs);
  for (int i = 0; i < target_runs;) {
    const double f = u(rng);
    const int n = std::min(target_runs - i, f < 0.4 ? 1 : f < 0.75 ? 2 : 3);
    Family fam;
    fam.name =
        absl::StrCat(kWords[families.size() % std::size(kWords)], "-",
                     kWords[(families.size() * 7 + 3) % std::size(kWords)], "-", families.size());
    const int style = static_cast<int>(u(rng) * 3);
    for (int k = 0; k < n; ++k, ++i) {
      fam.runs.push_back(i);
      fam.phases += sizes[i];
      run_ids[i] = style == 0 ? absl::StrCat(fam.name, "-v", k + 1)
                   : style == 1
                       ? absl::StrFormat("%s-2024-03-%02d", fam.name, 5 + k)
                       : absl::StrCat(fam.name, "-", std::string(1, static_cast<char>('a' + k)));
    }
    families.push_back(std::move(fam));
  }
  // Deterministically failing families: 40-50 % of the phases.
  std::vector<int> order(families.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  std::shuffle(order.begin(), order.end(), rng);
  int failing = 0;
  for (int f : order) {
    if (failing >= target_phases * 45 / 100) break;
    if (failing + families[f].phases > target_phases / 2) continue;
    families[f].deterministic = true;
    failing += families[f].phases;
    families[f].cause_text = absl::StrReplaceAll(
        kCauses[static_cast<size_t>(u(rng) * std::size(kCauses))], {{"%s", families[f].name}});
  }
  // A few hang-prone runs among the others.
  std::set<int> hang_prone;
  for (int f : order) {
    if (families[f].deterministic || hang_prone.size() >= 3) continue;
    for (int r : families[f].runs) {
      if (sizes[r] >= 2 && hang_prone.size() < 3) hang_prone.insert(r);
    }
  }

  Backlog b;
  b.runs = target_runs;
  b.families = static_cast<int>(families.size());
  b.largest_run = *std::max_element(sizes.begin(), sizes.end());
  std::vector<int> run_order(target_runs);
  for (int i = 0; i < target_runs; ++i) run_order[i] = i;
  std::shuffle(run_order.begin(), run_order.end(), rng);  // backlog order is not family order
  std::vector<const Family*> family_of(target_runs);
  for (const Family& f : families) {
    for (int r : f.runs) family_of[r] = &f;
  }
  for (int r : run_order) {
    const Family& fam = *family_of[r];
    const double p_events = 0.15 + 0.7 * u(rng);  // runs differ in productivity
    for (int k = 0; k < sizes[r]; ++k) {
      SimPhase p;
      p.run_id = run_ids[r];
      p.phase_id = absl::StrFormat("phase-%03d", k);
      p.index = k;
      p.startup_s = 20 + 20 * u(rng);
      p.work_s = 60 + 540 * u(rng) * u(rng);  // mostly short, some long
      const double x = u(rng);
      if (fam.deterministic) {
        p.kind = Kind::kDeterministic;
        p.work_s = 2 + 18 * u(rng);
        p.cause = fam.name;
        p.cause_text = fam.cause_text;
      } else if (x < (hang_prone.contains(r) ? 0.5 : 0.03)) {
        p.kind = Kind::kHang;
      } else if (u(rng) < 0.10) {
        p.kind = Kind::kTransientOnce;
        p.events = u(rng) < p_events ? 1 + static_cast<int>(u(rng) * 3) : 0;
      } else if (u(rng) < p_events) {
        p.kind = Kind::kEvents;
        p.events = 1 + static_cast<int>(u(rng) * 3);
      } else {
        p.kind = Kind::kNoEvents;
      }
      b.deterministic_phases += p.kind == Kind::kDeterministic;
      b.hang_phases += p.kind == Kind::kHang;
      b.transient_phases += p.kind == Kind::kTransientOnce;
      b.event_phases += p.events > 0;
      b.attainable_events += p.events;
      b.phases.push_back(std::move(p));
    }
  }
  return b;
}

// What one attempt of a phase does. `n` is the simulation's own count of
// starts of this phase (1-based), independent of how a policy counts.
struct AttemptResult {
  Outcome outcome = Outcome::kSucceeded;
  double duration_s = 0;
  int events = 0;
  std::string error_text;
  std::string cause;  // deterministic failures only
};

AttemptResult Simulate(const SimPhase& p, int n, int timeout_s, uint64_t seed) {
  // Per-attempt noise (request ids) from a hash, so it does not depend on
  // the order in which a policy runs things.
  std::mt19937_64 rng(seed ^
                      std::hash<std::string>{}(absl::StrCat(p.run_id, "/", p.phase_id, "#", n)));
  const std::string request_id = absl::StrFormat("req_%016x", rng());
  AttemptResult r;
  switch (p.kind) {
    case Kind::kHang:
      r.outcome = Outcome::kTimedOut;
      r.duration_s = timeout_s;
      return r;
    case Kind::kDeterministic:
      r.outcome = Outcome::kFailed;
      r.duration_s = p.startup_s + p.work_s;
      r.cause = p.cause;
      r.error_text =
          absl::StrCat("Traceback (most recent call last):\n  File \"/work/", p.run_id,
                       "/tests/test_", p.phase_id, ".py\", line ", 17 + (p.index * 13) % 200,
                       ", in <module>\n", p.cause_text, " (request id: ", request_id, ")");
      return r;
    case Kind::kTransientOnce:
      if (n == 1) {
        r.outcome = Outcome::kFailed;
        r.duration_s = p.startup_s + 5 + static_cast<double>(rng() % 50);
        r.error_text = absl::StrCat(
            "ConnectionResetError: [Errno 104] Connection reset by peer while uploading to "
            "https://results.internal:8443/v2/upload (request id: ",
            request_id, ")");
        return r;
      }
      [[fallthrough]];
    case Kind::kEvents:
    case Kind::kNoEvents:
      r.outcome = Outcome::kSucceeded;
      r.duration_s = std::min<double>(p.startup_s + p.work_s, timeout_s);
      r.events = p.events;
      return r;
  }
  return r;
}

// ---------------------------------------------------------------- metrics

struct AttemptLog {
  double start_s = 0;
  double end_s = 0;
  int events = 0;
  bool deterministic_failure = false;
  std::string cause;
};

struct Metrics {
  double events_per_worker_minute = 0;
  double minutes_to_90 = -1;  // -1: never reached
  double repeat_minutes = 0;
  double worker_minutes = 0;
  double wall_minutes = 0;
  int64_t events = 0;
  int64_t attempts = 0;
};

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
  m.worker_minutes = worker_s / 60;
  m.events_per_worker_minute =
      m.worker_minutes > 0 ? static_cast<double>(m.events) / m.worker_minutes : 0;
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

// ---------------------------------------------------------------- policies

// Where a simulated worker gets its next phase.
struct Assignment {
  const SimPhase* phase = nullptr;
  int timeout_s = 900;
  std::string lease_id;  // sluice only
  int64_t epoch = 0;
};

class Policy {
 public:
  virtual ~Policy() = default;
  // The next phase for `worker`, or nothing now.
  virtual std::optional<Assignment> Next(const std::string& worker, double now_s) = 0;
  virtual void Finished(const std::string& worker, const Assignment& a, const AttemptResult& r,
                        double now_s) = 0;
  // Nothing running and nothing leased: true when the policy is done (else
  // the simulation advances time, e.g. past a backoff).
  virtual bool Done(double now_s) = 0;
};

// The product: real Coordinator + SQLite store + FakeClock.
class SluicePolicy : public Policy {
 public:
  SluicePolicy(const Backlog& backlog, const SessionSettings& settings) {
    store_ = Ok(SqliteStateStore::Open(":memory:"), "open store");
    CoordinatorConfig config;
    config.lease_ttl_ms = 7LL * 24 * 3600 * 1000;  // simulated workers never miss a heartbeat
    coordinator_ = std::make_unique<Coordinator>(*store_, clock_, config);
    std::vector<PhaseSpec> specs;
    for (const SimPhase& p : backlog.phases) {
      PhaseSpec s;
      s.run_id = p.run_id;
      s.phase_id = p.phase_id;
      s.phase_index = p.index;
      specs.push_back(s);
      by_id_[p.run_id + "/" + p.phase_id] = &p;
    }
    Ok(coordinator_->ImportBacklog(specs), "import");
    Ok(coordinator_->StartSession(settings, "bench"), "start session");
  }

  std::optional<Assignment> Next(const std::string& worker, double now_s) override {
    SetClock(now_s);
    if (!registered_.contains(worker)) {
      WorkerInfo w;
      w.worker_id = worker;
      w.host = "sim";
      w.slots = 1;
      Ok(coordinator_->Register(w), "register");
      registered_.insert(worker);
    }
    LeaseResult leased =
        Ok(coordinator_->Lease(worker, absl::StrCat("r", ++requests_), 1, 0), "lease");
    if (leased.leases.empty()) return std::nullopt;
    const LeaseGrant& g = leased.leases.front();
    Assignment a;
    a.phase = by_id_.at(g.run_id + "/" + g.phase_id);
    a.timeout_s = g.timeout_seconds;
    a.lease_id = g.lease_id;
    a.epoch = g.epoch;
    return a;
  }

  void Finished(const std::string& worker, const Assignment& a, const AttemptResult& r,
                double now_s) override {
    SetClock(now_s);
    AttemptReport report;
    report.lease_id = a.lease_id;
    report.epoch = a.epoch;
    report.worker_id = worker;
    report.outcome = r.outcome;
    report.exit_code = r.outcome == Outcome::kSucceeded ? 0 : 1;
    report.duration_ms = static_cast<int64_t>(r.duration_s * 1000);
    report.error_text = r.error_text;
    report.telemetry_events = r.events;
    Ok(coordinator_->Report(report), "report");
  }

  bool Done(double now_s) override {
    SetClock(now_s);
    if (!coordinator_->Tick().ok()) Die("tick");
    auto session = Ok(store_->LatestSession(), "session");
    return !session || session->state != SessionState::kActive;
  }

  // What the coordinator says about the work it left: kind -> phases.
  std::map<std::string, int64_t> SkipSummary() {
    std::map<std::string, int64_t> out;
    auto session = Ok(store_->LatestSession(), "session");
    for (const SkipRow& k : Ok(coordinator_->ExplainSkips(session->settings), "explain")) {
      std::string key = k.kind;
      if (k.kind == "excluded") {
        // "blocked by fingerprint 3f2a... (...)" -> "blocked by fingerprint"
        const std::string_view r = k.reason;
        key += ": ";
        key +=
            r.starts_with("blocked by fingerprint") ? r.substr(0, 22) : r.substr(0, r.find(" ("));
      }
      out[key] += k.phases;
    }
    return out;
  }

  int DistinctFailureFingerprints() {
    return static_cast<int>(Ok(coordinator_->ListFingerprints(), "fingerprints").size());
  }

 private:
  void SetClock(double now_s) {
    clock_.SetMs(kEpochMs + static_cast<int64_t>(std::llround(now_s * 1000)));
  }

  static constexpr int64_t kEpochMs = 1'700'000'000'000;
  FakeClock clock_{kEpochMs};
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<Coordinator> coordinator_;
  std::map<std::string, const SimPhase*> by_id_;
  std::set<std::string> registered_;
  int64_t requests_ = 0;
};

// Shared bookkeeping of the two in-bench policies: per-phase attempts
// (durable), success, and what is running.
class SimplePolicyBase : public Policy {
 public:
  explicit SimplePolicyBase(const Backlog& backlog) : backlog_(backlog) {
    for (const SimPhase& p : backlog.phases) state_[&p] = {};
  }

 protected:
  struct PhaseState {
    int attempts = 0;
    bool done = false;  // succeeded
    bool running = false;
  };
  bool Open(const SimPhase* p) const {
    const PhaseState& s = state_.at(p);
    return !s.done && !s.running && s.attempts < kMaxAttempts;
  }
  void MarkStarted(const SimPhase* p) { state_[p].running = true; }
  void MarkFinished(const SimPhase* p, const AttemptResult& r) {
    PhaseState& s = state_[p];
    s.running = false;
    ++s.attempts;
    s.done = r.outcome == Outcome::kSucceeded;
  }
  bool AnyOpen() const {
    for (const SimPhase& p : backlog_.phases) {
      if (Open(&p)) return true;
    }
    return false;
  }

  static constexpr int kMaxAttempts = 2;
  static constexpr int kTimeoutS = 900;
  const Backlog& backlog_;
  std::map<const SimPhase*, PhaseState> state_;
};

// First in, first out: backlog order, each phase up to two attempts, no
// other rule.
class FifoPolicy : public SimplePolicyBase {
 public:
  using SimplePolicyBase::SimplePolicyBase;
  std::optional<Assignment> Next(const std::string&, double) override {
    for (const SimPhase& p : backlog_.phases) {
      if (Open(&p)) {
        MarkStarted(&p);
        return Assignment{&p, kTimeoutS, "", 0};
      }
    }
    return std::nullopt;
  }
  void Finished(const std::string&, const Assignment& a, const AttemptResult& r, double) override {
    MarkFinished(a.phase, r);
  }
  bool Done(double) override { return !AnyOpen(); }
};

// The reference: sessions of `batch` phases, breadth-first over runs (the
// first open phase of every run in backlog order, then the second, ...),
// memory within one session only: a run is skipped after 2 timeouts in the
// session and once a fingerprint it failed with repeated 3 times in the
// session. Its fingerprint normalised paths and numbers but not request ids,
// so real failures never repeated. A new session starts when a batch is done.
class ReferencePolicy : public SimplePolicyBase {
 public:
  explicit ReferencePolicy(const Backlog& backlog) : SimplePolicyBase(backlog) {
    for (const SimPhase& p : backlog.phases) {
      if (!run_phases_.contains(p.run_id)) run_order_.push_back(p.run_id);
      run_phases_[p.run_id].push_back(&p);
    }
  }

  std::optional<Assignment> Next(const std::string&, double) override {
    if (session_leased_ == 0 && queue_pos_ == 0) BuildQueue();
    if (session_leased_ >= kBatch) return std::nullopt;  // waits for the batch to finish
    while (queue_pos_ < queue_.size()) {
      const SimPhase* p = queue_[queue_pos_++];
      if (!Open(p) || Skipped(p->run_id)) continue;
      MarkStarted(p);
      ++session_leased_;
      return Assignment{p, kTimeoutS, "", 0};
    }
    return std::nullopt;
  }

  void Finished(const std::string&, const Assignment& a, const AttemptResult& r, double) override {
    MarkFinished(a.phase, r);
    ++session_finished_;
    if (r.outcome == Outcome::kTimedOut) ++session_timeouts_[a.phase->run_id];
    if (r.outcome == Outcome::kFailed) {
      const std::string fp = ReferenceFingerprint(r.error_text);
      std::set<std::string>& runs = session_runs_by_fp_[fp];
      runs.insert(a.phase->run_id);
      if (++session_fingerprints_[fp] >= 3) session_blocked_.insert(runs.begin(), runs.end());
    }
    if (session_finished_ == session_leased_ && (session_leased_ >= kBatch || !CandidateLeft())) {
      ++sessions_;  // the batch is done: the next session starts with a fresh memory
      session_leased_ = session_finished_ = 0;
      queue_pos_ = 0;
      queue_.clear();
      session_timeouts_.clear();
      session_fingerprints_.clear();
      session_runs_by_fp_.clear();
      session_blocked_.clear();
    }
  }

  bool Done(double) override { return !AnyOpen(); }

  static std::string ReferenceFingerprint(const std::string& text) {
    std::string s = text;
    static const RE2 path(R"((/[A-Za-z0-9_.-]+)+)");
    static const RE2 digits(R"(\b[0-9]+\b)");
    RE2::GlobalReplace(&s, path, "<path>");
    RE2::GlobalReplace(&s, digits, "<n>");
    return s;  // "req_1f3a..." keeps its hex digits: every attempt is new
  }
  int sessions() const { return sessions_; }

 private:
  void BuildQueue() {
    queue_.clear();
    for (size_t round = 0;; ++round) {
      bool any = false;
      for (const std::string& run : run_order_) {
        std::vector<const SimPhase*> open;
        for (const SimPhase* p : run_phases_.at(run)) {
          if (Open(p)) open.push_back(p);
        }
        if (round < open.size()) {
          queue_.push_back(open[round]);
          any = true;
        }
      }
      if (!any) break;
    }
  }
  bool Skipped(const std::string& run) const {
    auto t = session_timeouts_.find(run);
    return (t != session_timeouts_.end() && t->second >= 2) || session_blocked_.contains(run);
  }
  bool CandidateLeft() const {
    for (size_t i = queue_pos_; i < queue_.size(); ++i) {
      if (Open(queue_[i]) && !Skipped(queue_[i]->run_id)) return true;
    }
    return false;
  }

  static constexpr int kBatch = 10;
  std::vector<std::string> run_order_;
  std::map<std::string, std::vector<const SimPhase*>> run_phases_;
  std::vector<const SimPhase*> queue_;
  size_t queue_pos_ = 0;
  int session_leased_ = 0;
  int session_finished_ = 0;
  int sessions_ = 1;
  std::map<std::string, int> session_timeouts_;
  std::map<std::string, int> session_fingerprints_;
  std::map<std::string, std::set<std::string>> session_runs_by_fp_;
  std::set<std::string> session_blocked_;
};

// ---------------------------------------------------------------- simulation

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
      AttemptResult r = Simulate(*a->phase, n, a->timeout_s, seed);
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
                   done.r.outcome == Outcome::kFailed && !done.r.cause.empty(), done.r.cause});
  }
  Die("simulation did not end");
  return log;
}

struct Options {
  uint64_t first_seed = 1;
  int seeds = 5;
  int workers = 4;
  int phases = 270;
  int runs = 55;
  bool verbose = false;
};

Options ParseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::vector<std::string> kv = absl::StrSplit(argv[i], absl::MaxSplits('=', 1));
    auto num = [&](auto& out) {
      int64_t v = 0;
      if (kv.size() != 2 || !absl::SimpleAtoi(kv[1], &v) || v < 0) {
        std::fprintf(stderr, "policy_bench: %s needs a non-negative integer\n", kv[0].c_str());
        std::exit(2);
      }
      out = static_cast<std::remove_reference_t<decltype(out)>>(v);
    };
    if (kv[0] == "--seed") {
      num(o.first_seed);
    } else if (kv[0] == "--seeds") {
      num(o.seeds);
    } else if (kv[0] == "--workers") {
      num(o.workers);
    } else if (kv[0] == "--phases") {
      num(o.phases);
    } else if (kv[0] == "--runs") {
      num(o.runs);
    } else if (kv[0] == "--verbose") {
      o.verbose = true;
    } else {
      const bool help = kv[0] == "--help" || kv[0] == "-h";
      std::fprintf(help ? stdout : stderr,
                   "usage: policy_bench [--seed=N] [--seeds=N] [--workers=K] [--phases=N] "
                   "[--runs=N] [--verbose]\n"
                   "  --seed     first backlog seed (default 1)\n"
                   "  --seeds    how many consecutive seeds (default 5)\n"
                   "  --workers  simulated workers, one slot each (default 4)\n"
                   "  --phases   phases in the backlog (default 270)\n"
                   "  --runs     runs in the backlog (default 55)\n"
                   "  --verbose  per-seed detail\n");
      std::exit(help ? 0 : 2);
    }
  }
  if (o.seeds < 1 || o.workers < 1 || o.phases < o.runs || o.runs < 1) {
    std::fprintf(stderr,
                 "policy_bench: --seeds, --workers, --runs must be >= 1 and --phases >= "
                 "--runs\n");
    std::exit(2);
  }
  return o;
}

struct Row {
  std::string name;
  std::vector<Metrics> per_seed;
};

void Summarise(const std::vector<double>& v, double* mean, double* lo, double* hi) {
  *mean = 0;
  *lo = v.empty() ? 0 : v[0];
  *hi = *lo;
  for (double x : v) {
    *mean += x;
    *lo = std::min(*lo, x);
    *hi = std::max(*hi, x);
  }
  if (!v.empty()) *mean /= static_cast<double>(v.size());
}

}  // namespace
}  // namespace sluice

int main(int argc, char** argv) {
  using namespace sluice;
  spdlog::set_level(spdlog::level::err);
  const Options o = ParseArgs(argc, argv);
  std::vector<Row> rows = {
      {"sluice", {}}, {"sluice --retry-on reset", {}}, {"fifo", {}}, {"reference", {}}};
  for (int s = 0; s < o.seeds; ++s) {
    const uint64_t seed = o.first_seed + static_cast<uint64_t>(s);
    const Backlog b = MakeBacklog(seed, o.phases, o.runs);
    std::printf(
        "seed %llu: %zu phases, %d runs (largest %d), %d families; %d deterministic (%.0f %%), "
        "%d hang, %d transient-once, %d with events; %lld attainable events\n",
        static_cast<unsigned long long>(seed), b.phases.size(), b.runs, b.largest_run, b.families,
        b.deterministic_phases,
        100.0 * b.deterministic_phases / static_cast<double>(b.phases.size()), b.hang_phases,
        b.transient_phases, b.event_phases, static_cast<long long>(b.attainable_events));
    {
      SluicePolicy p(b, SessionSettings{});
      rows[0].per_seed.push_back(Measure(RunSimulation(p, o.workers, seed), b.attainable_events));
      if (o.verbose) {
        std::printf("  sluice: %d distinct failure fingerprints; left:",
                    p.DistinctFailureFingerprints());
        for (const auto& [kind, n] : p.SkipSummary()) {
          std::printf(" [%s %lld]", kind.c_str(), static_cast<long long>(n));
        }
        std::printf("\n");
      }
    }
    {
      SessionSettings settings;
      settings.retry_on = {"connection reset"};
      SluicePolicy p(b, settings);
      rows[1].per_seed.push_back(Measure(RunSimulation(p, o.workers, seed), b.attainable_events));
      if (o.verbose) {
        std::printf("  sluice --retry-on: left:");
        for (const auto& [kind, n] : p.SkipSummary()) {
          std::printf(" [%s %lld]", kind.c_str(), static_cast<long long>(n));
        }
        std::printf("\n");
      }
    }
    {
      FifoPolicy p(b);
      rows[2].per_seed.push_back(Measure(RunSimulation(p, o.workers, seed), b.attainable_events));
    }
    {
      ReferencePolicy p(b);
      rows[3].per_seed.push_back(Measure(RunSimulation(p, o.workers, seed), b.attainable_events));
      if (o.verbose) std::printf("  reference: %d sessions\n", p.sessions());
    }
    if (o.verbose) {
      for (const Row& r : rows) {
        const Metrics& m = r.per_seed.back();
        std::printf(
            "  %-24s events %4lld  attempts %4lld  worker-min %7.1f  wall-min %6.1f  ev/wmin "
            "%.3f  min-to-90%% %7.1f  repeat-min %6.1f\n",
            r.name.c_str(), static_cast<long long>(m.events), static_cast<long long>(m.attempts),
            m.worker_minutes, m.wall_minutes, m.events_per_worker_minute, m.minutes_to_90,
            m.repeat_minutes);
      }
    }
  }
  const Row& ref = rows.back();
  std::printf(
      "\n%d seeds from %llu, %d workers; mean [min..max] over seeds; ratio = policy / "
      "reference of the per-seed values, mean\n",
      o.seeds, static_cast<unsigned long long>(o.first_seed), o.workers);
  std::printf("%-24s %-26s %-9s %-30s %-9s %-26s %-9s %s\n", "policy", "events/worker-min", "ratio",
              "worker-min to 90% events", "ratio", "repeat-failure min", "ratio",
              "events collected");
  for (const Row& r : rows) {
    std::vector<double> ypm, t90, rep, ev, ypm_ratio, t90_ratio, rep_ratio;
    int never = 0;
    for (size_t i = 0; i < r.per_seed.size(); ++i) {
      const Metrics& m = r.per_seed[i];
      const Metrics& base = ref.per_seed[i];
      ypm.push_back(m.events_per_worker_minute);
      ypm_ratio.push_back(m.events_per_worker_minute / base.events_per_worker_minute);
      if (m.minutes_to_90 < 0) {
        ++never;
      } else {
        t90.push_back(m.minutes_to_90);
        if (base.minutes_to_90 > 0) t90_ratio.push_back(m.minutes_to_90 / base.minutes_to_90);
      }
      rep.push_back(m.repeat_minutes);
      if (base.repeat_minutes > 0) rep_ratio.push_back(m.repeat_minutes / base.repeat_minutes);
      ev.push_back(static_cast<double>(m.events));
    }
    double mean, lo, hi, rmean, rlo, rhi;
    Summarise(ypm, &mean, &lo, &hi);
    Summarise(ypm_ratio, &rmean, &rlo, &rhi);
    std::string c1 = absl::StrFormat("%.3f [%.3f..%.3f]", mean, lo, hi);
    std::string c2 = absl::StrFormat("%.2fx", rmean);
    Summarise(t90, &mean, &lo, &hi);
    Summarise(t90_ratio, &rmean, &rlo, &rhi);
    std::string c3 = t90.empty()
                         ? "never"
                         : absl::StrFormat("%.0f [%.0f..%.0f]%s", mean, lo, hi,
                                           never ? absl::StrCat(" (", never, " never)") : "");
    std::string c4 = t90_ratio.empty() ? "-" : absl::StrFormat("%.2fx", rmean);
    Summarise(rep, &mean, &lo, &hi);
    Summarise(rep_ratio, &rmean, &rlo, &rhi);
    std::string c5 = absl::StrFormat("%.1f [%.1f..%.1f]", mean, lo, hi);
    std::string c6 = rep_ratio.empty() ? "-" : absl::StrFormat("%.2fx", rmean);
    Summarise(ev, &mean, &lo, &hi);
    std::printf("%-24s %-26s %-9s %-30s %-9s %-26s %-9s %.0f [%.0f..%.0f]\n", r.name.c_str(),
                c1.c_str(), c2.c_str(), c3.c_str(), c4.c_str(), c5.c_str(), c6.c_str(), mean, lo,
                hi);
  }
  return 0;
}
