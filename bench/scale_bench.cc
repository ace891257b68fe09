// The store's cost per phase at a given backlog size (issue #12, scale half).
// Opens an existing store (already imported, e.g. by bench/scale.sh through
// `sluice import`), starts a session and runs lease+report cycles through the
// real Coordinator (in process, no gRPC, one thread) for --cycles or
// --seconds, whichever ends first, then
// prints one line of `key=value` figures:
//   cycles_per_s   lease+report cycles per second
//   status_ms      Coordinator::Status(explain_skips=true), the median of 5
//   rss_mb         this process's peak RSS (VmHWM) after the cycles
// The store is left with the leased phases reported (succeeded): run it on a
// scratch copy.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/clock.h"
#include "common/mutex_checks.h"
#include "coordinator/coordinator.h"
#include "coordinator/store/store_factory.h"
#include "spdlog/spdlog.h"

namespace sluice {
namespace {

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "scale_bench: %s\n", what.c_str());
  std::exit(1);
}

int64_t PeakRssKb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      int64_t kb = 0;
      (void)absl::SimpleAtoi(absl::StripAsciiWhitespace(line.substr(6, line.size() - 9)), &kb);
      return kb;
    }
  }
  return 0;
}

double StatusMs(Coordinator& coordinator) {
  std::vector<double> ms;
  for (int i = 0; i < 5; ++i) {
    const absl::Time t0 = absl::Now();
    auto status = coordinator.Status(/*explain_skips=*/true);
    if (!status.ok()) Die(status.status().ToString());
    ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

int Main(int argc, char** argv) {
  std::string url;
  double seconds = 10;
  int64_t max_cycles = 1'000'000'000;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--store=", 0) == 0) url = arg.substr(8);
    if (arg.rfind("--seconds=", 0) == 0) (void)absl::SimpleAtod(arg.substr(10), &seconds);
    if (arg.rfind("--cycles=", 0) == 0) (void)absl::SimpleAtoi(arg.substr(9), &max_cycles);
  }
  if (url.empty()) Die("usage: scale_bench --store=URL [--seconds=S] [--cycles=N]");
  auto opened = OpenStore(url);
  if (!opened.ok()) Die(opened.status().ToString());
  std::unique_ptr<StateStore> store = std::move(opened->store);
  CoordinatorConfig config;
  config.lease_ttl_ms = 600'000;
  Coordinator coordinator(*store, SystemClock::Default(), config);
  SessionSettings settings;
  settings.max_attempts_per_phase = 1;
  const std::string session_id = absl::StrCat("scale-", absl::ToUnixMillis(absl::Now()));
  if (auto s = coordinator.StartSession(settings, session_id); !s.ok()) {
    Die(s.status().ToString());
  }
  WorkerInfo w;
  w.worker_id = "scale-w0";
  w.host = "bench";
  w.slots = 1;
  if (auto r = coordinator.Register(w); !r.ok()) Die(r.status().ToString());
  const double status_ms = StatusMs(coordinator);

  int64_t cycles = 0;
  const absl::Time start = absl::Now();
  const absl::Time end = start + absl::Seconds(seconds);
  while (cycles < max_cycles && absl::Now() < end) {
    auto lease = coordinator.Lease(w.worker_id, absl::StrCat("r", cycles), 1, 0);
    if (!lease.ok()) Die(lease.status().ToString());
    if (lease->leases.empty()) Die("nothing to lease: import a bigger backlog");
    const LeaseGrant& grant = lease->leases.front();
    AttemptReport report;
    report.lease_id = grant.lease_id;
    report.epoch = grant.epoch;
    report.worker_id = w.worker_id;
    report.outcome = Outcome::kSucceeded;
    report.duration_ms = 1;
    report.telemetry_events = 1;
    report.telemetry_by_type = {{"llm_call", 1}};
    auto answer = coordinator.Report(report);
    if (!answer.ok()) Die(answer.status().ToString());
    ++cycles;
  }
  const double elapsed = absl::ToDoubleSeconds(absl::Now() - start);
  if (auto st = coordinator.StopSession(session_id, "bench done"); !st.ok()) {
    Die(st.status().ToString());
  }
  std::printf("cycles=%lld cycles_per_s=%.0f status_ms=%.1f rss_mb=%.0f\n",
              static_cast<long long>(cycles), static_cast<double>(cycles) / elapsed, status_ms,
              static_cast<double>(PeakRssKb()) / 1024.0);
  return 0;
}

}  // namespace
}  // namespace sluice

int main(int argc, char** argv) {
  sluice::ConfigureMutexDeadlockChecks();  // as the product runs
  spdlog::set_level(spdlog::level::warn);  // the coordinator logs every lease and report at info
  return sluice::Main(argc, argv);
}
