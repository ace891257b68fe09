// The worker's main loop: registers, long-polls for leases while it has free
// slots, runs each phase through its own command template with a
// ProcessRunner, heartbeats on behalf of running phases, counts telemetry and
// reports outcomes with retries.
//
// Every finished outcome is written to the on-disk spool (OutcomeSpool) before
// it is delivered and removed once the coordinator answered it, so neither a
// coordinator outage nor a worker restart loses one: Run() first re-delivers
// what a previous run left in the spool (in a background thread, leasing is
// not held up).
//
// Shutdown: RequestDrain() (SIGTERM) stops leasing at once, lets running
// phases finish up to drain_timeout_ms, then cancels them and reports them as
// cancelled; Run() returns once every outcome is delivered (or delivery gave
// up after report_give_up_ms, leaving the outcome in the spool for the next
// start).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/model.h"
#include "worker/command_template.h"
#include "worker/coordinator_client.h"
#include "worker/outcome_spool.h"
#include "worker/process_runner.h"

namespace sluice {

struct WorkerConfig {
  std::string worker_id;
  std::string host;
  int32_t slots = 1;
  std::vector<std::string> labels;
  std::string version;
  std::optional<CommandTemplate> command;  // required: the worker's own --exec template
  std::map<std::string, std::string> env;  // --env K=V, passed to every phase
  std::string workdir;                     // phases run here ("" = current directory)
  std::string log_dir = ".sluice/logs";    // per-attempt stdout/stderr/telemetry files
  int64_t grace_ms = 10'000;               // SIGTERM -> SIGKILL
  int64_t drain_timeout_ms = 60'000;       // how long running phases may finish on SIGTERM
  int64_t lease_wait_ms = 10'000;          // long-poll bound asked for
  size_t tail_bytes = 4096;                // stdout/stderr tail kept in a report
  // Optional: a command printing an integer count of telemetry events, run
  // before and after each phase; the delta is added to the reported events.
  // Exact only with one slot (concurrent phases share the counter).
  std::vector<std::string> telemetry_probe;
  int64_t report_give_up_ms = 300'000;  // stop retrying a report after this long at shutdown
  // Finished outcomes not yet answered by the coordinator ("" = LOG_DIR/spool).
  std::string spool_dir;
  // Optional gate: while it returns false (e.g. the worker's --service is
  // unhealthy) the worker leases nothing; running phases go on.
  std::function<bool()> ready;

  absl::Status Validate() const;
};

// Maps how a process ended to an attempt outcome. Signals the worker did not
// send that are "kills" (SIGKILL, SIGTERM, SIGINT, SIGHUP, or a shell's
// 128+N exit for those) are kKilled: outside kills, not the phase's failure.
Outcome ClassifyOutcome(const ProcessResult& result);

// The deadline of one heartbeat RPC: at most min(10 s, TTL/2), so a
// coordinator that silently stops answering (packets dropped, not reset)
// costs at most half a lease; at most `ms_until_fence` (the time left before
// the worker must fence itself), so the agent is back in time to do it; and
// at least kMinHeartbeatTimeoutMs, so a tiny TTL or an overdue fence still
// leaves a call that can succeed on loopback.
inline constexpr int64_t kMaxHeartbeatTimeoutMs = 10'000;
inline constexpr int64_t kMinHeartbeatTimeoutMs = 200;
int64_t HeartbeatTimeoutMs(int64_t lease_ttl_ms, int64_t ms_until_fence);

class WorkerAgent {
 public:
  WorkerAgent(WorkerConfig config, CoordinatorClient& client, ProcessRunner& runner,
              const Clock& clock);
  ~WorkerAgent();

  // Blocks until drained or stopped. OK on a clean drain.
  absl::Status Run();

  // Thread-safe; ends a lease long-poll in flight.
  void RequestDrain() {
    drain_requested_.store(true);
    client_.CancelPendingLease();
  }

  // Outcomes this agent reported so far (for tests and logs).
  int64_t reported() const { return reported_.load(); }

 private:
  struct Running {
    LeaseGrant lease;
    std::shared_ptr<CancelToken> cancel;
    std::thread thread;
    bool done = false;
  };

  absl::Status RegisterWithRetry();
  void HeartbeatLoop();
  void RunPhase(LeaseGrant lease, std::shared_ptr<CancelToken> cancel);
  AttemptReport Execute(const LeaseGrant& lease, const CancelToken& cancel);
  // Delivers a spooled report until the coordinator answers it (the spool
  // file is then removed), rejects it (the file is quarantined), or, while
  // draining, report_give_up_ms passed (the file stays for the next start).
  void DeliverReport(const AttemptReport& report);
  void RedeliverSpooled(std::vector<AttemptReport> reports);
  std::optional<int64_t> ProbeTelemetry();
  void ReapFinished() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CancelAll(const char* why);
  // Self-fencing: once the lease TTL has passed since the last renewal the
  // coordinator answered was *sent*, every lease this worker holds may have
  // expired on the coordinator (which renewed it no earlier than that), so
  // the phases are stopped before a retry elsewhere runs beside them.
  // True if it was due (and done).
  bool FenceIfExpired();
  int64_t MsUntilFence() const;
  bool SleepUnlessDraining(int64_t ms);

  const WorkerConfig config_;
  CoordinatorClient& client_;
  ProcessRunner& runner_;
  const Clock& clock_;
  WorkerRegistration registration_;
  // Random per process: prefixes lease request ids (see Run()).
  const std::string incarnation_;
  OutcomeSpool spool_;

  std::atomic<bool> drain_requested_{false};
  std::atomic<bool> stop_heartbeats_{false};
  std::atomic<bool> abandon_delivery_{false};  // a fatal error: leave outcomes in the spool
  std::atomic<int64_t> reported_{0};
  // When the last heartbeat the coordinator answered was sent (clock_).
  std::atomic<int64_t> last_renewal_sent_ms_{0};
  absl::Mutex mu_;
  std::map<std::string, Running> running_ ABSL_GUARDED_BY(mu_);  // by lease id
  uint64_t request_counter_ = 0;
};

}  // namespace sluice
