// The worker's lease loop: registers, long-polls for leases while it has
// free slots, starts each granted phase on its own thread (PhaseExecutor),
// heartbeats on behalf of running phases and fences itself when it cannot
// renew them, and hands each outcome to ReportDelivery. Register and Lease
// go through a RetryingCoordinatorClient wrapped around the given client.
//
// Event-driven: the loop blocks on a Wakeup (through the Clock seam) and runs
// at once when a phase ends, a drain is requested or a lease call returns;
// only real timeouts (heartbeat cadence, self-fencing, drain timeout, the
// --service gate re-check, backoff) wait on the clock.
//
// Every finished outcome is written to the on-disk spool (OutcomeSpool) before
// it is delivered and removed once the coordinator answered it, so neither a
// coordinator outage nor a worker restart loses one: Run() first re-delivers
// what a previous run left in the spool (in a background thread, leasing is
// not held up).
//
// After config.max_start_failures phases in a row could not be started the
// agent stops leasing as on a drain and Run() returns FailedPrecondition
// saying why (the worker exits 3).
//
// Shutdown: RequestDrain() (SIGTERM) stops leasing at once, lets running
// phases finish up to drain_timeout_ms, then cancels them and reports them as
// cancelled; Run() returns once every outcome is delivered (or delivery gave
// up after report_give_up_ms, leaving the outcome in the spool for the next
// start).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/model.h"
#include "worker/coordinator_client.h"
#include "worker/outcome_spool.h"
#include "worker/phase_executor.h"
#include "worker/process_runner.h"
#include "worker/report_delivery.h"
#include "worker/retrying_coordinator_client.h"
#include "worker/worker_config.h"

namespace sluice {

// The deadline of one heartbeat RPC: at most min(10 s, TTL/2), so a
// coordinator that silently stops answering (packets dropped, not reset)
// costs at most half a lease; at most `ms_until_fence` (the time left before
// the worker must fence itself), so the agent is back in time to do it; and
// at least kMinHeartbeatTimeoutMs, so a tiny TTL or an overdue fence still
// leaves a call that can succeed on loopback.
inline constexpr int64_t kMaxHeartbeatTimeoutMs = 10'000;
inline constexpr int64_t kMinHeartbeatTimeoutMs = 200;
int64_t HeartbeatTimeoutMs(int64_t lease_ttl_ms, int64_t ms_until_fence);

// The worker's self-fence, in ms after the send time of the last renewal the
// coordinator answered, on a monotonic clock. The coordinator renewed no
// earlier than that send time, so it may grant the lease again TTL later:
// the phases get SIGTERM at term_after_ms and SIGKILL at kill_by_ms =
// TTL - margin (margin: TTL/10, 50 ms..2 s), before that. The SIGTERM comes
// --grace-seconds before the kill, but never sooner than one heartbeat
// interval plus max(margin, TTL/4) (a renewal must have had its chance, and
// a slow one must not fence a healthy worker); when that leaves less than
// the grace, the grace is cut to fit.
struct SelfFence {
  int64_t term_after_ms = 0;
  int64_t grace_ms = 0;  // kill_by_ms - term_after_ms
  int64_t kill_by_ms = 0;
};
SelfFence PlanSelfFence(int64_t lease_ttl_ms, int64_t heartbeat_interval_ms, int64_t grace_ms);

class WorkerAgent {
 public:
  // `client`, `runner` and `clock` must outlive the agent.
  WorkerAgent(WorkerConfig config, CoordinatorClient& client, ProcessRunner& runner,
              const Clock& clock);
  ~WorkerAgent();

  // Blocks until drained or stopped. OK on a clean drain; FailedPrecondition
  // when it stopped because phases could not start.
  absl::Status Run();

  // Thread-safe; ends a lease long-poll in flight and wakes the loop.
  void RequestDrain();

  // Outcomes this agent reported so far (for tests and logs).
  int64_t reported() const { return delivery_.delivered(); }

 private:
  struct Running {
    LeaseGrant lease;
    std::shared_ptr<CancelToken> cancel;
    std::thread thread;
    // The slot is free for the next lease: the phase's process has ended
    // and either its report was answered, or its outcome cannot change the
    // next grant (a success with telemetry), or the coordinator holds the
    // next grant until this report lands (report_gates_lease).
    bool slot_freed = false;
    // Its report is on its way and may change the next grant: lease calls
    // name it (after_lease_ids) until it lands.
    bool report_gates_lease = false;
    bool done = false;  // and the report was delivered (or given up)
  };

  // Registers (retrying transient errors); Cancelled if a drain began first.
  absl::Status Register();
  void HeartbeatLoop();
  void RunPhase(LeaseGrant lease, std::shared_ptr<CancelToken> cancel);
  // Joins and forgets phases whose reports were delivered; returns the free
  // slots: `slots` less the phases still running, and less the reports in
  // flight beyond `slots` of them (so a coordinator that stops answering
  // reports stops this worker's leasing too).
  int32_t ReapFinished() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool AllDone() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Waits up to drain_timeout_ms for running phases, cancels the rest and
  // joins every phase thread.
  void Drain();
  // kill_within_ms >= 0: SIGKILL within that (the self-fence), even for
  // phases already cancelled with a longer grace.
  void CancelAll(const char* why, int64_t kill_within_ms = -1);
  SelfFence Fence() const;
  // Self-fencing (PlanSelfFence): the coordinator renewed the leases no
  // earlier than the last answered renewal was *sent*, so they may be granted
  // again TTL after that; the phases are stopped, SIGKILL included, before a
  // retry elsewhere can run beside them. True if it was due (and done).
  bool FenceIfExpired();
  int64_t MsUntilFence() const;
  void StopHeartbeats(std::thread& heartbeats);

  const WorkerConfig config_;
  CoordinatorClient& client_;
  const Clock& clock_;
  WorkerRegistration registration_;
  // registration_.lease_waits_for_reports, for the phase threads (a
  // re-registration may change it while they run).
  std::atomic<bool> lease_waits_for_reports_{false};
  // Random per process: prefixes lease request ids (see Run()).
  const std::string incarnation_;
  OutcomeSpool spool_;
  PhaseExecutor executor_;
  ReportDelivery delivery_;

  std::atomic<bool> drain_requested_{false};
  Wakeup drain_{Wakeup::Mode::kLatched};  // ends retries of Register and Lease
  RetryingCoordinatorClient retrying_;
  // The lease loop's: a phase ended, a drain was requested.
  Wakeup wake_;
  std::atomic<bool> stop_heartbeats_{false};
  Wakeup heartbeat_wake_;  // stop_heartbeats_ was set
  // When the last heartbeat the coordinator answered was sent
  // (clock_.MonotonicMs(): a wall clock step must not stretch the fence).
  std::atomic<int64_t> last_renewal_sent_ms_{0};
  absl::Mutex mu_;
  std::map<std::string, Running> running_ ABSL_GUARDED_BY(mu_);  // by lease id
  uint64_t request_counter_ = 0;
  // Phases that could not start, in a row (any success or failure resets it).
  int32_t start_failures_in_a_row_ ABSL_GUARDED_BY(mu_) = 0;
  // Why the agent stopped leasing by itself; empty otherwise.
  std::string stopped_because_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sluice
