// What containment costs per phase: the worker's PosixProcessRunner running a
// command N times uncontained (posix_spawn of the command) and contained
// (posix_spawn of sluice-phase-shim, which forks and execs the command), in
// alternating rounds so both see the same machine load. One thread, logs to
// /dev/null, no timeout. With $SLUICE_PHASE_CGROUP set, the contained runs
// each get a cgroup under it (docs/containment.md).
//
//   runner_bench N SHIM CMD [ARGS...]
//   -> wall: "uncontained_ms A contained_ms B extra_ms B-A" (mean per run), then
//      cpu:  the same for CPU time (user+system) of this process and every
//            descendant it reaped, less sensitive to other load on the machine
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/mutex_checks.h"
#include "worker/process_runner.h"

namespace {

// CPU seconds used so far by this process and its reaped descendants.
double CpuSeconds() {
  double total = 0;
  for (const int who : {RUSAGE_SELF, RUSAGE_CHILDREN}) {
    rusage usage{};
    ::getrusage(who, &usage);
    for (const timeval& tv : {usage.ru_utime, usage.ru_stime}) {
      total += static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
    }
  }
  return total;
}

// Runs `spec` `n` times; the total seconds, or a negative value on an error.
double TimeRuns(sluice::PosixProcessRunner& runner, const sluice::ProcessSpec& spec, long n) {
  const auto start = std::chrono::steady_clock::now();
  for (long i = 0; i < n; ++i) {
    absl::StatusOr<sluice::ProcessResult> result = runner.Run(spec, sluice::CancelToken());
    if (!result.ok() || result->exit_code != 0) {
      std::fprintf(stderr, "runner_bench: run failed: %s\n",
                   result.ok() ? "nonzero exit" : std::string(result.status().message()).c_str());
      return -1;
    }
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  sluice::ConfigureMutexDeadlockChecks();  // as the product runs
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s N SHIM CMD [ARGS...]\n", argv[0]);
    return 2;
  }
  const long total = std::strtol(argv[1], nullptr, 10);
  if (total <= 0) {
    std::fprintf(stderr, "runner_bench: N must be positive\n");
    return 2;
  }
  sluice::ProcessSpec spec;
  spec.argv.assign(argv + 3, argv + argc);
  sluice::PosixProcessRunner uncontained((std::string()));
  const char* cgroup = std::getenv("SLUICE_PHASE_CGROUP");
  sluice::PosixProcessRunner contained(std::string(argv[2]),
                                       cgroup != nullptr ? std::string(cgroup) : std::string());
  constexpr long kRounds = 10;
  const long per_round = std::max(total / kRounds, 1L);
  double plain_s = 0;
  double shim_s = 0;
  double plain_cpu_s = 0;
  double shim_cpu_s = 0;
  for (long round = 0; round < kRounds; ++round) {
    const double cpu0 = CpuSeconds();
    const double a = TimeRuns(uncontained, spec, per_round);
    const double cpu1 = CpuSeconds();
    const double b = TimeRuns(contained, spec, per_round);
    const double cpu2 = CpuSeconds();
    if (a < 0 || b < 0) return 1;
    plain_s += a;
    shim_s += b;
    plain_cpu_s += cpu1 - cpu0;
    shim_cpu_s += cpu2 - cpu1;
  }
  const double ms_per_run = 1000 / static_cast<double>(per_round * kRounds);
  std::printf("wall: uncontained_ms %.3f contained_ms %.3f extra_ms %.3f\n", plain_s * ms_per_run,
              shim_s * ms_per_run, (shim_s - plain_s) * ms_per_run);
  std::printf("cpu:  uncontained_ms %.3f contained_ms %.3f extra_ms %.3f\n",
              plain_cpu_s * ms_per_run, shim_cpu_s * ms_per_run,
              (shim_cpu_s - plain_cpu_s) * ms_per_run);
  return 0;
}
