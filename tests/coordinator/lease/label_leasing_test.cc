// Label-based leasing: a phase's backlog `labels` are required worker labels
// (docs/remote-workers.md). An in-process Coordinator on a SQLite store in a
// scratch directory, time from a FakeClock: no network, no processes.
// (Moved from tests/integration/health_test.cc, where it ran as an
// integration test.)
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "coordinator/coordinator.h"
#include "coordinator/store/sqlite/sqlite_state_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/attempts.h"
#include "tests/testing/test_env.h"

namespace sluice {
namespace {

using ::sluice::testing::ScratchDir;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class LabelLeasingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = SqliteStateStore::Open(dir_.File("state.db"));
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    coordinator_ = std::make_unique<Coordinator>(*store_, clock_, CoordinatorConfig{});
  }

  absl::Status Register(const std::string& id, std::vector<std::string> labels) {
    WorkerInfo w;
    w.worker_id = id;
    w.host = "host-" + id;
    w.slots = 4;
    w.labels = std::move(labels);
    w.version = "test";
    return coordinator_->Register(w).status();
  }

  static PhaseSpec Spec(const std::string& run, const std::string& phase, int64_t index,
                        std::vector<std::string> labels = {}) {
    PhaseSpec s;
    s.run_id = run;
    s.phase_id = phase;
    s.phase_index = index;
    s.priority = labels.empty() ? 0 : 10;  // the labelled phase ranks first
    s.labels = std::move(labels);
    return s;
  }

  std::vector<LeaseGrant> LeaseNow(const std::string& worker, int32_t max_phases) {
    absl::StatusOr<LeaseResult> r =
        coordinator_->Lease(worker, absl::StrCat("req-", ++request_), max_phases, /*wait_ms=*/0);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->leases : std::vector<LeaseGrant>{};
  }

  PhaseState StateOf(const std::string& run, const std::string& phase) {
    absl::StatusOr<std::optional<PhaseRecord>> p = store_->GetPhase(PhaseKey{run, phase});
    EXPECT_TRUE(p.ok() && p->has_value());
    return p.ok() && p->has_value() ? (*p)->state : PhaseState::kFailed;
  }

  ScratchDir dir_;
  FakeClock clock_;
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<Coordinator> coordinator_;
  int request_ = 0;
};

TEST_F(LabelLeasingTest, GpuPhaseIsNeverLeasedToAWorkerWithoutGpuAndIsLeasedToOneWithIt) {
  ASSERT_TRUE(Register("cpu-box", {"os:linux"}).ok());
  ASSERT_TRUE(Register("gpu-box", {"os:linux", "gpu"}).ok());
  // One run per phase so nothing waits on phase order; the gpu phase has the
  // highest priority, so the scheduler offers it first every time.
  std::vector<PhaseSpec> phases = {Spec("r-gpu", "train", 0, {"gpu", "os:linux"})};
  for (int i = 0; i < 20; ++i) phases.push_back(Spec(absl::StrCat("r", i), "p", 0));
  ASSERT_TRUE(coordinator_->ImportBacklog(phases).ok());
  ASSERT_TRUE(coordinator_->StartSession(SessionSettings{}, "s1").ok());

  // Many lease calls from the worker without `gpu`: it drains every other
  // phase, reporting each, and never gets the gpu one.
  int leased = 0;
  for (int call = 0; call < 100; ++call) {
    for (const LeaseGrant& g : LeaseNow("cpu-box", 3)) {
      EXPECT_NE(g.run_id, "r-gpu") << "gpu phase leased to a worker without the gpu label";
      AttemptReport report = testing::GrantReport(g, Outcome::kSucceeded);
      report.duration_ms = 10;
      ASSERT_TRUE(coordinator_->Report(report).ok());
      ++leased;
    }
    clock_.AdvanceMs(1'000);
    ASSERT_TRUE(coordinator_->Tick().ok());
  }
  EXPECT_EQ(leased, 20);
  EXPECT_EQ(StateOf("r-gpu", "train"), PhaseState::kPending);
  // The session keeps waiting for a matching worker instead of ending.
  absl::StatusOr<std::optional<SessionRecord>> session = store_->GetSession("s1");
  ASSERT_TRUE(session.ok() && session->has_value());
  EXPECT_EQ((*session)->state, SessionState::kActive);

  // A worker that has every required label (and more) gets it.
  std::vector<LeaseGrant> grants = LeaseNow("gpu-box", 3);
  ASSERT_EQ(grants.size(), 1u);
  EXPECT_EQ(grants[0].run_id, "r-gpu");
  EXPECT_EQ(grants[0].worker_id, "gpu-box");
  EXPECT_EQ(StateOf("r-gpu", "train"), PhaseState::kLeased);
  EXPECT_THAT(LeaseNow("cpu-box", 3), IsEmpty());
}

TEST_F(LabelLeasingTest, PhaseNeedsEveryLabelItRequires) {
  ASSERT_TRUE(Register("gpu-only", {"gpu"}).ok());
  ASSERT_TRUE(Register("linux-only", {"os:linux"}).ok());
  ASSERT_TRUE(Register("both", {"gpu", "os:linux"}).ok());
  ASSERT_TRUE(coordinator_->ImportBacklog({Spec("r1", "p1", 0, {"gpu", "os:linux"})}).ok());
  ASSERT_TRUE(coordinator_->StartSession(SessionSettings{}, "s1").ok());
  for (int i = 0; i < 20; ++i) {
    EXPECT_THAT(LeaseNow("gpu-only", 1), IsEmpty());
    EXPECT_THAT(LeaseNow("linux-only", 1), IsEmpty());
  }
  std::vector<LeaseGrant> grants = LeaseNow("both", 1);
  ASSERT_EQ(grants.size(), 1u);
  EXPECT_EQ(grants[0].phase_id, "p1");
}

// Labels are identifiers ([A-Za-z0-9._:-]); "os=linux" is refused with a
// reason, so docs write key/value labels as "os:linux".
TEST_F(LabelLeasingTest, LabelWithEqualsSignIsRejectedAtRegistration) {
  const absl::Status st = Register("w1", {"os=linux"});
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("label"));
}

}  // namespace
}  // namespace sluice
