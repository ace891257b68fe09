// `sluice watch`: a live terminal view of a drain, refreshed every second
// from OperatorApi::Status and the latest session report: a progress bar of
// done over total, phases by state, rates and ETA, current and recent yield,
// workers and leases, top fingerprints and telemetry warnings. Quits on `q`
// or Ctrl-C; `--once` draws one frame and exits.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "cli/operator_api.h"
#include "coordinator/insight/session_report.h"

namespace sluice {

struct WatchOptions {
  bool once = false;
  int64_t interval_ms = 1000;
};

// One frame as text (no terminal escapes). Pure. `report` is the active or
// latest session's, when there is one.
std::string RenderWatchFrame(const CoordinatorStatus& status,
                             const std::optional<SessionReport>& report, int64_t now_ms);

// How `status` and `watch` show a worker's liveness: "seen 3s ago", or
// "gone, last seen 95s ago" for a worker past the coordinator's gone window
// (CoordinatorStatus::gone_workers): it exited or is cut off. Pure.
std::string WorkerSeenText(bool gone, int64_t ago_ms);

// Draws frames until q, Ctrl-C (SIGINT/SIGTERM) or, with --once, after one.
// On a terminal each frame replaces the last; otherwise frames are appended.
// Returns the process exit code (0, or 3 when the first Status call fails).
int RunWatch(OperatorApi& api, const WatchOptions& options);

}  // namespace sluice
