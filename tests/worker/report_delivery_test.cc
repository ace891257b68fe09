// ReportDelivery: an outcome is in the spool before the first attempt and
// stays there until the coordinator answers it; shutdown and abandon leave it
// there. Concurrent deliveries share ReportBatch calls, each acting on its own
// answer. Backoff waits on a FakeClock.
#include "worker/report_delivery.h"

#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_env.h"
#include "tests/worker/fake_coordinator_client.h"

namespace sluice {
namespace {

using ::sluice::testing::AwaitWithGuard;
using ::sluice::testing::FakeCoordinatorClient;
using ::sluice::testing::ScratchDir;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::IsSupersetOf;
using ::testing::SizeIs;
using ::testing::UnorderedElementsAre;

class ReportDeliveryTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(spool_.Init().ok()); }

  std::vector<AttemptReport> Spooled() const {
    auto listed = spool_.List();
    EXPECT_TRUE(listed.ok()) << listed.status();
    return listed.ok() ? *listed : std::vector<AttemptReport>();
  }
  static AttemptReport Report(const std::string& lease_id) {
    AttemptReport r;
    r.lease_id = lease_id;
    r.epoch = 7;
    r.worker_id = "w1";
    r.outcome = Outcome::kSucceeded;
    return r;
  }

  ScratchDir dir_;
  OutcomeSpool spool_{dir_.File("spool")};
  FakeClock clock_;
  FakeCoordinatorClient client_{clock_};
};

TEST_F(ReportDeliveryTest, KeepsTheOutcomeInTheSpoolUntilTheCoordinatorAnswers) {
  client_.Answer(absl::UnavailableError("coordinator down"));
  ReportDelivery delivery(spool_, client_, clock_, {});
  std::thread deliver([&] { delivery.Deliver(Report("L-1")); });
  ASSERT_TRUE(client_.reports().AwaitAtLeast(1));
  ASSERT_TRUE(clock_.AwaitWaiters(1));  // backing off
  ASSERT_THAT(Spooled(), SizeIs(1));    // durable before any answer
  EXPECT_EQ(Spooled()[0].lease_id, "L-1");
  EXPECT_EQ(delivery.delivered(), 0);

  client_.Answer(ReportDisposition::kDuplicate);  // any answer acknowledges it
  clock_.AdvanceMs(5'000);
  deliver.join();
  EXPECT_EQ(client_.reports().value(), 2);
  EXPECT_EQ(delivery.delivered(), 1);
  EXPECT_THAT(Spooled(), IsEmpty());
}

TEST_F(ReportDeliveryTest, AtShutdownGivesUpAfterTheGiveUpTimeAndLeavesTheSpoolFile) {
  client_.Answer(absl::UnavailableError("coordinator down"));
  ReportDelivery delivery(spool_, client_, clock_, {.give_up_ms = 1'000});
  delivery.BeginShutdown();
  std::thread deliver([&] { delivery.Deliver(Report("L-1")); });
  ASSERT_TRUE(client_.reports().AwaitAtLeast(1));
  ASSERT_TRUE(clock_.AwaitWaiters(1));
  clock_.AdvanceMs(5'000);  // past the backoff and the give-up time
  deliver.join();
  EXPECT_EQ(client_.reports().value(), 2);
  EXPECT_EQ(delivery.delivered(), 0);
  ASSERT_THAT(Spooled(), SizeIs(1));
}

TEST_F(ReportDeliveryTest, AbandonEndsABackoffAtOnceAndLeavesTheSpoolFile) {
  client_.Answer(absl::UnavailableError("coordinator down"));
  ReportDelivery delivery(spool_, client_, clock_, {});
  std::thread deliver([&] { delivery.Deliver(Report("L-1")); });
  ASSERT_TRUE(client_.reports().AwaitAtLeast(1));
  ASSERT_TRUE(clock_.AwaitWaiters(1));
  delivery.Abandon();
  deliver.join();
  EXPECT_EQ(client_.reports().value(), 1);
  ASSERT_THAT(Spooled(), SizeIs(1));
}

TEST_F(ReportDeliveryTest, RefusedCredentialsLeaveTheFileWithoutRetrying) {
  client_.Answer(absl::PermissionDeniedError("wrong token"));
  ReportDelivery delivery(spool_, client_, clock_, {});
  delivery.Deliver(Report("L-1"));
  EXPECT_EQ(client_.reports().value(), 1);
  ASSERT_THAT(Spooled(), SizeIs(1));
}

TEST_F(ReportDeliveryTest, DeliverSpooledRemovesAnOutcomeLeftByAnEarlierRun) {
  ASSERT_TRUE(spool_.Put(Report("L-old")).ok());
  ReportDelivery delivery(spool_, client_, clock_, {});
  delivery.DeliverSpooled(Report("L-old"));
  EXPECT_EQ(delivery.delivered(), 1);
  EXPECT_THAT(Spooled(), IsEmpty());
}

// A coordinator with ReportBatch: it records the lease ids of every call,
// answers each report accepted unless a failure is scripted for its lease
// or fails a whole call as told, and can hold calls in flight until the test
// lets them return.
class BatchingClient : public FakeCoordinatorClient {
 public:
  using FakeCoordinatorClient::FakeCoordinatorClient;
  using Answer = absl::StatusOr<ReportDisposition>;

  absl::StatusOr<std::vector<Answer>> ReportBatch(
      const std::vector<AttemptReport>& reports) override ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> ids;
    for (const AttemptReport& r : reports) ids.push_back(r.lease_id);
    batches_.push_back(ids);
    const size_t call = batches_.size();
    AwaitWithGuard(mu_, [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return call <= held_from_; });
    if (!batch_implemented_) return absl::UnimplementedError("unknown method ReportBatch");
    if (!calls_.empty()) {
      absl::Status failed = calls_.front();
      calls_.pop_front();
      if (!failed.ok()) return failed;
    }
    std::vector<Answer> answers;
    for (const std::string& id : ids) answers.push_back(Next(id));
    return answers;
  }
  Answer Report(const AttemptReport& report) override ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    unary_.push_back(report.lease_id);
    return Next(report.lease_id);
  }

  // Calls after the first `n` wait in flight until Release().
  void HoldAfter(size_t n) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    held_from_ = n;
  }
  void Release() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    held_from_ = SIZE_MAX;
  }
  // The next report of `lease_id` fails with `failure`.
  void Script(const std::string& lease_id, absl::Status failure) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    scripted_[lease_id].push_back(std::move(failure));
  }
  // The next call fails with `status` (OK: it is answered per report).
  void FailNextCall(absl::Status status) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    calls_.push_back(std::move(status));
  }
  void WithoutReportBatch() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    batch_implemented_ = false;
  }
  bool AwaitBatches(size_t n) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return AwaitWithGuard(mu_,
                          [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return batches_.size() >= n; });
  }
  std::vector<std::vector<std::string>> batches() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return batches_;
  }
  std::vector<std::string> unary() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return unary_;
  }

 private:
  Answer Next(const std::string& lease_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::deque<absl::Status>& script = scripted_[lease_id];
    if (script.empty()) return ReportDisposition::kAccepted;
    const absl::Status failure = script.front();
    script.pop_front();
    return failure;
  }

  mutable absl::Mutex mu_;
  std::vector<std::vector<std::string>> batches_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> unary_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::deque<absl::Status>> scripted_ ABSL_GUARDED_BY(mu_);
  std::deque<absl::Status> calls_ ABSL_GUARDED_BY(mu_);
  size_t held_from_ ABSL_GUARDED_BY(mu_) = SIZE_MAX;
  bool batch_implemented_ ABSL_GUARDED_BY(mu_) = true;
};

// True once `n` attempts wait behind the call in flight. A bounded spin, not
// a sleep: the queue has no condition a test can wait on.
bool AwaitQueuedIn(const ReportDelivery& delivery, size_t n) {
  const auto guard = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (delivery.queued() < n) {
    if (std::chrono::steady_clock::now() > guard) return false;
    std::this_thread::yield();
  }
  return true;
}

class ReportBatchingTest : public ReportDeliveryTest {
 protected:
  // A failed assertion must not leave deliveries blocked behind it.
  ~ReportBatchingTest() override {
    batching_.Release();
    delivery_.Abandon();
    Join();
  }

  // Deliveries of `lease_ids`, each on its own thread, joined by Join().
  void DeliverEach(const std::vector<std::string>& lease_ids) {
    for (const std::string& id : lease_ids) DeliverOnItsOwn(Report(id));
  }
  void DeliverOnItsOwn(const AttemptReport& report) {
    threads_.emplace_back([this, report] { delivery_.Deliver(report); });
  }
  void Join() {
    for (std::thread& t : threads_) t.join();
    threads_.clear();
  }
  // Lets the held calls return; the calls made, once every delivery ended.
  std::vector<std::vector<std::string>> ReleaseAndJoin() {
    batching_.Release();
    Join();
    return batching_.batches();
  }
  bool AwaitQueued(size_t n) const { return AwaitQueuedIn(delivery_, n); }
  // L-1 in a call held in flight, then `queued` reports queued behind it.
  void OneInFlightAndQueued(const std::vector<std::string>& queued) {
    batching_.HoldAfter(0);
    DeliverEach({"L-1"});
    ASSERT_TRUE(batching_.AwaitBatches(1));
    DeliverEach(queued);
    ASSERT_TRUE(AwaitQueued(queued.size()));
  }
  bool Rejected(const std::string& lease_id) const {
    return std::filesystem::exists(dir_.File("spool") + "/" + lease_id + ".json.rejected");
  }
  std::vector<std::string> SpooledIds() const {
    std::vector<std::string> ids;
    for (const AttemptReport& r : Spooled()) ids.push_back(r.lease_id);
    return ids;
  }

  BatchingClient batching_{clock_};
  // One call at a time, so that the test knows which reports share one.
  ReportDelivery delivery_{spool_, batching_, clock_, {.max_calls_in_flight = 1}};
  std::vector<std::thread> threads_;
};

TEST_F(ReportBatchingTest, ALoneReportGoesOutAtOnceInACallOfItsOwn) {
  const int64_t before = clock_.NowMs();
  delivery_.Deliver(Report("L-1"));  // returns without the FakeClock moving: no timer
  EXPECT_THAT(batching_.batches(), ElementsAre(ElementsAre("L-1")));
  EXPECT_EQ(clock_.NowMs(), before);
  EXPECT_EQ(delivery_.delivered(), 1);
  EXPECT_THAT(Spooled(), IsEmpty());
}

TEST_F(ReportBatchingTest, ReportsFinishingWhileACallIsInFlightGoTogetherInTheNextCall) {
  OneInFlightAndQueued({"L-2", "L-3", "L-4"});
  ASSERT_THAT(batching_.batches(), SizeIs(1));  // nothing sent while L-1 is in flight
  const auto batches = ReleaseAndJoin();
  ASSERT_THAT(batches, SizeIs(2));
  EXPECT_THAT(batches[0], ElementsAre("L-1"));
  EXPECT_THAT(batches[1], UnorderedElementsAre("L-2", "L-3", "L-4"));
  EXPECT_THAT(batching_.unary(), IsEmpty());
  EXPECT_EQ(delivery_.delivered(), 4);
  EXPECT_THAT(Spooled(), IsEmpty());
}

TEST_F(ReportBatchingTest, ByDefaultTwoCallsGoAtOnceAndLaterReportsShareTheNext) {
  ReportDelivery delivery(spool_, batching_, clock_, {});
  batching_.HoldAfter(0);
  std::vector<std::thread> deliveries;
  for (const char* id : {"L-1", "L-2"}) {
    deliveries.emplace_back([&delivery, id] { delivery.Deliver(Report(id)); });
  }
  ASSERT_TRUE(batching_.AwaitBatches(2));  // neither waits for the other
  for (const char* id : {"L-3", "L-4"}) {
    deliveries.emplace_back([&delivery, id] { delivery.Deliver(Report(id)); });
  }
  ASSERT_TRUE(AwaitQueuedIn(delivery, 2));
  batching_.Release();
  for (std::thread& t : deliveries) t.join();
  const auto batches = batching_.batches();
  ASSERT_THAT(batches, SizeIs(3));
  EXPECT_THAT(batches[0], SizeIs(1));
  EXPECT_THAT(batches[1], SizeIs(1));
  EXPECT_THAT(batches[2], UnorderedElementsAre("L-3", "L-4"));
  EXPECT_EQ(delivery.delivered(), 4);
}

TEST_F(ReportBatchingTest, ACallCarriesAtMostTheCoordinatorsLimit) {
  std::vector<std::string> queued;
  for (size_t i = 0; i < kMaxReportsPerBatch + 1; ++i) queued.push_back(absl::StrCat("Q-", i));
  OneInFlightAndQueued(queued);
  const auto batches = ReleaseAndJoin();
  ASSERT_THAT(batches, SizeIs(3));
  EXPECT_THAT(batches[1], SizeIs(kMaxReportsPerBatch));
  EXPECT_THAT(batches[2], SizeIs(1));
  EXPECT_EQ(delivery_.delivered(), static_cast<int64_t>(kMaxReportsPerBatch) + 2);
  EXPECT_THAT(Spooled(), IsEmpty());
}

TEST_F(ReportBatchingTest, ACallCarriesTheReportsOfOneWorkerOnly) {
  OneInFlightAndQueued({"L-2", "L-3"});
  AttemptReport earlier = Report("L-old");  // spooled under the id of an earlier run
  earlier.worker_id = "w-before";
  DeliverOnItsOwn(earlier);
  ASSERT_TRUE(AwaitQueued(3));
  const auto batches = ReleaseAndJoin();
  ASSERT_THAT(batches, SizeIs(3));
  EXPECT_THAT(batches[1], UnorderedElementsAre("L-2", "L-3"));
  EXPECT_THAT(batches[2], ElementsAre("L-old"));
  EXPECT_THAT(Spooled(), IsEmpty());
}

TEST_F(ReportBatchingTest, ACallStaysWithinTheByteBudget) {
  OneInFlightAndQueued({});
  for (const char* id : {"L-2", "L-3", "L-4"}) {
    AttemptReport large = Report(id);
    large.stdout_tail.assign(ReportDelivery::kMaxBatchBytes * 3 / 8, 'x');
    DeliverOnItsOwn(large);
  }
  ASSERT_TRUE(AwaitQueued(3));
  const auto batches = ReleaseAndJoin();
  ASSERT_THAT(batches, SizeIs(3));
  EXPECT_THAT(batches[1], SizeIs(2));
  EXPECT_THAT(batches[2], SizeIs(1));
  EXPECT_EQ(delivery_.delivered(), 4);
}

TEST_F(ReportBatchingTest, APerReportInvalidArgumentQuarantinesOnlyThatReport) {
  batching_.Script("L-2", absl::InvalidArgumentError("exit_code out of range"));
  OneInFlightAndQueued({"L-2", "L-3"});
  batching_.Release();
  Join();
  EXPECT_THAT(batching_.batches(), SizeIs(2));  // L-2 is not retried
  EXPECT_TRUE(Rejected("L-2"));
  EXPECT_FALSE(Rejected("L-3"));
  EXPECT_EQ(delivery_.delivered(), 2);
  EXPECT_THAT(Spooled(), IsEmpty());
}

TEST_F(ReportBatchingTest, APerReportUnavailableRetriesOnlyThatReport) {
  batching_.Script("L-2", absl::UnavailableError("store busy"));
  OneInFlightAndQueued({"L-2", "L-3"});
  batching_.Release();
  ASSERT_TRUE(clock_.AwaitWaiters(1));  // L-2 backs off; L-1 and L-3 are answered
  EXPECT_THAT(SpooledIds(), Contains("L-2"));
  clock_.AdvanceMs(5'000);
  Join();
  const auto batches = batching_.batches();
  ASSERT_THAT(batches, SizeIs(3));
  EXPECT_THAT(batches[1], UnorderedElementsAre("L-2", "L-3"));
  EXPECT_THAT(batches[2], ElementsAre("L-2"));
  EXPECT_EQ(delivery_.delivered(), 3);
  EXPECT_THAT(Spooled(), IsEmpty());
}

TEST_F(ReportBatchingTest, AFailedCallRetriesEveryReportOfIt) {
  batching_.FailNextCall(absl::OkStatus());  // L-1's call succeeds
  batching_.FailNextCall(absl::UnavailableError("connection reset"));
  OneInFlightAndQueued({"L-2", "L-3"});
  batching_.Release();
  ASSERT_TRUE(clock_.AwaitWaiters(2));  // both back off
  EXPECT_THAT(SpooledIds(), IsSupersetOf({"L-2", "L-3"}));
  clock_.AdvanceMs(5'000);
  Join();
  std::multiset<std::string> sent;
  for (const auto& batch : batching_.batches()) sent.insert(batch.begin(), batch.end());
  EXPECT_THAT(sent, UnorderedElementsAre("L-1", "L-2", "L-2", "L-3", "L-3"));
  EXPECT_EQ(delivery_.delivered(), 3);
  EXPECT_THAT(Spooled(), IsEmpty());
}

TEST_F(ReportBatchingTest, WithoutReportBatchTheCoordinatorGetsUnaryReportsForGood) {
  batching_.WithoutReportBatch();
  const int64_t before = clock_.NowMs();
  OneInFlightAndQueued({"L-2", "L-3"});
  batching_.Release();
  Join();
  delivery_.Deliver(Report("L-4"));
  EXPECT_THAT(batching_.batches(), ElementsAre(ElementsAre("L-1")));  // asked once
  EXPECT_THAT(batching_.unary(), UnorderedElementsAre("L-1", "L-2", "L-3", "L-4"));
  EXPECT_EQ(clock_.NowMs(), before);  // no backoff: the fallback is at once
  EXPECT_EQ(delivery_.delivered(), 4);
  EXPECT_THAT(Spooled(), IsEmpty());
}

TEST_F(ReportBatchingTest, AbandonEndsTheBackoffsOfABatchAndLeavesTheirFiles) {
  batching_.FailNextCall(absl::UnavailableError("coordinator down"));
  batching_.FailNextCall(absl::UnavailableError("coordinator down"));
  OneInFlightAndQueued({"L-2", "L-3"});
  batching_.Release();
  ASSERT_TRUE(clock_.AwaitWaiters(3));
  delivery_.Abandon();
  Join();
  EXPECT_THAT(batching_.batches(), SizeIs(2));
  EXPECT_EQ(delivery_.delivered(), 0);
  EXPECT_THAT(SpooledIds(), UnorderedElementsAre("L-1", "L-2", "L-3"));
}

TEST_F(ReportBatchingTest, AtShutdownABatchGivesUpAfterTheGiveUpTimeAndLeavesTheFiles) {
  ReportDelivery delivery(spool_, batching_, clock_,
                          {.give_up_ms = 1'000, .max_calls_in_flight = 1});
  delivery.BeginShutdown();
  for (int i = 0; i < 10; ++i) batching_.FailNextCall(absl::UnavailableError("coordinator down"));
  batching_.HoldAfter(0);
  std::thread first([&] { delivery.Deliver(Report("L-1")); });
  ASSERT_TRUE(batching_.AwaitBatches(1));
  std::thread second([&] { delivery.Deliver(Report("L-2")); });
  std::thread third([&] { delivery.Deliver(Report("L-3")); });
  ASSERT_TRUE(AwaitQueuedIn(delivery, 2));
  batching_.Release();
  ASSERT_TRUE(clock_.AwaitWaiters(3));
  clock_.AdvanceMs(5'000);  // past the backoff and the give-up time
  first.join();
  second.join();
  third.join();
  EXPECT_EQ(delivery.delivered(), 0);
  EXPECT_THAT(SpooledIds(), UnorderedElementsAre("L-1", "L-2", "L-3"));
}

TEST_F(ReportBatchingTest, OutcomesLeftByAnEarlierRunShareCalls) {
  const std::vector<AttemptReport> left = {Report("L-old-1"), Report("L-old-2"), Report("L-old-3")};
  for (const AttemptReport& r : left) ASSERT_TRUE(spool_.Put(r).ok());
  batching_.HoldAfter(0);
  std::thread redeliver([&] { delivery_.DeliverSpooled(left); });
  ASSERT_TRUE(batching_.AwaitBatches(1));
  ASSERT_TRUE(AwaitQueued(2));  // the other two wait together for the next call
  batching_.Release();
  redeliver.join();
  const auto batches = batching_.batches();
  ASSERT_THAT(batches, SizeIs(2));
  EXPECT_THAT(batches[0], SizeIs(1));
  EXPECT_THAT(batches[1], SizeIs(2));
  EXPECT_EQ(delivery_.delivered(), 3);
  EXPECT_THAT(Spooled(), IsEmpty());
}

}  // namespace
}  // namespace sluice
