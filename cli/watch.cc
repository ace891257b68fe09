#include "cli/watch.h"

#include <poll.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/clock.h"
#include "common/signals.h"

namespace sluice {
namespace {

constexpr int kBarWidth = 40;
constexpr int64_t kRecentBuckets = 5;

std::string Bar(int64_t done, int64_t total) {
  const int filled =
      total <= 0 ? 0 : static_cast<int>(std::min<int64_t>(kBarWidth, done * kBarWidth / total));
  return absl::StrCat("[", std::string(static_cast<size_t>(filled), '#'),
                      std::string(static_cast<size_t>(kBarWidth - filled), '-'), "]");
}

std::string Minutes(double minutes) {
  if (minutes < 1) return absl::StrFormat("%.0fs", minutes * 60);
  if (minutes < 120) return absl::StrFormat("%.0f min", minutes);
  return absl::StrFormat("%.1f h", minutes / 60);
}

// Restores the terminal on every exit path.
class RawInput {
 public:
  RawInput() {
    if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_) != 0) return;
    termios raw = saved_;
    raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);  // ISIG stays: Ctrl-C signals
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    active_ = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
  }
  ~RawInput() {
    if (active_) tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  }
  RawInput(const RawInput&) = delete;
  RawInput& operator=(const RawInput&) = delete;

 private:
  termios saved_{};
  bool active_ = false;
};

// Waits up to timeout_ms for input; true when q, Q or Ctrl-C was typed.
bool QuitTyped(int timeout_ms, bool* stdin_open) {
  if (!*stdin_open) {
    usleep(static_cast<useconds_t>(timeout_ms) * 1000);
    return false;
  }
  pollfd p{STDIN_FILENO, POLLIN, 0};
  if (poll(&p, 1, timeout_ms) <= 0) return false;
  char buf[64];
  const ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
  if (n <= 0) {
    *stdin_open = false;  // EOF: keep watching until a signal
    return false;
  }
  for (ssize_t i = 0; i < n; ++i) {
    if (buf[i] == 'q' || buf[i] == 'Q' || buf[i] == 3) return true;
  }
  return false;
}

}  // namespace

std::string WorkerSeenText(bool gone, int64_t ago_ms) {
  const int64_t seconds = std::max<int64_t>(0, ago_ms) / 1000;
  return gone ? absl::StrFormat("gone, last seen %ds ago", seconds)
              : absl::StrFormat("seen %ds ago", seconds);
}

std::string RenderWatchFrame(const CoordinatorStatus& status,
                             const std::optional<SessionReport>& report, int64_t now_ms) {
  std::string out;
  const PhaseCounts& p = status.phases;
  const int64_t done = p.succeeded + p.failed;
  absl::StrAppend(&out, "sluice watch (q to quit)\n");
  if (status.session) {
    const SessionRecord& s = *status.session;
    absl::StrAppendFormat(
        &out, "session %s: %s%s, %d attempts finished\n", s.session_id, SessionStateName(s.state),
        s.end_reason.empty() ? "" : " (" + s.end_reason + ")", status.session_finished);
  } else {
    absl::StrAppend(&out, "no session yet\n");
  }
  absl::StrAppendFormat(
      &out, "progress %s %d/%d done (%.1f%%)\n", Bar(done, p.total()), done, p.total(),
      p.total() == 0 ? 0.0 : 100.0 * static_cast<double>(done) / static_cast<double>(p.total()));
  absl::StrAppendFormat(&out, "phases: pending %d  leased %d  succeeded %d  failed %d\n", p.pending,
                        p.leased, p.succeeded, p.failed);
  if (report) {
    const SessionReport& r = *report;
    const int64_t end = r.ended_at_ms > 0 ? r.ended_at_ms : now_ms;
    const double elapsed_min =
        std::max(1e-9, static_cast<double>(end - r.started_at_ms) / 60'000.0);
    int64_t finished = 0;  // the phases' own outcomes
    for (const char* name : {"succeeded", "failed", "timed_out", "killed"}) {
      auto it = r.outcomes.find(name);
      if (it != r.outcomes.end()) finished += it->second;
    }
    const double rate = static_cast<double>(finished) / elapsed_min;
    const int64_t remaining = p.pending + p.leased;
    absl::StrAppendFormat(&out, "rate: %.1f attempts/min over %s", rate, Minutes(elapsed_min));
    if (rate > 0 && remaining > 0) {
      absl::StrAppendFormat(&out, "  ETA %s for %d phases",
                            Minutes(static_cast<double>(remaining) / rate), remaining);
    }
    int64_t recent_events = 0;
    int64_t recent_ms = 0;
    const size_t from = r.timeline.size() > kRecentBuckets ? r.timeline.size() - kRecentBuckets : 0;
    for (size_t i = from; i < r.timeline.size(); ++i) {
      recent_events += r.timeline[i].telemetry_events;
      recent_ms += r.timeline[i].telemetry_ms();
    }
    absl::StrAppendFormat(
        &out, "\nyield: %s events/min (recent %s), %d telemetry events, %.1f worker-min\n",
        YieldText(r.telemetry_events, r.telemetry_ms()), YieldText(recent_events, recent_ms),
        r.telemetry_events, static_cast<double>(r.run_ms) / 60'000.0);
    if (r.unknown_telemetry_attempts > 0) {
      absl::StrAppendFormat(
          &out, "telemetry unknown: %d attempts, %.1f worker-min (not in yield)\n",
          r.unknown_telemetry_attempts, static_cast<double>(r.unknown_telemetry_ms) / 60'000.0);
    }
  }
  absl::StrAppendFormat(&out, "workers: %d connected, %d gone  active leases: %d\n",
                        status.workers.size() - status.gone_workers.size(),
                        status.gone_workers.size(), status.active_leases.size());
  for (const WorkerInfo& w : status.workers) {
    auto it = status.active_leases_by_worker.find(w.worker_id);
    absl::StrAppendFormat(
        &out, "  %-28s %-16s slots=%d leases=%d %s\n", w.worker_id, w.host, w.slots,
        it == status.active_leases_by_worker.end() ? 0 : it->second,
        WorkerSeenText(status.gone_workers.contains(w.worker_id), now_ms - w.last_seen_ms));
  }
  if (report && !report->top_errors.empty()) {
    absl::StrAppend(&out, "top fingerprints:\n");
    for (size_t i = 0; i < std::min<size_t>(3, report->top_errors.size()); ++i) {
      const ErrorReportRow& e = report->top_errors[i];
      std::string example = e.example_error.empty() ? e.fingerprint : e.example_error;
      example = example.substr(0, 70);
      std::replace(example.begin(), example.end(), '\n', ' ');
      absl::StrAppendFormat(&out, "  %4dx %s runs=%d  %s\n", e.attempts, e.fingerprint_id, e.runs,
                            example);
    }
  }
  if (report) {
    for (const TelemetryWarning& w : report->telemetry_warnings) {
      absl::StrAppend(&out, "WARNING: ", w.message, "\n");
    }
  }
  return out;
}

int RunWatch(OperatorApi& api, const WatchOptions& options) {
  std::atomic<bool> stop{false};
  TerminationWatcher watcher([&stop](int) { stop = true; });
  const bool tty = isatty(STDOUT_FILENO) != 0;
  RawInput raw;
  bool stdin_open = !options.once;
  bool first = true;
  while (!stop.load()) {
    absl::StatusOr<CoordinatorStatus> status = api.Status(/*explain_skips=*/false);
    std::string frame;
    if (!status.ok()) {
      if (first) {
        std::cerr << "sluice watch: " << status.status().message() << "\n";
        return 3;
      }
      frame = absl::StrCat("sluice watch: ", status.status().message(), " (retrying)\n");
    } else {
      std::optional<SessionReport> report;
      if (status->session) {
        absl::StatusOr<std::string> json = api.ReportJson(status->session->session_id);
        if (json.ok()) {
          absl::StatusOr<SessionReport> parsed = SessionReportFromJson(*json);
          if (parsed.ok()) report = *std::move(parsed);
        }
      }
      frame = RenderWatchFrame(*status, report, SystemClock::Default().NowMs());
    }
    if (options.once) {
      std::cout << frame << std::flush;
      return 0;
    }
    // Home, draw, clear what the previous (longer) frame left below.
    // On a terminal: clear once, then home and redraw, erasing what a longer
    // previous frame left below.
    const char* before = tty ? (first ? "\x1b[2J\x1b[H" : "\x1b[H") : (first ? "" : "\n");
    std::cout << before << frame << (tty ? "\x1b[J" : "") << std::flush;
    first = false;
    for (int64_t waited = 0; waited < options.interval_ms && !stop.load(); waited += 100) {
      if (QuitTyped(100, &stdin_open)) {
        stop = true;
      }
    }
  }
  if (tty) std::cout << "\n";
  return 0;
}

}  // namespace sluice
