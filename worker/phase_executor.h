// Runs one granted phase on this worker: expands the worker's own command
// template with the lease's identifiers (the coordinator never sends shell
// text), prepares the per-attempt log and telemetry files
// (LOG_DIR/RUN/PHASE.attemptN.LEASE.{stdout.log,stderr.log,telemetry.jsonl};
// each exists only once the phase wrote to it),
// runs the process through the ProcessRunner under the lease's timeout,
// counts the telemetry it wrote (plus the --telemetry-probe delta), and
// builds the AttemptReport. It never talks to the coordinator.
//
// Thread-safe: phases run concurrently, one Execute() each. `config` and
// `runner` must outlive this.
#pragma once

#include <cstdint>
#include <optional>

#include "common/model.h"
#include "worker/process_runner.h"
#include "worker/worker_config.h"

namespace sluice {

// Maps how a process ended to an attempt outcome. Signals the worker did not
// send that are "kills" (SIGKILL, SIGTERM, SIGINT, SIGHUP, or a shell's
// 128+N exit for those) are kKilled: outside kills, not the phase's failure.
Outcome ClassifyOutcome(const ProcessResult& result);

class PhaseExecutor {
 public:
  PhaseExecutor(const WorkerConfig& config, ProcessRunner& runner)
      : config_(config), runner_(runner) {}

  // Never fails: a phase that cannot be expanded is a kFailed report, one that
  // cannot be started (log file, workdir, posix_spawn) a kStartFailed report,
  // each saying why. `cancel` stops the process (SIGTERM, grace, SIGKILL).
  AttemptReport Execute(const LeaseGrant& lease, const CancelToken& cancel) const;

 private:
  // The probe's count, or nullopt when it failed or hung (logged with the
  // reason; the attempt's telemetry is then unknown). Needs a probe. Its
  // output goes to `base`.out/.err: one pair per attempt and moment, since
  // probes of concurrent slots run at the same time.
  std::optional<int64_t> ProbeTelemetry(const std::string& base) const;

  const WorkerConfig& config_;
  ProcessRunner& runner_;
};

}  // namespace sluice
