// Leadership of one coordinator among several sharing a store: campaign while
// standing by, renew while leading, step down at once when a renewal fails.
// Pure logic over a LeaderLeaseStore and a Clock, so it is unit-tested with a
// FakeClock (tests/coordinator/leadership/leader_election_test.cc); Start() runs Step()
// on a thread for the real process.
//
// Safety: this process believes it leads only until (start of its last
// successful renew or campaign) + lease_ms. The store counts the TTL from when
// it received that call, later, so the local belief always ends before the
// store lets anyone else take over. A paused process (SIGSTOP, GC, swap) can
// still act on a stale belief for a moment after it resumes; the store's
// epoch fencing refuses those writes.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "coordinator/leadership/leader_lease_store.h"

namespace sluice {

// What the Coordinator asks before serving a call.
class Leadership {
 public:
  virtual ~Leadership() = default;
  // The current term (the leader epoch) while this process leads; else
  // Unavailable with the not-leader payload (not_leader.h), naming the
  // leader's advertised address as "leader_address=HOST:PORT" when known.
  virtual absl::StatusOr<int64_t> CurrentTerm() const = 0;
  // The store refused a write as fenced: someone else leads now.
  virtual void OnFenced(const absl::Status& why) = 0;
};

// Stands in until the election exists (it needs the bound port for its
// address): a coordinator on a shared store must not act as leader, not even
// for its first Tick, before it has won.
class NotCampaigningYet final : public Leadership {
 public:
  absl::StatusOr<int64_t> CurrentTerm() const override;
  void OnFenced(const absl::Status&) override {}
};

struct LeaderElectionOptions {
  std::string coordinator_id;     // unique per process
  std::string advertise_address;  // HOST:PORT workers should use to reach this process
  int64_t lease_ms = 5'000;
  // How often a leader renews and a standby campaigns; 0: lease_ms / 3.
  int64_t renew_interval_ms = 0;
  // Called when this process wins, with the new epoch, before CurrentTerm()
  // reports it (e.g. to set the store's fencing epoch).
  std::function<void(int64_t epoch)> on_elected;
  // Called when this process stopped leading (a failed or late renewal, a
  // takeover, a fenced write), outside the election's lock and after it
  // learnt the new leader if the store names one, e.g. to wake Lease
  // long-polls so they answer not-leader, naming that leader, at once.
  std::function<void()> on_stepped_down;

  absl::Status Validate() const;
};

class LeaderElection final : public Leadership {
 public:
  enum class Transition { kNone, kElected, kSteppedDown };

  LeaderElection(LeaderLeaseStore& store, const Clock& clock, LeaderElectionOptions options);
  ~LeaderElection() override;

  // One round: a standby campaigns; a leader renews (and steps down when the
  // renewal fails or comes too late). Call every renew_interval_ms().
  Transition Step() ABSL_LOCKS_EXCLUDED(mu_);

  absl::StatusOr<int64_t> CurrentTerm() const override ABSL_LOCKS_EXCLUDED(mu_);
  void OnFenced(const absl::Status& why) override ABSL_LOCKS_EXCLUDED(mu_);

  bool IsLeader() const { return CurrentTerm().ok(); }
  // The last leader this process saw (itself while leading).
  LeaderRecord known_leader() const ABSL_LOCKS_EXCLUDED(mu_);
  int64_t renew_interval_ms() const { return renew_interval_ms_; }

  // Runs Step() every renew_interval_ms() on a thread until Stop().
  void Start();
  // Stops the thread; a leader resigns so that a standby takes over at its
  // next campaign rather than after the lease TTL. resign=false just stops
  // renewing, as a crash would (tests).
  void Stop(bool resign = true);

 private:
  Transition StepOnce() ABSL_LOCKS_EXCLUDED(mu_);
  void StepDownLocked(const std::string& reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // After a step-down: asks the store who leads now, then on_stepped_down.
  void AfterStepDown() ABSL_LOCKS_EXCLUDED(mu_);

  LeaderLeaseStore& store_;
  const Clock& clock_;
  const LeaderElectionOptions options_;
  const int64_t renew_interval_ms_;

  mutable absl::Mutex mu_;
  bool leader_ ABSL_GUARDED_BY(mu_) = false;
  int64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t valid_until_ms_ ABSL_GUARDED_BY(mu_) = 0;
  LeaderRecord known_leader_ ABSL_GUARDED_BY(mu_);

  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace sluice
