// Active/standby coordinators on one Redis (issues #3 and #7), against a real
// redis-server: the leader lease and its epoch, the store's fencing of every
// mutating call by leader epoch, and the grpc.health.v1 answers of a leader
// and a standby CoordinatorServer over loopback.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "coordinator/coordinator.h"
#include "coordinator/grpc/server.h"
#include "coordinator/leadership/leader_election.h"
#include "coordinator/leadership/not_leader.h"
#include "coordinator/store/redis/redis_leader_lease_store.h"
#include "coordinator/store/redis/redis_state_store.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/testing/redis_server.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/wait.h"

namespace sluice {
namespace {

using ::grpc::health::v1::Health;
using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;
using ::sluice::testing::Ok;
using ::sluice::testing::RedisServer;
using ::sluice::testing::WaitUntil;
using ::testing::HasSubstr;
using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

RedisServer& Server() {
  static std::unique_ptr<RedisServer> server = Ok(RedisServer::Start());
  return *server;
}

std::string FreshNamespace() {
  static int n = 0;
  return absl::StrCat("lead_", ++n);
}

std::unique_ptr<RedisStateStore> OpenStore(const std::string& ns) {
  return Ok(RedisStateStore::Open(Ok(ParseRedisUrl(Server().Url(ns)))));
}

std::unique_ptr<RedisLeaderLeaseStore> OpenLease(const std::string& ns) {
  return Ok(RedisLeaderLeaseStore::Open(Ok(ParseRedisUrl(Server().Url(ns)))));
}

LeaderElectionOptions Options(const std::string& id, RedisStateStore* fenced_store,
                              int64_t lease_ms = 600) {
  LeaderElectionOptions o;
  o.coordinator_id = id;
  o.advertise_address = id + ":7400";
  o.lease_ms = lease_ms;
  o.on_elected = [fenced_store](int64_t epoch) { fenced_store->SetFencingEpoch(epoch); };
  return o;
}

PhaseSpec Phase(const std::string& run, const std::string& id, int64_t index) {
  PhaseSpec p;
  p.run_id = run;
  p.phase_id = id;
  p.phase_index = index;
  return p;
}

constexpr int64_t kT0 = 1'700'000'000'000;

TEST(RedisLeadershipTest, OneWinsTheOtherTakesOverAfterRenewalsStopAndOldEpochWritesAreRefused) {
  const std::string ns = FreshNamespace();
  auto store_a = OpenStore(ns);
  auto store_b = OpenStore(ns);
  auto lease_a = OpenLease(ns);
  auto lease_b = OpenLease(ns);
  LeaderElection a(*lease_a, SystemClock::Default(), Options("a", store_a.get()));
  LeaderElection b(*lease_b, SystemClock::Default(), Options("b", store_b.get()));
  ASSERT_EQ(a.Step(), LeaderElection::Transition::kElected);
  ASSERT_EQ(b.Step(), LeaderElection::Transition::kNone);
  const int64_t epoch_a = Ok(a.CurrentTerm());
  EXPECT_TRUE(IsNotLeader(b.CurrentTerm().status()));
  EXPECT_THAT(std::string(b.CurrentTerm().status().message()), HasSubstr("leader_address=a:7400"));
  const std::optional<LeaderRecord> holder = Ok(lease_b->CurrentLeader());
  ASSERT_TRUE(holder.has_value());
  EXPECT_EQ(holder->coordinator_id, "a");
  EXPECT_EQ(holder->epoch, epoch_a);

  // The leader writes under its epoch.
  ASSERT_TRUE(store_a->ImportPhases({Phase("r", "p1", 1), Phase("r", "p2", 2)}).ok());
  // While A renews, B keeps standing by (several TTLs long).
  for (int i = 0; i < 8; ++i) {
    std::this_thread::sleep_for(milliseconds(a.renew_interval_ms()));
    ASSERT_EQ(a.Step(), LeaderElection::Transition::kNone) << "round " << i;
    ASSERT_EQ(b.Step(), LeaderElection::Transition::kNone) << "round " << i;
  }
  // A stops renewing (paused or dead); B takes over within the TTL plus one round.
  const SteadyClock::time_point stopped = SteadyClock::now();
  ASSERT_TRUE(WaitUntil(
      [&] {
        std::this_thread::sleep_for(milliseconds(b.renew_interval_ms()));
        return b.Step() == LeaderElection::Transition::kElected;
      },
      milliseconds(5'000)));
  const auto took = std::chrono::duration_cast<milliseconds>(SteadyClock::now() - stopped);
  EXPECT_LE(took.count(), 600 + 2 * b.renew_interval_ms() + 500);
  const int64_t epoch_b = Ok(b.CurrentTerm());
  EXPECT_GT(epoch_b, epoch_a);

  // A has not noticed (it did not run Step): its writes carry the old epoch
  // and the store refuses them, changing nothing.
  const PhaseCounts before = Ok(store_a->CountPhases());
  LeaseParams lease;
  lease.run_id = "r";
  lease.worker_id = "w";
  lease.session_id = "s";
  lease.lease_id = "l-stale";
  lease.now_ms = kT0;
  lease.ttl_ms = 30'000;
  const absl::Status refused = store_a->LeaseNextInRun(lease).status();
  EXPECT_TRUE(IsNotLeader(refused)) << refused;
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(
      std::string(refused.message()),
      HasSubstr(absl::StrCat("not the leader (epoch ", epoch_a, ", current ", epoch_b, ")")));
  EXPECT_EQ(Ok(store_a->CountPhases()).pending, before.pending);
  // The new leader's writes go through.
  lease.lease_id = "l-new";
  EXPECT_TRUE(Ok(store_b->LeaseNextInRun(lease)).has_value());
  // A steps down at its next round; its renewal is refused.
  EXPECT_EQ(a.Step(), LeaderElection::Transition::kSteppedDown);
  EXPECT_FALSE(a.IsLeader());
}

// Every mutating call of a store fenced with a stale epoch is refused, with
// nothing written; a never-elected standby cannot write at all; an unfenced
// store (one coordinator per namespace) is unaffected.
TEST(RedisLeadershipTest, EveryMutationIsFencedByTheLeaderEpoch) {
  const std::string ns = FreshNamespace();
  auto leader = OpenStore(ns);
  auto stale = OpenStore(ns);
  auto lease = OpenLease(ns);
  const CampaignOutcome first = Ok(lease->Campaign("old", "old:1", 60'000));
  ASSERT_TRUE(first.won);
  stale->SetFencingEpoch(first.leader.epoch);
  ASSERT_TRUE(lease->Resign("old", first.leader.epoch).ok());
  const CampaignOutcome second = Ok(lease->Campaign("new", "new:1", 60'000));
  ASSERT_TRUE(second.won);
  EXPECT_EQ(second.leader.epoch, first.leader.epoch + 1);
  leader->SetFencingEpoch(second.leader.epoch);

  // Some state, written by the current leader.
  ASSERT_TRUE(leader->ImportPhases({Phase("r", "p1", 1), Phase("r", "p2", 2)}).ok());
  SessionRecord session;
  session.session_id = "s1";
  session.started_at_ms = kT0;
  ASSERT_TRUE(leader->CreateSession(session).ok());
  LeaseParams lp;
  lp.run_id = "r";
  lp.worker_id = "w";
  lp.session_id = "s1";
  lp.lease_id = "l1";
  lp.now_ms = kT0;
  lp.ttl_ms = 30'000;
  const LeaseGrant grant = *Ok(leader->LeaseNextInRun(lp));
  const auto attempts_before = Ok(leader->ListAttempts("")).size();

  auto expect_fenced = [](const absl::Status& st, const char* what) {
    EXPECT_TRUE(IsNotLeader(st)) << what << ": " << st;
    EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable) << what;
  };
  for (RedisStateStore* s : {stale.get()}) {
    expect_fenced(s->ImportPhases({Phase("r", "p3", 3)}).status(), "import");
    lp.lease_id = "l2";
    expect_fenced(s->LeaseNextInRun(lp).status(), "lease");
    expect_fenced(s->RenewLeases("w", {"l1"}, kT0 + 1, 30'000).status(), "renew");
    ReportParams rp;
    rp.report.lease_id = grant.lease_id;
    rp.report.epoch = grant.epoch;
    rp.report.worker_id = "w";
    rp.report.outcome = Outcome::kSucceeded;
    rp.now_ms = kT0 + 2;
    rp.transition = TransitionAfterOutcome(PhaseBudget{}, Outcome::kSucceeded, true);
    expect_fenced(s->RecordReport(rp).status(), "report");
    expect_fenced(s->ExpireLeases(kT0 + 10'000'000, LostLeaseTransition(5)).status(), "expire");
    WorkerInfo w;
    w.worker_id = "w2";
    expect_fenced(s->UpsertWorker(w), "upsert worker");
    expect_fenced(s->EndSession("s1", SessionState::kStopped, kT0 + 3, "x"), "end session");
    SessionRecord other;
    other.session_id = "s2";
    other.state = SessionState::kFinished;
    expect_fenced(s->CreateSession(other), "create session");
    expect_fenced(s->PutPolicyRecord("kind", "k", "v"), "policy record");
  }
  // Nothing changed; the current leader carries on.
  EXPECT_FALSE(Ok(leader->GetPhase(PhaseKey{"r", "p3"})).has_value());
  EXPECT_EQ(Ok(leader->ListActiveLeases()).size(), 1u);
  EXPECT_EQ(Ok(leader->ListAttempts("")).size(), attempts_before);
  EXPECT_TRUE(Ok(leader->ListWorkers()).empty());
  EXPECT_TRUE(Ok(leader->ListPolicyRecords("kind")).empty());
  EXPECT_EQ(Ok(leader->LatestSession())->state, SessionState::kActive);
  ReportParams rp;
  rp.report.lease_id = grant.lease_id;
  rp.report.epoch = grant.epoch;
  rp.report.worker_id = "w";
  rp.report.outcome = Outcome::kSucceeded;
  rp.now_ms = kT0 + 2;
  rp.transition = TransitionAfterOutcome(PhaseBudget{}, Outcome::kSucceeded, true);
  EXPECT_EQ(Ok(leader->RecordReport(rp)).disposition, ReportDisposition::kAccepted);

  // A standby that never won writes nothing.
  auto standby = OpenStore(ns);
  standby->SetFencingEpoch(RedisStateStore::kNeverLeader);
  EXPECT_TRUE(IsNotLeader(standby->PutPolicyRecord("kind", "k", "v")));
  // Reads are never fenced.
  EXPECT_TRUE(standby->CountPhases().ok());
  // Unfenced (the default): one coordinator per namespace, as before.
  auto single = OpenStore(FreshNamespace());
  EXPECT_TRUE(single->ImportPhases({Phase("r", "p1", 1)}).ok());
  EXPECT_TRUE(single->PutPolicyRecord("kind", "k", "v").ok());
}

TEST(RedisLeadershipTest, CampaignIsRefusedWhileAnotherHoldsTheLeaseAndTakenAfterItsTtl) {
  const std::string ns = FreshNamespace();
  auto store = OpenLease(ns);
  const CampaignOutcome a = Ok(store->Campaign("a", "a:1", 300));
  ASSERT_TRUE(a.won);
  const CampaignOutcome b = Ok(store->Campaign("b", "b:1", 300));
  EXPECT_FALSE(b.won);
  EXPECT_EQ(b.leader.coordinator_id, "a");
  EXPECT_EQ(b.leader.address, "a:1");
  EXPECT_TRUE(Ok(store->RenewLeadership("a", a.leader.epoch, 300)));
  EXPECT_FALSE(Ok(store->RenewLeadership("b", a.leader.epoch, 300)));
  EXPECT_FALSE(Ok(store->RenewLeadership("a", a.leader.epoch + 1, 300)));
  std::this_thread::sleep_for(milliseconds(400));
  const CampaignOutcome b2 = Ok(store->Campaign("b", "b:1", 300));
  EXPECT_TRUE(b2.won);
  EXPECT_EQ(b2.leader.epoch, a.leader.epoch + 1);
  // The old leader's renewal fails: the key is someone else's now.
  EXPECT_FALSE(Ok(store->RenewLeadership("a", a.leader.epoch, 300)));
  // The epoch is durable: it survives the key's expiry.
  EXPECT_EQ(Ok(Server().Command({"GET", ns + ":leader_epoch"})), std::to_string(b2.leader.epoch));
}

// --- Health (issue #7): two servers on one Redis namespace ------------------

struct Node {
  std::unique_ptr<RedisStateStore> store;                 // the Coordinator's, fenced
  std::unique_ptr<RedisLeaderLeaseStore> election_store;  // the election's connection
  std::unique_ptr<LeaderElection> election;
  std::unique_ptr<Coordinator> coordinator;
  std::unique_ptr<CoordinatorServer> server;
  std::unique_ptr<Health::Stub> health;
  std::shared_ptr<grpc::Channel> channel;

  HealthCheckResponse::ServingStatus Check(const std::string& service) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    HealthCheckRequest request;
    request.set_service(service);
    HealthCheckResponse response;
    if (!health->Check(&context, request, &response).ok()) return HealthCheckResponse::UNKNOWN;
    return response.status();
  }
  bool AllReport(HealthCheckResponse::ServingStatus want) {
    for (const char* s : {"", "sluice.v1.WorkerService", "sluice.v1.OperatorService"}) {
      if (Check(s) != want) return false;
    }
    return true;
  }
};

std::unique_ptr<Node> StartNode(const std::string& ns, const std::string& id) {
  auto node = std::make_unique<Node>();
  node->store = OpenStore(ns);
  node->store->SetFencingEpoch(RedisStateStore::kNeverLeader);
  node->election_store = OpenLease(ns);
  CoordinatorConfig config;
  config.max_lease_wait_ms = 200;
  node->coordinator = std::make_unique<Coordinator>(*node->store, SystemClock::Default(), config);
  node->server = std::make_unique<CoordinatorServer>(*node->coordinator);
  ServerOptions options;
  options.listen_address = "127.0.0.1:0";
  options.tick_interval_ms = 50;
  options.enable_reflection = false;
  const int port = Ok(node->server->Start(options));
  LeaderElectionOptions eo = Options(id, node->store.get(), 900);
  eo.advertise_address = absl::StrCat("127.0.0.1:", port);
  node->election =
      std::make_unique<LeaderElection>(*node->election_store, SystemClock::Default(), eo);
  node->coordinator->SetLeadership(node->election.get());
  node->election->Start();
  node->channel =
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
  node->health = Health::NewStub(node->channel);
  return node;
}

TEST(RedisLeadershipTest, HealthIsServingOnTheLeaderOnlyAndMovesToTheStandbyOnTakeover) {
  const std::string ns = FreshNamespace();
  std::unique_ptr<Node> first = StartNode(ns, "first");
  ASSERT_TRUE(WaitUntil([&] { return first->election->IsLeader(); }, milliseconds(5'000)));
  std::unique_ptr<Node> second = StartNode(ns, "second");
  ASSERT_TRUE(WaitUntil([&] { return first->AllReport(HealthCheckResponse::SERVING); },
                        milliseconds(5'000)));
  // The standby answers NOT_SERVING for the server and each service, and
  // keeps doing so while the leader renews.
  ASSERT_TRUE(WaitUntil([&] { return second->AllReport(HealthCheckResponse::NOT_SERVING); },
                        milliseconds(5'000)));
  ASSERT_TRUE(WaitUntil([&] { return second->election->known_leader().coordinator_id == "first"; },
                        milliseconds(5'000)));
  std::this_thread::sleep_for(milliseconds(1'500));  // more than one lease TTL
  EXPECT_TRUE(first->AllReport(HealthCheckResponse::SERVING));
  EXPECT_TRUE(second->AllReport(HealthCheckResponse::NOT_SERVING));
  EXPECT_FALSE(second->election->IsLeader());

  // The leader stops renewing without resigning (hung, as in a crash): it
  // turns NOT_SERVING when its lease runs out, and the standby SERVING.
  first->election->Stop(/*resign=*/false);
  ASSERT_TRUE(WaitUntil([&] { return second->AllReport(HealthCheckResponse::SERVING); },
                        milliseconds(5'000)));
  EXPECT_TRUE(second->election->IsLeader());
  EXPECT_TRUE(first->AllReport(HealthCheckResponse::NOT_SERVING));
  first->server->Shutdown();
  second->server->Shutdown();
}

}  // namespace
}  // namespace sluice
