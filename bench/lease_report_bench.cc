// Lease-and-report cycles per second through the Coordinator (in process, no
// gRPC): K threads play K workers, each cycle leases one phase and reports
// it succeeded with one telemetry event. Stores: the embedded SQLite store
// (a fresh file under $TMPDIR, WAL, synchronous=NORMAL) and Redis (a real
// redis-server on a Unix socket, AOF appendfsync everysec: the operators'
// default). For Redis the counters also give server-side commands and
// network bytes per phase (INFO commandstats / INFO stats deltas).
//
// Every case imports exactly K * iterations phases into a fresh store or
// namespace, so no cycle ever finds the backlog empty.
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bench/succeeded_report.h"
#include "common/clock.h"
#include "common/mutex_checks.h"
#include "coordinator/coordinator.h"
#include "coordinator/store/store_factory.h"
#include "spdlog/spdlog.h"
#include "tests/testing/redis_server.h"
#include "tests/testing/test_env.h"

namespace sluice {
namespace {

constexpr int64_t kCyclesPerCase = 4'000;
constexpr int kPhasesPerRun = 100;

void Die(const std::string& what) {
  std::fprintf(stderr, "lease_report_bench: %s\n", what.c_str());
  std::exit(1);
}

testing::RedisServer& Redis() {
  static std::unique_ptr<testing::RedisServer> server = [] {
    testing::RedisServerOptions options;
    options.appendonly = true;
    options.appendfsync = "everysec";
    auto started = testing::RedisServer::Start(options);
    if (!started.ok()) Die(started.status().ToString());
    return std::move(*started);
  }();
  return *server;
}

testing::ScratchDir& SqliteDir() {
  static testing::ScratchDir dir;
  return dir;
}

// Sum of `calls=` over INFO commandstats (our INFO calls excluded) and the
// two network byte counters of INFO stats.
struct RedisCounters {
  int64_t commands = 0;  // every command, those run inside scripts included
  int64_t scripts = 0;   // EVAL/EVALSHA(_RO) calls: client round trips that run a script
  int64_t net_bytes = 0;
  std::map<std::string, int64_t> by_command;
};

int64_t FieldAfter(const std::string& text, const std::string& key, char end) {
  const size_t at = text.find(key);
  if (at == std::string::npos) return 0;
  const size_t from = at + key.size();
  int64_t value = 0;
  (void)absl::SimpleAtoi(text.substr(from, text.find(end, from) - from), &value);
  return value;
}

RedisCounters ReadRedisCounters() {
  RedisCounters c;
  auto stats = Redis().Command({"INFO", "commandstats"});
  if (!stats.ok()) Die(stats.status().ToString());
  for (absl::string_view line : absl::StrSplit(*stats, '\n')) {
    if (!absl::StartsWith(line, "cmdstat_") || absl::StartsWith(line, "cmdstat_info:")) continue;
    const std::string text(line);
    const int64_t calls = FieldAfter(text, "calls=", ',');
    const std::string name = text.substr(8, text.find(':') - 8);
    c.commands += calls;
    c.by_command[name] = calls;
    if (absl::StartsWith(name, "eval")) c.scripts += calls;
  }
  auto net = Redis().Command({"INFO", "stats"});
  if (!net.ok()) Die(net.status().ToString());
  c.net_bytes = FieldAfter(*net, "total_net_input_bytes:", '\r') +
                FieldAfter(*net, "total_net_output_bytes:", '\r');
  return c;
}

// kRedisFenced: as a leading coordinator of an active/standby pair runs it:
// the store holds the leader lease and every mutating script checks the
// leader epoch (one extra GET per script).
enum class Backend { kSqlite, kRedis, kRedisFenced };

// Shared by the K threads of one case; built by thread 0 before the timed
// loop (Google Benchmark starts the loop on every thread together).
struct Case {
  std::unique_ptr<StateStore> store;
  std::unique_ptr<Coordinator> coordinator;
  RedisCounters before;
  std::atomic<int64_t> empty_leases{0};
};
Case* current = nullptr;

void SetUpCase(Backend backend, int threads, int64_t phases) {
  static int case_number = 0;
  ++case_number;
  std::string url;
  if (backend == Backend::kSqlite) {
    url = "sqlite://" + SqliteDir().File(absl::StrCat("bench-", case_number, ".db"));
  } else {
    url = Redis().Url(absl::StrCat("bench", case_number));
  }
  auto opened = OpenStore(url);
  if (!opened.ok()) Die(opened.status().ToString());
  if (backend == Backend::kRedisFenced) {
    auto won = opened->leader_lease->Campaign("bench", "bench:0", 600'000);
    if (!won.ok() || !won->won) Die("cannot take the leader lease");
    opened->write_fence->SetFencingEpoch(won->leader.epoch);
  }
  current = new Case();
  current->store = std::move(opened->store);
  CoordinatorConfig config;
  config.lease_ttl_ms = 600'000;
  current->coordinator =
      std::make_unique<Coordinator>(*current->store, SystemClock::Default(), config);
  std::vector<PhaseSpec> specs;
  for (int64_t i = 0; i < phases; ++i) {
    PhaseSpec p;
    p.run_id = absl::StrCat("run-", i / kPhasesPerRun);
    p.phase_id = absl::StrCat("phase-", i);
    p.phase_index = i % kPhasesPerRun;
    specs.push_back(std::move(p));
  }
  if (auto imported = current->coordinator->ImportBacklog(specs); !imported.ok()) {
    Die(imported.status().ToString());
  }
  SessionSettings settings;
  settings.max_attempts_per_phase = 1;
  if (auto s = current->coordinator->StartSession(settings, "bench-session"); !s.ok()) {
    Die(s.status().ToString());
  }
  for (int t = 0; t < threads; ++t) {
    WorkerInfo w;
    w.worker_id = absl::StrCat("bench-w", t);
    w.host = "bench";
    w.slots = 1;
    if (auto r = current->coordinator->Register(w); !r.ok()) Die(r.status().ToString());
  }
  if (backend != Backend::kSqlite) current->before = ReadRedisCounters();
}

void BM_LeaseAndReport(benchmark::State& state, Backend backend) {
  const int threads = state.threads();
  const int64_t phases = state.max_iterations * threads;
  if (state.thread_index() == 0) SetUpCase(backend, threads, phases);
  const std::string worker_id = absl::StrCat("bench-w", state.thread_index());
  int64_t requests = 0;
  for (auto _ : state) {
    Coordinator& coordinator = *current->coordinator;
    while (true) {
      const std::string request_id = absl::StrCat(worker_id, "-", ++requests);
      absl::StatusOr<LeaseResult> lease = coordinator.Lease(worker_id, request_id, 1, 0);
      if (!lease.ok()) {
        state.SkipWithError(lease.status().ToString().c_str());
        break;
      }
      if (lease->leases.empty()) {
        ++current->empty_leases;  // another thread holds the run lock; try again
        continue;
      }
      const LeaseGrant& grant = lease->leases.front();
      absl::StatusOr<ReportAnswer> answer =
          coordinator.Report(bench::SucceededReport(grant, worker_id));
      if (!answer.ok() || answer->result.disposition != ReportDisposition::kAccepted) {
        state.SkipWithError(answer.ok() ? "report not accepted"
                                        : answer.status().ToString().c_str());
      }
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    state.counters["empty_leases"] = static_cast<double>(current->empty_leases.load());
    if (backend != Backend::kSqlite) {
      const RedisCounters after = ReadRedisCounters();
      const double n = static_cast<double>(phases);
      state.counters["redis_cmds_per_phase"] =
          static_cast<double>(after.commands - current->before.commands) / n;
      state.counters["redis_bytes_per_phase"] =
          static_cast<double>(after.net_bytes - current->before.net_bytes) / n;
      state.counters["redis_scripts_per_phase"] =
          static_cast<double>(after.scripts - current->before.scripts) / n;
      if (threads == 1) {  // where the commands go, once
        std::string breakdown;
        for (const auto& [name, calls] : after.by_command) {
          const auto it = current->before.by_command.find(name);
          const int64_t delta = calls - (it == current->before.by_command.end() ? 0 : it->second);
          if (delta > 0) {
            absl::StrAppend(&breakdown, " ", name, "=",
                            absl::SixDigits(static_cast<double>(delta) / n));
          }
        }
        std::fprintf(stderr, "redis commands per phase:%s\n", breakdown.c_str());
      }
    }
    delete current;
    current = nullptr;
  }
}

void Register() {
  for (const auto& [name, backend] :
       {std::pair{"sqlite", Backend::kSqlite}, std::pair{"redis", Backend::kRedis},
        std::pair{"redisfenced", Backend::kRedisFenced}}) {
    for (int threads : {1, 4, 16}) {
      benchmark::RegisterBenchmark(absl::StrCat("LeaseAndReport/", name).c_str(), BM_LeaseAndReport,
                                   backend)
          ->Threads(threads)
          ->Iterations(kCyclesPerCase / threads)
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
    }
  }
}

}  // namespace
}  // namespace sluice

int main(int argc, char** argv) {
  sluice::ConfigureMutexDeadlockChecks();  // as the product runs
  spdlog::set_level(spdlog::level::warn);  // the coordinator logs every report at info
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  sluice::Register();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
