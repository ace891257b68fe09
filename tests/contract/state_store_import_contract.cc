// The StateStore contract suite, chunked import (StateStore::BeginImport); see
// state_store_contract.h for how a backend gets the whole suite.
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/contract/contract_fixture.h"
#include "tests/contract/state_store_contract.h"

namespace sluice::contract {
namespace {

std::vector<PhaseSpec> Chunk(const std::string& run, int first, int count) {
  std::vector<PhaseSpec> out;
  for (int i = first; i < first + count; ++i) {
    out.push_back(Spec(run, absl::StrCat("p", i), i, i % 3,
                       i % 4 == 0 ? std::vector<std::string>{"gpu"} : std::vector<std::string>{}));
  }
  return out;
}

}  // namespace

TEST_P(StateStoreContractTest, ChunkedImportCountsAsOneImportOfEveryChunk) {
  Contract c(store());
  c.Import({Spec("r1", "p0", 9, 9)});  // known before: updated below
  std::unique_ptr<PhaseImport> import = Ok(store().BeginImport());
  ASSERT_TRUE(import->Add(Chunk("r1", 0, 30)).ok());
  ASSERT_TRUE(import->Add({}).ok());
  ASSERT_TRUE(import->Add(Chunk("r2", 0, 25)).ok());
  ASSERT_TRUE(import->Add(Chunk("r1", 30, 5)).ok());
  ImportResult result = Ok(import->Commit());
  import.reset();
  EXPECT_EQ(result.inserted, 29 + 25 + 5);
  EXPECT_EQ(result.updated, 1);
  EXPECT_EQ(result.unchanged, 0);

  PhaseCounts counts = Ok(store().CountPhases());
  EXPECT_EQ(counts.pending, 60);
  EXPECT_EQ(counts.total(), 60);
  EXPECT_EQ(c.Stats("r1").pending, 35);
  EXPECT_EQ(c.Stats("r2").pending, 25);
  EXPECT_EQ(c.Phase("r1", "p0").spec.phase_index, 0);
  EXPECT_EQ(c.Phase("r2", "p24").spec.priority, 24 % 3);
  // Lease order and the labelled index are those of a one-call import.
  EXPECT_EQ(Ok(store().ListPendingLabelledPhases(100)).size(), 8u + 7u + 1u);
  std::optional<LeaseGrant> first = c.Lease("r2");
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->phase_id, "p2");  // priority 2, lowest index

  // The same chunks again: every phase unchanged.
  import = Ok(store().BeginImport());
  ASSERT_TRUE(import->Add(Chunk("r1", 0, 35)).ok());
  result = Ok(import->Commit());
  EXPECT_EQ(result.unchanged, 35);
  EXPECT_EQ(result.inserted + result.updated, 0);
}

TEST_P(StateStoreContractTest, ChunkedImportDroppedBeforeCommitWritesNothing) {
  Contract c(store());
  c.Import({Spec("r1", "p0", 9, 9)});
  {
    std::unique_ptr<PhaseImport> import = Ok(store().BeginImport());
    ASSERT_TRUE(import->Add(Chunk("r1", 0, 20)).ok());
    ASSERT_TRUE(import->Add(Chunk("r2", 0, 20)).ok());
  }  // dropped: the importer found a bad line, say
  EXPECT_EQ(Ok(store().CountPhases()).total(), 1);
  EXPECT_EQ(c.Phase("r1", "p0").spec.phase_index, 9);
  EXPECT_FALSE(Ok(store().GetPhase(PhaseKey{"r1", "p1"})).has_value());
  EXPECT_FALSE(Ok(store().GetRunStats("r2")).has_value());
  EXPECT_EQ(c.Stats("r1").pending, 1);
  EXPECT_TRUE(Ok(store().ListPendingLabelledPhases(100)).empty());

  // The store takes the next import as if nothing had happened.
  std::unique_ptr<PhaseImport> import = Ok(store().BeginImport());
  ASSERT_TRUE(import->Add(Chunk("r2", 0, 3)).ok());
  EXPECT_EQ(Ok(import->Commit()).inserted, 3);
}

}  // namespace sluice::contract
