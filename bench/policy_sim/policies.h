// The simulated policies: sluice's own (the real Coordinator and scheduler
// over a real SQLite store on a FakeClock), FIFO, and the reference's.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/policy_sim/fleet.h"
#include "common/clock.h"
#include "coordinator/coordinator.h"
#include "coordinator/store/sqlite/sqlite_state_store.h"
#include "coordinator/store/state_store.h"
#include "re2/re2.h"

namespace sluice {
namespace sim {

// The product: real Coordinator + SQLite store + FakeClock.
class SluicePolicy : public Policy {
 public:
  SluicePolicy(const Backlog& backlog, const SessionSettings& settings,
               bool with_last_error = true) {
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
      if (with_last_error) s.last_error = p.last_error;
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
    a.idle_timeout_s = g.idle_timeout_seconds;
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
    report.longest_silence_ms = static_cast<int64_t>(r.longest_silence_s * 1000);
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

  // Phases that can succeed but did not: "run/phase state (attempts)".
  std::vector<std::string> MissedPhases(const Backlog& backlog) {
    std::vector<std::string> out;
    for (const SimPhase& p : backlog.phases) {
      if (!CanSucceed(p.kind)) continue;
      auto rec = Ok(store_->GetPhase({p.run_id, p.phase_id}), "get phase");
      if (rec && rec->state == PhaseState::kSucceeded) continue;
      out.push_back(absl::StrCat(p.run_id, "/", p.phase_id, " ",
                                 rec ? std::string(PhaseStateName(rec->state)) : "?", " (",
                                 rec ? rec->attempts : 0, " attempts)"));
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

// An oracle's frame: a fixed order of phases, each leased while Wanted.
class OrderedPolicyBase : public SimplePolicyBase {
 public:
  using SimplePolicyBase::SimplePolicyBase;
  std::optional<Assignment> Next(const std::string&, double) override {
    for (const SimPhase* p : order_) {
      if (Wanted(p)) {
        MarkStarted(p);
        return Assignment{p, kTimeoutS, "", 0};
      }
    }
    return std::nullopt;
  }
  bool Done(double) override {
    for (const SimPhase* p : order_) {
      if (Wanted(p)) return false;
    }
    return true;
  }

 protected:
  virtual bool Wanted(const SimPhase* p) const = 0;
  std::vector<const SimPhase*> order_;
};

// The ceiling: a policy that knows every phase's kind in advance. It runs
// only what yields events or can succeed (every phase that can succeed, as
// the done-when asks), best events per expected minute first, and never a
// hang or a deterministic failure. No real policy can match it: a hang is
// only known once it has cost its timeout.
//
// With `discover_hangs` it knows everything but which phases hang, so it
// runs every hang once at its full timeout (last): the ceiling of a policy
// that must try every phase that might succeed.
class OraclePolicy : public OrderedPolicyBase {
 public:
  OraclePolicy(const Backlog& backlog, bool discover_hangs) : OrderedPolicyBase(backlog) {
    for (const SimPhase& p : backlog.phases) {
      if (CanSucceed(p.kind) || (p.kind == Kind::kPhaseFail && p.events > 0) ||
          (discover_hangs && p.kind == Kind::kHang)) {
        order_.push_back(&p);
      }
    }
    std::stable_sort(order_.begin(), order_.end(), [](const SimPhase* a, const SimPhase* b) {
      return a->events / (a->startup_s + a->work_s) > b->events / (b->startup_s + b->work_s);
    });
  }
  void Finished(const std::string&, const Assignment& a, const AttemptResult& r, double) override {
    MarkFinished(a.phase, r);
  }

 private:
  // A phase-specific failure is run once (its events come on the first
  // attempt); the others until they succeed, within the attempt cap.
  bool Wanted(const SimPhase* p) const override {
    if (!Open(p)) return false;
    const bool once = p->kind == Kind::kPhaseFail || p->kind == Kind::kHang;
    return !once || state_.at(p).attempts == 0;
  }
};

// A policy that knows the odds each run was drawn with (the chance that a
// phase has events, and of a hang; a deterministically failing family's
// runs are worthless) but nothing about its phases: it runs the phases of the
// runs with the best expected events per expected minute first (a hang
// costs the timeout), each phase once (a transient failure once more). The
// ceiling of a run-level ranking that has learnt every run's odds perfectly.
class RunOddsOraclePolicy : public OrderedPolicyBase {
 public:
  explicit RunOddsOraclePolicy(const Backlog& backlog) : OrderedPolicyBase(backlog) {
    constexpr double kMeanEvents = 2;     // 1-3 events, uniformly
    constexpr double kMeanMinutes = 4.5;  // 20-40 s start-up + the model's mean work
    auto worth = [](const SimPhase* p) {
      return p->run_p_events * kMeanEvents /
             (p->run_p_hang * kTimeoutS / 60.0 + (1 - p->run_p_hang) * kMeanMinutes);
    };
    for (const SimPhase& p : backlog.phases) {
      if (p.kind != Kind::kDeterministic) order_.push_back(&p);
    }
    std::stable_sort(order_.begin(), order_.end(),
                     [&](const SimPhase* a, const SimPhase* b) { return worth(a) > worth(b); });
  }
  void Finished(const std::string&, const Assignment& a, const AttemptResult& r, double) override {
    MarkFinished(a.phase, r);
    // Only a transient failure (known by its text, as sluice's default set
    // knows it) is worth another attempt.
    if (r.outcome != Outcome::kSucceeded && a.phase->kind != Kind::kTransientOnce) {
      no_retry_.insert(a.phase);
    }
  }

 private:
  bool Wanted(const SimPhase* p) const override { return Open(p) && !no_retry_.contains(p); }
  std::set<const SimPhase*> no_retry_;
};
}  // namespace sim
}  // namespace sluice
