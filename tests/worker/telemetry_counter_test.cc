#include "worker/telemetry_counter.h"

#include <sys/stat.h>

#include <filesystem>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_env.h"

namespace sluice {
namespace {

using ::sluice::testing::ScratchDir;
using ::sluice::testing::WriteFile;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

TEST(TelemetryCounterTest, MissingFileIsZeroEvents) {
  ScratchDir dir;
  absl::StatusOr<TelemetryCount> count = CountTelemetryFile(dir.File("absent.jsonl"));
  ASSERT_TRUE(count.ok()) << count.status();
  EXPECT_EQ(count->events, 0);
  EXPECT_EQ(count->invalid_lines, 0);
  EXPECT_THAT(count->by_type, IsEmpty());
  EXPECT_FALSE(count->file_written);
}

TEST(TelemetryCounterTest, EmptyFileIsNotWritten) {
  ScratchDir dir;
  WriteFile(dir.File("t.jsonl"), "");
  absl::StatusOr<TelemetryCount> count = CountTelemetryFile(dir.File("t.jsonl"));
  ASSERT_TRUE(count.ok()) << count.status();
  EXPECT_EQ(count->events, 0);
  EXPECT_FALSE(count->file_written);
}

TEST(TelemetryCounterTest, CountsEventsByType) {
  ScratchDir dir;
  WriteFile(dir.File("t.jsonl"),
            "{\"type\":\"row\",\"n\":1}\n"
            "{\"type\":\"row\"}\n"
            "{\"type\":\"checkpoint\"}\n"
            "{\"n\":3}\n"
            "{}\n");
  absl::StatusOr<TelemetryCount> count = CountTelemetryFile(dir.File("t.jsonl"));
  ASSERT_TRUE(count.ok()) << count.status();
  EXPECT_EQ(count->events, 5);
  EXPECT_EQ(count->invalid_lines, 0);
  EXPECT_TRUE(count->file_written);
  EXPECT_THAT(count->by_type,
              UnorderedElementsAre(Pair("row", 2), Pair("checkpoint", 1), Pair("untyped", 2)));
}

TEST(TelemetryCounterTest, NonStringOrEmptyTypeIsUntyped) {
  ScratchDir dir;
  WriteFile(dir.File("t.jsonl"),
            "{\"type\":7}\n"
            "{\"type\":null}\n"
            "{\"type\":[\"a\"]}\n"
            "{\"type\":\"\"}\n");
  absl::StatusOr<TelemetryCount> count = CountTelemetryFile(dir.File("t.jsonl"));
  ASSERT_TRUE(count.ok()) << count.status();
  EXPECT_EQ(count->events, 4);
  EXPECT_THAT(count->by_type, UnorderedElementsAre(Pair("untyped", 4)));
}

TEST(TelemetryCounterTest, BlankLinesAreIgnored) {
  ScratchDir dir;
  WriteFile(dir.File("t.jsonl"), "\n   \n{\"type\":\"a\"}\r\n\t\n\n{\"type\":\"a\"}\n\n");
  absl::StatusOr<TelemetryCount> count = CountTelemetryFile(dir.File("t.jsonl"));
  ASSERT_TRUE(count.ok()) << count.status();
  EXPECT_EQ(count->events, 2);
  EXPECT_EQ(count->invalid_lines, 0);
  EXPECT_THAT(count->by_type, UnorderedElementsAre(Pair("a", 2)));
}

TEST(TelemetryCounterTest, OnlyBlankLinesStillCountsAsWritten) {
  ScratchDir dir;
  WriteFile(dir.File("t.jsonl"), "\n\n");
  absl::StatusOr<TelemetryCount> count = CountTelemetryFile(dir.File("t.jsonl"));
  ASSERT_TRUE(count.ok()) << count.status();
  EXPECT_EQ(count->events, 0);
  EXPECT_TRUE(count->file_written);
}

TEST(TelemetryCounterTest, InvalidAndNonObjectLinesAreCountedSeparately) {
  ScratchDir dir;
  WriteFile(dir.File("t.jsonl"),
            "{\"type\":\"ok\"}\n"
            "not json\n"
            "[1,2,3]\n"
            "42\n"
            "\"a string\"\n"
            "null\n"
            "{\"type\":\"ok\"} trailing\n"
            "{\"type\":\"cut");  // a last line cut off mid-write, no newline
  absl::StatusOr<TelemetryCount> count = CountTelemetryFile(dir.File("t.jsonl"));
  ASSERT_TRUE(count.ok()) << count.status();
  EXPECT_EQ(count->events, 1);
  EXPECT_EQ(count->invalid_lines, 7);
  EXPECT_THAT(count->by_type, UnorderedElementsAre(Pair("ok", 1)));
}

TEST(TelemetryCounterTest, LastLineWithoutNewlineCounts) {
  ScratchDir dir;
  WriteFile(dir.File("t.jsonl"), "{\"type\":\"a\"}\n{\"type\":\"b\"}");
  absl::StatusOr<TelemetryCount> count = CountTelemetryFile(dir.File("t.jsonl"));
  ASSERT_TRUE(count.ok()) << count.status();
  EXPECT_EQ(count->events, 2);
  EXPECT_THAT(count->by_type, UnorderedElementsAre(Pair("a", 1), Pair("b", 1)));
}

TEST(TelemetryCounterTest, ManyEvents) {
  ScratchDir dir;
  std::string content;
  for (int i = 0; i < 10000; ++i) {
    content += (i % 2 == 0) ? "{\"type\":\"even\"}\n" : "{\"type\":\"odd\",\"i\":1}\n";
  }
  WriteFile(dir.File("t.jsonl"), content);
  absl::StatusOr<TelemetryCount> count = CountTelemetryFile(dir.File("t.jsonl"));
  ASSERT_TRUE(count.ok()) << count.status();
  EXPECT_EQ(count->events, 10000);
  EXPECT_THAT(count->by_type, UnorderedElementsAre(Pair("even", 5000), Pair("odd", 5000)));
}

// Bug: a line of any length was read whole into memory and counted; one
// huge line could exhaust the worker's memory. It is skipped and flagged now.
TEST(TelemetryCounterTest, OverLongLineIsSkippedAndFlagged) {
  ScratchDir dir;
  const std::string huge =
      "{\"type\":\"big\",\"pad\":\"" + std::string(kMaxTelemetryLineBytes + 1000, 'x') + "\"}";
  WriteFile(dir.File("t.jsonl"), "{\"type\":\"a\"}\n" + huge + "\n{\"type\":\"a\"}\n" + huge);
  absl::StatusOr<TelemetryCount> count = CountTelemetryFile(dir.File("t.jsonl"));
  ASSERT_TRUE(count.ok()) << count.status();
  EXPECT_EQ(count->events, 2);
  EXPECT_EQ(count->oversized_lines, 2);
  EXPECT_EQ(count->invalid_lines, 2);
  EXPECT_TRUE(count->bounded());
  EXPECT_THAT(count->by_type, UnorderedElementsAre(Pair("a", 2)));
}

TEST(TelemetryCounterTest, LineAtTheBoundIsCounted) {
  ScratchDir dir;
  const std::string prefix = "{\"type\":\"edge\",\"pad\":\"";
  const std::string line =
      prefix + std::string(kMaxTelemetryLineBytes - prefix.size() - 2, 'x') + "\"}";
  ASSERT_EQ(line.size(), kMaxTelemetryLineBytes);
  WriteFile(dir.File("t.jsonl"), line + "\n" + line);
  absl::StatusOr<TelemetryCount> count = CountTelemetryFile(dir.File("t.jsonl"));
  ASSERT_TRUE(count.ok()) << count.status();
  EXPECT_EQ(count->events, 2);
  EXPECT_EQ(count->oversized_lines, 0);
  EXPECT_THAT(count->by_type, UnorderedElementsAre(Pair("edge", 2)));
}

// Bug: a type name of any length went into the report, and the coordinator
// refused names over 128 bytes with INVALID_ARGUMENT: the outcome was set
// aside and the phase later failed as lost. Long names fold into "other".
TEST(TelemetryCounterTest, LongTypeNameIsFoldedIntoOther) {
  ScratchDir dir;
  const std::string long_type(kMaxTelemetryTypeBytes + 1, 't');
  const std::string at_bound(kMaxTelemetryTypeBytes, 'u');
  WriteFile(dir.File("t.jsonl"), "{\"type\":\"" + long_type + "\"}\n{\"type\":\"" + at_bound +
                                     "\"}\n{\"type\":\"other\"}\n");
  absl::StatusOr<TelemetryCount> count = CountTelemetryFile(dir.File("t.jsonl"));
  ASSERT_TRUE(count.ok()) << count.status();
  EXPECT_EQ(count->events, 3);
  EXPECT_EQ(count->folded_events, 1);  // the phase's own "other" is not folded
  EXPECT_THAT(count->by_type, UnorderedElementsAre(Pair(at_bound, 1), Pair("other", 2)));
}

// Bug: every distinct type went into the report; a map over the gRPC message
// limit was refused with RESOURCE_EXHAUSTED and retried forever while the
// heartbeat kept the lease alive. Types past the bound fold into "other".
TEST(TelemetryCounterTest, DistinctTypesAreBoundedAndOverflowIsFolded) {
  ScratchDir dir;
  std::string content;
  constexpr int kDistinct = 100'000;
  for (int i = 0; i < kDistinct; ++i) content += "{\"type\":\"type-" + std::to_string(i) + "\"}\n";
  content += "{\"type\":\"type-0\"}\n";  // a kept type keeps counting
  WriteFile(dir.File("t.jsonl"), content);
  absl::StatusOr<TelemetryCount> count = CountTelemetryFile(dir.File("t.jsonl"));
  ASSERT_TRUE(count.ok()) << count.status();
  EXPECT_EQ(count->events, kDistinct + 1);
  EXPECT_EQ(count->by_type.size(), kMaxTelemetryTypes + 1);
  EXPECT_EQ(count->by_type.at("type-0"), 2);
  EXPECT_EQ(count->by_type.at("other"), kDistinct - static_cast<int64_t>(kMaxTelemetryTypes));
  EXPECT_EQ(count->folded_events, count->by_type.at("other"));
  int64_t sum = 0;
  size_t key_bytes = 0;
  for (const auto& [type, n] : count->by_type) {
    sum += n;
    key_bytes += type.size();
  }
  EXPECT_EQ(sum, count->events);
  EXPECT_LE(key_bytes, (kMaxTelemetryTypes + 1) * kMaxTelemetryTypeBytes);
}

TEST(TelemetryCounterTest, FifoIsRefusedWithoutBlocking) {
  ScratchDir dir;
  ASSERT_EQ(::mkfifo(dir.File("t.jsonl").c_str(), 0600), 0);
  // Opened with O_NONBLOCK and refused by fstat: a blocking open would hang.
  EXPECT_FALSE(CountTelemetryFile(dir.File("t.jsonl")).ok());
}

TEST(TelemetryCounterTest, DirectoryIsAnError) {
  ScratchDir dir;
  std::filesystem::create_directory(dir.File("sub"));
  EXPECT_FALSE(CountTelemetryFile(dir.File("sub")).ok());
}

}  // namespace
}  // namespace sluice
