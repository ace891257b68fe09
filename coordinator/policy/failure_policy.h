// Cluster-wide failure memory for the repeat rule: how often each failure
// fingerprint occurred (since an operator last unblocked it) and in which
// runs. Rebuilt from the store's attempt history when a coordinator starts or
// takes over, then updated with every accepted report; unblocks are durable
// policy records in the store. Pure and thread-compatible: DrainPolicy
// serialises access.
//
// What counts: attempts whose outcome is kFailed and that were not transient
// (--retry-on). Timeouts have their own per-run rule and outside kills are
// their own class, so neither feeds the repeat rule.
//
// Phase-specific failures do not block runs (issue #13). A fingerprint blocks
// only once it is run-wide: it hit two distinct phase ids within one run
// family (one run or siblings), or two runs of families where nothing
// succeeded yet (or came without phase ids). One that repeats within one phase's attempts, or in
// one phase of each of many runs (errors that normalise alike), is that phase's problem: the retry
// worth-it rule decides about the phase, and the runs' other phases stay leasable. And in a
// productive run (with successes) a fingerprint blocks only when it hit more distinct phases of the
// run than the run has successes (it dominates the run).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model.h"
#include "common/run_family.h"

namespace re2 {
class RE2;
}

namespace sluice {

inline constexpr const char* kFingerprintUnblockRecord = "fingerprint_unblock";

struct FingerprintInfo {
  std::string fingerprint;  // the key
  std::string id;           // short display id
  int64_t count = 0;        // occurrences since the last unblock
  std::set<std::string> runs;
  std::string example_error;
  int64_t last_seen_ms = 0;
};

// A run's deterministic failures counted by the repeat rule.
struct RunFailures {
  int64_t count = 0;            // occurrences since their fingerprints' last unblock
  std::string top_fingerprint;  // the most frequent one ("" when count is 0)
};

class FailurePolicy {
 public:
  // `family_rule` says which runs are siblings (as the scheduler's).
  explicit FailurePolicy(RunFamilyRule family_rule = {}) : family_rule_(std::move(family_rule)) {}

  // `unblocks`: fingerprint -> unblock time in ms, as stored. `transient`
  // (one per attempt of `history`, or empty for none) says which failures
  // are transient under today's settings: not counted, as Observe does not.
  void Load(const std::vector<AttemptRecord>& history,
            const std::map<std::string, int64_t>& unblocks,
            const std::vector<bool>& transient = {});

  // An accepted attempt. `transient` failures are not counted.
  // `phase_id` "" (unknown) counts each occurrence as a distinct phase.
  void Observe(const std::string& run_id, Outcome outcome, const std::string& fingerprint,
               const std::string& error_text, int64_t ended_at_ms, bool transient,
               const std::string& phase_id = "");

  // The fingerprint that blocks `run_id` under `max_repeats` (the most
  // frequent one at or over the limit), if any. max_repeats <= 0: never.
  // `run_successes`: the run's successful attempts; with any, only a
  // fingerprint that hit more distinct phases of the run than that blocks.
  // A run of a productive family (one of its runs succeeded) is blocked
  // only by a fingerprint that hit two of its own phases.
  std::optional<std::string> BlockingFingerprint(const std::string& run_id, int32_t max_repeats,
                                                 int64_t run_successes = 0) const;

  // Distinct phases of `run_id` that failed with `fingerprint` (since its
  // last unblock).
  int64_t PhasesHit(const std::string& run_id, const std::string& fingerprint) const;
  // True once `fingerprint` hit two distinct phase ids in one run family,
  // or two runs of families without a success.
  bool RunWide(const std::string& fingerprint) const;

  // What the scheduler's deferral rule needs about `run_id`.
  RunFailures FailuresOf(const std::string& run_id) const;

  // Every fingerprint seen, most frequent first.
  std::vector<FingerprintInfo> Fingerprints() const;

  // Finds a fingerprint by key or display id.
  std::optional<std::string> Resolve(const std::string& key_or_id) const;

  // Forgets the occurrences of `fingerprint` up to `at_ms`.
  void Unblock(const std::string& fingerprint, int64_t at_ms);

 private:
  RunFamilyRule family_rule_;
  std::map<std::string, FingerprintInfo> by_fingerprint_;
  // run -> fingerprint -> occurrences in that run since the last unblock
  std::map<std::string, std::map<std::string, int64_t>> by_run_;
  // run -> fingerprint -> phases of that run it hit (ids known) and
  // occurrences with no phase id
  struct PhaseHits {
    std::set<std::string> phases;
    int64_t anonymous = 0;
  };
  std::map<std::string, std::map<std::string, PhaseHits>> phases_by_run_;
  std::set<std::string> productive_families_;  // families with a successful attempt
  std::map<std::string, int64_t> unblocked_at_;
};

// The built-in transient set, on unless switched off: infrastructure errors
// that say nothing about the phase and usually pass on a later attempt.
// RE2, case-insensitive, on the error text (and the fingerprint key):
//   connection reset / refused / aborted (and ECONNRESET, ECONNREFUSED,
//   ECONNABORTED, ETIMEDOUT, EPIPE); read or connect timeouts ("read
//   timeout", "ConnectTimeout", "read operation timed out", any "timed
//   out"); HTTP 429 and 5xx ("429 Too Many Requests", "503 Server Error",
//   "HTTP 502", "status code 500", "bad gateway", "service unavailable",
//   "gateway timeout"); "temporarily unavailable"; "rate limit(ed)";
//   "broken pipe"; DNS failures ("name or service not known", "temporary
//   failure in name resolution", "could not resolve host", "nodename nor
//   servname", "no address associated with hostname").
const std::vector<std::string>& DefaultTransientPatterns();

// kNoDefaultTransient (common/model.h) in SessionSettings::retry_on switches
// the built-in set off; it is never compiled as a pattern.

// Transient-failure patterns: the built-in set (unless retry_on holds
// kNoDefaultTransient) plus --retry-on's, RE2, case-insensitive, matched
// against a failure's fingerprint key and its raw error text.
class TransientMatcher {
 public:
  // InvalidArgument naming the pattern that does not compile. Exactly
  // `patterns`, no built-in set.
  static absl::StatusOr<TransientMatcher> Compile(const std::vector<std::string>& patterns);
  // What a session's `retry_on` means: the built-in set unless switched
  // off, plus its own patterns.
  static absl::StatusOr<TransientMatcher> ForSettings(const std::vector<std::string>& retry_on);
  TransientMatcher() = default;
  bool Matches(const std::string& fingerprint, const std::string& error_text) const;
  bool empty() const { return patterns_.empty(); }

 private:
  std::vector<std::shared_ptr<const re2::RE2>> patterns_;
};

}  // namespace sluice
