#include "worker/worker_agent.h"

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <random>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/ids.h"
#include "spdlog/spdlog.h"
#include "worker/telemetry_counter.h"

namespace sluice {
namespace {

bool IsKillSignal(int sig) {
  return sig == SIGKILL || sig == SIGTERM || sig == SIGINT || sig == SIGHUP;
}

// Full-jitter exponential backoff, capped.
int64_t BackoffMs(int attempt, int64_t base_ms, int64_t cap_ms) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  const int64_t ceiling = std::min(cap_ms, base_ms << std::min(attempt, 16));
  return std::uniform_int_distribution<int64_t>(base_ms / 2, std::max(base_ms, ceiling))(rng);
}

}  // namespace

absl::Status WorkerConfig::Validate() const {
  if (absl::Status st = ValidateId("--worker-id", worker_id); !st.ok()) return st;
  if (slots < 1 || slots > 1024) return absl::InvalidArgumentError("--slots must be 1..1024");
  for (const std::string& label : labels) {
    if (absl::Status st = ValidateId("--label", label); !st.ok()) return st;
  }
  if (!command) return absl::InvalidArgumentError("--exec is required");
  if (grace_ms < 0) return absl::InvalidArgumentError("--grace-seconds must be >= 0");
  if (drain_timeout_ms < 0) return absl::InvalidArgumentError("--drain-timeout must be >= 0");
  if (log_dir.empty()) return absl::InvalidArgumentError("--log-dir must not be empty");
  for (const auto& [key, value] : env) {
    if (key.empty() || key.find('=') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("--env ", key, ": bad variable name"));
    }
  }
  return absl::OkStatus();
}

int64_t HeartbeatTimeoutMs(int64_t lease_ttl_ms, int64_t ms_until_fence) {
  const int64_t cap =
      std::max(kMinHeartbeatTimeoutMs, std::min(kMaxHeartbeatTimeoutMs, lease_ttl_ms / 2));
  return std::max(kMinHeartbeatTimeoutMs, std::min(cap, ms_until_fence));
}

Outcome ClassifyOutcome(const ProcessResult& result) {
  if (result.stopped_by == StopReason::kTimeout) return Outcome::kTimedOut;
  if (result.stopped_by == StopReason::kCancelled) return Outcome::kCancelled;
  if (result.signal != 0) return IsKillSignal(result.signal) ? Outcome::kKilled : Outcome::kFailed;
  if (result.exit_code == 0) return Outcome::kSucceeded;
  if (result.exit_code > 128 && IsKillSignal(result.exit_code - 128)) return Outcome::kKilled;
  return Outcome::kFailed;
}

WorkerAgent::WorkerAgent(WorkerConfig config, CoordinatorClient& client, ProcessRunner& runner,
                         const Clock& clock)
    : config_(std::move(config)),
      client_(client),
      runner_(runner),
      clock_(clock),
      incarnation_(absl::StrCat(absl::Hex(std::random_device{}(), absl::kZeroPad8),
                                absl::Hex(std::random_device{}(), absl::kZeroPad8))),
      spool_(config_.spool_dir.empty() ? (std::filesystem::path(config_.log_dir) / "spool").string()
                                       : config_.spool_dir) {}

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

bool WorkerAgent::SleepUnlessDraining(int64_t ms) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < until) {
    if (drain_requested_.load()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return !drain_requested_.load();
}

absl::Status WorkerAgent::RegisterWithRetry() {
  WorkerInfo info;
  info.worker_id = config_.worker_id;
  info.host = config_.host;
  info.slots = config_.slots;
  info.labels = config_.labels;
  info.version = config_.version;
  for (int attempt = 0;; ++attempt) {
    const int64_t sent_ms = clock_.NowMs();
    absl::StatusOr<WorkerRegistration> reg = client_.Register(info);
    if (reg.ok()) {
      registration_ = *reg;
      last_renewal_sent_ms_.store(sent_ms);
      spdlog::info("registered worker={} slots={} lease_ttl_ms={} heartbeat_ms={}",
                   config_.worker_id, config_.slots, reg->lease_ttl_ms, reg->heartbeat_interval_ms);
      return absl::OkStatus();
    }
    if (reg.status().code() == absl::StatusCode::kInvalidArgument ||
        reg.status().code() == absl::StatusCode::kUnauthenticated ||
        reg.status().code() == absl::StatusCode::kPermissionDenied) {
      return reg.status();
    }
    const int64_t wait = BackoffMs(attempt, 200, 5'000);
    spdlog::warn("register failed ({}); retrying in {} ms", reg.status().ToString(), wait);
    if (!SleepUnlessDraining(wait))
      return absl::CancelledError("drain requested before registering");
  }
}

absl::Status WorkerAgent::Run() {
  std::error_code ec;
  std::filesystem::create_directories(config_.log_dir, ec);
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
    redeliver = std::jthread(
        [this, reports = std::move(*left)]() mutable { RedeliverSpooled(std::move(reports)); });
  }
  absl::Status reg = RegisterWithRetry();
  if (!reg.ok()) {
    if (reg.code() == absl::StatusCode::kCancelled) return absl::OkStatus();
    abandon_delivery_.store(true);  // fatal: outcomes stay in the spool
    return reg;
  }
  std::thread heartbeats([this] { HeartbeatLoop(); });

  int lease_failures = 0;
  std::string request_id;  // reused when a lease call is retried after an error
  bool gated = false;
  while (!drain_requested_.load()) {
    int32_t free_slots;
    {
      absl::MutexLock lock(&mu_);
      ReapFinished();
      free_slots = config_.slots - static_cast<int32_t>(running_.size());
    }
    if (free_slots <= 0) {
      // Wait for a slot (or a drain request) without spinning.
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(
                               +[](WorkerAgent* self) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                 if (self->drain_requested_.load()) return true;
                                 for (const auto& [id, r] : self->running_) {
                                   if (r.done) return true;
                                 }
                                 return false;
                               },
                               this),
                           absl::Milliseconds(200));
      continue;
    }
    if (config_.ready && !config_.ready()) {
      if (!gated) spdlog::warn("not leasing: the worker's service is not healthy");
      gated = true;
      SleepUnlessDraining(200);
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
        client_.Lease(config_.worker_id, request_id, free_slots, wait);
    if (!batch.ok()) {
      if (batch.status().code() == absl::StatusCode::kFailedPrecondition) {
        // The coordinator does not know us (it restarted): register again.
        spdlog::warn("coordinator asks to register again: {}", batch.status().ToString());
        request_id.clear();
        absl::Status again = RegisterWithRetry();
        if (!again.ok() && again.code() != absl::StatusCode::kCancelled) {
          abandon_delivery_.store(true);
          stop_heartbeats_.store(true);
          heartbeats.join();
          return again;
        }
        continue;
      }
      const int64_t backoff = BackoffMs(lease_failures++, 200, 5'000);
      spdlog::warn("lease failed ({}); retrying in {} ms", batch.status().ToString(), backoff);
      SleepUnlessDraining(backoff);
      continue;
    }
    lease_failures = 0;
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

  // Drain: running phases may finish until the drain timeout, then are cancelled.
  spdlog::info("draining worker={}: no new leases; waiting up to {} ms for running phases",
               config_.worker_id, config_.drain_timeout_ms);
  {
    absl::MutexLock lock(&mu_);
    auto all_done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return std::all_of(running_.begin(), running_.end(),
                         [](const auto& entry) { return entry.second.done; });
    };
    const auto deadline = absl::Now() + absl::Milliseconds(config_.drain_timeout_ms);
    while (!all_done() && absl::Now() < deadline) {
      mu_.AwaitWithDeadline(absl::Condition(
                                +[](WorkerAgent* self) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                  return std::all_of(
                                      self->running_.begin(), self->running_.end(),
                                      [](const auto& entry) { return entry.second.done; });
                                },
                                this),
                            deadline);
    }
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
  stop_heartbeats_.store(true);
  heartbeats.join();
  if (redeliver.joinable()) redeliver.join();
  spdlog::info("worker={} drained; {} outcomes reported", config_.worker_id, reported_.load());
  return absl::OkStatus();
}

void WorkerAgent::ReapFinished() {
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
}

void WorkerAgent::CancelAll(const char* why) {
  absl::MutexLock lock(&mu_);
  for (auto& [id, r] : running_) {
    if (!r.done && !r.cancel->cancelled()) {
      spdlog::warn("cancelling lease={} run={} phase={}: {}", id, r.lease.run_id, r.lease.phase_id,
                   why);
      r.cancel->Cancel();
    }
  }
}

int64_t WorkerAgent::MsUntilFence() const {
  return last_renewal_sent_ms_.load() + registration_.lease_ttl_ms - clock_.NowMs();
}

bool WorkerAgent::FenceIfExpired() {
  if (MsUntilFence() > 0) return false;
  CancelAll("could not renew leases within the TTL");
  return true;
}

void WorkerAgent::HeartbeatLoop() {
  int failures = 0;
  bool fenced = false;  // since the last renewal
  while (!stop_heartbeats_.load()) {
    const int64_t interval = failures == 0
                                 ? registration_.heartbeat_interval_ms
                                 : std::min<int64_t>(1'000, registration_.heartbeat_interval_ms);
    // Wakes early when the fence is due, not only after `interval`.
    for (int64_t slept = 0; slept < interval && !stop_heartbeats_.load(); slept += 20) {
      if (failures > 0 && !fenced && MsUntilFence() <= 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (stop_heartbeats_.load()) break;
    fenced = FenceIfExpired() || fenced;
    std::vector<std::string> ids;
    {
      absl::MutexLock lock(&mu_);
      for (const auto& [id, r] : running_) {
        if (!r.done) ids.push_back(id);
      }
    }
    const int64_t sent_ms = clock_.NowMs();
    const int64_t timeout_ms = HeartbeatTimeoutMs(registration_.lease_ttl_ms, MsUntilFence());
    absl::StatusOr<std::vector<std::string>> cancel =
        client_.Heartbeat(config_.worker_id, ids, timeout_ms);
    if (!cancel.ok()) {
      ++failures;
      spdlog::warn("heartbeat failed ({}); last renewal sent {} ms ago", cancel.status().ToString(),
                   clock_.NowMs() - last_renewal_sent_ms_.load());
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

std::optional<int64_t> WorkerAgent::ProbeTelemetry() {
  if (config_.telemetry_probe.empty()) return std::nullopt;
  const std::string base = (std::filesystem::path(config_.log_dir) / "probe").string();
  ProcessSpec spec;
  spec.argv = config_.telemetry_probe;
  spec.workdir = config_.workdir;
  spec.stdout_path = base + ".out";
  spec.stderr_path = base + ".err";
  spec.timeout_ms = 30'000;
  spec.grace_ms = 1'000;
  CancelToken never;
  absl::StatusOr<ProcessResult> r = runner_.Run(spec, never);
  int64_t value = 0;
  if (!r.ok() || r->exit_code != 0 ||
      !absl::SimpleAtoi(absl::StripAsciiWhitespace(r->stdout_tail), &value)) {
    spdlog::warn("telemetry probe failed: {}", r.ok() ? r->stderr_tail : r.status().ToString());
    return std::nullopt;
  }
  return value;
}

AttemptReport WorkerAgent::Execute(const LeaseGrant& lease, const CancelToken& cancel) {
  AttemptReport report;
  report.lease_id = lease.lease_id;
  report.epoch = lease.epoch;
  report.worker_id = config_.worker_id;

  PhaseIdentity identity{lease.run_id, lease.phase_id, lease.attempt, lease.lease_id,
                         lease.session_id};
  absl::StatusOr<std::vector<std::string>> argv = config_.command->Expand(identity);
  if (!argv.ok()) {
    report.outcome = Outcome::kFailed;
    report.error_text = absl::StrCat("worker refused the lease: ", argv.status().message());
    return report;
  }
  // Identifiers are validated, so they are safe as path components.
  const std::filesystem::path dir = std::filesystem::path(config_.log_dir) / lease.run_id;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  const std::string stem =
      (dir / absl::StrCat(lease.phase_id, ".attempt", lease.attempt, ".", lease.lease_id)).string();
  const std::string telemetry_path = stem + ".telemetry.jsonl";
  std::filesystem::remove(telemetry_path, ec);  // a fresh file per attempt

  ProcessSpec spec;
  spec.argv = std::move(*argv);
  spec.env = config_.env;
  spec.env["SLUICE_RUN_ID"] = lease.run_id;
  spec.env["SLUICE_PHASE_ID"] = lease.phase_id;
  spec.env["SLUICE_ATTEMPT"] = std::to_string(lease.attempt);
  spec.env["SLUICE_LEASE_ID"] = lease.lease_id;
  spec.env["SLUICE_SESSION_ID"] = lease.session_id;
  spec.env["SLUICE_TELEMETRY_FILE"] = std::filesystem::absolute(telemetry_path).string();
  spec.workdir = config_.workdir;
  spec.stdout_path = stem + ".stdout.log";
  spec.stderr_path = stem + ".stderr.log";
  spec.timeout_ms = int64_t{lease.timeout_seconds} * 1000;
  spec.grace_ms = config_.grace_ms;
  spec.tail_bytes = config_.tail_bytes;

  const std::optional<int64_t> probe_before = ProbeTelemetry();
  spdlog::info("starting run={} phase={} attempt={} lease={} timeout_s={}", lease.run_id,
               lease.phase_id, lease.attempt, lease.lease_id, lease.timeout_seconds);
  absl::StatusOr<ProcessResult> result = runner_.Run(spec, cancel);
  if (!result.ok()) {
    report.outcome = Outcome::kFailed;
    report.exit_code = 127;
    report.error_text = absl::StrCat("cannot start phase: ", result.status().message());
    return report;
  }
  report.outcome = ClassifyOutcome(*result);
  report.exit_code = result->exit_code;
  report.signal = result->signal;
  report.duration_ms = result->duration_ms;
  report.stdout_tail = result->stdout_tail;
  report.stderr_tail = result->stderr_tail;
  report.error_text = result->error_text;
  if (report.outcome == Outcome::kTimedOut && lease.timeout_is_session_deadline) {
    report.outcome = Outcome::kCancelled;
    report.error_text = "cancelled at the session deadline (--max-total-minutes)";
  }
  if (report.outcome == Outcome::kTimedOut && report.error_text.empty()) {
    report.error_text = absl::StrCat("phase timed out after ", lease.timeout_seconds, " s");
  }
  absl::StatusOr<TelemetryCount> telemetry = CountTelemetryFile(telemetry_path);
  if (telemetry.ok()) {
    report.telemetry_events = telemetry->events;
    report.telemetry_by_type = telemetry->by_type;
  } else {
    spdlog::warn("cannot count telemetry lease={}: {}", lease.lease_id,
                 telemetry.status().ToString());
  }
  if (probe_before) {
    if (std::optional<int64_t> after = ProbeTelemetry(); after && *after > *probe_before) {
      report.telemetry_events += *after - *probe_before;
      report.telemetry_by_type["probe"] += *after - *probe_before;
    }
  }
  return report;
}

void WorkerAgent::RunPhase(LeaseGrant lease, std::shared_ptr<CancelToken> cancel) {
  AttemptReport report = Execute(lease, *cancel);
  spdlog::info(
      "finished run={} phase={} attempt={} lease={} outcome={} exit={} signal={} "
      "duration_ms={} events={}",
      lease.run_id, lease.phase_id, lease.attempt, lease.lease_id, OutcomeName(report.outcome),
      report.exit_code, report.signal, report.duration_ms, report.telemetry_events);
  if (absl::Status st = spool_.Put(report); !st.ok()) {
    spdlog::error("cannot spool outcome lease={} ({}); it is kept in memory only", lease.lease_id,
                  st.ToString());
  }
  DeliverReport(report);
  absl::MutexLock lock(&mu_);
  running_[lease.lease_id].done = true;
}

void WorkerAgent::DeliverReport(const AttemptReport& report) {
  const int64_t started = clock_.NowMs();
  for (int attempt = 0;; ++attempt) {
    absl::StatusOr<ReportDisposition> d = client_.Report(report);
    if (d.ok()) {
      ++reported_;
      if (*d != ReportDisposition::kAccepted) {
        spdlog::warn("report lease={} answered {}", report.lease_id, ReportDispositionName(*d));
      }
      // Answered (any disposition): the coordinator has it or never will.
      if (absl::Status st = spool_.Remove(report.lease_id); !st.ok()) {
        spdlog::warn("cannot remove spooled outcome lease={}: {}", report.lease_id, st.ToString());
      }
      return;
    }
    const absl::StatusCode code = d.status().code();
    if (code == absl::StatusCode::kInvalidArgument) {
      // Never acceptable as it is: keep it aside for a person, stop retrying.
      spdlog::error("report lease={} rejected: {}; kept in {} as {}.json.rejected", report.lease_id,
                    d.status().ToString(), spool_.dir(), report.lease_id);
      (void)spool_.Quarantine(report.lease_id, "rejected");
      return;
    }
    if (code == absl::StatusCode::kPermissionDenied || code == absl::StatusCode::kUnauthenticated) {
      // A credentials problem: the next start (fixed) delivers it.
      spdlog::error("report lease={} refused: {}; left in the spool for the next start",
                    report.lease_id, d.status().ToString());
      return;
    }
    if (abandon_delivery_.load() ||
        (drain_requested_.load() && clock_.NowMs() - started > config_.report_give_up_ms)) {
      spdlog::error(
          "giving up on report lease={} after {} ms ({}); left in the spool {} for the next start",
          report.lease_id, clock_.NowMs() - started, d.status().ToString(), spool_.dir());
      return;
    }
    const int64_t wait = BackoffMs(attempt, 100, 5'000);
    spdlog::warn("report lease={} failed ({}); retrying in {} ms", report.lease_id,
                 d.status().ToString(), wait);
    std::this_thread::sleep_for(std::chrono::milliseconds(wait));
  }
}

void WorkerAgent::RedeliverSpooled(std::vector<AttemptReport> reports) {
  for (const AttemptReport& report : reports) DeliverReport(report);
  spdlog::info("outcomes from a previous run delivered (or left in {})", spool_.dir());
}

}  // namespace sluice
