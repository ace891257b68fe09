// What `sluice drain` prints while it drains: on a terminal one line redrawn
// in place (a bar with done/total, rate, ETA, yield); otherwise the plain log
// lines scripts and CI logs expect. Formatting is pure so it is tested
// without a terminal.
#pragma once

#include <cstdint>
#include <string>

#include "common/model.h"

namespace sluice {

struct DrainProgress {
  PhaseCounts phases;
  int64_t session_finished = 0;  // attempts finished in this drain's session
  int64_t running = 0;           // active leases
  int64_t telemetry_events = 0;  // events of the whole backlog so far
  // Worker time yield divides by: the backlog's summed attempt durations,
  // less those of attempts with unknown telemetry.
  int64_t run_ms = 0;
  int64_t elapsed_ms = 0;     // since the drain started
  std::string paused_reason;  // non-empty while leasing is paused
};

// Yield is events per worker-minute (events / summed attempt minutes), the
// definition of watch, report and recommend; "-" without attempt time.
// One terminal line, at most `width` columns, e.g.
//   [#########-----------]  45/100 phases  12.0/min  ETA 4m35s  yield 3.2 ev/min  2 running
std::string ProgressBarLine(const DrainProgress& p, int width);

// The plain line printed every few seconds when stdout is not a terminal.
std::string ProgressLogLine(const DrainProgress& p);

}  // namespace sluice
