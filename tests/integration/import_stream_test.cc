// ImportBacklogStream over real gRPC on loopback: one all-or-nothing import
// however many messages carry it (issue #12, streaming import).
#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "coordinator/coordinator.h"
#include "coordinator/grpc/server.h"
#include "coordinator/store/sqlite/sqlite_state_store.h"
#include "gtest/gtest.h"
#include "sluice/v1/sluice.grpc.pb.h"
#include "tests/testing/loopback_coordinator.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_env.h"

namespace sluice {
namespace {

using ::sluice::testing::Ok;

class ImportStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = Ok(SqliteStateStore::Open(dir_.File("state.db")));
    coordinator_ = std::make_unique<Coordinator>(*store_, SystemClock::Default(),
                                                 testing::LoopbackCoordinatorConfig());
    server_ = std::make_unique<CoordinatorServer>(*coordinator_);
    ServerOptions options;
    options.listen_address = "127.0.0.1:0";
    const int port = Ok(server_->Start(options));
    stub_ = v1::OperatorService::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    if (server_) server_->Shutdown();
  }

  // Messages of `per_message` phases each over `runs` runs; `last` marks the
  // final one. Returns the call's status.
  grpc::Status Stream(const std::vector<v1::ImportBacklogRequest>& messages, bool writes_done,
                      v1::ImportBacklogResponse* resp) {
    grpc::ClientContext ctx;
    auto writer = stub_->ImportBacklogStream(&ctx, resp);
    for (const v1::ImportBacklogRequest& m : messages) {
      if (!writer->Write(m)) break;
    }
    if (writes_done) {
      writer->WritesDone();
    } else {
      ctx.TryCancel();
    }
    return writer->Finish();
  }

  static v1::ImportBacklogRequest Message(int first, int count, bool last = false) {
    v1::ImportBacklogRequest m;
    for (int i = first; i < first + count; ++i) {
      v1::PhaseSpec* p = m.add_phases();
      p->set_run_id(absl::StrCat("run-", i % 7));
      p->set_phase_id(absl::StrCat("p", i));
      p->set_phase_index(i);
    }
    m.set_last(last);
    return m;
  }

  int64_t Phases() { return Ok(store_->CountPhases()).total(); }

  testing::ScratchDir dir_;
  std::unique_ptr<SqliteStateStore> store_;
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<CoordinatorServer> server_;
  std::unique_ptr<v1::OperatorService::Stub> stub_;
};

TEST_F(ImportStreamTest, ManyMessagesAreOneImportCommittedByTheLast) {
  v1::ImportBacklogResponse resp;
  grpc::Status st = Stream({Message(0, 300), Message(300, 300), v1::ImportBacklogRequest(),
                            Message(600, 50, /*last=*/true)},
                           true, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(resp.inserted(), 650);
  EXPECT_EQ(Phases(), 650);
  // Again, with an empty last message: every phase known and unchanged.
  v1::ImportBacklogRequest last;
  last.set_last(true);
  st = Stream({Message(0, 650), last}, true, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(resp.unchanged(), 650);
  EXPECT_EQ(resp.inserted(), 0);
}

TEST_F(ImportStreamTest, AStreamEndedWithoutItsLastMessageImportsNothing) {
  v1::ImportBacklogResponse resp;
  // Closed cleanly but unmarked (a client that stopped early).
  grpc::Status st = Stream({Message(0, 300), Message(300, 300)}, true, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::CANCELLED) << st.error_message();
  EXPECT_EQ(Phases(), 0);
  // Cancelled by the client (what `sluice import` does on a bad line).
  st = Stream({Message(0, 300), Message(300, 300)}, false, &resp);
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(Phases(), 0);
  // The store is free again for the next import.
  st = Stream({Message(0, 10, true)}, true, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(Phases(), 10);
}

TEST_F(ImportStreamTest, ABadPhaseInALaterMessageIsNamedByItsPlaceInTheBacklogAndNothingIsKept) {
  v1::ImportBacklogRequest bad = Message(300, 300);
  bad.mutable_phases(41)->set_phase_id("has space");
  v1::ImportBacklogResponse resp;
  grpc::Status st = Stream({Message(0, 300), bad, Message(600, 10, true)}, true, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("phase #342:"), std::string::npos) << st.error_message();
  EXPECT_EQ(Phases(), 0);
}

}  // namespace
}  // namespace sluice
