#include "cli/drain_progress.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "coordinator/insight/session_report.h"

namespace sluice {
namespace {

std::string Duration(int64_t seconds) {
  if (seconds >= 3600) return absl::StrFormat("%dh%02dm", seconds / 3600, seconds % 3600 / 60);
  if (seconds >= 60) return absl::StrFormat("%dm%02ds", seconds / 60, seconds % 60);
  return absl::StrFormat("%ds", seconds);
}

// Events per worker-minute, like watch, report and recommend; "-" while no
// attempt time is recorded (no evidence, not zero).
std::string YieldLabel(const DrainProgress& p) {
  const std::string value = YieldText(p.telemetry_events, p.run_ms, /*decimals=*/1);
  return p.run_ms <= 0 ? "yield -" : absl::StrCat("yield ", value, " ev/min");
}

}  // namespace

std::string ProgressBarLine(const DrainProgress& p, int width) {
  const int64_t total = p.phases.total();
  const int64_t done = p.phases.succeeded + p.phases.failed;
  const double minutes = static_cast<double>(p.elapsed_ms) / 60'000.0;
  const double rate = minutes > 0 ? static_cast<double>(p.session_finished) / minutes : 0;
  const int64_t left = p.phases.pending + p.phases.leased;
  std::string eta = "ETA -";
  if (left == 0) {
    eta = "done";
  } else if (!p.paused_reason.empty()) {
    eta = "PAUSED";
  } else if (rate > 0) {
    eta = "ETA " + Duration(static_cast<int64_t>(static_cast<double>(left) / rate * 60.0));
  }
  const std::string yield = YieldLabel(p);
  std::string tail = absl::StrFormat(" %d/%d phases  %.1f/min  %s  %s  %d running", done, total,
                                     rate, eta, yield, p.running);
  if (!p.paused_reason.empty()) absl::StrAppend(&tail, "  paused: ", p.paused_reason);
  // The bar takes what is left of the line, between 10 and 30 columns.
  const int bar = std::clamp(width - static_cast<int>(tail.size()) - 2, 10, 30);
  const int filled = total > 0
                         ? static_cast<int>(static_cast<double>(bar) * static_cast<double>(done) /
                                            static_cast<double>(total))
                         : 0;
  std::string line =
      absl::StrCat("[", std::string(filled, '#'), std::string(bar - filled, '-'), "]", tail);
  if (width > 0 && static_cast<int>(line.size()) > width) line.resize(width);
  return line;
}

std::string ProgressLogLine(const DrainProgress& p) {
  std::string line = absl::StrFormat(
      "progress: %d finished this session, %d running | phases: %d pending, %d succeeded, %d "
      "failed",
      p.session_finished, p.running, p.phases.pending, p.phases.succeeded, p.phases.failed);
  if (!p.paused_reason.empty()) absl::StrAppend(&line, " | leasing paused: ", p.paused_reason);
  return line;
}

}  // namespace sluice
