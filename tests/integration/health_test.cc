// The coordinator's standard grpc.health.v1 service, queried the way a
// Kubernetes gRPC probe does: a real CoordinatorServer on 127.0.0.1:0 over a
// SQLite store in a scratch directory, wrapped in a FailingStateStore so the
// test can cut the store off. The maintenance tick (Coordinator::Tick calls
// ExpireLeases, a mutating call) is what notices the outage, so statuses are
// polled with a deadline.
//
// A standby coordinator's NOT_SERVING (two servers on one Redis, the leader
// SERVING, the standby turning SERVING when it takes over) is tested in
// tests/integration/redis_leadership_test.cc.
//
// Label-based leasing, a FakeClock unit test, is in
// tests/coordinator/lease/label_leasing_test.cc.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "coordinator/coordinator.h"
#include "coordinator/grpc/server.h"
#include "coordinator/store/sqlite/sqlite_state_store.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/testing/failing_state_store.h"
#include "tests/testing/loopback_coordinator.h"
#include "tests/testing/test_env.h"
#include "tests/testing/wait.h"

namespace sluice {
namespace {

using ::grpc::health::v1::Health;
using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;
using ::sluice::testing::FailingStateStore;
using ::sluice::testing::LoopbackCoordinatorConfig;
using ::sluice::testing::ScratchDir;
using ::sluice::testing::WaitUntil;
using std::chrono::milliseconds;
using ::testing::HasSubstr;

constexpr char kWorkerService[] = "sluice.v1.WorkerService";
constexpr milliseconds kPollTimeout{10'000};

// What a probe sees: the RPC status, and the serving status when it is OK.
struct CheckResult {
  grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
  HealthCheckResponse::ServingStatus status = HealthCheckResponse::UNKNOWN;
};

// One ServerReflectionInfo stream over the generic stub, driven step by step
// through its completion queue (Debian ships no generated reflection stubs).
// The queue is shut down and drained on destruction, also after a failed
// assertion.
class ReflectionCall {
 public:
  explicit ReflectionCall(const std::shared_ptr<grpc::Channel>& channel) : stub_(channel) {
    context_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    call_ = stub_.PrepareCall(
        &context_, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq_);
  }
  ~ReflectionCall() {
    cq_.Shutdown();
    void* tag = nullptr;
    bool ok = false;
    while (cq_.Next(&tag, &ok)) {
    }
  }
  ReflectionCall(const ReflectionCall&) = delete;
  ReflectionCall& operator=(const ReflectionCall&) = delete;

  bool prepared() const { return call_ != nullptr; }
  grpc::GenericClientAsyncReaderWriter* operator->() { return call_.get(); }
  // Waits for the operation started last; false when the queue is shut down.
  bool Next(bool* ok) {
    void* tag = nullptr;
    return cq_.Next(&tag, ok);
  }

 private:
  grpc::GenericStub stub_;
  grpc::ClientContext context_;
  grpc::CompletionQueue cq_;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call_;
};

class HealthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto sqlite = SqliteStateStore::Open(dir_.File("state.db"));
    ASSERT_TRUE(sqlite.ok()) << sqlite.status();
    store_ = std::make_unique<FailingStateStore>(std::move(*sqlite));
    coordinator_ = std::make_unique<Coordinator>(
        *store_, SystemClock::Default(), LoopbackCoordinatorConfig(/*max_lease_wait_ms=*/500));
  }

  void TearDown() override {
    if (server_) server_->Shutdown();
  }

  // Starts the server; reflection is off unless asked for (see
  // ReflectionIsServedWhenEnabled for why).
  void StartServer(bool reflection = false) {
    server_ = std::make_unique<CoordinatorServer>(*coordinator_);
    ServerOptions options;
    options.listen_address = "127.0.0.1:0";
    options.tick_interval_ms = 50;
    options.enable_reflection = reflection;
    absl::StatusOr<int> port = server_->Start(options);
    ASSERT_TRUE(port.ok()) << port.status();
    channel_ =
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", *port), grpc::InsecureChannelCredentials());
    health_ = Health::NewStub(channel_);
  }

  CheckResult Check(const std::string& service) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    HealthCheckRequest request;
    request.set_service(service);
    HealthCheckResponse response;
    const grpc::Status status = health_->Check(&context, request, &response);
    return CheckResult{status.error_code(),
                       status.ok() ? response.status() : HealthCheckResponse::UNKNOWN};
  }

  // True once both service names report `want` (and the RPC itself is OK:
  // a probe must get an answer, not a transport error, while degraded).
  bool BothReport(HealthCheckResponse::ServingStatus want) {
    for (const std::string& service : {std::string(), std::string(kWorkerService)}) {
      const CheckResult r = Check(service);
      if (r.code != grpc::StatusCode::OK || r.status != want) return false;
    }
    return true;
  }

  ScratchDir dir_;
  std::unique_ptr<FailingStateStore> store_;
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<CoordinatorServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<Health::Stub> health_;
};

// Runs first in this file on purpose: grpc++'s reflection plugin, once
// initialised, is added to every ServerBuilder later built in the same process
// (a process-global registry). ctest runs each test in its own process, so
// this only matters when the binary is run by hand.
TEST_F(HealthTest, ReflectionCanBeTurnedOff) {
  StartServer(/*reflection=*/false);
  ReflectionCall call(channel_);
  ASSERT_TRUE(call.prepared());
  bool ok = false;
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(call.Next(&ok));
  call->WritesDone(reinterpret_cast<void*>(2));
  ASSERT_TRUE(call.Next(&ok));
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(3));
  ASSERT_TRUE(call.Next(&ok));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED) << status.error_message();
}

TEST_F(HealthTest, ServingForTheServerAndTheWorkerServiceWhileTheStoreIsReachable) {
  StartServer();
  EXPECT_TRUE(server_->serving());
  const CheckResult overall = Check("");
  EXPECT_EQ(overall.code, grpc::StatusCode::OK);
  EXPECT_EQ(overall.status, HealthCheckResponse::SERVING);
  const CheckResult worker = Check(kWorkerService);
  EXPECT_EQ(worker.code, grpc::StatusCode::OK);
  EXPECT_EQ(worker.status, HealthCheckResponse::SERVING);
}

TEST_F(HealthTest, UnknownServiceNameIsNotFound) {
  StartServer();
  EXPECT_EQ(Check("no.such.Service").code, grpc::StatusCode::NOT_FOUND);
}

TEST_F(HealthTest, NotServingWhileTheStoreFailsAndServingAgainAfterItHeals) {
  StartServer();
  ASSERT_TRUE(BothReport(HealthCheckResponse::SERVING));

  store_->FailAllMutatingCalls();
  EXPECT_TRUE(WaitUntil([&] { return BothReport(HealthCheckResponse::NOT_SERVING); }, kPollTimeout))
      << "overall=" << Check("").status << " worker=" << Check(kWorkerService).status;
  EXPECT_FALSE(server_->serving());
  // It was the maintenance tick's ExpireLeases that failed, not a probe.
  ASSERT_FALSE(store_->failed_calls().empty());
  EXPECT_EQ(store_->failed_calls().front(), "ExpireLeases");

  store_->Heal();
  EXPECT_TRUE(WaitUntil([&] { return BothReport(HealthCheckResponse::SERVING); }, kPollTimeout))
      << "overall=" << Check("").status << " worker=" << Check(kWorkerService).status;
  EXPECT_TRUE(server_->serving());
}

TEST_F(HealthTest, NotServingFromTheStartWhenTheStoreIsDownAtStartup) {
  store_->FailAllMutatingCalls();
  StartServer();
  // The first tick runs inside Start(), so the very first probe is truthful.
  EXPECT_FALSE(server_->serving());
  EXPECT_TRUE(BothReport(HealthCheckResponse::NOT_SERVING));
  store_->Heal();
  EXPECT_TRUE(WaitUntil([&] { return BothReport(HealthCheckResponse::SERVING); }, kPollTimeout));
}

TEST_F(HealthTest, NotServingOnceShutdownBegins) {
  StartServer();
  ASSERT_TRUE(server_->serving());
  server_->Shutdown();
  EXPECT_FALSE(server_->serving());
  // After shutdown the port is closed: a probe gets no SERVING answer.
  const CheckResult after = Check("");
  EXPECT_NE(after.status, HealthCheckResponse::SERVING);
}

// Reflection lists the services over the standard (v1alpha) reflection
// protocol, as grpcurl and grpc_cli use it. Debian ships no generated
// reflection stubs, so the request is hand-encoded: ServerReflectionRequest
// field 7 (list_services) = "" is the two bytes 0x3a 0x00; the reply is
// checked for the service names it carries.
TEST_F(HealthTest, ReflectionIsServedWhenEnabled) {
  StartServer(/*reflection=*/true);
  ReflectionCall call(channel_);
  ASSERT_TRUE(call.prepared());
  bool ok = false;
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(call.Next(&ok));
  ASSERT_TRUE(ok);
  grpc::Slice request_slice(std::string("\x3a\x00", 2));
  grpc::ByteBuffer request(&request_slice, 1);
  call->Write(request, reinterpret_cast<void*>(2));
  ASSERT_TRUE(call.Next(&ok));
  ASSERT_TRUE(ok);
  grpc::ByteBuffer response;
  call->Read(&response, reinterpret_cast<void*>(3));
  ASSERT_TRUE(call.Next(&ok));
  const bool read_ok = ok;
  call->WritesDone(reinterpret_cast<void*>(4));
  ASSERT_TRUE(call.Next(&ok));
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  ASSERT_TRUE(call.Next(&ok));
  ASSERT_TRUE(read_ok) << status.error_code() << " " << status.error_message();
  EXPECT_TRUE(status.ok()) << status.error_message();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string bytes;
  for (const grpc::Slice& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  EXPECT_THAT(bytes, HasSubstr(kWorkerService));
  EXPECT_THAT(bytes, HasSubstr("sluice.v1.OperatorService"));
  EXPECT_THAT(bytes, HasSubstr("grpc.health.v1.Health"));
}

}  // namespace
}  // namespace sluice
