#include "bench/policy_sim/model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <iterator>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"

namespace sluice {
namespace sim {

void Die(const std::string& what) {
  std::fprintf(stderr, "policy_bench: %s\n", what.c_str());
  std::exit(1);
}

namespace {
const char* const kWords[] = {"ingest", "report", "billing", "search", "render", "auth",
                              "sync",   "export", "import",  "media",  "notify", "graph",
                              "quota",  "ledger", "crawl",   "index",  "audit",  "geo"};
const char* const kCauses[] = {
    "ModuleNotFoundError: No module named '%s_client'",
    "ImportError: cannot import name 'Session' from '%s.core'",
    "FileNotFoundError: [Errno 2] No such file or directory: '/data/%s/fixtures.json'",
    "AssertionError: schema version mismatch in %s: expected 7, got 6",
    "KeyError: '%s_API_TOKEN' is not set",
};
// Transient infrastructure errors as workers report them.
const char* const kTransientTexts[] = {
    "ConnectionResetError: [Errno 104] Connection reset by peer while uploading to "
    "https://results.internal:8443/v2/upload",
    "TimeoutError: The read operation timed out",
    "requests.exceptions.HTTPError: 503 Server Error: Service Unavailable for url: "
    "https://artifacts.internal/v1/blob",
    "socket.gaierror: [Errno -3] Temporary failure in name resolution",
};
// Failures of the environment the backlog was made in (since fixed): shared
// by phases of every kind, so they say nothing about a phase.
const char* const kEnvironmentTexts[] = {
    "OSError: [Errno 28] No space left on device: '/tmp/build-cache'",
    "subprocess.CalledProcessError: Command '['pip', 'install', '-r', 'requirements.txt']' "
    "returned non-zero exit status 1.",
    "RuntimeError: telemetry database is not reachable (TELEMETRY_DB_URL unset)",
};

// The backlog row's last_error, as the original controller wrote it: a hang
// was usually killed at its timeout there too (80 %); a phase that can
// succeed now failed for a transient reason (45 %), because of the old
// environment (45 %) or by running into a timeout on a slow machine (10 %);
// a phase-specific failure shows its own traceback (80 %); a family's
// deterministic failure its root cause (85 %). Drawn from its own generator,
// so the backlog itself is the same as without it.
std::string LastErrorFor(const SimPhase& p, uint64_t seed) {
  std::mt19937_64 rng(
      seed * 0x9e3779b97f4a7c15ULL ^
      std::hash<std::string>{}(absl::StrCat("last_error:", p.run_id, "/", p.phase_id)));
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const double x = u(rng);
  const std::string environment = kEnvironmentTexts[rng() % std::size(kEnvironmentTexts)];
  const std::string timeout = "phase timed out after 900s (no output for 612s)";
  const std::string transient = kTransientTexts[rng() % std::size(kTransientTexts)];
  switch (p.kind) {
    case Kind::kHang:
      return x < 0.8 ? timeout : environment;
    case Kind::kEvents:
    case Kind::kNoEvents:
    case Kind::kTransientOnce:
      return x < 0.45 ? transient : x < 0.9 ? environment : timeout;
    case Kind::kPhaseFail:
      // Its own failure, as the original attempt (number 0) printed it.
      return x < 0.8 ? Simulate(p, 0, 900, seed).error_text : environment;
    case Kind::kDeterministic:
      return x < 0.85 ? Simulate(p, 0, 900, seed).error_text : environment;
  }
  return environment;
}
}  // namespace

Backlog MakeBacklog(uint64_t seed, int target_phases, int target_runs) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  // Heavy-tailed run sizes: Pareto(alpha 1.1), scaled to the target, no run
  // above 12 % of the backlog (a single giant run would decide every metric).
  const int cap =
      std::max({1, target_phases * 12 / 100, (target_phases + target_runs - 1) / target_runs});
  std::vector<double> raw(target_runs);
  for (double& r : raw) r = 1.0 / std::pow(1.0 - u(rng) * 0.999, 1.0 / 1.1);
  double sum = 0;
  for (double r : raw) sum += r;
  std::vector<int> sizes(target_runs);
  int total = 0;
  for (int i = 0; i < target_runs; ++i) {
    sizes[i] = std::clamp(static_cast<int>(std::lround(raw[i] * target_phases / sum)), 1, cap);
    total += sizes[i];
  }
  // Hand out (or take back) the rounding remainder one phase at a time,
  // biggest runs first, within the cap.
  std::vector<int> by_size(target_runs);
  for (int i = 0; i < target_runs; ++i) by_size[i] = i;
  std::sort(by_size.begin(), by_size.end(), [&](int a, int b) { return sizes[a] > sizes[b]; });
  for (size_t k = 0; total != target_phases; k = (k + 1) % by_size.size()) {
    int& size = sizes[by_size[k]];
    if (total < target_phases && size < cap) {
      ++size;
      ++total;
    } else if (total > target_phases && size > 1) {
      --size;
      --total;
    }
  }

  // Families of 1-3 runs with realistic variant suffixes.
  struct Family {
    std::string name;
    std::vector<int> runs;
    int phases = 0;
    bool deterministic = false;
    std::string cause_text;
  };
  std::vector<Family> families;
  std::vector<std::string> run_ids(target_runs);
  for (int i = 0; i < target_runs;) {
    const double f = u(rng);
    const int n = std::min(target_runs - i, f < 0.4 ? 1 : f < 0.75 ? 2 : 3);
    Family fam;
    fam.name =
        absl::StrCat(kWords[families.size() % std::size(kWords)], "-",
                     kWords[(families.size() * 7 + 3) % std::size(kWords)], "-", families.size());
    const int style = static_cast<int>(u(rng) * 3);
    for (int k = 0; k < n; ++k, ++i) {
      fam.runs.push_back(i);
      fam.phases += sizes[i];
      run_ids[i] = style == 0 ? absl::StrCat(fam.name, "-v", k + 1)
                   : style == 1
                       ? absl::StrFormat("%s-2024-03-%02d", fam.name, 5 + k)
                       : absl::StrCat(fam.name, "-", std::string(1, static_cast<char>('a' + k)));
    }
    families.push_back(std::move(fam));
  }
  // Deterministically failing families: 40-50 % of the phases.
  std::vector<int> order(families.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  std::shuffle(order.begin(), order.end(), rng);
  int failing = 0;
  for (int f : order) {
    if (failing >= target_phases * 45 / 100) break;
    if (failing + families[f].phases > target_phases / 2) continue;
    families[f].deterministic = true;
    failing += families[f].phases;
    families[f].cause_text = absl::StrReplaceAll(
        kCauses[static_cast<size_t>(u(rng) * std::size(kCauses))], {{"%s", families[f].name}});
  }
  // A few hang-prone runs among the others.
  std::set<int> hang_prone;
  for (int f : order) {
    if (families[f].deterministic || hang_prone.size() >= 3) continue;
    for (int r : families[f].runs) {
      if (sizes[r] >= 2 && hang_prone.size() < 3) hang_prone.insert(r);
    }
  }

  Backlog b;
  b.runs = target_runs;
  b.families = static_cast<int>(families.size());
  b.largest_run = *std::max_element(sizes.begin(), sizes.end());
  std::vector<int> run_order(target_runs);
  for (int i = 0; i < target_runs; ++i) run_order[i] = i;
  std::shuffle(run_order.begin(), run_order.end(), rng);  // backlog order is not family order
  std::vector<const Family*> family_of(target_runs);
  for (const Family& f : families) {
    for (int r : f.runs) family_of[r] = &f;
  }
  for (int r : run_order) {
    const Family& fam = *family_of[r];
    // Runs differ in productivity; hang-prone runs are productive between
    // their hangs (runs that mix hangs with productive phases).
    const double p_events = hang_prone.contains(r) ? 0.6 + 0.3 * u(rng) : 0.15 + 0.7 * u(rng);
    const double p_hang = hang_prone.contains(r) ? 0.5 : 0.03;
    for (int k = 0; k < sizes[r]; ++k) {
      SimPhase p;
      p.run_id = run_ids[r];
      p.phase_id = absl::StrFormat("phase-%03d", k);
      p.index = k;
      p.run_p_events = fam.deterministic ? 0 : p_events;
      p.run_p_hang = fam.deterministic ? 0 : p_hang;
      p.startup_s = 20 + 20 * u(rng);
      p.work_s = 60 + 540 * u(rng) * u(rng);  // mostly short, some long
      const double x = u(rng);
      if (fam.deterministic) {
        p.kind = Kind::kDeterministic;
        p.work_s = 2 + 18 * u(rng);
        p.cause = fam.name;
        p.cause_text = fam.cause_text;
      } else if (x < p_hang) {
        p.kind = Kind::kHang;
      } else if (x > 0.88) {
        p.kind = Kind::kPhaseFail;
        p.events = u(rng) < p_events ? 1 + static_cast<int>(u(rng) * 2) : 0;
        p.work_s = 30 + 240 * u(rng) * u(rng);
      } else if (u(rng) < 0.10) {
        p.kind = Kind::kTransientOnce;
        p.events = u(rng) < p_events ? 1 + static_cast<int>(u(rng) * 3) : 0;
      } else if (u(rng) < p_events) {
        p.kind = Kind::kEvents;
        p.events = 1 + static_cast<int>(u(rng) * 3);
      } else {
        p.kind = Kind::kNoEvents;
      }
      p.last_error = LastErrorFor(p, seed);
      b.deterministic_phases += p.kind == Kind::kDeterministic;
      b.hang_phases += p.kind == Kind::kHang;
      b.transient_phases += p.kind == Kind::kTransientOnce;
      b.phase_fail_phases += p.kind == Kind::kPhaseFail;
      b.can_succeed += CanSucceed(p.kind);
      b.event_phases += p.events > 0;
      b.attainable_events += p.events;
      b.phases.push_back(std::move(p));
    }
  }
  return b;
}

AttemptResult SimulateOutcome(const SimPhase& p, int n, int timeout_s, uint64_t seed);

namespace {
// A working phase's longest gap between two outputs, 5-60 s: its own, the
// same on every attempt, from a hash (the backlog is unchanged by it).
double OutputGapS(const SimPhase& p, uint64_t seed) {
  std::mt19937_64 rng(seed ^
                      std::hash<std::string>{}(absl::StrCat("gap:", p.run_id, "/", p.phase_id)));
  return 5 + 55 * std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}
}  // namespace

AttemptResult Simulate(const SimPhase& p, int n, int timeout_s, uint64_t seed, int idle_timeout_s) {
  AttemptResult r = SimulateOutcome(p, n, timeout_s, seed);
  if (p.kind == Kind::kHang) {
    // Silent after its start-up: the idle limit stops it first if shorter.
    if (idle_timeout_s > 0 && p.startup_s + idle_timeout_s < r.duration_s) {
      r.duration_s = p.startup_s + idle_timeout_s;
    }
    r.longest_silence_s = std::max(0.0, r.duration_s - p.startup_s);
    return r;
  }
  r.longest_silence_s = std::min(OutputGapS(p, seed), r.duration_s);
  // A working phase quieter than the limit is stopped as a hang would be.
  if (idle_timeout_s > 0 && r.longest_silence_s >= idle_timeout_s) {
    r = AttemptResult{};
    r.outcome = Outcome::kTimedOut;
    r.duration_s = std::min<double>(timeout_s, p.startup_s + idle_timeout_s);
    r.longest_silence_s = idle_timeout_s;
  }
  return r;
}

AttemptResult SimulateOutcome(const SimPhase& p, int n, int timeout_s, uint64_t seed) {
  // Per-attempt noise (request ids) from a hash, so it does not depend on
  // the order in which a policy runs things.
  std::mt19937_64 rng(seed ^
                      std::hash<std::string>{}(absl::StrCat(p.run_id, "/", p.phase_id, "#", n)));
  const std::string request_id = absl::StrFormat("req_%016x", rng());
  AttemptResult r;
  switch (p.kind) {
    case Kind::kHang:
      r.outcome = Outcome::kTimedOut;
      r.duration_s = timeout_s;
      return r;
    case Kind::kDeterministic:
      r.outcome = Outcome::kFailed;
      r.duration_s = p.startup_s + p.work_s;
      r.cause = p.cause;
      r.error_text =
          absl::StrCat("Traceback (most recent call last):\n  File \"/work/", p.run_id,
                       "/tests/test_", p.phase_id, ".py\", line ", 17 + (p.index * 13) % 200,
                       ", in <module>\n", p.cause_text, " (request id: ", request_id, ")");
      return r;
    case Kind::kPhaseFail:
      r.outcome = Outcome::kFailed;
      r.duration_s = p.startup_s + p.work_s;
      r.events = n == 1 ? p.events : 0;
      r.error_text = absl::StrCat(
          "Traceback (most recent call last):\n  File \"/work/", p.run_id, "/tests/test_",
          p.phase_id, ".py\", line ", 40 + (p.index * 7) % 90, ", in check_", p.phase_id,
          "\nAssertionError: column '", kWords[(p.index * 5 + p.run_id.size()) % std::size(kWords)],
          "_", kWords[(p.index * 11 + 7) % std::size(kWords)], "' has unexpected values");
      return r;
    case Kind::kTransientOnce:
      if (n == 1) {
        r.outcome = Outcome::kFailed;
        r.duration_s = p.startup_s + 5 + static_cast<double>(rng() % 50);
        r.error_text =
            absl::StrCat(kTransientTexts[(p.index + p.run_id.size()) % std::size(kTransientTexts)],
                         " (request id: ", request_id, ")");
        return r;
      }
      // A retry behaves normally (succeeds, with its events): it must fall
      // through to kEvents/kNoEvents, never into kPhaseFail.
      [[fallthrough]];
    case Kind::kEvents:
    case Kind::kNoEvents:
      if (p.startup_s + p.work_s > timeout_s) {
        // Cut short by its timeout: no success and no events (a policy that
        // shortens timeouts pays for every phase it cuts).
        r.outcome = Outcome::kTimedOut;
        r.duration_s = timeout_s;
        return r;
      }
      r.outcome = Outcome::kSucceeded;
      r.duration_s = p.startup_s + p.work_s;
      r.events = p.events;
      return r;
  }
  return r;
}

}  // namespace sim
}  // namespace sluice
