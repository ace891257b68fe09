// The budget rule (coordinator/policy/phase_budget.h), one named row per
// rule. The stores apply the same transitions; the contract suite
// (tests/contract/state_store_report_test.cc) checks that on SQLite and on a
// real redis-server.
#include "coordinator/policy/phase_budget.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace sluice {
namespace {

struct Row {
  std::string rule;
  PhaseBudget budget;
  PhaseCounters before;
  Outcome outcome;
  bool counts_as_attempt;
  PhaseDecision want;
};

PhaseDecision Pending(int64_t attempts, int64_t requeues) {
  return {PhaseState::kPending, std::nullopt, {attempts, requeues}};
}
PhaseDecision Ends(PhaseState state, Outcome outcome, int64_t attempts, int64_t requeues) {
  return {state, outcome, {attempts, requeues}};
}

TEST(PhaseBudget, EveryRuleDecidesAsNamed) {
  const PhaseBudget b{/*max_attempts=*/2, /*max_requeues=*/1};
  const std::vector<Row> rows = {
      {"success ends the phase and spends an attempt",
       b,
       {1, 1},
       Outcome::kSucceeded,
       true,
       Ends(PhaseState::kSucceeded, Outcome::kSucceeded, 2, 1)},
      {"success ends the phase even past the attempt budget",
       {1, 0},
       {5, 3},
       Outcome::kSucceeded,
       true,
       Ends(PhaseState::kSucceeded, Outcome::kSucceeded, 6, 3)},
      {"success of a transient-matching report still succeeds",
       b,
       {0, 0},
       Outcome::kSucceeded,
       false,
       Ends(PhaseState::kSucceeded, Outcome::kSucceeded, 1, 0)},
      {"attempt budget: an own failure within it is pending again",
       b,
       {0, 0},
       Outcome::kFailed,
       true,
       Pending(1, 0)},
      {"attempt budget: the failure that reaches max_attempts fails for good",
       b,
       {1, 0},
       Outcome::kFailed,
       true,
       Ends(PhaseState::kFailed, Outcome::kFailed, 2, 0)},
      {"attempt budget: a timeout is an own outcome",
       b,
       {1, 1},
       Outcome::kTimedOut,
       true,
       Ends(PhaseState::kFailed, Outcome::kTimedOut, 2, 1)},
      {"attempt budget: a kill from outside is an own outcome",
       b,
       {0, 1},
       Outcome::kKilled,
       true,
       Pending(1, 1)},
      {"attempt budget: requeues do not count toward it",
       b,
       {1, 1},
       Outcome::kFailed,
       true,
       Ends(PhaseState::kFailed, Outcome::kFailed, 2, 1)},
      {"requeue budget: a transient failure within it is pending again",
       b,
       {1, 0},
       Outcome::kFailed,
       false,
       Pending(1, 1)},
      {"requeue budget: a transient failure over max_requeues fails for good",
       b,
       {1, 1},
       Outcome::kFailed,
       false,
       Ends(PhaseState::kFailed, Outcome::kFailed, 1, 2)},
      {"requeue budget: cancelled spends it whatever counts_as_attempt says",
       b,
       {1, 0},
       Outcome::kCancelled,
       true,
       Pending(1, 1)},
      {"requeue budget: cancelled over max_requeues fails as cancelled",
       b,
       {0, 1},
       Outcome::kCancelled,
       true,
       Ends(PhaseState::kFailed, Outcome::kCancelled, 0, 2)},
      {"requeue budget: a lost lease within it is pending again",
       b,
       {1, 0},
       Outcome::kLost,
       false,
       Pending(1, 1)},
      {"requeue budget: a lost lease over max_requeues fails as lost",
       b,
       {1, 1},
       Outcome::kLost,
       false,
       Ends(PhaseState::kFailed, Outcome::kLost, 1, 2)},
      {"requeue budget: zero requeues fails at the first loss",
       {2, 0},
       {0, 0},
       Outcome::kLost,
       true,
       Ends(PhaseState::kFailed, Outcome::kLost, 0, 1)},
      {"requeue budget: a start failure (the worker's) spends it, never an attempt",
       b,
       {1, 0},
       Outcome::kStartFailed,
       true,
       Pending(1, 1)},
      {"requeue budget: a start failure over max_requeues fails as start_failed",
       b,
       {1, 1},
       Outcome::kStartFailed,
       true,
       Ends(PhaseState::kFailed, Outcome::kStartFailed, 1, 2)},
      {"requeue budget: attempts do not count toward it",
       {1, 1},
       {7, 0},
       Outcome::kCancelled,
       true,
       Pending(7, 1)},
  };
  for (const Row& r : rows) {
    EXPECT_EQ(DecideAfterOutcome(r.budget, r.before, r.outcome, r.counts_as_attempt), r.want)
        << r.rule;
  }
}

TEST(PhaseBudget, ExpiryIsTheSameRuleWithALostOutcome) {
  for (int32_t max_requeues : {0, 1, 5}) {
    for (int64_t requeues = 0; requeues <= 6; ++requeues) {
      const PhaseCounters c{3, requeues};
      EXPECT_EQ(ApplyTransition(LostLeaseTransition(max_requeues), c),
                DecideAfterOutcome(PhaseBudget{2, max_requeues}, c, Outcome::kLost, false))
          << max_requeues << " " << requeues;
    }
  }
}

TEST(PhaseBudget, TransitionNamesTheCounterTheStoreSpends) {
  const PhaseBudget b{3, 4};
  PhaseTransition t = TransitionAfterOutcome(b, Outcome::kFailed, true);
  EXPECT_STREQ(CounterField(t.counter), "attempts");
  EXPECT_EQ(t.fail_at, 3);
  t = TransitionAfterOutcome(b, Outcome::kFailed, false);
  EXPECT_STREQ(CounterField(t.counter), "requeues");
  EXPECT_EQ(t.fail_at, 5);  // failed once requeues exceed 4
  // The largest budget does not overflow.
  EXPECT_EQ(TransitionAfterOutcome({1, INT32_MAX}, Outcome::kLost, false).fail_at,
            int64_t{INT32_MAX} + 1);
}

}  // namespace
}  // namespace sluice
