// The bench's backlog model (see bench/policy_bench.cc for the whole story):
// a synthetic backlog shaped on real ones, and what one attempt of a phase
// does. Deterministic per seed.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model.h"

namespace sluice {
namespace sim {

[[noreturn]] void Die(const std::string& what);

template <typename T>
T Ok(absl::StatusOr<T> v, const char* what) {
  if (!v.ok()) Die(std::string(what) + ": " + v.status().ToString());
  return *std::move(v);
}

// kPhaseFail: a phase-specific, non-transient failure (its own error text)
// that still emits its events on the first attempt and fails the same way on
// every retry (the retry emits nothing new: telemetry is deduplicated).
enum class Kind { kEvents, kNoEvents, kDeterministic, kHang, kTransientOnce, kPhaseFail };

// True for the phases some attempt can finish successfully.
inline bool CanSucceed(Kind k) {
  return k == Kind::kEvents || k == Kind::kNoEvents || k == Kind::kTransientOnce;
}

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
  // The backlog row's last_error: the failure that put the phase in the
  // backlog (see LastErrorFor in model.cc). A noisy hint, never the answer.
  std::string last_error;
  // The odds its run was drawn with (what a policy can at best learn about a
  // run, never its phases): the chance a phase has events, and of a hang.
  double run_p_events = 0;
  double run_p_hang = 0;
};

struct Backlog {
  std::vector<SimPhase> phases;  // backlog (import) order
  int64_t attainable_events = 0;
  int runs = 0;
  int families = 0;
  int deterministic_phases = 0;
  int hang_phases = 0;
  int transient_phases = 0;
  int phase_fail_phases = 0;
  int can_succeed = 0;  // phases with CanSucceed(kind)
  int event_phases = 0;
  int largest_run = 0;
};

Backlog MakeBacklog(uint64_t seed, int target_phases, int target_runs);

// What one attempt of a phase does. `n` is the simulation's own count of
// starts of this phase (1-based), independent of how a policy counts.
struct AttemptResult {
  Outcome outcome = Outcome::kSucceeded;
  double duration_s = 0;
  int events = 0;
  std::string error_text;
  std::string cause;  // deterministic failures only
  // The longest stretch without output: the start-up prints, a working phase
  // then prints at least every 5-60 s (its own, from a hash), a hang prints
  // nothing after its start-up.
  double longest_silence_s = 0;
};

// Attempt `n` (1-based) of `p` under `timeout_s` and an idle limit of
// `idle_timeout_s` (0 = none): a hang is stopped once silent that long.
AttemptResult Simulate(const SimPhase& p, int n, int timeout_s, uint64_t seed,
                       int idle_timeout_s = 0);

}  // namespace sim
}  // namespace sluice
