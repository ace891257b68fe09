// ReportDelivery: an outcome is in the spool before the first attempt and
// stays there until the coordinator answers it; shutdown and abandon leave it
// there. Backoff waits on a FakeClock.
#include "worker/report_delivery.h"

#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_env.h"
#include "tests/worker/fake_coordinator_client.h"

namespace sluice {
namespace {

using ::sluice::testing::FakeCoordinatorClient;
using ::sluice::testing::ScratchDir;
using ::testing::IsEmpty;
using ::testing::SizeIs;

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

}  // namespace
}  // namespace sluice
