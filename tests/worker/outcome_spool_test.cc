#include "worker/outcome_spool.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/test_env.h"

namespace sluice {
namespace {

using ::sluice::testing::ReadFile;
using ::sluice::testing::ScratchDir;
using ::sluice::testing::WriteFile;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::SizeIs;

AttemptReport SampleReport(const std::string& lease_id) {
  AttemptReport r;
  r.lease_id = lease_id;
  r.epoch = 9'007'199'254'740'993;  // above 2^53: must not pass through a double
  r.worker_id = "w-1";
  r.outcome = Outcome::kTimedOut;
  r.exit_code = -1;
  r.signal = 15;
  r.duration_ms = 3'004;
  r.stdout_tail = "line 1\nline \"2\"\n";
  r.stderr_tail = "Traceback: caf\xc3\xa9 \t\\";
  r.error_text = "phase timed out after 3 s";
  r.telemetry_events = 3;
  r.telemetry_by_type = {{"llm_call", 2}, {"patch_applied", 1}};
  r.longest_silence_ms = 2'750;
  return r;
}

void ExpectSameReport(const AttemptReport& a, const AttemptReport& b) {
  EXPECT_EQ(a.lease_id, b.lease_id);
  EXPECT_EQ(a.epoch, b.epoch);
  EXPECT_EQ(a.worker_id, b.worker_id);
  EXPECT_EQ(a.outcome, b.outcome);
  EXPECT_EQ(a.exit_code, b.exit_code);
  EXPECT_EQ(a.signal, b.signal);
  EXPECT_EQ(a.duration_ms, b.duration_ms);
  EXPECT_EQ(a.stdout_tail, b.stdout_tail);
  EXPECT_EQ(a.stderr_tail, b.stderr_tail);
  EXPECT_EQ(a.error_text, b.error_text);
  EXPECT_EQ(a.telemetry_events, b.telemetry_events);
  EXPECT_EQ(a.telemetry_by_type, b.telemetry_by_type);
  EXPECT_EQ(a.telemetry_unknown, b.telemetry_unknown);
  EXPECT_EQ(a.longest_silence_ms, b.longest_silence_ms);
}

std::vector<std::string> FileNames(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

TEST(OutcomeSpoolTest, PutThenListRoundTripsEveryField) {
  ScratchDir dir;
  OutcomeSpool spool(dir.File("spool"));
  ASSERT_TRUE(spool.Init().ok());
  ASSERT_TRUE(spool.Put(SampleReport("L-2")).ok());
  ASSERT_TRUE(spool.Put(SampleReport("L-1")).ok());
  absl::StatusOr<std::vector<AttemptReport>> listed = spool.List();
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_THAT(*listed, SizeIs(2));
  EXPECT_EQ((*listed)[0].lease_id, "L-1");  // file-name order
  ExpectSameReport((*listed)[1], SampleReport("L-2"));
  EXPECT_THAT(FileNames(dir.path() / "spool"), ElementsAre("L-1.json", "L-2.json"));
}

TEST(OutcomeSpoolTest, UnknownTelemetrySurvivesTheSpoolAndOlderFilesReadAsKnown) {
  // Issue #16 item 6: a report spooled across a worker restart must keep
  // its unknown telemetry, or it would reach the store as 0 events.
  AttemptReport unknown = SampleReport("L-1");
  unknown.telemetry_events = 0;
  unknown.telemetry_by_type.clear();
  unknown.telemetry_unknown = true;
  absl::StatusOr<AttemptReport> back = ParseAttemptReport(SerializeAttemptReport(unknown));
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSameReport(*back, unknown);
  // Spooled by a worker from before the flag: its events were counted.
  nlohmann::json old = nlohmann::json::parse(SerializeAttemptReport(SampleReport("L-2")));
  old.erase("telemetry_unknown");
  back = ParseAttemptReport(old.dump());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_FALSE(back->telemetry_unknown);
}

TEST(OutcomeSpoolTest, ASpooledReportFromBeforeSilencesWereMeasuredReadsAsUnmeasured) {
  nlohmann::json old = nlohmann::json::parse(SerializeAttemptReport(SampleReport("L-3")));
  old.erase("longest_silence_ms");
  absl::StatusOr<AttemptReport> back = ParseAttemptReport(old.dump());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->longest_silence_ms, -1);  // unknown: the idle limit learns nothing from it
}

// Bug: the spool was created 0755 and its files 0644, though outcomes carry
// output tails other users of the host must not read.
TEST(OutcomeSpoolTest, SpoolIsCreatedForTheOwnerOnly) {
  ScratchDir dir;
  OutcomeSpool spool(dir.File("spool"));
  ASSERT_TRUE(spool.Init().ok());
  ASSERT_TRUE(spool.Put(SampleReport("L-1")).ok());
  struct stat st {};
  ASSERT_EQ(::stat(dir.File("spool").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(::stat(dir.File("spool/L-1.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(OutcomeSpoolTest, AnExistingDirectoryKeepsItsMode) {
  ScratchDir dir;
  ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);
  OutcomeSpool spool(dir.path().string());
  ASSERT_TRUE(spool.Init().ok());
  struct stat st {};
  ASSERT_EQ(::stat(dir.path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0755u);
}

TEST(OutcomeSpoolTest, PutReplacesAnEarlierReportOfTheSameLease) {
  ScratchDir dir;
  OutcomeSpool spool(dir.path().string());
  AttemptReport report = SampleReport("L-1");
  ASSERT_TRUE(spool.Put(report).ok());
  report.outcome = Outcome::kSucceeded;
  ASSERT_TRUE(spool.Put(report).ok());
  absl::StatusOr<std::vector<AttemptReport>> listed = spool.List();
  ASSERT_TRUE(listed.ok());
  ASSERT_THAT(*listed, SizeIs(1));
  EXPECT_EQ((*listed)[0].outcome, Outcome::kSucceeded);
}

ino_t InodeOf(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

// An answered outcome's file is kept, under a name List() skips, and the next
// Put() writes over it: a drain creates and deletes no inode per phase.
TEST(OutcomeSpoolTest, RemoveKeepsTheFileForTheNextPutAndIsIdempotent) {
  ScratchDir dir;
  OutcomeSpool spool(dir.path().string());
  ASSERT_TRUE(spool.Put(SampleReport("L-1")).ok());
  const ino_t inode = InodeOf(dir.File("L-1.json"));
  ASSERT_NE(inode, 0u);
  EXPECT_TRUE(spool.Remove("L-1").ok());
  EXPECT_TRUE(spool.Remove("L-1").ok());
  absl::StatusOr<std::vector<AttemptReport>> listed = spool.List();
  ASSERT_TRUE(listed.ok());
  EXPECT_THAT(*listed, IsEmpty());
  const std::vector<std::string> names = FileNames(dir.path());
  ASSERT_THAT(names, SizeIs(1));
  EXPECT_THAT(names[0], ::testing::StartsWith(".free."));
  EXPECT_EQ(spool.free_files(), 1u);

  ASSERT_TRUE(spool.Put(SampleReport("L-2")).ok());
  EXPECT_THAT(FileNames(dir.path()), ElementsAre("L-2.json"));
  EXPECT_EQ(InodeOf(dir.File("L-2.json")), inode);
  EXPECT_EQ(spool.free_files(), 0u);
  listed = spool.List();
  ASSERT_TRUE(listed.ok());
  ASSERT_THAT(*listed, SizeIs(1));
  ExpectSameReport((*listed)[0], SampleReport("L-2"));
}

// A reused file that held a longer report ends where the new one does.
TEST(OutcomeSpoolTest, WithoutFreeFilesRemoveDeletes) {
  ScratchDir dir;
  OutcomeSpool spool(dir.path().string(), /*max_free_files=*/0);
  ASSERT_TRUE(spool.Put(SampleReport("L-1")).ok());
  ASSERT_TRUE(spool.Remove("L-1").ok());
  EXPECT_THAT(FileNames(dir.path()), IsEmpty());
  EXPECT_EQ(spool.free_files(), 0u);
}

TEST(OutcomeSpoolTest, AShorterReportOverALongerOneReadsBackWhole) {
  ScratchDir dir;
  OutcomeSpool spool(dir.path().string());
  AttemptReport longer = SampleReport("L-1");
  longer.stdout_tail = std::string(3000, 'x');
  ASSERT_TRUE(spool.Put(longer).ok());
  ASSERT_TRUE(spool.Remove("L-1").ok());
  AttemptReport shorter = SampleReport("L-2");
  shorter.stdout_tail = "ok";
  ASSERT_TRUE(spool.Put(shorter).ok());
  EXPECT_EQ(ReadFile(dir.File("L-2.json")), SerializeAttemptReport(shorter) + "\n");
  absl::StatusOr<std::vector<AttemptReport>> listed = spool.List();
  ASSERT_TRUE(listed.ok());
  ASSERT_THAT(*listed, SizeIs(1));
  ExpectSameReport((*listed)[0], shorter);
}

TEST(OutcomeSpoolTest, AtMostMaxFreeFilesAreKept) {
  ScratchDir dir;
  OutcomeSpool spool(dir.path().string(), /*max_free_files=*/3);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(spool.Put(SampleReport(absl::StrCat("L-", i))).ok());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(spool.Remove(absl::StrCat("L-", i)).ok());
  EXPECT_EQ(spool.free_files(), 3u);
  EXPECT_THAT(FileNames(dir.path()), SizeIs(3));
  absl::StatusOr<std::vector<AttemptReport>> listed = spool.List();
  ASSERT_TRUE(listed.ok());
  EXPECT_THAT(*listed, IsEmpty());
}

// Free files hold answered outcomes or half a write (a crash mid-Put): a new
// worker deletes them, and List() never reads them.
TEST(OutcomeSpoolTest, InitDeletesFreeFilesAnEarlierWorkerLeft) {
  ScratchDir dir;
  WriteFile(dir.File(".free.1.0"), "{\"version\": 1, \"lease_id\": \"L-9\", \"epo");
  WriteFile(dir.File(".free.1.1"), SerializeAttemptReport(SampleReport("L-8")));
  OutcomeSpool spool(dir.path().string());
  absl::StatusOr<std::vector<AttemptReport>> listed = spool.List();
  ASSERT_TRUE(listed.ok());
  EXPECT_THAT(*listed, IsEmpty());
  EXPECT_THAT(FileNames(dir.path()), SizeIs(2));  // not renamed .bad: not the spool's outcomes
  ASSERT_TRUE(spool.Init().ok());
  EXPECT_THAT(FileNames(dir.path()), IsEmpty());
}

// Another worker wrongly given the same directory deletes free files at its
// start: a Put() whose free file is gone writes a new one.
TEST(OutcomeSpoolTest, APutWhoseFreeFileWasDeletedStillSpools) {
  ScratchDir dir;
  OutcomeSpool spool(dir.path().string());
  ASSERT_TRUE(spool.Put(SampleReport("L-1")).ok());
  ASSERT_TRUE(spool.Remove("L-1").ok());
  ASSERT_EQ(spool.free_files(), 1u);
  ASSERT_TRUE(OutcomeSpool(dir.path().string()).Init().ok());  // the other worker's start
  ASSERT_TRUE(spool.Put(SampleReport("L-2")).ok());
  EXPECT_THAT(FileNames(dir.path()), ElementsAre("L-2.json"));
  absl::StatusOr<std::vector<AttemptReport>> listed = spool.List();
  ASSERT_TRUE(listed.ok());
  ASSERT_THAT(*listed, SizeIs(1));
  ExpectSameReport((*listed)[0], SampleReport("L-2"));
}

TEST(OutcomeSpoolTest, SyncNeedsASpooledOutcomeAndKeepsItListed) {
  ScratchDir dir;
  OutcomeSpool spool(dir.path().string());
  EXPECT_EQ(spool.Sync("L-1").code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(spool.Put(SampleReport("L-1")).ok());
  EXPECT_TRUE(spool.Sync("L-1").ok());
  absl::StatusOr<std::vector<AttemptReport>> listed = spool.List();
  ASSERT_TRUE(listed.ok());
  ASSERT_THAT(*listed, SizeIs(1));
  EXPECT_EQ((*listed)[0].lease_id, "L-1");
  EXPECT_EQ(spool.Sync("not/an/id").code(), absl::StatusCode::kInvalidArgument);
}

TEST(OutcomeSpoolTest, LeftoverTmpFileFromACrashMidWriteIsIgnored) {
  ScratchDir dir;
  OutcomeSpool spool(dir.path().string());
  // A crash between write and rename leaves only the .tmp, possibly cut short.
  WriteFile(dir.File("L-9.json.tmp"), "{\"version\": 1, \"lease_id\": \"L-9\", \"epo");
  ASSERT_TRUE(spool.Put(SampleReport("L-1")).ok());
  absl::StatusOr<std::vector<AttemptReport>> listed = spool.List();
  ASSERT_TRUE(listed.ok());
  ASSERT_THAT(*listed, SizeIs(1));
  EXPECT_EQ((*listed)[0].lease_id, "L-1");
  // Left alone (not renamed .bad): the next Put of that lease overwrites it.
  EXPECT_THAT(FileNames(dir.path()), ElementsAre("L-1.json", "L-9.json.tmp"));
  ASSERT_TRUE(spool.Put(SampleReport("L-9")).ok());
  EXPECT_THAT(FileNames(dir.path()), ElementsAre("L-1.json", "L-9.json"));
}

TEST(OutcomeSpoolTest, CorruptFileIsSkippedAndKeptRenamedBad) {
  ScratchDir dir;
  OutcomeSpool spool(dir.path().string());
  ASSERT_TRUE(spool.Put(SampleReport("L-1")).ok());
  WriteFile(dir.File("L-2.json"), "not json at all");
  WriteFile(dir.File("L-3.json"), "{\"version\": 1, \"lease_id\": \"L-3\"}");  // fields missing
  AttemptReport other = SampleReport("L-5");
  WriteFile(dir.File("L-4.json"), SerializeAttemptReport(other));  // name and content disagree
  absl::StatusOr<std::vector<AttemptReport>> listed = spool.List();
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_THAT(*listed, SizeIs(1));
  EXPECT_EQ((*listed)[0].lease_id, "L-1");
  EXPECT_THAT(FileNames(dir.path()),
              ElementsAre("L-1.json", "L-2.json.bad", "L-3.json.bad", "L-4.json.bad"));
  EXPECT_EQ(ReadFile(dir.File("L-2.json.bad")), "not json at all");
  // A second listing does not see them again.
  listed = spool.List();
  ASSERT_TRUE(listed.ok());
  EXPECT_THAT(*listed, SizeIs(1));
}

TEST(OutcomeSpoolTest, QuarantineHidesAFileFromList) {
  ScratchDir dir;
  OutcomeSpool spool(dir.path().string());
  ASSERT_TRUE(spool.Put(SampleReport("L-1")).ok());
  ASSERT_TRUE(spool.Quarantine("L-1", "rejected").ok());
  absl::StatusOr<std::vector<AttemptReport>> listed = spool.List();
  ASSERT_TRUE(listed.ok());
  EXPECT_THAT(*listed, IsEmpty());
  EXPECT_THAT(FileNames(dir.path()), ElementsAre("L-1.json.rejected"));
}

TEST(OutcomeSpoolTest, LeaseIdThatIsNotAnIdentifierIsRefused) {
  ScratchDir dir;
  OutcomeSpool spool(dir.path().string());
  EXPECT_EQ(spool.Put(SampleReport("../escape")).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(spool.Remove("a/b").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(FileNames(dir.path()), IsEmpty());
}

TEST(OutcomeSpoolTest, UnwritableDirectoryIsAnError) {
  ScratchDir dir;
  WriteFile(dir.File("file"), "x");
  OutcomeSpool spool(dir.File("file") + "/spool");
  EXPECT_EQ(spool.Init().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(spool.Put(SampleReport("L-1")).ok());
}

TEST(OutcomeSpoolTest, ParseNamesTheMissingField) {
  absl::StatusOr<AttemptReport> r =
      ParseAttemptReport("{\"version\": 1, \"lease_id\": \"L\", \"epoch\": 1}");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), ::testing::HasSubstr("worker_id"));
  EXPECT_FALSE(ParseAttemptReport("{\"version\": 2}").ok());
  EXPECT_FALSE(ParseAttemptReport("[]").ok());
}

}  // namespace
}  // namespace sluice
