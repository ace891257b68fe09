// FailoverOperatorApi's address selection (`sluice --coordinator a,b,c`):
// fake per-address APIs answer from a script. The real thing against two
// coordinators on Redis is in tests/e2e/redis_e2e_test.cc.
#include "cli/failover_operator_api.h"

#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sluice {
namespace {

using ::testing::ElementsAre;

// What each address answers, and the calls it got, in order.
struct Script {
  std::map<std::string, absl::Status> status;
  std::vector<std::string> calls;
};

class FakeApi final : public OperatorApi {
 public:
  FakeApi(std::string address, Script& script) : address_(std::move(address)), s_(script) {}

  absl::StatusOr<ImportResult> Import(const std::vector<PhaseSpec>&) override {
    return Answer<ImportResult>();
  }
  absl::StatusOr<SessionRecord> StartSession(const SessionSettings&, const std::string&,
                                             bool) override {
    return Answer<SessionRecord>();
  }
  absl::StatusOr<SessionRecord> StopSession(const std::string&, const std::string&) override {
    return Answer<SessionRecord>();
  }
  absl::StatusOr<CoordinatorStatus> Status(bool) override { return Answer<CoordinatorStatus>(); }
  absl::StatusOr<LeasingPause> Resume(const std::string&) override {
    return Answer<LeasingPause>();
  }
  absl::StatusOr<std::string> ReportJson(const std::string&) override {
    return Answer<std::string>();
  }
  absl::StatusOr<std::pair<std::vector<FingerprintInfo>, int32_t>> Fingerprints() override {
    return Answer<std::pair<std::vector<FingerprintInfo>, int32_t>>();
  }
  absl::StatusOr<std::string> Unblock(const std::string&) override { return Answer<std::string>(); }
  absl::StatusOr<LeasePlan> Plan(const SessionSettings&, int64_t) override {
    return Answer<LeasePlan>();
  }

 private:
  template <typename T>
  absl::StatusOr<T> Answer() {
    s_.calls.push_back(address_);
    if (absl::Status st = s_.status[address_]; !st.ok()) return st;
    return T{};
  }
  const std::string address_;
  Script& s_;
};

FailoverOperatorApi::Factory Factory(Script& script) {
  return [&script](const std::string& address) -> absl::StatusOr<std::unique_ptr<OperatorApi>> {
    return std::make_unique<FakeApi>(address, script);
  };
}

absl::Status NotLeader(const std::string& leader) {
  return absl::UnavailableError(
      "not the leader: coordinator b is standing by; leader_address=" + leader + " leader_epoch=3");
}

TEST(FailoverOperatorApiTest, FollowsTheLeaderAStandbyNamesAndStaysThere) {
  Script s;
  s.status["a:1"] = absl::UnavailableError("connection refused");
  s.status["b:1"] = NotLeader("c:1");
  FailoverOperatorApi api({"a:1", "b:1", "c:1"}, Factory(s));
  EXPECT_TRUE(api.Status(false).ok());
  EXPECT_THAT(s.calls, ElementsAre("a:1", "b:1", "c:1"));
  EXPECT_EQ(api.current_address(), "c:1");
  s.calls.clear();
  EXPECT_TRUE(api.ReportJson("").ok());
  EXPECT_THAT(s.calls, ElementsAre("c:1"));
}

TEST(FailoverOperatorApiTest, AStandbyNamingALeaderOutsideTheListIsFollowed) {
  Script s;
  s.status["a:1"] = NotLeader("pod-7:7400");
  FailoverOperatorApi api({"a:1", "b:1"}, Factory(s));
  EXPECT_TRUE(api.Import({}).ok());
  EXPECT_THAT(s.calls, ElementsAre("a:1", "pod-7:7400"));
  EXPECT_EQ(api.current_address(), "pod-7:7400");
}

TEST(FailoverOperatorApiTest, EveryAddressIsTriedOnceThenTheLastErrorIsReturned) {
  Script s;
  s.status["a:1"] = NotLeader("b:1");
  s.status["b:1"] = NotLeader("a:1");  // stale hints pointing at each other
  s.status["c:1"] = absl::UnavailableError("connection refused");
  FailoverOperatorApi api({"a:1", "b:1", "c:1"}, Factory(s));
  absl::StatusOr<CoordinatorStatus> st = api.Status(false);
  EXPECT_EQ(st.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(s.calls, ElementsAre("a:1", "b:1", "c:1"));
}

TEST(FailoverOperatorApiTest, OtherErrorsAndDeadlinesAreNotRetried) {
  Script s;
  s.status["a:1"] = absl::FailedPreconditionError("a session is already active");
  FailoverOperatorApi api({"a:1", "b:1"}, Factory(s));
  EXPECT_EQ(api.StartSession({}, "s1", false).status().code(),
            absl::StatusCode::kFailedPrecondition);
  // A timed-out import may have been applied: the operator looks first.
  s.status["a:1"] = absl::DeadlineExceededError("deadline");
  EXPECT_EQ(api.Import({}).status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(s.calls, ElementsAre("a:1", "a:1"));
}

TEST(FailoverOperatorApiTest, AFactoryErrorEndsTheCall) {
  FailoverOperatorApi api({"a:1"},
                          [](const std::string&) -> absl::StatusOr<std::unique_ptr<OperatorApi>> {
                            return absl::InvalidArgumentError("--tls-ca: no such file");
                          });
  EXPECT_EQ(api.Status(false).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sluice
