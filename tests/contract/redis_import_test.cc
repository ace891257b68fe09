// The Redis store's sliced import commit (issue #12: one script over a 1M
// backlog blocked Redis for over a minute). A commit applies its staged
// chunks in slices of at most RedisOptions::import_slice_phases phases, one
// script each. These tests make the slices tiny and check what a user relies
// on: the same final state as one slice, exact counters between slices, an
// interrupted commit completed by importing again, a lost slice reply
// retried without applying anything twice, and no staging key left behind.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status_macros.h"
#include "tests/contract/redis_store_test_helpers.h"

namespace sluice::redis_test {
namespace {

// 3 runs, 40 phases: varied priorities (lease order), every third labelled,
// some metadata.
std::vector<PhaseSpec> Backlog(int first = 0, int count = 40) {
  std::vector<PhaseSpec> out;
  for (int i = first; i < first + count; ++i) {
    PhaseSpec s = Spec(absl::StrCat("r", i % 3), absl::StrCat("p", i), i % 4,
                       i % 3 == 0 ? std::vector<std::string>{"gpu"} : std::vector<std::string>{});
    s.phase_index = i;
    s.metadata_json = absl::StrCat(R"({"n":)", i, "}");
    out.push_back(std::move(s));
  }
  return out;
}

std::unique_ptr<RedisStateStore> OpenSliced(const std::string& ns, int64_t slice_phases) {
  RedisOptions o = Ok(ParseRedisUrl(SharedServer().Url(ns)));
  o.import_slice_phases = slice_phases;
  return Ok(RedisStateStore::Open(o));
}

// Stages `phases` in chunks of `chunk` and commits.
absl::StatusOr<ImportResult> ImportInChunks(StateStore& store, const std::vector<PhaseSpec>& phases,
                                            size_t chunk) {
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<PhaseImport> import, store.BeginImport());
  for (size_t i = 0; i < phases.size(); i += chunk) {
    const auto first = phases.begin() + static_cast<std::ptrdiff_t>(i);
    const auto last =
        phases.begin() + static_cast<std::ptrdiff_t>(std::min(phases.size(), i + chunk));
    SLUICE_RETURN_IF_ERROR(import->Add(std::vector<PhaseSpec>(first, last)));
  }
  return import->Commit();
}

// Everything an import writes, as the store's readers see it: counts, run
// statistics, each phase, each run's lease order and the labelled index.
std::string StateOf(StateStore& store, const std::vector<PhaseSpec>& phases) {
  std::string out = absl::StrCat("counts ", Show(store.CountPhases()), "\nruns ",
                                 Show(store.ListRunStats()), "\n");
  for (const PhaseSpec& p : phases) {
    absl::StrAppend(&out, Show(store.GetPhase(PhaseKey{p.run_id, p.phase_id})), "\n");
  }
  for (const char* run : {"r0", "r1", "r2"}) {
    absl::StrAppend(&out, run, " lease order:");
    for (const PhaseRecord& r : Ok(store.ListPendingPhases(run, 1000))) {
      absl::StrAppend(&out, " ", r.spec.phase_id);
    }
    absl::StrAppend(&out, "\n");
  }
  absl::StrAppend(&out, "labelled:");
  for (const PhaseRecord& r : Ok(store.ListPendingLabelledPhases(1000))) {
    absl::StrAppend(&out, " ", r.spec.run_id, "/", r.spec.phase_id);
  }
  return out;
}

int64_t Int(const std::string& reply) {
  int64_t n = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(reply), &n)) {
    throw std::runtime_error("not an integer: " + reply);
  }
  return n;
}

// The counters a coordinator may read between two slices agree with the
// phases themselves: the global pending count, the runs' pending counts and
// the members of the runs' pending sets are the same number, and the
// labelled index holds exactly the labelled pending phases.
void ExpectCountersExact(StateStore& reader, const std::string& ns,
                         const std::vector<PhaseSpec>& phases) {
  int64_t run_pending = 0, members = 0;
  for (const RunStats& r : Ok(reader.ListRunStats())) run_pending += r.pending;
  for (const char* run : {"r0", "r1", "r2"}) {
    members += Int(Ok(SharedServer().Command({"ZCARD", absl::StrCat(ns, ":pending:", run)})));
  }
  int64_t pending = 0, labelled = 0;
  for (const PhaseSpec& p : phases) {
    std::optional<PhaseRecord> r = Ok(reader.GetPhase(PhaseKey{p.run_id, p.phase_id}));
    if (r && r->state == PhaseState::kPending) {
      ++pending;
      if (!r->spec.labels.empty()) ++labelled;
    }
  }
  EXPECT_EQ(Ok(reader.CountPhases()).pending, pending);
  EXPECT_EQ(run_pending, pending);
  EXPECT_EQ(members, pending);
  EXPECT_EQ(Int(Ok(SharedServer().Command({"ZCARD", absl::StrCat(ns, ":pending_labelled")}))),
            labelled);
}

std::string ImportKeys(const std::string& ns) {
  return Ok(SharedServer().Command({"KEYS", absl::StrCat(ns, ":import*")}));
}

// A namespace with some phases already known, leased or changed, so the
// import below inserts, updates (one of them leased, one re-ranked) and
// leaves phases unchanged.
void Prepare(StateStore& store) {
  std::vector<PhaseSpec> before = Backlog(0, 12);
  before[1].priority = 9;          // leased below, then updated
  before[2].metadata_json = "{}";  // updated in place
  before[4].priority = 7;          // re-ranked in its run's pending set
  Ok(store.ImportPhases(before));
  SessionRecord session;
  session.session_id = "s1";
  session.started_at_ms = kT0;
  Ok(store.CreateSession(session));
  MustLease(store, Lease("r1", "L1"));  // p1, priority 9: leased while updated
}

// An import that names a phase of a new run twice inserts it once and then
// updates it (the last wins), as SQLite does, whether both fall in one slice
// or in two. (A slice that skipped the read of phases of runs it found new,
// tried for speed, counted both as inserted.)
TEST(RedisImportTest, APhaseOfANewRunNamedTwiceIsInsertedThenUpdated) {
  for (const int64_t slice_phases : {10'000, 2}) {
    SCOPED_TRACE(absl::StrCat("slices of ", slice_phases));
    const std::string ns = FreshNamespace("twice");
    std::unique_ptr<RedisStateStore> store = OpenSliced(ns, slice_phases);
    std::vector<PhaseSpec> phases = {Spec("r0", "p1", 1), Spec("r0", "p2", 2), Spec("r1", "p3", 3),
                                     Spec("r0", "p1", 5)};
    phases[3].metadata_json = R"({"second":true})";
    const ImportResult result = Ok(ImportInChunks(*store, phases, 1));
    EXPECT_EQ(result.inserted, 3);
    EXPECT_EQ(result.updated, 1);
    EXPECT_EQ(result.unchanged, 0);
    const std::optional<PhaseRecord> p1 = Ok(store->GetPhase(PhaseKey{"r0", "p1"}));
    ASSERT_TRUE(p1.has_value());
    EXPECT_EQ(p1->spec.priority, 5);
    EXPECT_EQ(p1->spec.metadata_json, R"({"second":true})");
    EXPECT_EQ(Ok(store->CountPhases()).pending, 3);
    // Once in its run's pending set, under its new rank: first in lease order.
    std::vector<std::string> order;
    for (const PhaseRecord& r : Ok(store->ListPendingPhases("r0", 10))) {
      order.push_back(r.spec.phase_id);
    }
    EXPECT_THAT(order, ::testing::ElementsAre("p1", "p2"));
    ExpectCountersExact(*store, ns, {phases.begin(), phases.end() - 1});  // each phase once
  }
}

TEST(RedisImportTest, ASlicedImportGivesTheSameStateAsOneSlice) {
  const std::string one_ns = FreshNamespace("one_slice");
  const std::string sliced_ns = FreshNamespace("sliced");
  std::unique_ptr<RedisStateStore> one = OpenSliced(one_ns, 10'000);
  std::unique_ptr<RedisStateStore> sliced = OpenSliced(sliced_ns, 4);
  std::unique_ptr<RedisStateStore> reader = OpenSliced(sliced_ns, 10'000);
  Prepare(*one);
  Prepare(*sliced);
  const std::vector<PhaseSpec> backlog = Backlog();
  int one_slices = 0, slices = 0;
  one->SetImportSliceHookForTesting([&](int64_t) {
    ++one_slices;
    return absl::OkStatus();
  });
  sliced->SetImportSliceHookForTesting([&](int64_t) {
    ++slices;
    ExpectCountersExact(*reader, sliced_ns, Backlog(0, 49));  // with `more` below
    return absl::OkStatus();
  });

  // Chunks of 7 are staged as pieces of 4 and 3: slices of at most 4 phases.
  const ImportResult expected = Ok(ImportInChunks(*one, backlog, 7));
  const ImportResult result = Ok(ImportInChunks(*sliced, backlog, 7));

  EXPECT_EQ(one_slices, 1);
  EXPECT_EQ(slices, 12) << "5 chunks of 7 and one of 5, staged as 12 pieces of at most 4";
  EXPECT_EQ(Show(result), Show(expected));
  EXPECT_EQ(result.inserted, 28);
  EXPECT_EQ(result.updated, 3);
  EXPECT_EQ(result.unchanged, 9);
  EXPECT_EQ(StateOf(*sliced, backlog), StateOf(*one, backlog));
  ExpectCountersExact(*reader, sliced_ns, backlog);
  EXPECT_EQ(ImportKeys(sliced_ns), "") << "the staging list and its totals are gone";

  // ImportPhases slices the same way.
  std::vector<PhaseSpec> more = Backlog(40, 9);
  slices = 0;
  EXPECT_EQ(Show(sliced->ImportPhases(more)), "import 9/0/0");
  EXPECT_EQ(slices, 3);
  EXPECT_EQ(ImportKeys(sliced_ns), "");
}

// A commit that stops part-way (here: the importer "dies" after its third
// slice) leaves those slices applied with exact counters, and its staging
// list expiring; running the same import again completes it.
TEST(RedisImportTest, AnImportInterruptedAfterSomeSlicesIsCompletedByImportingAgain) {
  const std::string ns = FreshNamespace("interrupted");
  const std::string reference_ns = FreshNamespace("uninterrupted");
  std::unique_ptr<RedisStateStore> store = OpenSliced(ns, 5);
  std::unique_ptr<RedisStateStore> reference = OpenSliced(reference_ns, 5);
  std::unique_ptr<RedisStateStore> reader = OpenSliced(ns, 10'000);
  const std::vector<PhaseSpec> backlog = Backlog();
  Prepare(*store);
  Prepare(*reference);
  const ImportResult whole = Ok(ImportInChunks(*reference, backlog, 10));

  int slices = 0;
  store->SetImportSliceHookForTesting([&](int64_t chunks_left) {
    if (++slices < 3) return absl::OkStatus();
    // Killed now, nothing would delete the staged rest: it must expire.
    const std::string keys = ImportKeys(ns);
    EXPECT_THAT(keys, HasSubstr(":totals"));
    for (absl::string_view key : absl::StrSplit(keys, '\n', absl::SkipWhitespace())) {
      const int64_t ttl = Int(Ok(SharedServer().Command({"TTL", std::string(key)})));
      EXPECT_GT(ttl, 0) << key;
      EXPECT_LE(ttl, 3600) << key;
    }
    EXPECT_EQ(chunks_left, 8 - 3);
    return absl::AbortedError("importer killed");
  });
  absl::StatusOr<ImportResult> interrupted = ImportInChunks(*store, backlog, 10);
  EXPECT_EQ(interrupted.status().code(), absl::StatusCode::kAborted) << interrupted.status();
  EXPECT_THAT(interrupted.status().message(), HasSubstr("import the same phases again"));
  EXPECT_EQ(slices, 3);
  ExpectCountersExact(*reader, ns, backlog);
  // 15 phases applied: p0..p11 were known, p12..p14 new.
  EXPECT_EQ(Ok(reader->CountPhases()).total(), 15);
  EXPECT_EQ(ImportKeys(ns), "") << "the dropped import deleted what it staged";

  store->SetImportSliceHookForTesting(nullptr);
  const ImportResult again = Ok(ImportInChunks(*store, backlog, 10));
  EXPECT_EQ(again.inserted, 25);
  EXPECT_EQ(again.updated, 0);
  EXPECT_EQ(again.unchanged, 15);
  EXPECT_EQ(3 + again.inserted, whole.inserted) << "the first attempt inserted p12..p14";
  EXPECT_EQ(StateOf(*store, backlog), StateOf(*reference, backlog));
  ExpectCountersExact(*reader, ns, backlog);
  EXPECT_EQ(ImportKeys(ns), "");
}

// A slice whose script ran but whose reply was lost is retried: the retry
// applies the next slice (the chunks leave the list in the script that
// applies them) and the counts come from the totals kept in Redis, so the
// result is that of an import without the loss. Also the last slice.
TEST(RedisImportTest, ASliceWhoseReplyWasLostIsNotAppliedTwice) {
  for (const int64_t lost_when_left : {int64_t{5}, int64_t{0}}) {
    SCOPED_TRACE(absl::StrCat("reply lost with ", lost_when_left, " chunks left"));
    const std::string ns = FreshNamespace("lost_reply");
    std::unique_ptr<RedisStateStore> store = OpenSliced(ns, 5);
    std::unique_ptr<RedisStateStore> reader = OpenSliced(ns, 10'000);
    const std::vector<PhaseSpec> backlog = Backlog();
    bool lost = false;
    store->SetImportSliceHookForTesting([&](int64_t chunks_left) {
      if (chunks_left != lost_when_left || lost) return absl::OkStatus();
      lost = true;
      return absl::UnavailableError("reply lost");
    });
    EXPECT_EQ(Show(ImportInChunks(*store, backlog, 10)), "import 40/0/0");
    EXPECT_TRUE(lost);
    ExpectCountersExact(*reader, ns, backlog);
    EXPECT_EQ(Ok(reader->CountPhases()).pending, 40);
    EXPECT_EQ(ImportKeys(ns), "");
  }
}

// Two imports of overlapping backlogs, their slices interleaved (the second
// one commits whole between two slices of the first): every phase is
// counted once, and each import's result covers exactly its own phases.
TEST(RedisImportTest, InterleavedImportsKeepCountersExact) {
  const std::string ns = FreshNamespace("interleaved");
  std::unique_ptr<RedisStateStore> a = OpenSliced(ns, 5);
  std::unique_ptr<RedisStateStore> b = OpenSliced(ns, 3);
  const std::vector<PhaseSpec> backlog_a = Backlog(0, 30);
  const std::vector<PhaseSpec> backlog_b = Backlog(20, 20);  // p20..p29 in both
  absl::StatusOr<ImportResult> result_b = absl::UnknownError("b never ran");
  bool b_ran = false;
  a->SetImportSliceHookForTesting([&](int64_t) {
    if (!b_ran) result_b = ImportInChunks(*b, backlog_b, 10);
    b_ran = true;
    return absl::OkStatus();
  });
  const ImportResult result_a = Ok(ImportInChunks(*a, backlog_a, 10));
  ASSERT_TRUE(result_b.ok()) << result_b.status();

  EXPECT_EQ(result_a.inserted + result_b->inserted, 40);
  EXPECT_EQ(result_a.inserted + result_a.updated + result_a.unchanged, 30);
  EXPECT_EQ(result_b->inserted + result_b->updated + result_b->unchanged, 20);
  EXPECT_EQ(result_a.updated + result_b->updated, 0);
  // a's first slice (p0..p4) came before b; b took p20..p29 before a did.
  EXPECT_EQ(result_b->inserted, 20);
  EXPECT_EQ(result_a.unchanged, 10);
  EXPECT_EQ(Ok(a->CountPhases()).pending, 40);
  ExpectCountersExact(*a, ns, Backlog(0, 40));
  EXPECT_EQ(ImportKeys(ns), "");
}

TEST(RedisImportTest, RefusesASliceSizeThatIsNotPositive) {
  RedisOptions o = Ok(ParseRedisUrl(SharedServer().Url(FreshNamespace("bad_slice"))));
  o.import_slice_phases = 0;
  absl::StatusOr<std::unique_ptr<RedisStateStore>> store = RedisStateStore::Open(o);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kInvalidArgument) << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr("import_slice_phases"));
}

}  // namespace
}  // namespace sluice::redis_test
