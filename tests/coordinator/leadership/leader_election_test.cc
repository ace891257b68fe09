// LeaderElection's logic against an in-memory lease with the same semantics
// as the Redis scripts (TTL on a FakeClock, durable epoch counter). The real
// Redis lease is tested in tests/contract/redis_store_test.cc.
#include "coordinator/leadership/leader_election.h"

#include <gtest/gtest.h>

#include <optional>
#include <thread>

#include "absl/synchronization/notification.h"
#include "common/clock.h"
#include "coordinator/coordinator.h"
#include "coordinator/leadership/not_leader.h"
#include "coordinator/store/sqlite/sqlite_state_store.h"

namespace sluice {
namespace {

class FakeLeaseStore final : public LeaderLeaseStore {
 public:
  explicit FakeLeaseStore(const FakeClock& clock) : clock_(clock) {}

  absl::StatusOr<CampaignOutcome> Campaign(const std::string& id, const std::string& address,
                                           int64_t lease_ms) override {
    if (!up) return absl::UnavailableError("store down");
    Expire();
    if (holder_ && holder_->coordinator_id != id) return CampaignOutcome{false, *holder_};
    holder_ = LeaderRecord{id, ++epoch_, address};
    expires_at_ = clock_.NowMs() + lease_ms;
    return CampaignOutcome{true, *holder_};
  }
  absl::StatusOr<bool> RenewLeadership(const std::string& id, int64_t epoch,
                                       int64_t lease_ms) override {
    ++renewals;
    if (!up) return absl::UnavailableError("store down");
    Expire();
    if (!holder_ || holder_->coordinator_id != id || holder_->epoch != epoch || epoch != epoch_) {
      return false;
    }
    expires_at_ = clock_.NowMs() + lease_ms;
    return true;
  }
  absl::Status Resign(const std::string& id, int64_t epoch) override {
    if (holder_ && holder_->coordinator_id == id && holder_->epoch == epoch) holder_.reset();
    return absl::OkStatus();
  }
  absl::StatusOr<std::optional<LeaderRecord>> CurrentLeader() override {
    Expire();
    return holder_;
  }

  bool up = true;
  int renewals = 0;

 private:
  void Expire() {
    if (holder_ && clock_.NowMs() >= expires_at_) holder_.reset();
  }
  const FakeClock& clock_;
  std::optional<LeaderRecord> holder_;
  int64_t epoch_ = 0;
  int64_t expires_at_ = 0;
};

LeaderElectionOptions Options(const std::string& id, const std::string& address) {
  LeaderElectionOptions o;
  o.coordinator_id = id;
  o.advertise_address = address;
  o.lease_ms = 3'000;  // renew every 1 s
  return o;
}

using T = LeaderElection::Transition;

TEST(LeaderElectionTest, FirstCampaignWinsSecondStandsByNamingTheLeader) {
  FakeClock clock;
  FakeLeaseStore store(clock);
  LeaderElection a(store, clock, Options("a", "10.0.0.1:7400"));
  LeaderElection b(store, clock, Options("b", "10.0.0.2:7400"));
  EXPECT_FALSE(a.IsLeader());
  EXPECT_EQ(a.Step(), T::kElected);
  EXPECT_EQ(b.Step(), T::kNone);
  ASSERT_TRUE(a.CurrentTerm().ok());
  EXPECT_EQ(*a.CurrentTerm(), 1);
  const absl::Status standby = b.CurrentTerm().status();
  EXPECT_TRUE(IsNotLeader(standby)) << standby;
  EXPECT_EQ(standby.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(std::string(standby.message()).find("leader_address=10.0.0.1:7400"), std::string::npos)
      << standby;
  EXPECT_EQ(b.known_leader().coordinator_id, "a");
}

TEST(LeaderElectionTest, StandbyTakesOverWithinLeasePlusOneRenewalAfterTheLeaderStops) {
  FakeClock clock;
  FakeLeaseStore store(clock);
  LeaderElection a(store, clock, Options("a", "a:1"));
  LeaderElection b(store, clock, Options("b", "b:1"));
  ASSERT_EQ(a.Step(), T::kElected);
  // A keeps renewing: B never wins.
  for (int i = 0; i < 10; ++i) {
    clock.AdvanceMs(a.renew_interval_ms());
    EXPECT_EQ(a.Step(), T::kNone);
    EXPECT_EQ(b.Step(), T::kNone);
    EXPECT_TRUE(a.IsLeader());
    EXPECT_FALSE(b.IsLeader());
  }
  // A dies (stops renewing). B campaigns every renew interval.
  const int64_t died_at = clock.NowMs();
  int64_t took_over_at = 0;
  for (int i = 0; i < 20 && took_over_at == 0; ++i) {
    clock.AdvanceMs(b.renew_interval_ms());
    if (b.Step() == T::kElected) took_over_at = clock.NowMs();
  }
  ASSERT_NE(took_over_at, 0);
  EXPECT_LE(took_over_at - died_at, 3'000 + b.renew_interval_ms());
  EXPECT_EQ(*b.CurrentTerm(), 2);  // the epoch grows on takeover
  // A's belief ended with its lease, before B could take over.
  EXPECT_FALSE(a.IsLeader());
}

TEST(LeaderElectionTest, LeaderWhoseRenewalIsRefusedStepsDownAtOnce) {
  FakeClock clock;
  FakeLeaseStore store(clock);
  LeaderElection a(store, clock, Options("a", "a:1"));
  LeaderElection b(store, clock, Options("b", "b:1"));
  ASSERT_EQ(a.Step(), T::kElected);
  // A is paused longer than its lease; B takes over meanwhile.
  clock.AdvanceMs(3'000);
  ASSERT_EQ(b.Step(), T::kElected);
  EXPECT_FALSE(a.IsLeader());  // the local deadline passed already
  EXPECT_EQ(a.Step(), T::kSteppedDown);
  EXPECT_TRUE(IsNotLeader(a.CurrentTerm().status()));
  // Next round A learns who leads now.
  clock.AdvanceMs(a.renew_interval_ms());
  EXPECT_EQ(a.Step(), T::kNone);
  EXPECT_EQ(a.known_leader().coordinator_id, "b");
}

TEST(LeaderElectionTest, RenewalErrorStepsDownAndRejoinsWithANewEpoch) {
  FakeClock clock;
  FakeLeaseStore store(clock);
  LeaderElection a(store, clock, Options("a", "a:1"));
  ASSERT_EQ(a.Step(), T::kElected);
  EXPECT_EQ(*a.CurrentTerm(), 1);
  store.up = false;
  clock.AdvanceMs(a.renew_interval_ms());
  EXPECT_EQ(a.Step(), T::kSteppedDown);  // unknown outcome: no second guessing
  EXPECT_FALSE(a.IsLeader());
  clock.AdvanceMs(a.renew_interval_ms());
  EXPECT_EQ(a.Step(), T::kNone);  // campaign fails while the store is down
  store.up = true;
  EXPECT_EQ(a.Step(), T::kElected);  // its own key: taken again at once
  EXPECT_EQ(*a.CurrentTerm(), 2);
}

TEST(LeaderElectionTest, LeaderStepsDownWhenItsLeaseRanOutWithoutARenewal) {
  FakeClock clock;
  FakeLeaseStore store(clock);
  LeaderElection a(store, clock, Options("a", "a:1"));
  ASSERT_EQ(a.Step(), T::kElected);
  clock.AdvanceMs(2'999);
  EXPECT_TRUE(a.IsLeader());
  clock.AdvanceMs(1);
  EXPECT_FALSE(a.IsLeader());  // even before Step runs
  const int renewals = store.renewals;
  EXPECT_EQ(a.Step(), T::kSteppedDown);
  EXPECT_EQ(store.renewals, renewals);  // decided locally
}

TEST(LeaderElectionTest, FencedWriteStepsTheLeaderDown) {
  FakeClock clock;
  FakeLeaseStore store(clock);
  LeaderElection a(store, clock, Options("a", "a:1"));
  ASSERT_EQ(a.Step(), T::kElected);
  a.OnFenced(NotLeaderError("not the leader (epoch 1, current 2)"));
  EXPECT_FALSE(a.IsLeader());
}

TEST(LeaderElectionTest, StopResignsSoTheStandbyTakesOverAtOnce) {
  FakeClock clock;
  FakeLeaseStore store(clock);
  auto a = std::make_unique<LeaderElection>(store, clock, Options("a", "a:1"));
  LeaderElection b(store, clock, Options("b", "b:1"));
  ASSERT_EQ(a->Step(), T::kElected);
  a->Stop();
  EXPECT_EQ(b.Step(), T::kElected);
}

TEST(LeaderElectionTest, OptionsAreValidated) {
  LeaderElectionOptions o = Options("a", "a:1");
  EXPECT_TRUE(o.Validate().ok());
  o.lease_ms = 100;
  EXPECT_EQ(o.Validate().code(), absl::StatusCode::kInvalidArgument);
  o = Options("", "a:1");
  EXPECT_EQ(o.Validate().code(), absl::StatusCode::kInvalidArgument);
  o = Options("a", "a:1");
  o.renew_interval_ms = 2'000;  // more than half the lease
  EXPECT_EQ(o.Validate().code(), absl::StatusCode::kInvalidArgument);
}

// The Coordinator behind a Leadership: a standby answers not-leader to every
// call, and a new term rebuilds the caches from the store.
TEST(LeaderElectionTest, CoordinatorRefusesCallsWhileStandingBy) {
  FakeClock clock;
  FakeLeaseStore lease(clock);
  auto store = SqliteStateStore::Open(":memory:");
  ASSERT_TRUE(store.ok()) << store.status();
  LeaderElection a(lease, clock, Options("a", "a:1"));
  LeaderElection b(lease, clock, Options("b", "b:1"));
  Coordinator coordinator(**store, clock);
  coordinator.SetLeadership(&b);
  ASSERT_EQ(a.Step(), T::kElected);
  ASSERT_EQ(b.Step(), T::kNone);
  WorkerInfo w;
  w.worker_id = "w1";
  w.host = "h";
  w.slots = 1;
  const absl::Status refused = coordinator.Register(w).status();
  EXPECT_TRUE(IsNotLeader(refused)) << refused;
  EXPECT_NE(std::string(refused.message()).find("leader_address=a:1"), std::string::npos);
  EXPECT_TRUE(IsNotLeader(coordinator.Tick()));
  EXPECT_TRUE(IsNotLeader(coordinator.Status().status()));
  // A dies; B takes over and serves.
  clock.AdvanceMs(3'000);
  ASSERT_EQ(b.Step(), T::kElected);
  EXPECT_TRUE(coordinator.Register(w).ok());
  EXPECT_TRUE(coordinator.Tick().ok());
}

// A Lease long-poll already waiting when its coordinator steps down is woken
// (on_stepped_down -> WakeLeasePolls) and answers not-leader naming the new
// leader at once, instead of re-checking a second later (or, before, waiting
// out its whole wait_ms).
TEST(LeaderElectionTest, StepDownWakesAWaitingLongPollWhichNamesTheNewLeader) {
  FakeClock clock;
  FakeLeaseStore lease(clock);
  auto store = SqliteStateStore::Open(":memory:");
  ASSERT_TRUE(store.ok()) << store.status();
  Coordinator coordinator(**store, clock);
  LeaderElectionOptions a_options = Options("a", "a:1");
  a_options.on_stepped_down = [&coordinator] { coordinator.WakeLeasePolls(); };
  LeaderElection a(lease, clock, a_options);
  LeaderElection b(lease, clock, Options("b", "b:1"));
  coordinator.SetLeadership(&a);
  ASSERT_EQ(a.Step(), T::kElected);
  WorkerInfo w;
  w.worker_id = "w1";
  w.host = "h";
  w.slots = 1;
  ASSERT_TRUE(coordinator.Register(w).ok());
  // An empty store: a session on it must be asked for.
  ASSERT_TRUE(coordinator.StartSession(SessionSettings{}, "s1", /*allow_empty=*/true).ok());

  // Nothing to lease: the poll waits (up to 20 s of real time).
  absl::Notification done;
  absl::StatusOr<LeaseResult> polled;
  std::thread poll([&] {
    polled = coordinator.Lease("w1", "req-1", 1, 20'000);
    done.Notify();
  });
  EXPECT_FALSE(done.WaitForNotificationWithTimeout(absl::Milliseconds(200)))
      << "the poll did not wait: " << polled.status();

  // A misses its renewals, B takes over, A's next step notices.
  clock.AdvanceMs(3'000);
  ASSERT_EQ(b.Step(), T::kElected);
  const absl::Time stepped_down = absl::Now();
  ASSERT_EQ(a.Step(), T::kSteppedDown);
  // Well inside the poll's own 1 s re-check: only the wake-up explains it.
  const bool woken = done.WaitForNotificationWithTimeout(absl::Milliseconds(500));
  const absl::Duration took = absl::Now() - stepped_down;
  if (!woken) done.WaitForNotification();
  poll.join();
  EXPECT_TRUE(woken) << "the poll answered only after " << took;
  EXPECT_TRUE(IsNotLeader(polled.status())) << polled.status();
  EXPECT_NE(std::string(polled.status().message()).find("leader_address=b:1"), std::string::npos)
      << polled.status();
}

// A new term must not serve from what this process cached in an earlier one:
// another coordinator may have changed the store meanwhile.
TEST(LeaderElectionTest, NewTermRebuildsTheFailurePolicyFromTheStore) {
  FakeClock clock;
  FakeLeaseStore lease(clock);
  auto store = SqliteStateStore::Open(":memory:");
  ASSERT_TRUE(store.ok()) << store.status();
  LeaderElection a(lease, clock, Options("a", "a:1"));
  Coordinator first(**store, clock);
  first.SetLeadership(&a);
  ASSERT_EQ(a.Step(), T::kElected);
  ASSERT_TRUE(first.ListFingerprints().ok());  // loads (and caches) the empty history
  EXPECT_TRUE(first.ListFingerprints()->empty());

  // Meanwhile another coordinator (the leader of another term) records a
  // failure in the shared store.
  Coordinator other(**store, clock);
  PhaseSpec phase;
  phase.run_id = "r";
  phase.phase_id = "p";
  ASSERT_TRUE(other.ImportBacklog({phase}).ok());
  ASSERT_TRUE(other.StartSession(SessionSettings{}, "s1").ok());
  WorkerInfo w;
  w.worker_id = "w1";
  w.host = "h";
  w.slots = 1;
  ASSERT_TRUE(other.Register(w).ok());
  absl::StatusOr<LeaseResult> granted = other.Lease("w1", "req-1", 1, 0);
  ASSERT_TRUE(granted.ok() && granted->leases.size() == 1) << granted.status();
  AttemptReport report;
  report.lease_id = granted->leases[0].lease_id;
  report.epoch = granted->leases[0].epoch;
  report.worker_id = "w1";
  report.outcome = Outcome::kFailed;
  report.exit_code = 1;
  report.duration_ms = 10;
  report.error_text = "ImportError: no module named boom";
  ASSERT_TRUE(other.Report(report).ok());

  // Same term: the cache (the point of caching) still answers.
  EXPECT_TRUE(first.ListFingerprints()->empty());
  // A loses the lease and wins it again: a new term, rebuilt from the store.
  lease.up = false;
  clock.AdvanceMs(a.renew_interval_ms());
  ASSERT_EQ(a.Step(), T::kSteppedDown);
  lease.up = true;
  ASSERT_EQ(a.Step(), T::kElected);
  absl::StatusOr<std::vector<FingerprintInfo>> rebuilt = first.ListFingerprints();
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  ASSERT_EQ(rebuilt->size(), 1u);
  EXPECT_EQ((*rebuilt)[0].count, 1);
}

}  // namespace
}  // namespace sluice
