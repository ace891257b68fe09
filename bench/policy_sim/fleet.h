// The simulated fleet: K workers, one slot each, on simulated time; the
// metrics of a drain; the interface every simulated policy implements.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bench/policy_sim/model.h"

namespace sluice {
namespace sim {

struct AttemptLog {
  double start_s = 0;
  double end_s = 0;
  int events = 0;
  bool deterministic_failure = false;
  std::string cause;
  const SimPhase* phase = nullptr;
  bool succeeded = false;
};

struct Metrics {
  double events_per_worker_minute = 0;
  double minutes_to_90 = -1;  // -1: never reached
  double repeat_minutes = 0;
  double worker_minutes = 0;
  double wall_minutes = 0;
  int64_t events = 0;
  int64_t attempts = 0;
  int64_t phases_succeeded = 0;  // distinct phases with a successful attempt
  // Wall-clock minutes until 90 % of the events this drain collects were in
  // (the fleet speed-up check); -1 when it collected none.
  double wall_minutes_to_90_own = -1;
};

Metrics Measure(std::vector<AttemptLog> log, int64_t attainable);

// Where the worker-minutes went (for --verbose): minutes of first attempts
// and of retries per phase kind, over the whole drain and until 90 % of
// `target` events were in.
std::string Breakdown(std::vector<AttemptLog> log, int64_t target);

// Where a simulated worker gets its next phase.
struct Assignment {
  const SimPhase* phase = nullptr;
  int timeout_s = 900;
  std::string lease_id;  // sluice only
  int64_t epoch = 0;
  int idle_timeout_s = 0;  // 0: none (sluice's grants may set one)
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

// Runs `policy` to completion with `workers` simulated workers.
std::vector<AttemptLog> RunSimulation(Policy& policy, int workers, uint64_t seed);

}  // namespace sim
}  // namespace sluice
