#include "coordinator/backlog_importer.h"

#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/test_env.h"

namespace sluice {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// The message of a rejected parse; fails the test when the parse succeeded or
// failed with another code.
std::string Rejection(const absl::StatusOr<std::vector<PhaseSpec>>& result,
                      absl::StatusCode code = absl::StatusCode::kInvalidArgument) {
  if (result.ok()) {
    ADD_FAILURE() << "expected an error, got " << result->size() << " phases";
    return "";
  }
  EXPECT_EQ(result.status().code(), code) << result.status();
  return std::string(result.status().message());
}

std::vector<PhaseSpec> MustParse(std::string_view name, std::string_view content,
                                 BacklogFormat format = BacklogFormat::kAuto) {
  absl::StatusOr<std::vector<PhaseSpec>> result = ParseBacklog(name, content, format);
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? *result : std::vector<PhaseSpec>();
}

// ---------------------------------------------------------------------------
// JSONL

TEST(BacklogImporterJsonl, ParsesAllKnownFields) {
  auto phases =
      MustParse("b.jsonl", R"({"run_id":"r1","phase_id":"p1","phase_index":3,"priority":-2,)"
                           R"("last_error":"boom","labels":["linux","gpu"]})"
                           "\n");
  ASSERT_EQ(phases.size(), 1u);
  EXPECT_EQ(phases[0].run_id, "r1");
  EXPECT_EQ(phases[0].phase_id, "p1");
  EXPECT_EQ(phases[0].phase_index, 3);
  EXPECT_EQ(phases[0].priority, -2);
  EXPECT_EQ(phases[0].last_error, "boom");
  EXPECT_THAT(phases[0].labels, ElementsAre("linux", "gpu"));
  EXPECT_EQ(phases[0].metadata_json, "{}");
}

TEST(BacklogImporterJsonl, OptionalFieldsDefault) {
  auto phases = MustParse("b.jsonl", R"({"run_id":"r1","phase_id":"p1"})");
  ASSERT_EQ(phases.size(), 1u);
  EXPECT_EQ(phases[0].phase_index, 0);
  EXPECT_EQ(phases[0].priority, 0);
  EXPECT_EQ(phases[0].last_error, "");
  EXPECT_TRUE(phases[0].labels.empty());
  EXPECT_EQ(phases[0].metadata_json, "{}");
}

TEST(BacklogImporterJsonl, NullOptionalFieldsMeanNotGiven) {
  auto phases = MustParse(
      "b.jsonl",
      R"({"run_id":"r1","phase_id":"p1","phase_index":null,"priority":null,"last_error":null,"labels":null})");
  ASSERT_EQ(phases.size(), 1u);
  EXPECT_EQ(phases[0].phase_index, 0);
  EXPECT_EQ(phases[0].metadata_json, "{}");
}

TEST(BacklogImporterJsonl, KeepsOtherFieldsAsMetadata) {
  auto phases = MustParse(
      "b.jsonl",
      R"({"run_id":"r1","phase_id":"p1","family":"research","failed_at":"2025-01-02T03:04:05Z",)"
      R"("extra":{"n":[1,2]},"score":1.5})");
  ASSERT_EQ(phases.size(), 1u);
  nlohmann::json metadata = nlohmann::json::parse(phases[0].metadata_json);
  EXPECT_EQ(metadata,
            nlohmann::json::parse(R"({"family":"research","failed_at":"2025-01-02T03:04:05Z",
                                              "extra":{"n":[1,2]},"score":1.5})"));
}

TEST(BacklogImporterJsonl, KeepsFileOrderAndSkipsBlankLines) {
  auto phases = MustParse("b.jsonl",
                          "\n"
                          R"({"run_id":"r2","phase_id":"b"})"
                          "\n   \n\t\n"
                          R"({"run_id":"r1","phase_id":"a"})"
                          "\n\n");
  ASSERT_EQ(phases.size(), 2u);
  EXPECT_EQ(phases[0].run_id, "r2");
  EXPECT_EQ(phases[1].run_id, "r1");
}

TEST(BacklogImporterJsonl, AcceptsCrlfAndBom) {
  auto phases = MustParse("b.jsonl",
                          "\xEF\xBB\xBF"
                          R"({"run_id":"r1","phase_id":"p1"})"
                          "\r\n\r\n"
                          R"({"run_id":"r1","phase_id":"p2"})"
                          "\r\n");
  ASSERT_EQ(phases.size(), 2u);
  EXPECT_EQ(phases[0].phase_id, "p1");
  EXPECT_EQ(phases[1].phase_id, "p2");
}

TEST(BacklogImporterJsonl, KeepsUnicodeInLastErrorAndMetadata) {
  auto phases = MustParse(
      "b.jsonl", R"({"run_id":"r1","phase_id":"p1","last_error":"caf\u00e9 ✗","note":"ü"})");
  ASSERT_EQ(phases.size(), 1u);
  EXPECT_EQ(phases[0].last_error, "caf\xC3\xA9 \xE2\x9C\x97");
  EXPECT_EQ(nlohmann::json::parse(phases[0].metadata_json)["note"], "\xC3\xBC");
}

TEST(BacklogImporterJsonl, RejectsMissingRequiredField) {
  std::string content = R"({"run_id":"r1","phase_id":"p1"})"
                        "\n\n"
                        R"({"run_id":"r1"})"
                        "\n";
  EXPECT_EQ(Rejection(ParseBacklog("backlog.jsonl", content)),
            R"(backlog.jsonl:3: field "phase_id" missing)");
  EXPECT_EQ(Rejection(ParseBacklog("backlog.jsonl", R"({"phase_id":"p1"})")),
            R"(backlog.jsonl:1: field "run_id" missing)");
}

TEST(BacklogImporterJsonl, RejectsEmptyRequiredField) {
  EXPECT_EQ(Rejection(ParseBacklog("b.jsonl", R"({"run_id":"","phase_id":"p1"})")),
            R"(b.jsonl:1: field "run_id" is empty)");
}

TEST(BacklogImporterJsonl, RejectsForbiddenCharacterInIdentifier) {
  std::string content = R"({"run_id":"r1","phase_id":"p1"})"
                        "\n"
                        R"({"run_id":"r1","phase_id":"p 2"})";
  std::string message = Rejection(ParseBacklog("b.jsonl", content));
  EXPECT_THAT(message, StartsWith(R"(b.jsonl:2: field "phase_id" has forbidden character ' ')"));
  EXPECT_THAT(message, HasSubstr("position 2"));
  EXPECT_THAT(Rejection(ParseBacklog("b.jsonl", R"({"run_id":"..","phase_id":"p"})")),
              StartsWith(R"(b.jsonl:1: field "run_id" must not be)"));
  EXPECT_THAT(Rejection(ParseBacklog(
                  "b.jsonl", R"({"run_id":"r","phase_id":")" + std::string(129, 'x') + R"("})")),
              StartsWith(R"(b.jsonl:1: field "phase_id" is 129 characters long)"));
}

TEST(BacklogImporterJsonl, RejectsRequiredFieldOfWrongType) {
  EXPECT_EQ(Rejection(ParseBacklog("b.jsonl", R"({"run_id":7,"phase_id":"p1"})")),
            R"(b.jsonl:1: field "run_id" must be a string (got integer))");
}

TEST(BacklogImporterJsonl, RejectsInvalidJson) {
  std::string content = R"({"run_id":"r1","phase_id":"p1"})"
                        "\n"
                        R"({"run_id":"r1","phase_id":"p2"})"
                        "\n"
                        R"({"run_id":"r1", phase_id:"p3"})"
                        "\n";
  EXPECT_THAT(Rejection(ParseBacklog("backlog.jsonl", content)),
              StartsWith("backlog.jsonl:3: invalid JSON at column "));
  EXPECT_THAT(Rejection(ParseBacklog("b.jsonl", R"({"run_id":"r1","phase_id":"p1"} trailing)")),
              StartsWith("b.jsonl:1: invalid JSON"));
}

TEST(BacklogImporterJsonl, RejectsLineThatIsNotAnObject) {
  EXPECT_EQ(Rejection(ParseBacklog("b.jsonl", "{\"run_id\":\"r\",\"phase_id\":\"p\"}\n[1,2]\n")),
            "b.jsonl:2: expected a JSON object, got array");
}

TEST(BacklogImporterJsonl, RejectsNonIntegerNumbers) {
  EXPECT_EQ(
      Rejection(ParseBacklog("b.jsonl", R"({"run_id":"r","phase_id":"p","phase_index":1.5})")),
      R"(b.jsonl:1: field "phase_index" must be an integer (got number 1.5))");
  EXPECT_EQ(Rejection(ParseBacklog("b.jsonl", R"({"run_id":"r","phase_id":"p","priority":"3"})")),
            R"(b.jsonl:1: field "priority" must be an integer (got string "3"))");
  EXPECT_EQ(Rejection(ParseBacklog(
                "b.jsonl", R"({"run_id":"r","phase_id":"p","priority":18446744073709551615})")),
            R"(b.jsonl:1: field "priority" is out of range (18446744073709551615))");
  EXPECT_EQ(Rejection(ParseBacklog("b.jsonl", R"({"run_id":"r","phase_id":"p","phase_index":-1})")),
            R"(b.jsonl:1: field "phase_index" must not be negative (got -1))");
}

TEST(BacklogImporterJsonl, RejectsBadLabels) {
  EXPECT_EQ(Rejection(ParseBacklog("b.jsonl", R"({"run_id":"r","phase_id":"p","labels":"a;b"})")),
            R"(b.jsonl:1: field "labels" must be an array of identifiers (got string))");
  EXPECT_EQ(Rejection(ParseBacklog("b.jsonl", R"({"run_id":"r","phase_id":"p","labels":["a",2]})")),
            R"(b.jsonl:1: field "labels" element 2 must be a string (got integer))");
  EXPECT_THAT(
      Rejection(ParseBacklog("b.jsonl", R"({"run_id":"r","phase_id":"p","labels":["a/b"]})")),
      StartsWith(R"(b.jsonl:1: field "labels" has forbidden character '/')"));
}

TEST(BacklogImporterJsonl, RejectsLastErrorOfWrongType) {
  EXPECT_EQ(
      Rejection(ParseBacklog("b.jsonl", R"({"run_id":"r","phase_id":"p","last_error":{"a":1}})")),
      R"(b.jsonl:1: field "last_error" must be a string (got object))");
}

TEST(BacklogImporterJsonl, RejectsDuplicatePhase) {
  std::string content = R"({"run_id":"r0","phase_id":"p1"})"
                        "\n"
                        R"({"run_id":"r1","phase_id":"p1"})"
                        "\n"
                        R"({"run_id":"r1","phase_id":"p2"})"
                        "\n\n"
                        R"({"run_id":"r1","phase_id":"p1","priority":4})"
                        "\n";
  EXPECT_EQ(Rejection(ParseBacklog("backlog.jsonl", content)),
            "backlog.jsonl:5: duplicate phase run_id=r1 phase_id=p1 (first at line 2)");
}

TEST(BacklogImporterJsonl, SamePhaseIdInDifferentRunsIsFine) {
  auto phases = MustParse("b.jsonl",
                          "{\"run_id\":\"r1\",\"phase_id\":\"p\"}\n"
                          "{\"run_id\":\"r2\",\"phase_id\":\"p\"}\n");
  EXPECT_EQ(phases.size(), 2u);
}

TEST(BacklogImporterJsonl, RejectsOverlongLine) {
  std::string ok_row = R"({"run_id":"r1","phase_id":"p1","pad":")";
  ok_row += std::string(kMaxBacklogLineBytes - ok_row.size() - 2, 'x') + "\"}";
  ASSERT_EQ(ok_row.size(), kMaxBacklogLineBytes);
  EXPECT_EQ(MustParse("b.jsonl", ok_row + "\r\n").size(), 1u);  // the CRLF does not count

  std::string long_row = R"({"run_id":"r1","phase_id":"p2","pad":")";
  long_row += std::string(70000 - long_row.size() - 2, 'x') + "\"}";
  EXPECT_EQ(Rejection(ParseBacklog("backlog.jsonl", ok_row + "\n" + long_row + "\n")),
            "backlog.jsonl:2: line is 70000 bytes long (at most 65536)");
}

TEST(BacklogImporterJsonl, RejectsInvalidUtf8) {
  std::string content =
      "{\"run_id\":\"r1\",\"phase_id\":\"p1\"}\n"
      "{\"run_id\":\"r1\",\"phase_id\":\"p2\",\"last_error\":\"bad \xC3\x28\"}\n";
  EXPECT_EQ(Rejection(ParseBacklog("b.jsonl", content)), "b.jsonl:2: invalid UTF-8 at byte 50");
  // Overlong encoding, surrogate, truncated sequence at the end of a line.
  EXPECT_EQ(Rejection(ParseBacklog("b.jsonl", "\xC0\xAF\n")), "b.jsonl:1: invalid UTF-8 at byte 1");
  EXPECT_EQ(Rejection(ParseBacklog("b.jsonl", "{\"a\":\"\xED\xA0\x80\"}")),
            "b.jsonl:1: invalid UTF-8 at byte 7");
  EXPECT_EQ(Rejection(ParseBacklog("b.jsonl",
                                   "{\"run_id\":\"r\",\"phase_id\":\"p\"}\n{\"a\":\"\xE2\x9C")),
            "b.jsonl:2: invalid UTF-8 at byte 7");
}

TEST(BacklogImporterJsonl, RejectsFileWithNoPhases) {
  EXPECT_EQ(Rejection(ParseBacklog("backlog.jsonl", "")),
            "backlog.jsonl: no phases (file is empty)");
  EXPECT_EQ(Rejection(ParseBacklog("backlog.jsonl", "\n  \r\n\n")),
            "backlog.jsonl: no phases (file is empty)");
  EXPECT_EQ(Rejection(ParseBacklog("backlog.jsonl", "\xEF\xBB\xBF")),
            "backlog.jsonl: no phases (file is empty)");
}

TEST(BacklogImporterJsonl, ReportsTheFirstProblemInFileOrder) {
  std::string content =
      "{\"run_id\":\"r1\"}\n"
      "{\"run_id\":\"r1\",\"phase_id\":\"p\xFF\"}\n";
  EXPECT_EQ(Rejection(ParseBacklog("b.jsonl", content)), R"(b.jsonl:1: field "phase_id" missing)");
}

// ---------------------------------------------------------------------------
// CSV

TEST(BacklogImporterCsv, ParsesHeaderAndRows) {
  auto phases = MustParse("b.csv",
                          "run_id,phase_id,phase_index,priority,last_error,labels\n"
                          "r1,p1,0,5,boom,linux;gpu\n"
                          "r1,p2,1,,,\n");
  ASSERT_EQ(phases.size(), 2u);
  EXPECT_EQ(phases[0].run_id, "r1");
  EXPECT_EQ(phases[0].phase_id, "p1");
  EXPECT_EQ(phases[0].phase_index, 0);
  EXPECT_EQ(phases[0].priority, 5);
  EXPECT_EQ(phases[0].last_error, "boom");
  EXPECT_THAT(phases[0].labels, ElementsAre("linux", "gpu"));
  EXPECT_EQ(phases[1].phase_index, 1);
  EXPECT_EQ(phases[1].priority, 0);
  EXPECT_TRUE(phases[1].labels.empty());
  EXPECT_EQ(phases[1].metadata_json, "{}");
}

TEST(BacklogImporterCsv, ColumnsMayComeInAnyOrder) {
  auto phases = MustParse("b.csv", " phase_id , run_id\np1,r1\n");
  ASSERT_EQ(phases.size(), 1u);
  EXPECT_EQ(phases[0].run_id, "r1");
  EXPECT_EQ(phases[0].phase_id, "p1");
}

TEST(BacklogImporterCsv, HandlesQuotingAndEscapedQuotes) {
  auto phases = MustParse("b.csv",
                          "run_id,phase_id,last_error,note\n"
                          "r1,\"p1\",\"KeyError: 'x', then \"\"boom\"\"\",\"a,b\"\n"
                          "r1,p2,\"\",\n");
  ASSERT_EQ(phases.size(), 2u);
  EXPECT_EQ(phases[0].phase_id, "p1");
  EXPECT_EQ(phases[0].last_error, "KeyError: 'x', then \"boom\"");
  EXPECT_EQ(nlohmann::json::parse(phases[0].metadata_json)["note"], "a,b");
  EXPECT_EQ(phases[1].last_error, "");
  EXPECT_EQ(phases[1].metadata_json, "{}");  // empty cells are not kept
}

TEST(BacklogImporterCsv, QuotedFieldMaySpanLines) {
  // The duplicate is on line 7: the multi-line record counts its own lines.
  EXPECT_EQ(Rejection(ParseBacklog("b.csv",
                                   "run_id,phase_id,last_error\r\n"
                                   "r1,p1,\"Traceback (most recent call last):\r\n"
                                   "\r\n"
                                   "  File \"\"x.py\"\", line 3\r\n"
                                   "ImportError: nope\"\r\n"
                                   "r1,p2,x\r\n"
                                   "r1,p2,dup\r\n")),
            "b.csv:7: duplicate phase run_id=r1 phase_id=p2 (first at line 6)");
  auto ok = MustParse("b.csv",
                      "run_id,phase_id,last_error\r\n"
                      "r1,p1,\"Traceback (most recent call last):\r\n"
                      "\r\n"
                      "  File \"\"x.py\"\", line 3\r\n"
                      "ImportError: nope\"\r\n"
                      "r1,p2,x\r\n");
  ASSERT_EQ(ok.size(), 2u);
  EXPECT_EQ(ok[0].last_error,
            "Traceback (most recent call last):\n\n  File \"x.py\", line 3\nImportError: nope");
}

TEST(BacklogImporterCsv, ErrorLineIsWhereTheRecordStarts) {
  std::string content =
      "run_id,phase_id,last_error\n"
      "r1,p1,\"one\n"
      "two\"\n"
      "r1,\"p 2\",\"three\n"
      "four\"\n";
  EXPECT_THAT(Rejection(ParseBacklog("b.csv", content)),
              StartsWith(R"(b.csv:4: field "phase_id" has forbidden character ' ')"));
}

TEST(BacklogImporterCsv, ParsesLabels) {
  auto phases = MustParse("b.csv",
                          "run_id,phase_id,labels\n"
                          "r1,p1, linux ; py312;;\n"
                          "r1,p2,\"gpu\"\n");
  ASSERT_EQ(phases.size(), 2u);
  EXPECT_THAT(phases[0].labels, ElementsAre("linux", "py312"));
  EXPECT_THAT(phases[1].labels, ElementsAre("gpu"));
  EXPECT_THAT(Rejection(ParseBacklog("b.csv", "run_id,phase_id,labels\nr1,p1,ok;bad label\n")),
              StartsWith(R"(b.csv:2: field "labels" has forbidden character ' ')"));
}

TEST(BacklogImporterCsv, KeepsOtherColumnsAsMetadata) {
  auto phases = MustParse("b.csv",
                          "run_id,phase_id,family,failed_at\n"
                          "r1,p1,research,2025-01-02T03:04:05Z\n");
  ASSERT_EQ(phases.size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(phases[0].metadata_json),
            nlohmann::json::parse(R"({"family":"research","failed_at":"2025-01-02T03:04:05Z"})"));
}

TEST(BacklogImporterCsv, AcceptsNumericStrings) {
  auto phases = MustParse("b.csv",
                          "run_id,phase_id,phase_index,priority\n"
                          "r1,p1, 12 ,-3\n"
                          "r1,p2,+4,\"7\"\n");
  ASSERT_EQ(phases.size(), 2u);
  EXPECT_EQ(phases[0].phase_index, 12);
  EXPECT_EQ(phases[0].priority, -3);
  EXPECT_EQ(phases[1].phase_index, 4);
  EXPECT_EQ(phases[1].priority, 7);
}

TEST(BacklogImporterCsv, RejectsNonIntegerNumbers) {
  EXPECT_EQ(Rejection(ParseBacklog("b.csv", "run_id,phase_id,phase_index\nr1,p1,0\nr1,p2,2.5\n")),
            R"(b.csv:3: field "phase_index" must be an integer (got "2.5"))");
  EXPECT_EQ(Rejection(ParseBacklog("b.csv", "run_id,phase_id,priority\nr1,p1,high\n")),
            R"(b.csv:2: field "priority" must be an integer (got "high"))");
  EXPECT_EQ(
      Rejection(ParseBacklog("b.csv", "run_id,phase_id,priority\nr1,p1,99999999999999999999\n")),
      R"(b.csv:2: field "priority" is out of range (99999999999999999999))");
  EXPECT_EQ(Rejection(ParseBacklog("b.csv", "run_id,phase_id,phase_index\nr1,p1,-1\n")),
            R"(b.csv:2: field "phase_index" must not be negative (got -1))");
}

TEST(BacklogImporterCsv, AcceptsBomAndSkipsBlankLines) {
  auto phases = MustParse("b.csv",
                          "\xEF\xBB\xBFrun_id,phase_id\r\n"
                          "\r\n"
                          "r1,p1\r\n"
                          "   \r\n"
                          "r1,p2");
  ASSERT_EQ(phases.size(), 2u);
  EXPECT_EQ(phases[0].run_id, "r1");  // not "\xEF\xBB\xBFrun_id"-keyed
}

TEST(BacklogImporterCsv, RejectsMissingRequiredColumn) {
  EXPECT_EQ(Rejection(ParseBacklog("b.csv", "\nrun_id,phase\nr1,p1\n")),
            R"(b.csv:2: header has no "phase_id" column)");
}

TEST(BacklogImporterCsv, RejectsBadHeader) {
  EXPECT_EQ(Rejection(ParseBacklog("b.csv", "run_id,phase_id,run_id\nr1,p1,r2\n")),
            R"(b.csv:1: header names column "run_id" twice)");
  EXPECT_EQ(Rejection(ParseBacklog("b.csv", "run_id,,phase_id\nr1,x,p1\n")),
            "b.csv:1: header column 2 has no name");
}

TEST(BacklogImporterCsv, RejectsEmptyRequiredField) {
  EXPECT_EQ(Rejection(ParseBacklog("b.csv", "run_id,phase_id\nr1,p1\nr1,\n")),
            R"(b.csv:3: field "phase_id" is empty)");
}

TEST(BacklogImporterCsv, RejectsWrongFieldCount) {
  EXPECT_EQ(Rejection(ParseBacklog("b.csv", "run_id,phase_id\nr1,p1\nr1,p2,extra\n")),
            "b.csv:3: row has 3 fields, the header has 2");
  EXPECT_EQ(Rejection(ParseBacklog("b.csv", "run_id,phase_id,x\nr1,p1\n")),
            "b.csv:2: row has 2 fields, the header has 3");
}

TEST(BacklogImporterCsv, RejectsMalformedQuoting) {
  EXPECT_EQ(Rejection(ParseBacklog("b.csv", "run_id,phase_id\nr1,\"p1\"x\n")),
            "b.csv:2: unexpected character 'x' after the closing quote of field 2");
  EXPECT_EQ(Rejection(ParseBacklog("b.csv", "run_id,phase_id\nr1,p\"1\n")),
            "b.csv:2: a '\"' inside unquoted field 2 (quote the whole field and double the '\"')");
  EXPECT_EQ(Rejection(ParseBacklog("b.csv", "run_id,phase_id\nr1,p1\nr1,\"p2\n\nmore\n")),
            "b.csv:3: unterminated quoted field (the record starts on this line)");
}

TEST(BacklogImporterCsv, RejectsDuplicatePhase) {
  EXPECT_EQ(Rejection(ParseBacklog("b.csv", "run_id,phase_id\nr1,p1\nr1,p2\nr1,p1\n")),
            "b.csv:4: duplicate phase run_id=r1 phase_id=p1 (first at line 2)");
}

TEST(BacklogImporterCsv, RejectsOverlongLineInsideQuotedField) {
  std::string content =
      "run_id,phase_id,last_error\nr1,p1,\"start\n" + std::string(69999, 'x') + "\"\n";
  EXPECT_EQ(Rejection(ParseBacklog("b.csv", content)),
            "b.csv:3: line is 70000 bytes long (at most 65536)");
}

TEST(BacklogImporterCsv, RejectsInvalidUtf8) {
  EXPECT_EQ(Rejection(ParseBacklog("b.csv", "run_id,phase_id,last_error\nr1,p1,ok\nr1,p2,\xFF\n")),
            "b.csv:3: invalid UTF-8 at byte 7");
}

TEST(BacklogImporterCsv, RejectsFileWithNoPhases) {
  EXPECT_EQ(Rejection(ParseBacklog("b.csv", "")), "b.csv: no phases (file is empty)");
  EXPECT_EQ(Rejection(ParseBacklog("b.csv", "run_id,phase_id\r\n\r\n")),
            "b.csv: no phases (only a header row)");
}

// ---------------------------------------------------------------------------
// Format detection and files

TEST(BacklogImporterFormat, DetectsFormatFromNameThenContent) {
  const std::string jsonl = R"({"run_id":"r1","phase_id":"p1"})";
  const std::string csv = "run_id,phase_id\nr1,p1\n";
  EXPECT_EQ(MustParse("x.jsonl", jsonl).size(), 1u);
  EXPECT_EQ(MustParse("x.JSON", jsonl).size(), 1u);
  EXPECT_EQ(MustParse("x.csv", csv).size(), 1u);
  EXPECT_EQ(MustParse("backlog.txt", "\xEF\xBB\xBF \r\n" + jsonl).size(), 1u);  // sniffed: '{'
  EXPECT_EQ(MustParse("backlog.txt", csv).size(), 1u);                          // sniffed: CSV
  EXPECT_EQ(MustParse("-", csv).size(), 1u);
  // A name saying JSONL wins over the content.
  EXPECT_THAT(Rejection(ParseBacklog("x.jsonl", csv)), StartsWith("x.jsonl:1: invalid JSON"));
}

TEST(BacklogImporterFormat, ExplicitFormatOverridesDetection) {
  const std::string jsonl = R"({"run_id":"r1","phase_id":"p1"})";
  EXPECT_EQ(MustParse("x.csv", jsonl, BacklogFormat::kJsonl).size(), 1u);
  EXPECT_EQ(MustParse("x.jsonl", "run_id,phase_id\nr1,p1\n", BacklogFormat::kCsv).size(), 1u);
}

TEST(BacklogImporterFile, ReadsFile) {
  testing::ScratchDir dir;
  const std::string path = dir.File("backlog.jsonl");
  testing::WriteFile(path, "{\"run_id\":\"r1\",\"phase_id\":\"p1\"}\n{\"run_id\":\"r1\"}\n");
  EXPECT_EQ(Rejection(ReadBacklogFile(path)), path + R"(:2: field "phase_id" missing)");
  testing::WriteFile(path, "{\"run_id\":\"r1\",\"phase_id\":\"p1\"}\n");
  absl::StatusOr<std::vector<PhaseSpec>> phases = ReadBacklogFile(path);
  ASSERT_TRUE(phases.ok()) << phases.status();
  EXPECT_EQ(phases->size(), 1u);
}

TEST(BacklogImporterFile, MissingFileIsNotFound) {
  testing::ScratchDir dir;
  EXPECT_THAT(Rejection(ReadBacklogFile(dir.File("nope.jsonl")), absl::StatusCode::kNotFound),
              HasSubstr("nope.jsonl"));
}

TEST(BacklogImporterFile, DirectoryIsInvalidArgument) {
  testing::ScratchDir dir;
  EXPECT_THAT(Rejection(ReadBacklogFile(dir.path().string())), HasSubstr("is a directory"));
}

// ---------------------------------------------------------------------------
// The example backlogs shipped in examples/.

TEST(BacklogImporterExamples, ExampleJsonlParses) {
  absl::StatusOr<std::vector<PhaseSpec>> phases =
      ReadBacklogFile(testing::SourceDir() + "/examples/backlog.jsonl");
  ASSERT_TRUE(phases.ok()) << phases.status();
  std::set<std::string> runs;
  for (const PhaseSpec& p : *phases) runs.insert(p.run_id);
  EXPECT_GE(phases->size(), 50u);
  EXPECT_GE(runs.size(), 8u);
}

TEST(BacklogImporterExamples, ExampleCsvParses) {
  absl::StatusOr<std::vector<PhaseSpec>> phases =
      ReadBacklogFile(testing::SourceDir() + "/examples/backlog.csv");
  ASSERT_TRUE(phases.ok()) << phases.status();
  EXPECT_GE(phases->size(), 8u);
  bool has_labels = false;
  bool has_multiline_error = false;
  for (const PhaseSpec& p : *phases) {
    has_labels = has_labels || !p.labels.empty();
    has_multiline_error = has_multiline_error || p.last_error.find('\n') != std::string::npos;
  }
  EXPECT_TRUE(has_labels);
  EXPECT_TRUE(has_multiline_error);
}

}  // namespace
}  // namespace sluice

namespace sluice {
namespace {

// Regression: a number too large for a double made the JSON parser throw
// out_of_range, which escaped ParseBacklog (found by backlog_parser_fuzz).
TEST(BacklogImporterRegression, HugeNumberIsALineErrorNotACrash) {
  const std::string number = std::string(26, '7') + "e7777";
  auto parsed = ParseBacklog("big.jsonl",
                             "{\"run_id\":\"r\",\"phase_id\":\"p\",\"priority\":" + number + "}\n",
                             BacklogFormat::kJsonl);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(parsed.status().message()).find("big.jsonl:1:"), std::string::npos)
      << parsed.status().message();
}

}  // namespace
}  // namespace sluice

namespace sluice {
namespace {

// ---------------------------------------------------------------------------
// BacklogReader: the file a chunk at a time.

std::string JsonlPhase(int run, int phase) {
  return "{\"run_id\":\"run-" + std::to_string(run) + "\",\"phase_id\":\"p-" +
         std::to_string(phase) + "\"}\n";
}

TEST(BacklogReaderTest, FileComesInChunksOfAtMostTheAskedSizeAndInOrder) {
  testing::ScratchDir dir;
  const std::string path = dir.File("backlog.jsonl");
  std::string content;
  // ~3 MiB: the reader fills its 1 MiB buffer several times, with lines split
  // across the fills.
  for (int i = 0; i < 60000; ++i) content += JsonlPhase(i / 100, i);
  testing::WriteFile(path, content);
  absl::StatusOr<std::unique_ptr<BacklogReader>> reader = BacklogReader::Open(path);
  ASSERT_TRUE(reader.ok()) << reader.status();
  std::vector<PhaseSpec> chunk;
  int seen = 0;
  int chunks = 0;
  while (true) {
    ASSERT_TRUE((*reader)->Next(7000, &chunk).ok());
    if (chunk.empty()) break;
    ++chunks;
    EXPECT_LE(chunk.size(), 7000u);
    for (const PhaseSpec& p : chunk) {
      ASSERT_EQ(p.phase_id, "p-" + std::to_string(seen)) << "out of order";
      ++seen;
    }
  }
  EXPECT_EQ(seen, 60000);
  EXPECT_EQ(chunks, 9);
}

TEST(BacklogReaderTest, AProblemAfterEarlierChunksIsReportedWithItsLineAndEndsTheReading) {
  testing::ScratchDir dir;
  const std::string path = dir.File("backlog.jsonl");
  std::string content;
  for (int i = 0; i < 100; ++i) content += JsonlPhase(1, i);
  content += JsonlPhase(1, 5);  // line 101 repeats line 6
  content += JsonlPhase(1, 200);
  testing::WriteFile(path, content);
  absl::StatusOr<std::unique_ptr<BacklogReader>> reader = BacklogReader::Open(path);
  ASSERT_TRUE(reader.ok()) << reader.status();
  std::vector<PhaseSpec> chunk;
  ASSERT_TRUE((*reader)->Next(60, &chunk).ok());
  EXPECT_EQ(chunk.size(), 60u);
  absl::Status failed = (*reader)->Next(60, &chunk);
  EXPECT_EQ(failed.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(failed.message(), path +
                                  ":101: duplicate phase run_id=run-1 phase_id=p-5 (first at "
                                  "line 6)");
  EXPECT_TRUE(chunk.empty());
  EXPECT_EQ((*reader)->Next(60, &chunk), failed) << "the error sticks";
}

TEST(BacklogReaderTest, AnOverlongLineInAFileIsMeasuredNotHeld) {
  testing::ScratchDir dir;
  const std::string path = dir.File("backlog.jsonl");
  const std::string huge(3 * 1024 * 1024, 'x');  // longer than one read of the file
  testing::WriteFile(path, JsonlPhase(1, 1) + huge + "\r\n" + JsonlPhase(1, 2));
  EXPECT_EQ(Rejection(ReadBacklogFile(path)),
            absl::StrCat(path, ":2: line is ", huge.size(), " bytes long (at most ",
                         kMaxBacklogLineBytes, ")"));
  testing::WriteFile(path, JsonlPhase(1, 1) + huge);  // also as the last line
  EXPECT_THAT(Rejection(ReadBacklogFile(path)), HasSubstr(":2: line is "));
}

TEST(BacklogReaderTest, CsvRecordSpanningLinesAndBomWorkFromAFile) {
  testing::ScratchDir dir;
  const std::string path = dir.File("backlog.csv");
  testing::WriteFile(path, "\xEF\xBB\xBF\n\nrun_id,phase_id,last_error\r\nr1,p1,\"two\nlines\"\n");
  absl::StatusOr<std::vector<PhaseSpec>> phases = ReadBacklogFile(path);
  ASSERT_TRUE(phases.ok()) << phases.status();
  ASSERT_EQ(phases->size(), 1u);
  EXPECT_EQ((*phases)[0].last_error, "two\nlines");
}

}  // namespace
}  // namespace sluice
