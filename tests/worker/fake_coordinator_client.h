// Test doubles for the worker's unit tests. Every wait here blocks on a
// condition (absl::Mutex) or on the FakeClock, never on a real-time sleep;
// the real-time bounds are only guards against a hung test.
#pragma once

#include <algorithm>
#include <deque>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "worker/coordinator_client.h"
#include "worker/process_runner.h"

namespace sluice::testing {

inline constexpr absl::Duration kTestGuard = absl::Seconds(10);

// With `mu` held: waits (releasing it meanwhile) until `done()` holds, which
// is re-checked whenever `mu` is released. False if not within the guard.
inline bool AwaitWithGuard(absl::Mutex& mu, const std::function<bool()>& done) {
  return mu.AwaitWithTimeout(absl::Condition(
                                 +[](const std::function<bool()>* f) { return (*f)(); }, &done),
                             kTestGuard);
}

// A counter a test can wait on.
class Counter {
 public:
  void Increment() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    ++value_;
  }
  int value() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return value_;
  }
  // False if it did not reach `n` within the guard.
  bool AwaitAtLeast(int n) const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return AwaitWithGuard(mu_, [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return value_ >= n; });
  }

 private:
  mutable absl::Mutex mu_;
  int value_ ABSL_GUARDED_BY(mu_) = 0;
};

// A coordinator whose Lease is a long-poll on the FakeClock: it answers at
// once when a grant is queued, else when Grant() is called, when the pending
// lease is cancelled, or when wait_ms passed on the clock (an empty batch).
// Report answers whatever Answer() set last.
class FakeCoordinatorClient : public CoordinatorClient {
 public:
  explicit FakeCoordinatorClient(const Clock& clock) : clock_(clock) {}

  absl::StatusOr<WorkerRegistration> Register(const WorkerInfo&) override ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return registration_;
  }
  absl::StatusOr<LeaseBatch> Lease(const std::string& worker_id, const std::string& request_id,
                                   int32_t, int64_t wait_ms,
                                   const std::vector<std::string>& after_lease_ids) override
      ABSL_LOCKS_EXCLUDED(mu_) {
    {
      absl::MutexLock lock(&mu_);
      request_ids_.push_back(request_id);
      after_lease_ids_.push_back(after_lease_ids);
      reports_held_at_lease_.push_back(reports_held_);
    }
    leases_asked_.Increment();
    const int64_t deadline = clock_.NowMs() + wait_ms;
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        if (cancelled_) return absl::CancelledError("lease cancelled");
        if (!grants_.empty()) {
          LeaseBatch batch;
          batch.session_active = true;
          batch.leases.push_back(grants_.front());
          batch.leases.back().worker_id = worker_id;
          grants_.pop_front();
          return batch;
        }
      }
      if (!clock_.WaitUntil(lease_wake_, deadline)) {
        LeaseBatch empty;
        empty.session_active = true;
        return empty;
      }
    }
  }
  absl::StatusOr<std::vector<std::string>> Heartbeat(const std::string&,
                                                     const std::vector<std::string>& lease_ids,
                                                     int64_t) override ABSL_LOCKS_EXCLUDED(mu_) {
    absl::Status answer;
    {
      absl::MutexLock lock(&mu_);
      answer = heartbeat_answer_;
      last_heartbeat_ids_ = lease_ids;
    }
    heartbeats_.Increment();
    if (!answer.ok()) return answer;
    return std::vector<std::string>();
  }
  absl::StatusOr<ReportDisposition> Report(const AttemptReport& report) override
      ABSL_LOCKS_EXCLUDED(mu_) {
    absl::StatusOr<ReportDisposition> answer;
    {
      absl::MutexLock lock(&mu_);
      attempts_.push_back(report);
      answer = answer_;
    }
    reports_.Increment();
    absl::MutexLock lock(&mu_);
    if (hold_reports_) {
      ++reports_held_;
      mu_.Await(absl::Condition(
          +[](bool* hold) { return !*hold; }, &hold_reports_));
      --reports_held_;
    }
    return answer;
  }
  // While held, Report calls wait (counted by reports() on entry): reports
  // in flight.
  void HoldReports(bool hold) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    hold_reports_ = hold;
  }
  // For each Lease call, how many Report calls were held when it came.
  std::vector<int> reports_held_at_lease() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return reports_held_at_lease_;
  }
  std::vector<std::string> last_heartbeat_ids() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return last_heartbeat_ids_;
  }
  void CancelPendingLease() override ABSL_LOCKS_EXCLUDED(mu_) {
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
    }
    lease_wake_.Notify();
  }

  void Grant(const std::string& lease_id) ABSL_LOCKS_EXCLUDED(mu_) {
    LeaseGrant g;
    g.lease_id = lease_id;
    g.run_id = "r1";
    g.phase_id = "p1";
    g.attempt = 1;
    g.epoch = 7;
    g.session_id = "s1";
    g.timeout_seconds = 60;
    {
      absl::MutexLock lock(&mu_);
      grants_.push_back(g);
    }
    lease_wake_.Notify();
  }
  void SetRegistration(WorkerRegistration registration) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    registration_ = registration;
  }
  void AnswerHeartbeats(absl::Status answer) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    heartbeat_answer_ = std::move(answer);
  }
  void Answer(absl::StatusOr<ReportDisposition> answer) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    answer_ = std::move(answer);
  }
  std::vector<std::string> request_ids() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return request_ids_;
  }
  // Each Lease call's after_lease_ids, in call order.
  std::vector<std::vector<std::string>> after_lease_ids() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return after_lease_ids_;
  }
  std::vector<AttemptReport> attempts() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return attempts_;
  }
  // Every Report, Lease and Heartbeat call (failed ones included).
  const Counter& reports() const { return reports_; }
  const Counter& heartbeats() const { return heartbeats_; }
  const Counter& leases_asked() const { return leases_asked_; }

 private:
  const Clock& clock_;
  mutable absl::Mutex mu_;
  std::deque<LeaseGrant> grants_ ABSL_GUARDED_BY(mu_);
  std::vector<AttemptReport> attempts_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> request_ids_ ABSL_GUARDED_BY(mu_);
  std::vector<std::vector<std::string>> after_lease_ids_ ABSL_GUARDED_BY(mu_);
  absl::StatusOr<ReportDisposition> answer_ ABSL_GUARDED_BY(mu_) = ReportDisposition::kAccepted;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool hold_reports_ ABSL_GUARDED_BY(mu_) = false;
  int reports_held_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<int> reports_held_at_lease_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> last_heartbeat_ids_ ABSL_GUARDED_BY(mu_);
  WorkerRegistration registration_ ABSL_GUARDED_BY(mu_) = {.lease_ttl_ms = 600'000,
                                                           .heartbeat_interval_ms = 60'000,
                                                           .max_lease_wait_ms = 30'000,
                                                           .cluster_id = {}};
  absl::Status heartbeat_answer_ ABSL_GUARDED_BY(mu_);
  Wakeup lease_wake_;  // one Lease call at a time (the agent's loop)
  Counter reports_;
  Counter leases_asked_;
  Counter heartbeats_;
};

// Finishes every phase at once, successfully.
// Exit 0 after 1 ms: what a fake runner answers for a phase that ran.
inline ProcessResult SucceededResult() {
  ProcessResult r;
  r.exit_code = 0;
  r.duration_ms = 1;
  return r;
}

class InstantRunner : public ProcessRunner {
 public:
  absl::StatusOr<ProcessResult> Run(const ProcessSpec&, const CancelToken&) override {
    return SucceededResult();
  }
};

// Runs each phase until the test releases its lease id; it does not watch
// the CancelToken (a test sees a cancel request through cancelled()).
class GatedRunner : public ProcessRunner {
 public:
  absl::StatusOr<ProcessResult> Run(const ProcessSpec& spec, const CancelToken& cancel) override
      ABSL_LOCKS_EXCLUDED(mu_) {
    const std::string lease = spec.env.at("SLUICE_LEASE_ID");
    absl::MutexLock lock(&mu_);
    if (telemetry_events_ > 0) {
      std::ofstream telemetry(spec.env.at("SLUICE_TELEMETRY_FILE"));
      for (int i = 0; i < telemetry_events_; ++i) telemetry << "{\"type\":\"sample\"}\n";
    }
    started_.push_back(lease);
    cancel_[lease] = &cancel;
    const std::function<bool()> released = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return std::find(released_.begin(), released_.end(), lease) != released_.end();
    };
    mu_.Await(absl::Condition(
        +[](const std::function<bool()>* f) { return (*f)(); }, &released));
    cancel_.erase(lease);
    ProcessResult r;
    r.exit_code = 0;
    r.duration_ms = 1;
    return r;
  }
  // Each phase run from now on writes `n` telemetry events to its file.
  void WriteTelemetryEvents(int n) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    telemetry_events_ = n;
  }
  void Release(const std::string& lease) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    released_.push_back(lease);
  }
  // Whether the agent asked to stop the phase (while it still runs).
  bool cancelled(const std::string& lease) const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    auto it = cancel_.find(lease);
    return it != cancel_.end() && it->second->cancelled();
  }
  // The SIGKILL bound the agent asked for (CancelToken::kill_within_ms), -2
  // when the phase is not running.
  int64_t kill_within_ms(const std::string& lease) const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    auto it = cancel_.find(lease);
    return it == cancel_.end() ? -2 : it->second->kill_within_ms();
  }
  // False if fewer than `n` phases started within the guard.
  bool AwaitStarted(size_t n) const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return AwaitWithGuard(mu_,
                          [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return started_.size() >= n; });
  }
  std::vector<std::string> started() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return started_;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<std::string> started_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> released_ ABSL_GUARDED_BY(mu_);
  int telemetry_events_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, const CancelToken*> cancel_ ABSL_GUARDED_BY(mu_);  // while running
};

}  // namespace sluice::testing
