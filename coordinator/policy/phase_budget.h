// The budget rule: a phase's next state after one outcome. Pure code, the one
// implementation of the attempt and requeue budgets; both stores apply what
// it decides and never decide themselves.
//
// The rules (each a named row in tests/coordinator/phase_budget_test.cc):
//   - success: the phase succeeded (it spends one attempt);
//   - attempt budget: an own failure (failed, timed out, not transient)
//     spends one attempt; the phase fails for good once attempts reach
//     max_attempts;
//   - requeue budget: a transient failure (counts_as_attempt false), a
//     cancelled attempt, a lost/expired lease or a start failure (the worker
//     could not start the phase) spends one requeue; the phase fails for good
//     once requeues exceed max_requeues;
//   - otherwise the phase is pending again.
//
// A store applies a decision inside its one atomic write, where it reads the
// phase's counters; PhaseTransition is the rule with the counters left open,
// so no extra read is needed before the write (see docs/redis.md).
#pragma once

#include <cstdint>
#include <optional>

#include "common/model.h"

namespace sluice {

struct PhaseBudget {
  int32_t max_attempts = 2;  // SessionSettings::max_attempts_per_phase
  int32_t max_requeues = 5;  // SessionSettings::max_requeues_per_phase
};

// The counters a phase record keeps (PhaseRecord::attempts, ::requeues).
struct PhaseCounters {
  int64_t attempts = 0;
  int64_t requeues = 0;
  friend bool operator==(const PhaseCounters&, const PhaseCounters&) = default;
};

struct PhaseDecision {
  PhaseState next = PhaseState::kPending;  // kPending, kSucceeded or kFailed
  // Set when the phase ends (succeeded, or failed for good with this outcome).
  std::optional<Outcome> final_outcome;
  PhaseCounters counters;  // the counters after the outcome
  friend bool operator==(const PhaseDecision&, const PhaseDecision&) = default;
};

// The decision for one outcome with the phase's counters still open: which
// counter the outcome spends, and at which value of it the phase fails.
struct PhaseTransition {
  enum class Counter { kAttempts, kRequeues };
  Counter counter = Counter::kAttempts;  // incremented by one
  bool succeeds = false;                 // the phase succeeded
  int64_t fail_at = 1;  // unless it succeeded: failed for good once counter >= fail_at
  Outcome final_outcome = Outcome::kFailed;  // recorded when the phase ends
  friend bool operator==(const PhaseTransition&, const PhaseTransition&) = default;
};

// The rule. `counts_as_attempt` is false for a transient failure (the
// failure policy's --retry-on); it does not matter for success, cancelled,
// lost and start_failed outcomes.
PhaseTransition TransitionAfterOutcome(PhaseBudget budget, Outcome outcome, bool counts_as_attempt);

// The transition applied to a phase's counters: what a store writes.
PhaseDecision ApplyTransition(const PhaseTransition& transition, PhaseCounters counters);

// Both in one step. Lease expiry is DecideAfterOutcome(budget, c, kLost, false).
PhaseDecision DecideAfterOutcome(PhaseBudget budget, PhaseCounters counters, Outcome outcome,
                                 bool counts_as_attempt);

// The transition of a lost (expired) lease under `max_requeues`.
PhaseTransition LostLeaseTransition(int32_t max_requeues);

// "attempts" or "requeues": the phase field the counter names (Redis hash
// field, SQLite column).
const char* CounterField(PhaseTransition::Counter counter);

}  // namespace sluice
