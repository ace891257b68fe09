#include "worker/telemetry_counter.h"

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

TEST(TelemetryCounterTest, DirectoryIsAnError) {
  ScratchDir dir;
  std::filesystem::create_directory(dir.File("sub"));
  EXPECT_FALSE(CountTelemetryFile(dir.File("sub")).ok());
}

}  // namespace
}  // namespace sluice
