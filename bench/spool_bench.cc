// What the outcome spool costs per phase: OutcomeSpool::Put then Remove of a
// typical report, N times, with a new file per outcome (max_free_files 0,
// the spool before it reused files) and with answered files reused (the
// default), in alternating rounds so both see the same machine and file
// system state. The directory is on the file system under test ($TMPDIR or
// /tmp by default): a journal-less ext4 shows the cost of inode churn there.
//
//   spool_bench N [DIR]
//   -> per round and side: "new_file|reused  WALL_us  SYS_us" per Put+Remove,
//      then the medians and reused / new_file
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/mutex_checks.h"
#include "worker/outcome_spool.h"

namespace {

double SystemSeconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_stime.tv_usec) / 1e6;
}

struct Cost {
  double wall_us = 0;
  double sys_us = 0;
};

// N outcomes through `spool`, as a worker's slot spools and answers them.
bool Round(const sluice::OutcomeSpool& spool, long n, long round, Cost* cost) {
  sluice::AttemptReport report;
  report.worker_id = "w1";
  report.epoch = 7;
  report.outcome = sluice::Outcome::kSucceeded;
  report.duration_ms = 1234;
  report.stdout_tail = std::string(600, 'o');
  report.telemetry_events = 3;
  report.telemetry_by_type = {{"token_estimation", 3}};
  const double sys0 = SystemSeconds();
  const auto start = std::chrono::steady_clock::now();
  for (long i = 0; i < n; ++i) {
    report.lease_id = absl::StrCat("L-", round, "-", i);
    if (!spool.Put(report).ok() || !spool.Remove(report.lease_id).ok()) return false;
  }
  const std::chrono::duration<double, std::micro> wall = std::chrono::steady_clock::now() - start;
  cost->wall_us = wall.count() / static_cast<double>(n);
  cost->sys_us = (SystemSeconds() - sys0) * 1e6 / static_cast<double>(n);
  return true;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  sluice::ConfigureMutexDeadlockChecks();  // as the product runs
  if (argc < 2 || std::atol(argv[1]) <= 0) {
    std::fprintf(stderr, "usage: spool_bench N [DIR]\n");
    return 2;
  }
  const long n = std::atol(argv[1]);
  const char* tmpdir = std::getenv("TMPDIR");
  const std::filesystem::path base =
      std::filesystem::path(argc > 2 ? argv[2] : (tmpdir != nullptr ? tmpdir : "/tmp")) /
      absl::StrCat("sluice-spool-bench-", ::getpid());
  const sluice::OutcomeSpool new_file((base / "new_file").string(), /*max_free_files=*/0);
  const sluice::OutcomeSpool reused((base / "reused").string());
  if (!new_file.Init().ok() || !reused.Init().ok()) {
    std::fprintf(stderr, "spool_bench: cannot create %s\n", base.c_str());
    return 1;
  }
  std::vector<double> wall[2], sys[2];
  constexpr int kRounds = 5;
  bool ok = true;
  for (int round = 0; round < kRounds && ok; ++round) {
    for (int side = 0; side < 2 && ok; ++side) {
      Cost cost;
      ok = Round(side == 0 ? new_file : reused, n, round, &cost);
      wall[side].push_back(cost.wall_us);
      sys[side].push_back(cost.sys_us);
      std::printf("%-8s %8.1f us wall %8.1f us sys per Put+Remove\n",
                  side == 0 ? "new_file" : "reused", cost.wall_us, cost.sys_us);
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(base, ec);
  if (!ok) {
    std::fprintf(stderr, "spool_bench: a Put or Remove failed\n");
    return 1;
  }
  std::printf(
      "median: new_file %.1f us (sys %.1f), reused %.1f us (sys %.1f), reused / new_file %.2f\n",
      Median(wall[0]), Median(sys[0]), Median(wall[1]), Median(sys[1]),
      Median(wall[1]) / Median(wall[0]));
  return 0;
}
