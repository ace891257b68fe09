// The idle limit (#13): a phase that hangs writes nothing, and without a
// limit it costs the whole phase timeout (15 minutes by default) before it
// is known to hang. Workers measure each attempt's longest silence (no
// output to its logs; ProcessResult::longest_silence_ms); a grant carries an
// idle limit (LeaseGrant::idle_timeout_seconds) past which the worker stops
// the phase as timed out, like CI systems' "no output" timeouts.
//
// The limit, per SessionSettings::idle_timeout_seconds:
//   > 0  that many seconds;
//   -1   none;
//   0    auto (the default): learnt cluster-wide from the attempts that
//        ended on their own (succeeded or failed, not stopped by a limit):
//        once kMinSamples of them were measured, kFactor x the longest
//        silence any of them showed, and never under kFloorSeconds. Before
//        that, none. A phase quieter than every one seen so far is the
//        risk; the factor and the floor are the margin.
// Never at or above the grant's timeout (it would never act).
//
// In memory only: after a restart or a new term the limit is learnt again.
// Thread-compatible: DrainPolicy serialises access.
#pragma once

#include <cstdint>

#include "common/model.h"

namespace sluice {

class IdleLimit {
 public:
  static constexpr int64_t kMinSamples = 5;
  static constexpr double kFactor = 2.0;
  static constexpr int32_t kFloorSeconds = 120;

  // An accepted report: its outcome and measured longest silence (-1: not
  // measured).
  void Observe(Outcome outcome, int64_t longest_silence_ms);
  // The idle limit for a grant with `timeout_seconds` under `settings`, in
  // seconds; 0 = none.
  int32_t SecondsFor(const SessionSettings& settings, int32_t timeout_seconds) const;
  // The auto limit as learnt so far, in seconds; 0 = not learnt yet.
  int32_t LearntSeconds() const;
  void Reset() { *this = IdleLimit(); }

 private:
  int64_t samples_ = 0;
  int64_t longest_ms_ = 0;
};

}  // namespace sluice
