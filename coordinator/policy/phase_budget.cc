#include "coordinator/policy/phase_budget.h"

#include "coordinator/policy/outcome_evidence.h"

namespace sluice {

PhaseTransition TransitionAfterOutcome(PhaseBudget budget, Outcome outcome,
                                       bool counts_as_attempt) {
  PhaseTransition t;
  t.final_outcome = outcome;
  if (outcome == Outcome::kSucceeded) {
    t.counter = PhaseTransition::Counter::kAttempts;
    t.succeeds = true;
    return t;
  }
  // Cancelled attempts were stopped by us (deadline, drain), lost ones by the
  // infrastructure and start_failed ones never started (the worker's fault),
  // not by the phase: like transient failures they spend the requeue budget,
  // and the phase fails once requeues exceed it.
  if (!SpendsAnAttempt(outcome) || !counts_as_attempt) {
    t.counter = PhaseTransition::Counter::kRequeues;
    t.fail_at = static_cast<int64_t>(budget.max_requeues) + 1;
    return t;
  }
  t.counter = PhaseTransition::Counter::kAttempts;
  t.fail_at = budget.max_attempts;
  return t;
}

PhaseDecision ApplyTransition(const PhaseTransition& t, PhaseCounters counters) {
  PhaseDecision d;
  int64_t& spent =
      t.counter == PhaseTransition::Counter::kAttempts ? counters.attempts : counters.requeues;
  ++spent;
  if (t.succeeds) {
    d.next = PhaseState::kSucceeded;
    d.final_outcome = t.final_outcome;
  } else if (spent >= t.fail_at) {
    d.next = PhaseState::kFailed;
    d.final_outcome = t.final_outcome;
  } else {
    d.next = PhaseState::kPending;
  }
  d.counters = counters;
  return d;
}

PhaseDecision DecideAfterOutcome(PhaseBudget budget, PhaseCounters counters, Outcome outcome,
                                 bool counts_as_attempt) {
  return ApplyTransition(TransitionAfterOutcome(budget, outcome, counts_as_attempt), counters);
}

PhaseTransition LostLeaseTransition(int32_t max_requeues) {
  return TransitionAfterOutcome(PhaseBudget{1, max_requeues}, Outcome::kLost, false);
}

const char* CounterField(PhaseTransition::Counter counter) {
  return counter == PhaseTransition::Counter::kAttempts ? "attempts" : "requeues";
}

}  // namespace sluice
