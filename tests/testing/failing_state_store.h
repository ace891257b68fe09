// A StateStore decorator that injects store outages: an armed failure makes
// a mutating call return Unavailable *before* it reaches the wrapped store,
// exactly as if the connection dropped before the transaction began. Tests
// use it to prove that callers (the Coordinator) neither half-apply work nor
// double-count it when the store fails and the caller retries.
//
// Mutating calls: ImportPhases, LeaseNextInRun, RenewLeases, RecordReport,
// ExpireLeases, UpsertWorker, CreateSession, EndSession. Reads always pass.
// With nothing armed it is transparent. Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "tests/testing/forwarding_state_store.h"

namespace sluice::testing {

class FailingStateStore : public ForwardingStateStore {
 public:
  using ForwardingStateStore::ForwardingStateStore;

  // The n-th mutating call from now (1 = the very next one) fails once.
  // Replaces any failure armed before.
  void FailNthMutatingCall(int64_t n) {
    absl::MutexLock lock(&mu_);
    fail_at_ = calls_ + n;
  }
  // Every mutating call fails until Heal().
  void FailAllMutatingCalls() {
    absl::MutexLock lock(&mu_);
    fail_all_ = true;
  }
  void Heal() {
    absl::MutexLock lock(&mu_);
    fail_all_ = false;
    fail_at_ = -1;
  }

  // Mutating calls seen so far, failed ones included.
  int64_t mutating_calls() const {
    absl::MutexLock lock(&mu_);
    return calls_;
  }
  // Names of the calls that were failed, in order.
  std::vector<std::string> failed_calls() const {
    absl::MutexLock lock(&mu_);
    return failed_;
  }

  absl::StatusOr<ImportResult> ImportPhases(const std::vector<PhaseSpec>& phases) override {
    if (absl::Status st = MaybeFail("ImportPhases"); !st.ok()) return st;
    return ForwardingStateStore::ImportPhases(phases);
  }
  absl::StatusOr<std::optional<LeaseGrant>> LeaseNextInRun(const LeaseParams& params) override {
    if (absl::Status st = MaybeFail("LeaseNextInRun"); !st.ok()) return st;
    return ForwardingStateStore::LeaseNextInRun(params);
  }
  absl::StatusOr<std::vector<std::string>> RenewLeases(const std::string& worker_id,
                                                       const std::vector<std::string>& lease_ids,
                                                       int64_t now_ms, int64_t ttl_ms) override {
    if (absl::Status st = MaybeFail("RenewLeases"); !st.ok()) return st;
    return ForwardingStateStore::RenewLeases(worker_id, lease_ids, now_ms, ttl_ms);
  }
  absl::StatusOr<ReportResult> RecordReport(const ReportParams& params) override {
    if (absl::Status st = MaybeFail("RecordReport"); !st.ok()) return st;
    return ForwardingStateStore::RecordReport(params);
  }
  absl::StatusOr<std::vector<ExpiredLease>> ExpireLeases(int64_t now_ms,
                                                         const PhaseTransition& lost) override {
    if (absl::Status st = MaybeFail("ExpireLeases"); !st.ok()) return st;
    return ForwardingStateStore::ExpireLeases(now_ms, lost);
  }
  absl::Status UpsertWorker(const WorkerInfo& worker) override {
    if (absl::Status st = MaybeFail("UpsertWorker"); !st.ok()) return st;
    return ForwardingStateStore::UpsertWorker(worker);
  }
  absl::Status CreateSession(const SessionRecord& session) override {
    if (absl::Status st = MaybeFail("CreateSession"); !st.ok()) return st;
    return ForwardingStateStore::CreateSession(session);
  }
  absl::Status EndSession(const std::string& session_id, SessionState state, int64_t ended_at_ms,
                          const std::string& reason) override {
    if (absl::Status st = MaybeFail("EndSession"); !st.ok()) return st;
    return ForwardingStateStore::EndSession(session_id, state, ended_at_ms, reason);
  }
  absl::Status PutPolicyRecord(const std::string& kind, const std::string& key,
                               const std::string& value) override {
    if (absl::Status st = MaybeFail("PutPolicyRecord"); !st.ok()) return st;
    return ForwardingStateStore::PutPolicyRecord(kind, key, value);
  }

 private:
  absl::Status MaybeFail(const char* method) {
    absl::MutexLock lock(&mu_);
    ++calls_;
    if (!fail_all_ && calls_ != fail_at_) return absl::OkStatus();
    failed_.emplace_back(method);
    return absl::UnavailableError(std::string("injected store outage in ") + method);
  }

  mutable absl::Mutex mu_;
  int64_t calls_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t fail_at_ ABSL_GUARDED_BY(mu_) = -1;
  bool fail_all_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::string> failed_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sluice::testing
