// A StateStore decorator that injects store outages: an armed failure makes
// a mutating call return Unavailable *before* it reaches the wrapped store,
// exactly as if the connection dropped before the transaction began. A lost
// reply (LoseReplyOfNthMutatingCall) is the other half: the call reaches the
// store and commits, then the caller gets Unavailable, as when the
// connection drops after the commit but before the answer arrives. Tests
// use it to prove that callers (the Coordinator) neither half-apply work nor
// double-count it when the store fails and the caller retries.
//
// Mutating calls: ImportPhases, LeaseNextInRun, RenewLeases, RecordReport,
// ExpireLeases, UpsertWorker, CreateSession, EndSession. Reads always pass.
// RecordReports is a RecordReport per report here, each one a mutating call.
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
  // The next call to the mutating method `method` (e.g. "LeaseNextInRun")
  // is performed, then answers Unavailable once: the write happened, the
  // reply was lost. Other calls pass.
  void LoseReplyOfNextCallTo(std::string method) {
    absl::MutexLock lock(&mu_);
    lose_reply_of_ = std::move(method);
  }
  void Heal() {
    absl::MutexLock lock(&mu_);
    fail_all_ = false;
    fail_at_ = -1;
    lose_reply_of_.clear();
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
    return Call("ImportPhases", [&] { return ForwardingStateStore::ImportPhases(phases); });
  }
  absl::StatusOr<std::optional<LeaseGrant>> LeaseNextInRun(const LeaseParams& params) override {
    return Call("LeaseNextInRun", [&] { return ForwardingStateStore::LeaseNextInRun(params); });
  }
  absl::StatusOr<std::vector<std::string>> RenewLeases(const std::string& worker_id,
                                                       const std::vector<std::string>& lease_ids,
                                                       int64_t now_ms, int64_t ttl_ms) override {
    return Call("RenewLeases", [&] {
      return ForwardingStateStore::RenewLeases(worker_id, lease_ids, now_ms, ttl_ms);
    });
  }
  absl::StatusOr<ReportResult> RecordReport(const ReportParams& params) override {
    return Call("RecordReport", [&] { return ForwardingStateStore::RecordReport(params); });
  }
  std::vector<absl::StatusOr<ReportResult>> RecordReports(
      const std::vector<ReportParams>& batch) override {
    return StateStore::RecordReports(batch);  // one by one, through RecordReport above
  }
  absl::StatusOr<std::vector<ExpiredLease>> ExpireLeases(int64_t now_ms,
                                                         const PhaseTransition& lost) override {
    return Call("ExpireLeases", [&] { return ForwardingStateStore::ExpireLeases(now_ms, lost); });
  }
  absl::Status UpsertWorker(const WorkerInfo& worker) override {
    return Call("UpsertWorker", [&] { return ForwardingStateStore::UpsertWorker(worker); });
  }
  absl::Status CreateSession(const SessionRecord& session) override {
    return Call("CreateSession", [&] { return ForwardingStateStore::CreateSession(session); });
  }
  absl::Status EndSession(const std::string& session_id, SessionState state, int64_t ended_at_ms,
                          const std::string& reason) override {
    return Call("EndSession", [&] {
      return ForwardingStateStore::EndSession(session_id, state, ended_at_ms, reason);
    });
  }
  absl::Status PutPolicyRecord(const std::string& kind, const std::string& key,
                               const std::string& value) override {
    return Call("PutPolicyRecord",
                [&] { return ForwardingStateStore::PutPolicyRecord(kind, key, value); });
  }

 private:
  enum class Fault { kNone, kBeforeCall, kReplyLost };

  Fault NextFault(const char* method) {
    absl::MutexLock lock(&mu_);
    ++calls_;
    if (!fail_all_ && calls_ != fail_at_) {
      if (lose_reply_of_ != method) return Fault::kNone;
      lose_reply_of_.clear();
      failed_.emplace_back(method);
      return Fault::kReplyLost;
    }
    failed_.emplace_back(method);
    return Fault::kBeforeCall;
  }

  // `forward` runs the call on the wrapped store, or not, as the armed fault
  // says; its result is returned unless the reply is to be lost.
  template <typename Forward>
  auto Call(const char* method, Forward forward) -> decltype(forward()) {
    const Fault fault = NextFault(method);
    if (fault == Fault::kBeforeCall) {
      return absl::UnavailableError(std::string("injected store outage in ") + method);
    }
    auto result = forward();
    if (fault == Fault::kReplyLost) {
      return absl::UnavailableError(std::string("injected lost reply of ") + method);
    }
    return result;
  }

  mutable absl::Mutex mu_;
  int64_t calls_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t fail_at_ ABSL_GUARDED_BY(mu_) = -1;
  bool fail_all_ ABSL_GUARDED_BY(mu_) = false;
  std::string lose_reply_of_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> failed_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sluice::testing
