// RetryingCoordinatorClient: which errors it retries, that its backoff waits
// on the Clock (a FakeClock here: no real time passes), and that a stop ends
// a retry at once.
#include "worker/retrying_coordinator_client.h"

#include <deque>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/worker/fake_coordinator_client.h"

namespace sluice {
namespace {

using ::sluice::testing::Counter;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Answers each call with the next scripted status (OK when the script is
// empty) and records the calls.
class ScriptedClient : public CoordinatorClient {
 public:
  void Fail(absl::Status status) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    script_.push_back(std::move(status));
  }
  absl::StatusOr<WorkerRegistration> Register(const WorkerInfo&) override {
    if (absl::Status st = Next(); !st.ok()) return st;
    return WorkerRegistration();
  }
  absl::StatusOr<LeaseBatch> Lease(const std::string&, const std::string& request_id, int32_t,
                                   int64_t, const std::vector<std::string>&) override {
    {
      absl::MutexLock lock(&mu_);
      request_ids_.push_back(request_id);
    }
    if (absl::Status st = Next(); !st.ok()) return st;
    return LeaseBatch();
  }
  absl::StatusOr<std::vector<std::string>> Heartbeat(const std::string&,
                                                     const std::vector<std::string>&,
                                                     int64_t) override {
    if (absl::Status st = Next(); !st.ok()) return st;
    return std::vector<std::string>();
  }
  absl::StatusOr<ReportDisposition> Report(const AttemptReport&) override {
    if (absl::Status st = Next(); !st.ok()) return st;
    return ReportDisposition::kAccepted;
  }
  void CancelPendingLease() override { cancel_calls_.Increment(); }

  const Counter& calls() const { return calls_; }
  const Counter& cancel_calls() const { return cancel_calls_; }
  std::vector<std::string> request_ids() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return request_ids_;
  }

 private:
  absl::Status Next() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::Status st;
    {
      absl::MutexLock lock(&mu_);
      if (!script_.empty()) {
        st = script_.front();
        script_.pop_front();
      }
    }
    calls_.Increment();
    return st;
  }

  mutable absl::Mutex mu_;
  std::deque<absl::Status> script_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> request_ids_ ABSL_GUARDED_BY(mu_);
  Counter calls_;
  Counter cancel_calls_;
};

// No backoff at all: retries happen without the clock moving.
constexpr RetryingCoordinatorClient::Options kNoBackoff{.base_ms = 0, .cap_ms = 0};

class RetryingCoordinatorClientTest : public ::testing::Test {
 protected:
  FakeClock clock_;
  Wakeup stop_{Wakeup::Mode::kLatched};
  ScriptedClient inner_;
};

TEST_F(RetryingCoordinatorClientTest, RegisterRetriesTransientErrorsUntilItSucceeds) {
  inner_.Fail(absl::UnavailableError("coordinator down"));
  inner_.Fail(absl::DeadlineExceededError("slow"));
  inner_.Fail(absl::InternalError("store hiccup"));
  RetryingCoordinatorClient client(inner_, clock_, stop_, kNoBackoff);
  EXPECT_TRUE(client.Register(WorkerInfo()).ok());
  EXPECT_EQ(inner_.calls().value(), 4);
}

TEST_F(RetryingCoordinatorClientTest, RegisterReturnsConfigurationErrorsAtOnce) {
  for (const absl::Status& refused :
       {absl::InvalidArgumentError("bad worker id"), absl::UnauthenticatedError("no token"),
        absl::PermissionDeniedError("wrong token")}) {
    ScriptedClient inner;
    inner.Fail(refused);
    RetryingCoordinatorClient client(inner, clock_, stop_, kNoBackoff);
    EXPECT_EQ(client.Register(WorkerInfo()).status(), refused);
    EXPECT_EQ(inner.calls().value(), 1);
  }
}

TEST_F(RetryingCoordinatorClientTest, LeaseRetriesWithTheSameRequestIdButNotAnUnknownWorker) {
  inner_.Fail(absl::UnavailableError("down"));
  inner_.Fail(absl::PermissionDeniedError("token rotated"));
  RetryingCoordinatorClient client(inner_, clock_, stop_, kNoBackoff);
  EXPECT_TRUE(client.Lease("w1", "inc-r1", 1, 1'000, {}).ok());
  EXPECT_THAT(inner_.request_ids(), ElementsAre("inc-r1", "inc-r1", "inc-r1"));

  inner_.Fail(absl::FailedPreconditionError("unknown worker: register again"));
  EXPECT_EQ(client.Lease("w1", "inc-r2", 1, 1'000, {}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(inner_.calls().value(), 4);
}

TEST_F(RetryingCoordinatorClientTest, HeartbeatAndReportAreNotRetried) {
  inner_.Fail(absl::UnavailableError("down"));
  inner_.Fail(absl::UnavailableError("down"));
  RetryingCoordinatorClient client(inner_, clock_, stop_, kNoBackoff);
  EXPECT_EQ(client.Heartbeat("w1", {}, 200).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(client.Report(AttemptReport()).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(inner_.calls().value(), 2);
  client.CancelPendingLease();
  EXPECT_EQ(inner_.cancel_calls().value(), 1);
}

TEST_F(RetryingCoordinatorClientTest, BackoffWaitsOnTheClock) {
  inner_.Fail(absl::UnavailableError("down"));
  RetryingCoordinatorClient client(inner_, clock_, stop_);  // 200 ms .. 5 s
  absl::StatusOr<WorkerRegistration> reg;
  std::thread call([&] { reg = client.Register(WorkerInfo()); });
  ASSERT_TRUE(inner_.calls().AwaitAtLeast(1));
  ASSERT_TRUE(clock_.AwaitWaiters(1));  // in its backoff
  clock_.AdvanceMs(99);                 // less than the shortest first backoff
  EXPECT_EQ(inner_.calls().value(), 1);
  clock_.AdvanceMs(5'000);
  call.join();
  EXPECT_TRUE(reg.ok()) << reg.status();
  EXPECT_EQ(inner_.calls().value(), 2);
}

TEST_F(RetryingCoordinatorClientTest, StopEndsABackoffAtOnceWithTheLastError) {
  inner_.Fail(absl::UnavailableError("coordinator down"));
  RetryingCoordinatorClient client(inner_, clock_, stop_);
  absl::StatusOr<LeaseBatch> batch;
  std::thread call([&] { batch = client.Lease("w1", "inc-r1", 1, 1'000, {}); });
  ASSERT_TRUE(inner_.calls().AwaitAtLeast(1));
  ASSERT_TRUE(clock_.AwaitWaiters(1));
  stop_.Notify();
  call.join();
  EXPECT_EQ(batch.status().code(), absl::StatusCode::kCancelled);
  EXPECT_THAT(batch.status().message(), HasSubstr("coordinator down"));
  EXPECT_EQ(inner_.calls().value(), 1);

  // Once stopped, a failure is not retried at all.
  inner_.Fail(absl::UnavailableError("still down"));
  EXPECT_EQ(client.Register(WorkerInfo()).status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(inner_.calls().value(), 2);
}

}  // namespace
}  // namespace sluice
