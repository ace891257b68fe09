// Typed reasons for the drain policy's decisions. Every decision that keeps
// work from being leased (exclude, defer, wait for labels, failed for good)
// and every reason a session ends carries a code that callers branch on, and
// a detail (the numbers, the fingerprint, the family) that only ends up in
// text. Text() renders the one line operators read in status, plan and the
// report; callers never parse it back.
//
// Pure value types; thread-compatible.
#pragma once

#include <string>
#include <string_view>

namespace sluice {

// Why pending work is not leased now (or is leased only last).
enum class SkipReason {
  kNone,                    // leasable
  kNotSelected,             // --run-id does not name the run
  kSkippedByPrefix,         // --skip-run-prefix matches the run
  kFingerprintRepeats,      // the repeat rule: a fingerprint hit --max-fingerprint-repeats
  kTimeoutsPerRun,          // twice --max-timeouts-per-run reached, nothing to show
  kBackingOff,              // after a transient failure (--retry-on)
  kDeferredOwnFailures,     // the run's sampled phases failed deterministically, none succeeded
  kDeferredFamilyFailures,  // its family's other runs failed deterministically, none succeeded
  kNeedsLabels,             // no registered worker has the phase's labels
  kNeedsLabelsUnlisted,     // the summary row for label-waiting phases beyond the listed ones
  kFailedForGood,           // attempts or requeues exhausted
  kRetryNotWorthIt,         // failed for good early: retries of its fingerprint rarely succeed
  kDeferredTimeouts,        // --max-timeouts-per-run reached: deferred (excluded only at twice
                            // the limit with nothing to show)
  kBelowMinExpectedYield,   // the stop rule: expected yield below --min-expected-yield
};

// "not_selected", "fingerprint_repeats", ... (stable; for logs and JSON).
std::string_view SkipReasonName(SkipReason reason);
// The SkipRow kind a reason belongs to: "excluded", "deferred",
// "waiting_for_labels", "failed" ("" for kNone).
std::string_view SkipKindName(SkipReason reason);
// True for the reasons that keep a run out of the ranking altogether.
bool IsExclusion(SkipReason reason);
// True for the deferrals: leased only when nothing else is eligible.
bool IsDeferral(SkipReason reason);

struct PolicyReason {
  SkipReason code = SkipReason::kNone;
  // The variable part of the text: kFingerprintRepeats "ID (key)",
  // kTimeoutsPerRun "N timeouts", kDeferredTimeouts "N timeouts, M
  // successes", kBackingOff "N s", kDeferred* the counts
  // and fingerprint, kNeedsLabels the labels "a,b", kFailedForGood the
  // budgets. Empty for the filters.
  std::string detail;

  bool empty() const { return code == SkipReason::kNone; }
  // The operator's line, e.g. "max_timeouts_per_run reached (2 timeouts)".
  std::string Text() const;
};

// Why a session is over (or kNone while it is not).
enum class SessionEndReason {
  kNone,
  kEnded,                  // no longer active: detail is the reason stored when it ended
  kMaxTotalMinutes,        // the session deadline passed
  kBatchSize,              // --batch-size attempts finished
  kZeroYield,              // --max-consecutive-zero-yield attempts in a row without telemetry
  kNothingLeft,            // nothing eligible and no run backing off
  kBelowMinExpectedYield,  // the stop rule: nothing left is expected to beat
                           // --min-expected-yield (detail: what is left)
};

std::string_view SessionEndReasonName(SessionEndReason reason);  // "batch_size", ...

struct SessionEnd {
  SessionEndReason code = SessionEndReason::kNone;
  // kEnded: the stored reason; kZeroYield: the streak; kNothingLeft: why
  // pending phases are left, when some are (all blocked or excluded).
  std::string detail;

  bool done() const { return code != SessionEndReason::kNone; }
  // What the session record and status say, e.g. "batch_size reached".
  std::string Text() const;
};

}  // namespace sluice
