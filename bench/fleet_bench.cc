// Worker-side load on a running coordinator, through real gRPC over loopback.
// Each simulated worker has its own channel (its own TCP connection), as
// separate worker processes would.
//
//   fleet_bench cycles ADDRESS WORKERS PHASES [MAX_PHASES_PER_LEASE [batch]]
//     WORKERS threads each register and loop Lease -> Report(succeeded, one
//     telemetry event) until PHASES reports were accepted in total; with
//     "batch", a lease's grants are reported in one ReportBatch call; prints
//     "<cycles> <seconds> <cycles_per_second>". The coordinator must hold
//     PHASES leasable phases in an active session.
//   fleet_bench idle ADDRESS WORKERS LOG_DIR
//     WORKERS real WorkerAgents (the worker's own lease loop, heartbeats and
//     all; one channel each) connect and idle until SIGTERM or SIGINT; prints
//     "<workers> <agents_that_ran_cleanly>". The caller samples this
//     process's and the coordinator's CPU from /proc meanwhile.
#include <grpcpp/grpcpp.h>
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/succeeded_report.h"
#include "client/grpc_coordinator_client.h"
#include "common/clock.h"
#include "common/mutex_checks.h"
#include "spdlog/spdlog.h"
#include "worker/process_runner.h"
#include "worker/worker_agent.h"

namespace sluice {
namespace {

// A channel of its own: a distinct channel argument keeps gRPC from sharing
// one subchannel (one TCP connection) between the simulated workers.
std::shared_ptr<grpc::Channel> OwnChannel(const std::string& address, int index) {
  grpc::ChannelArguments args;
  args.SetInt("sluice.bench.worker_index", index);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

int Cycles(const std::string& address, int workers, int64_t phases, int32_t per_lease,
           bool report_batch) {
  std::atomic<int64_t> done{0};
  std::atomic<int64_t> errors{0};
  std::vector<std::unique_ptr<GrpcCoordinatorClient>> clients;
  for (int w = 0; w < workers; ++w) {
    clients.push_back(std::make_unique<GrpcCoordinatorClient>(OwnChannel(address, w)));
    WorkerInfo info;
    info.worker_id = absl::StrCat("fleet-w", w);
    info.host = "bench";
    info.slots = per_lease;
    auto reg = clients.back()->Register(info);
    if (!reg.ok()) {
      std::fprintf(stderr, "fleet_bench: register: %s\n", reg.status().ToString().c_str());
      return 1;
    }
  }
  const auto start = std::chrono::steady_clock::now();
  std::atomic<int64_t> last_progress_ms{0};
  auto ms_since_start = [start] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 start)
        .count();
  };
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([&, w] {
      GrpcCoordinatorClient& client = *clients[static_cast<size_t>(w)];
      const std::string worker_id = absl::StrCat("fleet-w", w);
      int64_t request = 0;
      while (done.load() < phases && errors.load() == 0) {
        // The pid keeps request ids unique across runs against one
        // coordinator: a repeated id is a retry, answered with its grants.
        auto batch = client.Lease(worker_id, absl::StrCat(worker_id, "-", getpid(), "-", ++request),
                                  per_lease, 200, {});
        if (!batch.ok()) {
          std::fprintf(stderr, "fleet_bench: lease: %s\n", batch.status().ToString().c_str());
          ++errors;
          return;
        }
        if (batch->leases.empty() && ms_since_start() - last_progress_ms.load() > 10'000) {
          std::fprintf(stderr, "fleet_bench: no grant for 10 s after %ld cycles\n",
                       static_cast<long>(done.load()));
          ++errors;
          return;
        }
        std::vector<absl::StatusOr<ReportDisposition>> answers;
        if (report_batch && !batch->leases.empty()) {
          std::vector<AttemptReport> reports;
          for (const LeaseGrant& grant : batch->leases) {
            reports.push_back(bench::SucceededReport(grant, worker_id));
          }
          auto all = client.ReportBatch(reports);
          if (!all.ok()) {
            std::fprintf(stderr, "fleet_bench: report batch: %s\n",
                         all.status().ToString().c_str());
            ++errors;
            return;
          }
          answers = *std::move(all);
        } else {
          for (const LeaseGrant& grant : batch->leases) {
            answers.push_back(client.Report(bench::SucceededReport(grant, worker_id)));
          }
        }
        for (const absl::StatusOr<ReportDisposition>& answer : answers) {
          if (!answer.ok() || *answer != ReportDisposition::kAccepted) {
            std::fprintf(stderr, "fleet_bench: report not accepted: %s\n",
                         answer.ok() ? "disposition" : answer.status().ToString().c_str());
            ++errors;
            return;
          }
          ++done;
          last_progress_ms.store(ms_since_start());
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (errors.load() > 0) return 1;
  std::printf("%ld %.4f %.1f\n", static_cast<long>(done.load()), seconds,
              static_cast<double>(done.load()) / seconds);
  return 0;
}

int Idle(const std::string& address, int workers, const std::string& log_dir) {
  // Every thread inherits the blocked mask; sigwait below takes the signal.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  PosixProcessRunner runner;
  auto command = CommandTemplate::Parse("/bin/true");
  if (!command.ok()) return 1;
  std::vector<std::unique_ptr<GrpcCoordinatorClient>> clients;
  std::vector<std::unique_ptr<WorkerAgent>> agents;
  std::vector<std::thread> threads;
  std::atomic<int> failed{0};
  for (int w = 0; w < workers; ++w) {
    WorkerConfig config;
    config.worker_id = absl::StrCat("idle-w", w);
    config.host = "bench";
    config.command = *command;
    config.log_dir = absl::StrCat(log_dir, "/", config.worker_id);
    config.lease_wait_ms = 30'000;
    clients.push_back(std::make_unique<GrpcCoordinatorClient>(OwnChannel(address, w)));
    agents.push_back(
        std::make_unique<WorkerAgent>(config, *clients.back(), runner, SystemClock::Default()));
  }
  for (auto& agent : agents) {
    threads.emplace_back([&failed, a = agent.get()] {
      if (!a->Run().ok()) ++failed;
    });
  }
  // Tell the caller the fleet is up, then idle.
  std::fprintf(stderr, "fleet_bench: %d agents started\n", workers);
  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  for (auto& agent : agents) agent->RequestDrain();
  for (auto& t : threads) t.join();
  std::printf("%d %d\n", workers, workers - failed.load());
  return failed.load() == 0 ? 0 : 1;
}

}  // namespace
}  // namespace sluice

int main(int argc, char** argv) {
  sluice::ConfigureMutexDeadlockChecks();  // as the product runs
  spdlog::set_level(spdlog::level::warn);
  const std::string mode = argc > 1 ? argv[1] : "";
  const bool batch_arg_ok = argc != 7 || std::string(argv[6]) == "batch";
  if (mode == "cycles" && argc >= 5 && argc <= 7 && batch_arg_ok) {
    return sluice::Cycles(argv[2], std::atoi(argv[3]), std::atoll(argv[4]),
                          argc >= 6 ? std::atoi(argv[5]) : 1, argc == 7);
  }
  if (mode == "idle" && argc == 5) {
    return sluice::Idle(argv[2], std::atoi(argv[3]), argv[4]);
  }
  std::fprintf(stderr,
               "usage: fleet_bench cycles ADDRESS WORKERS PHASES [MAX_PHASES_PER_LEASE [batch]]\n"
               "       fleet_bench idle ADDRESS WORKERS LOG_DIR\n");
  return 2;
}
