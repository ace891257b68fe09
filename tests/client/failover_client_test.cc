// FailoverCoordinatorClient: follows the leader among several addresses.
#include <gtest/gtest.h>

#include <map>
#include <memory>

#include "client/failover_coordinator_client.h"

namespace sluice {
namespace {

// Answers every call with the status its address is set to (OK by default).
struct Script {
  std::map<std::string, absl::Status> status;
  std::map<std::string, int> calls;
};

class ScriptedClient final : public CoordinatorClient {
 public:
  ScriptedClient(Script& script, std::string address) : s_(script), address_(std::move(address)) {}
  absl::StatusOr<WorkerRegistration> Register(const WorkerInfo&) override {
    ++s_.calls[address_];
    if (absl::Status st = s_.status[address_]; !st.ok()) return st;
    return WorkerRegistration{};
  }
  absl::StatusOr<LeaseBatch> Lease(const std::string&, const std::string&, int32_t, int64_t,
                                   const std::vector<std::string>&) override {
    ++s_.calls[address_];
    if (absl::Status st = s_.status[address_]; !st.ok()) return st;
    return LeaseBatch{};
  }
  absl::StatusOr<std::vector<std::string>> Heartbeat(const std::string&,
                                                     const std::vector<std::string>&,
                                                     int64_t) override {
    ++s_.calls[address_];
    if (absl::Status st = s_.status[address_]; !st.ok()) return st;
    return std::vector<std::string>{};
  }
  absl::StatusOr<ReportDisposition> Report(const AttemptReport&) override {
    ++s_.calls[address_];
    if (absl::Status st = s_.status[address_]; !st.ok()) return st;
    return ReportDisposition::kAccepted;
  }

 private:
  Script& s_;
  std::string address_;
};

FailoverCoordinatorClient::Factory FactoryFor(Script& script) {
  return [&script](const std::string& address) {
    return std::make_unique<ScriptedClient>(script, address);
  };
}

TEST(FailoverClientTest, ParsesOneOrSeveralAddresses) {
  auto one = ParseCoordinatorAddresses("sluice.drain.svc:7400");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(*one, std::vector<std::string>{"sluice.drain.svc:7400"});
  auto two = ParseCoordinatorAddresses("a:1, b:2");
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(*two, (std::vector<std::string>{"a:1", "b:2"}));
  for (const char* bad : {"", "a:1,", "a", "a:", ":1", "a:1,,b:2"}) {
    EXPECT_EQ(ParseCoordinatorAddresses(bad).status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

TEST(FailoverClientTest, ReadsTheLeaderAddressFromANotLeaderAnswer) {
  EXPECT_EQ(LeaderAddressHint(absl::UnavailableError(
                "not the leader: coordinator x is standing by; leader_address=10.1.2.3:7400 "
                "leader_epoch=4")),
            "10.1.2.3:7400");
  EXPECT_EQ(LeaderAddressHint(absl::UnavailableError("connection refused")), "");
}

TEST(FailoverClientTest, MovesToTheNextAddressWhenTheCurrentOneIsUnavailable) {
  Script script;
  FailoverCoordinatorClient client({"a:1", "b:1"}, FactoryFor(script));
  EXPECT_TRUE(client.Register(WorkerInfo{}).ok());
  EXPECT_EQ(script.calls["a:1"], 1);
  script.status["a:1"] = absl::UnavailableError("connection refused");
  EXPECT_FALSE(client.Report(AttemptReport{}).ok());  // the agent retries
  EXPECT_EQ(client.current_address(), "b:1");
  EXPECT_TRUE(client.Report(AttemptReport{}).ok());  // the retry reaches b
  EXPECT_EQ(script.calls["b:1"], 1);
  // Other errors are answers, not a reason to move.
  script.status["b:1"] = absl::FailedPreconditionError("register first");
  EXPECT_FALSE(client.Lease("w", "r", 1, 0, {}).ok());
  EXPECT_EQ(client.current_address(), "b:1");
  // A paused coordinator times out: move on too, wrapping around.
  script.status["b:1"] = absl::DeadlineExceededError("deadline");
  script.status["a:1"] = absl::OkStatus();
  EXPECT_FALSE(client.Heartbeat("w", {}, 1'000).ok());
  EXPECT_EQ(client.current_address(), "a:1");
}

TEST(FailoverClientTest, FollowsTheLeaderAStandbyNamesEvenOutsideTheList) {
  Script script;
  FailoverCoordinatorClient client({"a:1", "b:1", "c:1"}, FactoryFor(script));
  script.status["a:1"] =
      absl::UnavailableError("not the leader; leader_address=c:1 leader_epoch=3");
  EXPECT_FALSE(client.Register(WorkerInfo{}).ok());
  EXPECT_EQ(client.current_address(), "c:1");  // not b:1
  script.status["c:1"] =
      absl::UnavailableError("not the leader; leader_address=d:1 leader_epoch=4");
  EXPECT_FALSE(client.Register(WorkerInfo{}).ok());
  EXPECT_EQ(client.current_address(), "d:1");
  EXPECT_TRUE(client.Register(WorkerInfo{}).ok());
  EXPECT_EQ(script.calls["d:1"], 1);
}

TEST(FailoverClientTest, AReportBatchWhoseReportsFailUnavailableMovesOnOnce) {
  Script script;
  FailoverCoordinatorClient client({"a:1", "b:1"}, FactoryFor(script));
  // ScriptedClient has no batch call: the default sends each report alone,
  // so the failures come per report under an OK call.
  script.status["a:1"] = absl::UnavailableError("connection refused");
  auto answers = client.ReportBatch({AttemptReport{}, AttemptReport{}, AttemptReport{}});
  ASSERT_TRUE(answers.ok());
  EXPECT_FALSE((*answers)[0].ok());
  EXPECT_EQ(client.current_address(), "b:1");  // not around the list and back to a
  answers = client.ReportBatch({AttemptReport{}});
  ASSERT_TRUE(answers.ok());
  EXPECT_TRUE((*answers)[0].ok());
  EXPECT_EQ(script.calls["b:1"], 1);
}

TEST(FailoverClientTest, OneAddressIsPassedThrough) {
  Script script;
  FailoverCoordinatorClient client({"svc:7400"}, FactoryFor(script));
  script.status["svc:7400"] = absl::UnavailableError("down");
  EXPECT_FALSE(client.Register(WorkerInfo{}).ok());
  script.status["svc:7400"] = absl::OkStatus();
  EXPECT_TRUE(client.Register(WorkerInfo{}).ok());
  EXPECT_EQ(script.calls["svc:7400"], 2);
}

}  // namespace
}  // namespace sluice
