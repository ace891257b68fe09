// The Redis differential test: the same random operations against SQLite (the
// reference) and Redis must give the same answers and leave the same state.
#include "tests/contract/redis_store_test_helpers.h"

namespace sluice::redis_test {
namespace {

// ---------------------------------------------------------------------------
// Differential: the same random operations against SQLite (the reference) and
// Redis must give the same answers and leave the same state.

class Differential {
 public:
  Differential(StateStore& reference, StateStore& subject, uint32_t seed)
      : ref_(reference), sub_(subject), rng_(seed) {}

  void Run(int steps) {
    for (int i = 0; i < steps && !::testing::Test::HasFailure(); ++i) {
      Step(i);
      if (i % 10 == 9) CompareState(i);
    }
    CompareState(steps);
  }

 private:
  template <typename F>
  void Same(const std::string& what, int step, F call) {
    const std::string a = Show(call(ref_));
    const std::string b = Show(call(sub_));
    EXPECT_EQ(a, b) << "step " << step << ": " << what;
  }

  int Pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
  template <typename T>
  const T& PickOf(const std::vector<T>& v) {
    return v[static_cast<size_t>(Pick(static_cast<int>(v.size())))];
  }
  std::vector<std::string> Subset(const std::vector<std::string>& from) {
    std::vector<std::string> out;
    for (const std::string& s : from) {
      if (Pick(2) == 0) out.push_back(s);
    }
    return out;
  }

  PhaseSpec RandomSpec() {
    static const std::vector<int64_t> kPriorities = {
        INT64_MIN, -1, 0, 0, 1, 5, (int64_t{1} << 53) + 1, INT64_MAX};
    static const std::vector<int64_t> kIndexes = {0, 1, 2, -3, INT64_MAX, INT64_MIN};
    PhaseSpec s;
    s.run_id = PickOf(runs_);
    s.phase_id = PickOf(phases_);
    s.phase_index = PickOf(kIndexes);
    s.priority = PickOf(kPriorities);
    s.last_error = Pick(3) == 0 ? "boom" : "";
    s.labels = Subset(labels_);
    s.metadata_json = Pick(3) == 0 ? R"({"k":1})" : "{}";
    return s;
  }

  void Step(int step) {
    now_ += Pick(4) * 7'000;
    switch (Pick(12)) {
      case 0: {
        std::vector<PhaseSpec> batch;
        for (int n = Pick(5) + 1; n > 0; --n) batch.push_back(RandomSpec());
        Same("import", step, [&](StateStore& s) { return s.ImportPhases(batch); });
        break;
      }
      case 1:
      case 2:
      case 3: {
        LeaseParams p;
        p.run_id = PickOf(runs_);
        p.worker_id = PickOf(workers_);
        p.session_id = PickOf(sessions_);
        p.lease_id = Pick(20) == 0 && !leases_.empty() ? PickOf(leases_).lease_id
                                                       : absl::StrCat("L", next_lease_++);
        p.timeout_seconds = 60;
        p.now_ms = now_;
        p.ttl_ms = PickOf(std::vector<int64_t>{0, 10'000, kTtl});
        p.worker_labels = Subset(labels_);
        absl::StatusOr<std::optional<LeaseGrant>> a = ref_.LeaseNextInRun(p);
        absl::StatusOr<std::optional<LeaseGrant>> b = sub_.LeaseNextInRun(p);
        EXPECT_EQ(Show(a), Show(b)) << "step " << step << ": lease";
        if (a.ok() && *a) leases_.push_back(**a);
        break;
      }
      case 4: {
        std::vector<std::string> ids;
        for (int n = Pick(3); n > 0 && !leases_.empty(); --n)
          ids.push_back(PickOf(leases_).lease_id);
        if (Pick(4) == 0) ids.push_back("nope");
        const std::string worker = PickOf(workers_);
        const int64_t ttl = PickOf(std::vector<int64_t>{0, kTtl});
        Same("renew", step, [&](StateStore& s) { return s.RenewLeases(worker, ids, now_, ttl); });
        break;
      }
      case 5:
      case 6:
      case 7: {
        if (leases_.empty()) break;
        const LeaseGrant& g = PickOf(leases_);
        ReportParams p;
        p.report.lease_id = Pick(15) == 0 ? "unknown" : g.lease_id;
        p.report.epoch = Pick(8) == 0 ? g.epoch + 1 : g.epoch;
        p.report.worker_id = Pick(8) == 0 ? "intruder" : g.worker_id;
        p.report.outcome = static_cast<Outcome>(Pick(5));  // kSucceeded..kCancelled
        p.report.exit_code = Pick(3) - 1;
        p.report.signal = Pick(2) * 9;
        p.report.duration_ms = Pick(5000);
        p.report.stdout_tail = "out";
        p.report.stderr_tail = Pick(2) == 0 ? "" : "err line";
        p.report.error_text = "E";
        p.report.telemetry_events = Pick(3) == 0 ? (int64_t{1} << 60) : Pick(100);
        if (Pick(2) == 0) p.report.telemetry_by_type = {{"a", 1}, {"b", 2}};
        if (Pick(4) == 0) {
          // Unknown telemetry: 0 events plus the flag (both stores refuse
          // events with it, before any write).
          p.report.telemetry_unknown = true;
          if (Pick(3) != 0) {
            p.report.telemetry_events = 0;
            p.report.telemetry_by_type.clear();
          }
        }
        p.fingerprint = "fp";
        p.now_ms = now_;
        // Every branch of the stores' transition: both counters, failing and not.
        const PhaseBudget budget{Pick(3) + 1, Pick(3)};
        const bool counts_as_attempt = Pick(4) != 0;
        p.transition = TransitionAfterOutcome(budget, p.report.outcome, counts_as_attempt);
        Same("report", step, [&](StateStore& s) { return s.RecordReport(p); });
        break;
      }
      case 8: {
        const int32_t max_requeues = Pick(3);
        Same("expire", step, [&](StateStore& s) {
          return s.ExpireLeases(now_, LostLeaseTransition(max_requeues));
        });
        break;
      }
      case 9: {
        WorkerInfo w;
        w.worker_id = PickOf(workers_);
        w.host = absl::StrCat("h", Pick(3));
        w.slots = Pick(4) + 1;
        w.labels = Subset(labels_);
        w.version = "1.0";
        w.last_seen_ms = now_;
        Same("upsert worker", step, [&](StateStore& s) { return s.UpsertWorker(w); });
        break;
      }
      case 10: {
        SessionRecord r;
        r.session_id = PickOf(sessions_);
        r.state = Pick(5) == 0 ? SessionState::kStopped : SessionState::kActive;
        r.started_at_ms = Pick(2) == 0 ? kT0 : now_;  // ties exercise the creation order
        r.settings.batch_size = Pick(10);
        r.settings.run_ids = Subset(runs_);
        Same("create session", step, [&](StateStore& s) { return s.CreateSession(r); });
        break;
      }
      default: {
        const std::string id = PickOf(sessions_);
        const SessionState state = Pick(2) == 0 ? SessionState::kStopped : SessionState::kFinished;
        Same("end session", step,
             [&](StateStore& s) { return s.EndSession(id, state, now_, "because"); });
        break;
      }
    }
  }

  void CompareState(int step) {
    for (const std::string& run : runs_) {
      for (const std::string& phase : phases_) {
        Same(absl::StrCat("phase ", run, "/", phase), step, [&](StateStore& s) {
          return s.GetPhase({run, phase});
        });
      }
    }
    Same("run stats", step, [](StateStore& s) { return s.ListRunStats(); });
    Same("counts", step, [](StateStore& s) { return s.CountPhases(); });
    Same("active leases", step, [](StateStore& s) { return s.ListActiveLeases(); });
    Same("workers", step, [](StateStore& s) { return s.ListWorkers(); });
    Same("latest session", step, [](StateStore& s) { return s.LatestSession(); });
    Same("all attempts", step, [](StateStore& s) { return s.ListAttempts(""); });
    for (const std::string& id : sessions_) {
      Same("session " + id, step, [&](StateStore& s) { return s.GetSession(id); });
      Same("attempts of " + id, step, [&](StateStore& s) { return s.ListAttempts(id); });
      Same("count of " + id, step, [&](StateStore& s) { return s.CountSessionAttempts(id); });
    }
  }

  StateStore& ref_;
  StateStore& sub_;
  std::mt19937 rng_;
  int64_t now_ = kT0;
  int next_lease_ = 0;
  std::vector<LeaseGrant> leases_;
  const std::vector<std::string> runs_ = {"r1", "r:2", "r"};
  const std::vector<std::string> phases_ = {"p0", "p1", "p2", "p10", "2:p", "P", "p:3"};
  const std::vector<std::string> labels_ = {"gpu", "big"};
  const std::vector<std::string> workers_ = {"w1", "w2"};
  const std::vector<std::string> sessions_ = {"s1", "s2", "s3"};
};

TEST(RedisDifferentialTest, MatchesSqliteOnRandomOperations) {
  RedisServer& server = SharedServer();
  for (uint32_t seed = 1; seed <= 12 && !HasFailure(); ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    std::unique_ptr<SqliteStateStore> reference = Ok(SqliteStateStore::Open(":memory:"));
    std::unique_ptr<RedisStateStore> subject = OpenStore(server, FreshNamespace("diff"));
    Differential(*reference, *subject, seed).Run(300);
  }
}

}  // namespace
}  // namespace sluice::redis_test
