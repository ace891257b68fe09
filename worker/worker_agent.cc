#include "worker/worker_agent.h"

#include <algorithm>
#include <filesystem>
#include <random>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace sluice {

namespace {

// True for an outcome the drain policy only learns good news from: a
// success with a known, non-zero telemetry count.
bool CannotChangeTheNextGrant(const AttemptReport& report) {
  return report.outcome == Outcome::kSucceeded && !report.telemetry_unknown &&
         report.telemetry_events > 0;
}

}  // namespace

int64_t HeartbeatTimeoutMs(int64_t lease_ttl_ms, int64_t ms_until_fence) {
  const int64_t cap =
      std::max(kMinHeartbeatTimeoutMs, std::min(kMaxHeartbeatTimeoutMs, lease_ttl_ms / 2));
  return std::max(kMinHeartbeatTimeoutMs, std::min(cap, ms_until_fence));
}

SelfFence PlanSelfFence(int64_t lease_ttl_ms, int64_t heartbeat_interval_ms, int64_t grace_ms) {
  const int64_t margin = std::clamp<int64_t>(lease_ttl_ms / 10, 50, 2'000);
  SelfFence f;
  f.kill_by_ms = std::max<int64_t>(lease_ttl_ms - margin, 0);
  // A renewal must have had its chance, and a slow one must not fence a
  // healthy worker: not before one heartbeat interval plus a quarter TTL.
  const int64_t slack = std::max(margin, lease_ttl_ms / 4);
  const int64_t earliest =
      std::min(f.kill_by_ms, std::max<int64_t>(heartbeat_interval_ms, 0) + slack);
  f.term_after_ms =
      std::clamp(f.kill_by_ms - std::max<int64_t>(grace_ms, 0), earliest, f.kill_by_ms);
  f.grace_ms = f.kill_by_ms - f.term_after_ms;
  return f;
}

WorkerAgent::WorkerAgent(WorkerConfig config, CoordinatorClient& client, ProcessRunner& runner,
                         const Clock& clock)
    : config_(std::move(config)),
      client_(client),
      clock_(clock),
      incarnation_(absl::StrCat(absl::Hex(std::random_device{}(), absl::kZeroPad8),
                                absl::Hex(std::random_device{}(), absl::kZeroPad8))),
      spool_(config_.spool_dir.empty() ? (std::filesystem::path(config_.log_dir) / "spool").string()
                                       : config_.spool_dir),
      executor_(config_, runner),
      delivery_(spool_, client, clock,
                ReportDelivery::Options{.give_up_ms = config_.report_give_up_ms}),
      retrying_(client, clock, drain_) {}

WorkerAgent::~WorkerAgent() {
  CancelAll("agent destroyed");
  absl::MutexLock lock(&mu_);
  for (auto& [id, r] : running_) {
    if (r.thread.joinable()) {
      mu_.Unlock();
      r.thread.join();
      mu_.Lock();
    }
  }
}

void WorkerAgent::RequestDrain() {
  drain_requested_.store(true);
  delivery_.BeginShutdown();
  drain_.Notify();
  wake_.Notify();
  client_.CancelPendingLease();
}

absl::Status WorkerAgent::Register() {
  WorkerInfo info;
  info.worker_id = config_.worker_id;
  info.host = config_.host;
  info.slots = config_.slots;
  info.labels = config_.labels;
  info.version = config_.version;
  info.cluster_id = config_.cluster_id;
  int64_t sent_ms = 0;
  absl::StatusOr<WorkerRegistration> reg = retrying_.Register(info, &sent_ms);
  if (!reg.ok()) return reg.status();
  registration_ = *reg;
  lease_waits_for_reports_.store(reg->lease_waits_for_reports);
  // sent_ms is on the wall clock: carried over to the monotonic one.
  last_renewal_sent_ms_.store(clock_.MonotonicMs() - (clock_.NowMs() - sent_ms));
  const SelfFence fence = Fence();
  spdlog::info(
      "registered worker={} cluster_id={} slots={} lease_ttl_ms={} heartbeat_ms={}; self-fence: "
      "SIGTERM {} ms and SIGKILL {} ms after the last renewal",
      config_.worker_id, reg->cluster_id.empty() ? "(none)" : reg->cluster_id, config_.slots,
      reg->lease_ttl_ms, reg->heartbeat_interval_ms, fence.term_after_ms, fence.kill_by_ms);
  if (fence.grace_ms < config_.grace_ms) {
    spdlog::warn(
        "--grace-seconds {} does not fit in the lease TTL: a self-fence gives phases {} ms "
        "between SIGTERM and SIGKILL",
        static_cast<double>(config_.grace_ms) / 1000.0, fence.grace_ms);
  }
  return absl::OkStatus();
}

absl::Status WorkerAgent::Run() {
  std::error_code ec;
  // Created for this user only; an existing directory keeps its mode.
  if (std::filesystem::create_directories(config_.log_dir, ec)) {
    std::filesystem::permissions(config_.log_dir, std::filesystem::perms::owner_all, ec);
  }
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create --log-dir ", config_.log_dir, ": ", ec.message()));
  }
  if (absl::Status st = spool_.Init(); !st.ok()) return st;
  // Outcomes a previous run of this worker finished but could not deliver.
  // The jthread is joined on every return below.
  std::jthread redeliver;
  if (absl::StatusOr<std::vector<AttemptReport>> left = spool_.List(); !left.ok()) {
    spdlog::error("cannot read the outcome spool: {}", left.status().ToString());
  } else if (!left->empty()) {
    spdlog::info("re-delivering {} outcome(s) left in {}", left->size(), spool_.dir());
    redeliver = std::jthread([this, reports = std::move(*left)] {
      delivery_.DeliverSpooled(reports);
      spdlog::info("outcomes from a previous run delivered (or left in {})", spool_.dir());
    });
  }
  absl::Status reg = Register();
  if (!reg.ok()) {
    if (reg.code() == absl::StatusCode::kCancelled) return absl::OkStatus();  // drained
    delivery_.Abandon();  // fatal: outcomes stay in the spool
    return reg;
  }
  std::thread heartbeats([this] { HeartbeatLoop(); });

  std::string request_id;  // reused when a lease call is retried after an error
  bool gated = false;
  while (!drain_requested_.load()) {
    int32_t free_slots;
    std::vector<std::string> after_lease_ids;
    {
      absl::MutexLock lock(&mu_);
      // Set with the slot's release: a freed slot is never leased after it.
      if (!stopped_because_.empty()) break;
      free_slots = ReapFinished();
      for (const auto& [id, r] : running_) {
        if (r.report_gates_lease && !r.done) after_lease_ids.push_back(id);
      }
    }
    if (free_slots <= 0) {
      // A phase ending or a drain request wakes this at once.
      clock_.WaitUntil(wake_, kNoDeadline);
      continue;
    }
    if (config_.ready && !config_.ready()) {
      if (!gated) spdlog::warn("not leasing: the worker's service is not healthy");
      gated = true;
      clock_.WaitFor(wake_, kReadyRecheckMs);
      continue;
    }
    if (gated) spdlog::info("leasing again: the worker's service is healthy");
    gated = false;
    // Unique across restarts of this worker id: the coordinator answers a
    // known (worker id, request id) with the grants it made for it, so a
    // restarted worker counting from r1 again would be handed the previous
    // process's old leases and run them a second time.
    if (request_id.empty()) request_id = absl::StrCat(incarnation_, "-r", ++request_counter_);
    const int64_t wait = std::min(config_.lease_wait_ms, registration_.max_lease_wait_ms);
    absl::StatusOr<LeaseBatch> batch =
        retrying_.Lease(config_.worker_id, request_id, free_slots, wait, after_lease_ids);
    if (!batch.ok()) {
      if (batch.status().code() != absl::StatusCode::kFailedPrecondition) {
        continue;  // only when draining: the retrying client retries everything else
      }
      // The coordinator does not know us (it restarted): register again.
      spdlog::warn("coordinator asks to register again: {}", batch.status().ToString());
      request_id.clear();
      absl::Status again = Register();
      if (!again.ok() && again.code() != absl::StatusCode::kCancelled) {
        delivery_.Abandon();
        StopHeartbeats(heartbeats);
        return again;
      }
      continue;
    }
    request_id.clear();
    // A lease granted just as a drain began still runs (within the drain
    // timeout) rather than being left to expire.
    for (LeaseGrant& lease : batch->leases) {
      auto cancel = std::make_shared<CancelToken>();
      absl::MutexLock lock(&mu_);
      const std::string id = lease.lease_id;
      Running& r = running_[id];
      r.lease = lease;
      r.cancel = cancel;
      r.thread = std::thread([this, lease, cancel] { RunPhase(lease, cancel); });
    }
  }

  Drain();
  StopHeartbeats(heartbeats);
  if (redeliver.joinable()) redeliver.join();
  spdlog::info("worker={} drained; {} outcomes reported", config_.worker_id, reported());
  absl::MutexLock lock(&mu_);
  if (!stopped_because_.empty()) return absl::FailedPreconditionError(stopped_because_);
  return absl::OkStatus();
}

void WorkerAgent::Drain() {
  spdlog::info("draining worker={}: no new leases; waiting up to {} ms for running phases",
               config_.worker_id, config_.drain_timeout_ms);
  const int64_t deadline = clock_.NowMs() + config_.drain_timeout_ms;
  while (clock_.NowMs() < deadline) {
    {
      absl::MutexLock lock(&mu_);
      if (AllDone()) break;
    }
    clock_.WaitUntil(wake_, deadline);  // a phase ending wakes this
  }
  CancelAll("drain timeout");
  while (true) {
    Running* next = nullptr;
    {
      absl::MutexLock lock(&mu_);
      for (auto& [id, r] : running_) {
        if (r.thread.joinable()) {
          next = &r;
          break;
        }
      }
    }
    if (next == nullptr) break;
    next->thread.join();
  }
}

void WorkerAgent::StopHeartbeats(std::thread& heartbeats) {
  stop_heartbeats_.store(true);
  heartbeat_wake_.Notify();
  heartbeats.join();
}

bool WorkerAgent::AllDone() const {
  return std::all_of(running_.begin(), running_.end(),
                     [](const auto& entry) { return entry.second.done; });
}

int32_t WorkerAgent::ReapFinished() {
  for (auto it = running_.begin(); it != running_.end();) {
    if (it->second.done) {
      std::thread t = std::move(it->second.thread);
      it = running_.erase(it);
      mu_.Unlock();
      if (t.joinable()) t.join();
      mu_.Lock();
      it = running_.begin();  // the map may have changed while unlocked
    } else {
      ++it;
    }
  }
  int32_t running = 0;
  int32_t reporting = 0;
  for (const auto& [id, r] : running_) {
    if (!r.slot_freed) {
      ++running;
    } else if (!r.done) {
      ++reporting;
    }
  }
  return config_.slots - running - std::max(0, reporting - config_.slots);
}

void WorkerAgent::CancelAll(const char* why, int64_t kill_within_ms) {
  absl::MutexLock lock(&mu_);
  for (auto& [id, r] : running_) {
    if (r.done) continue;
    if (kill_within_ms >= 0) {
      if (r.cancel->kill_within_ms() >= 0) continue;  // fenced already
      spdlog::warn("cancelling lease={} run={} phase={} (SIGKILL within {} ms): {}", id,
                   r.lease.run_id, r.lease.phase_id, kill_within_ms, why);
      r.cancel->CancelAndKillWithin(kill_within_ms);
    } else if (!r.cancel->cancelled()) {
      spdlog::warn("cancelling lease={} run={} phase={}: {}", id, r.lease.run_id, r.lease.phase_id,
                   why);
      r.cancel->Cancel();
    }
  }
}

SelfFence WorkerAgent::Fence() const {
  return PlanSelfFence(registration_.lease_ttl_ms, registration_.heartbeat_interval_ms,
                       config_.grace_ms);
}

int64_t WorkerAgent::MsUntilFence() const {
  return last_renewal_sent_ms_.load() + Fence().term_after_ms - clock_.MonotonicMs();
}

bool WorkerAgent::FenceIfExpired() {
  const int64_t overdue_ms = -MsUntilFence();
  if (overdue_ms < 0) return false;
  // The kill is due kill_by_ms after the renewal, however late this runs.
  CancelAll("could not renew leases within the TTL",
            std::max<int64_t>(Fence().grace_ms - overdue_ms, 0));
  return true;
}

void WorkerAgent::HeartbeatLoop() {
  int failures = 0;
  bool fenced = false;  // since the last renewal
  while (!stop_heartbeats_.load()) {
    const int64_t interval = failures == 0
                                 ? registration_.heartbeat_interval_ms
                                 : std::min<int64_t>(1'000, registration_.heartbeat_interval_ms);
    int64_t deadline = clock_.NowMs() + interval;
    // While renewals fail, wake when the fence is due, not only after `interval`.
    if (failures > 0 && !fenced) deadline = std::min(deadline, clock_.NowMs() + MsUntilFence());
    clock_.WaitUntil(heartbeat_wake_, deadline);
    if (stop_heartbeats_.load()) break;
    fenced = FenceIfExpired() || fenced;
    std::vector<std::string> ids;
    {
      absl::MutexLock lock(&mu_);
      for (const auto& [id, r] : running_) {
        if (!r.done) ids.push_back(id);
      }
    }
    const int64_t sent_ms = clock_.MonotonicMs();
    const int64_t timeout_ms = HeartbeatTimeoutMs(registration_.lease_ttl_ms, MsUntilFence());
    absl::StatusOr<std::vector<std::string>> cancel =
        client_.Heartbeat(config_.worker_id, ids, timeout_ms);
    if (!cancel.ok()) {
      ++failures;
      spdlog::warn("heartbeat failed ({}); last renewal sent {} ms ago", cancel.status().ToString(),
                   clock_.MonotonicMs() - last_renewal_sent_ms_.load());
      fenced = FenceIfExpired() || fenced;
      continue;
    }
    failures = 0;
    fenced = false;
    last_renewal_sent_ms_.store(sent_ms);
    if (!cancel->empty()) {
      absl::MutexLock lock(&mu_);
      for (const std::string& id : *cancel) {
        auto it = running_.find(id);
        if (it != running_.end() && !it->second.done) {
          spdlog::warn("coordinator revoked lease={} run={} phase={}", id, it->second.lease.run_id,
                       it->second.lease.phase_id);
          it->second.cancel->Cancel();
        }
      }
    }
  }
}

void WorkerAgent::RunPhase(LeaseGrant lease, std::shared_ptr<CancelToken> cancel) {
  AttemptReport report = executor_.Execute(lease, *cancel);
  spdlog::info(
      "finished run={} phase={} attempt={} lease={} outcome={} exit={} signal={} "
      "duration_ms={} events={}",
      lease.run_id, lease.phase_id, lease.attempt, lease.lease_id, OutcomeName(report.outcome),
      report.exit_code, report.signal, report.duration_ms,
      report.telemetry_unknown ? std::string("unknown") : std::to_string(report.telemetry_events));
  // A failure can block its run or family (the repeat rule), a timeout can
  // skip its run, a success without events feeds the telemetry-loss alarm:
  // the next grant must know of them, or a phase the policy would have
  // skipped starts (one per slot). So the slot is free before the report
  // lands only when the outcome cannot change the next grant (a success
  // that yielded telemetry), or when the coordinator holds the next grant
  // until this report has landed (the lease call names it): the lease is
  // then already waiting there, and no round trip follows the report.
  const bool gates_lease = !CannotChangeTheNextGrant(report);
  const bool free_before_report = !gates_lease || lease_waits_for_reports_.load();
  std::string stop_leasing;  // why, when this outcome ends leasing
  {
    absl::MutexLock lock(&mu_);
    running_[lease.lease_id].slot_freed = free_before_report;
    running_[lease.lease_id].report_gates_lease = gates_lease && free_before_report;
    if (report.outcome != Outcome::kStartFailed) {
      start_failures_in_a_row_ = 0;
    } else if (++start_failures_in_a_row_ >= config_.max_start_failures &&
               config_.max_start_failures > 0 && stopped_because_.empty()) {
      stopped_because_ = absl::StrCat(start_failures_in_a_row_,
                                      " phases in a row could not be started "
                                      "(--max-start-failures ",
                                      config_.max_start_failures, "); last: ", report.error_text);
      stop_leasing = stopped_because_;
    }
  }
  if (!stop_leasing.empty()) {
    spdlog::error("worker={} stops leasing: {}", config_.worker_id, stop_leasing);
    RequestDrain();
  }
  // A freed slot: the lease loop asks for the next phase while this report
  // travels (the coordinator grants at once, or when the report lands if
  // this run's next phase waits for it). Heartbeats renew this lease until
  // `done`, as before.
  if (free_before_report) wake_.Notify();
  delivery_.Deliver(report);
  {
    absl::MutexLock lock(&mu_);
    running_[lease.lease_id].slot_freed = true;
    running_[lease.lease_id].done = true;
  }
  wake_.Notify();
}

}  // namespace sluice
