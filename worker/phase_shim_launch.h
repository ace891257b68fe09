// The worker's side of worker/phase_shim_protocol.h: where the shim is,
// whether a cgroup parent can be used, the shim's argv, and the pipe on which
// it reports start failures. Used by PosixProcessRunner and sluice-worker's
// main; thread-safe except ShimStatusPipe (one per run).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/phase_shim_protocol.h"

namespace sluice {

// The shim a worker should use: $SLUICE_PHASE_SHIM when set, else
// sluice-phase-shim beside the running executable. NOT_FOUND when that file
// is missing or not executable.
absl::StatusOr<std::string> FindPhaseShim();

// OK when `dir` is a cgroup v2 directory (it has cgroup.procs and
// cgroup.kill) that this process can create child cgroups in; otherwise
// FAILED_PRECONDITION naming what is missing.
absl::Status CheckPhaseCgroupParent(const std::string& dir);

// The shim's argv up to the phase's own argv: the shim, this process's pid,
// the worker's PATH and the cgroup parent ("" for none), as the protocol
// spells them.
std::vector<std::string> PhaseShimArgv(const std::string& shim_path,
                                       const std::string& cgroup_parent);

// The pipe on which the shim says why it could not start the phase; both
// ends close-on-exec in this process (a sibling's child must not hold the
// write end, or end-of-file would wait for that child). Not thread-safe: one
// per Run().
class ShimStatusPipe {
 public:
  ShimStatusPipe();
  ~ShimStatusPipe();
  ShimStatusPipe(const ShimStatusPipe&) = delete;
  ShimStatusPipe& operator=(const ShimStatusPipe&) = delete;

  // errno of pipe2(), 0 when the pipe exists.
  int error() const { return error_; }
  // The end the shim gets as phase_shim::kStatusFd.
  int write_fd() const { return write_; }
  // Closes this process's copy of the write end (right after the spawn).
  void CloseWrite();
  // Blocks until the phase has been exec'd (end-of-file: nullopt) or the
  // shim reported a start failure.
  std::optional<phase_shim::ShimStartError> ReadStartError();

 private:
  int read_ = -1;
  int write_ = -1;
  int error_ = 0;
};

}  // namespace sluice
