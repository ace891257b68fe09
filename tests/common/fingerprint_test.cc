#include "common/fingerprint.h"

#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sluice {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;

std::string FailedId(const std::string& text) {
  return ComputeFingerprint(Outcome::kFailed, 1, 0, text).id;
}

TEST(FingerprintTest, ImportErrorWithDifferentLinesAndPathsSharesOneFingerprint) {
  const std::vector<std::string> texts = {
      "ImportError while importing test module '/home/ci/work/tests/test_api.py'.\n"
      "  File \"/usr/lib/python3/dist-packages/foo/bar.py\", line 42, in <module>\n"
      "ImportError: cannot import name 'Client' from 'foo'",
      "ImportError while importing test module '/srv/build/7/tests/test_api.py'.\n"
      "  File \"/opt/venv/lib/python3.11/site-packages/foo/bar.py\", line 1337, in <module>\n"
      "ImportError: cannot import name 'Client' from 'foo'",
      "ImportError while importing test module 'C:\\dev\\Autopack\\tests\\test_api.py'.\n"
      "  File \"c:\\Python311\\Lib\\site-packages\\foo\\bar.py\", line 7, in <module>\n"
      "ImportError: cannot import name 'Client' from 'foo'",
      "ImportError while importing test module 'D:/ci/tests/test_api.py'.\n"
      "  File \"./venv/lib/foo/bar.py\", line 9, in <module>\n"
      "ImportError: cannot import name 'Client' from 'foo'",
  };
  std::set<std::string> ids;
  for (const std::string& text : texts) ids.insert(FailedId(text));
  EXPECT_THAT(ids, SizeIs(1));
}

TEST(FingerprintTest, ImportErrorAndSyntaxErrorDiffer) {
  const std::string import_error =
      "  File \"/usr/lib/python3/x.py\", line 42\nImportError: cannot import name 'Client'";
  const std::string syntax_error =
      "  File \"/usr/lib/python3/x.py\", line 42\nSyntaxError: invalid syntax";
  EXPECT_NE(FailedId(import_error), FailedId(syntax_error));
}

TEST(FingerprintTest, PromptTooLongErrorsShareOneFingerprint) {
  const std::vector<std::pair<int, std::string>> variants = {
      {203412, "req_011CWQs7a9XbYv2pLq"},
      {208771, "req_011CWQt3ZZk1"},
      {200001, "req_011CWR9pQ2mNn8x"},
      {254000, "req_011CWRa1b2c3d4e5f6g7h8"},
      {999999, "req_9z"},
  };
  std::set<std::string> ids;
  for (const auto& [tokens, request_id] : variants) {
    const std::string text = "anthropic.BadRequestError: Error code: 400 - prompt is too long: " +
                             std::to_string(tokens) + " tokens > 200000 maximum, 'request_id': '" +
                             request_id + "'";
    ids.insert(FailedId(text));
  }
  EXPECT_THAT(ids, SizeIs(1));
}

TEST(FingerprintTest, PromptTooLongInApiErrorBodyMasksRequestIds) {
  // The same error as the API formats it, request id outside a key/value pair.
  const std::string a =
      "Error code: 400 - {'type': 'error', 'error': {'type': 'invalid_request_error', "
      "'message': 'prompt is too long: 203412 tokens > 200000 maximum'}} req_011CWQs7a9XbYv2pLq";
  const std::string b =
      "Error code: 400 - {'type': 'error', 'error': {'type': 'invalid_request_error', "
      "'message': 'prompt is too long: 208771 tokens > 200000 maximum'}} req_011CWQt3ZZk1";
  EXPECT_EQ(FailedId(a), FailedId(b));
  EXPECT_THAT(NormalizeErrorText(a), HasSubstr("invalid_request_error"));
}

TEST(FingerprintTest, CollectionImportErrorKeepsSlashJoinedWords) {
  const Fingerprint fp = ComputeFingerprint(
      Outcome::kFailed, 2, 0,
      "CI collection/import error: tests/autopack/workflow/test_research_review.py "
      "(ImportError while importing test module "
      "'c:\\dev\\Autopack\\tests\\autopack\\workflow\\test_research_review.py'.)");
  EXPECT_THAT(fp.key, HasSubstr("collection/import"));
  EXPECT_EQ(fp.key,
            "failed|exit:2|ci collection/import error: <path> (importerror while importing test "
            "module '<path>'.)");
}

TEST(FingerprintTest, OrdinarySlashJoinedWordsAreKept) {
  EXPECT_EQ(NormalizeErrorText("read and/or write application/json via tcp/ip"),
            "read and/or write application/json via tcp/ip");
}

TEST(FingerprintTest, PathLikeTokensAreMasked) {
  EXPECT_EQ(NormalizeErrorText("/usr/lib/python3/x.py"), "<path>");
  EXPECT_EQ(NormalizeErrorText("./a/b.py"), "<path>");
  EXPECT_EQ(NormalizeErrorText("see src/main.cc"), "see <path>");
  EXPECT_EQ(NormalizeErrorText("in a/b/c"), "in <path>");
  EXPECT_EQ(NormalizeErrorText("C:/x/y failed"), "<path> failed");
  EXPECT_EQ(NormalizeErrorText("open c:\\dev\\x.py."), "open <path>.");
  EXPECT_EQ(NormalizeErrorText("tests/test_x.py::test_y FAILED"), "<path>::test_y failed");
  EXPECT_EQ(NormalizeErrorText(R"(can't open file 'C:\\Users\\me\\x.py')"),
            "can't open file '<path>'");
  EXPECT_EQ(NormalizeErrorText(R"(share \\build01\drop\x.log)"), "share <path>");
}

TEST(FingerprintTest, UuidsAreMasked) {
  EXPECT_EQ(NormalizeErrorText("job 3F2504E0-4F89-11D3-9A0C-0305E82C3301 failed"),
            "job <uuid> failed");
}

TEST(FingerprintTest, HexAddressesAreMasked) {
  EXPECT_EQ(NormalizeErrorText("segfault at 0x7f3a2b1c00 ip 0x0000555555554000"),
            "segfault at <hex> ip <hex>");
  EXPECT_EQ(NormalizeErrorText("at commit 4b0312121a73e61"), "at commit <hex>");
}

TEST(FingerprintTest, TimestampsAreMasked) {
  EXPECT_EQ(NormalizeErrorText("2024-01-02T03:04:05Z boom"), "<date> <time> boom");
  EXPECT_EQ(NormalizeErrorText("[2024-01-02 03:04:05,123] boom"), "[<date> <time>] boom");
  EXPECT_EQ(NormalizeErrorText("2025-06-30T23:59:59.999+02:00 boom"), "<date> <time> boom");
  EXPECT_EQ(NormalizeErrorText("on 2024/01/02 at 03:04:05"), "on <date> at <time>");
}

TEST(FingerprintTest, HostPortsAreMasked) {
  EXPECT_EQ(NormalizeErrorText("connect to localhost:8080 refused"),
            "connect to <host>:<port> refused");
  EXPECT_EQ(NormalizeErrorText("connect to 127.0.0.1:5432 refused"),
            "connect to <host>:<port> refused");
  EXPECT_EQ(NormalizeErrorText("GET http://localhost:8080/api/v1/x?y=1 failed"),
            "get http://<host>:<port>/<path> failed");
}

TEST(FingerprintTest, DurationsAreMasked) {
  EXPECT_EQ(NormalizeErrorText("timed out after 12.5s"), "timed out after <dur>");
  EXPECT_EQ(NormalizeErrorText("timed out after 300ms"), "timed out after <dur>");
  EXPECT_EQ(NormalizeErrorText("timed out after 2m30s"), "timed out after <dur>");
  EXPECT_EQ(NormalizeErrorText("timed out after 30 seconds"), "timed out after <dur>");
}

TEST(FingerprintTest, LineAndColumnNumbersAreMasked) {
  EXPECT_EQ(NormalizeErrorText("error at line 42, column 7"), "error at line <n>, column <n>");
  EXPECT_EQ(NormalizeErrorText("main.cc:42:7: error: expected ';'"),
            "main.cc:<n>:<n>: error: expected ';'");
  EXPECT_EQ(FailedId("x.py:42:7: SyntaxError"), FailedId("x.py:1:12: SyntaxError"));
}

TEST(FingerprintTest, TraceIdsAndLongTokensAreMasked) {
  EXPECT_EQ(NormalizeErrorText("trace_id=4bf92f3577b34da6a3ce929d0e0e4736 failed"),
            "trace_id=<id> failed");
  EXPECT_EQ(NormalizeErrorText("X-Request-Id: abc"), "x-request-id: <id>");
  EXPECT_EQ(NormalizeErrorText("token a1b2c3d4e5f6g7h8i9 expired"), "token <id> expired");
  // Long words without digits are words, not ids.
  EXPECT_EQ(NormalizeErrorText("InternalServerErrorException"), "internalservererrorexception");
}

TEST(FingerprintTest, AllNumbersAreMasked) {
  EXPECT_EQ(NormalizeErrorText("203456 tokens > 200000 maximum"), "<n> tokens > <n> maximum");
  EXPECT_EQ(FailedId("exit status 3 after 17 retries"), FailedId("exit status 4 after 2 retries"));
}

TEST(FingerprintTest, WhitespaceIsCollapsedAndTrimmed) {
  EXPECT_EQ(NormalizeErrorText("  a\t\tb \n\n c  "), "a b c");
}

TEST(FingerprintTest, TextIsCaseInsensitive) {
  EXPECT_EQ(NormalizeErrorText("ImportError: No Module"), "importerror: no module");
  EXPECT_EQ(FailedId("IMPORTERROR: NO MODULE"), FailedId("importerror: no module"));
}

TEST(FingerprintTest, EmptyTextIsAccepted) {
  EXPECT_EQ(NormalizeErrorText(""), "");
  const Fingerprint fp = ComputeFingerprint(Outcome::kFailed, 1, 0, "");
  EXPECT_EQ(fp.key, "failed|exit:1|");
  EXPECT_THAT(fp.id, SizeIs(12));
}

TEST(FingerprintTest, KeyKeepsAtMost200BytesOfText) {
  const Fingerprint fp = ComputeFingerprint(Outcome::kFailed, 1, 0, std::string(500, 'x'));
  EXPECT_EQ(fp.key, "failed|exit:1|" + std::string(200, 'x'));
  // Texts differing only after the first 200 characters share a fingerprint.
  EXPECT_EQ(FailedId(std::string(200, 'x') + " tail one"),
            FailedId(std::string(200, 'x') + " tail two"));
}

TEST(FingerprintTest, TruncationDoesNotSplitUtf8Sequences) {
  // 199 ASCII bytes and a two-byte "é": byte 200 would be in its middle.
  const Fingerprint fp =
      ComputeFingerprint(Outcome::kFailed, 1, 0, std::string(199, 'x') + "\xc3\xa9tail");
  EXPECT_EQ(fp.key, "failed|exit:1|" + std::string(199, 'x'));
}

TEST(FingerprintTest, NonAsciiTextPassesThrough) {
  EXPECT_EQ(NormalizeErrorText("Fehler: Datei größer als erlaubt"),
            "fehler: datei größer als erlaubt");
}

TEST(FingerprintTest, DifferentOutcomesAndExitClassesDiffer) {
  const std::string text = "boom";
  const std::set<std::string> ids = {
      ComputeFingerprint(Outcome::kFailed, 1, 0, text).id,
      ComputeFingerprint(Outcome::kFailed, 2, 0, text).id,
      ComputeFingerprint(Outcome::kFailed, -1, 11, text).id,
      ComputeFingerprint(Outcome::kTimedOut, -1, 15, text).id,
      ComputeFingerprint(Outcome::kKilled, -1, 9, text).id,
      ComputeFingerprint(Outcome::kCancelled, -1, 15, text).id,
      ComputeFingerprint(Outcome::kLost, -1, 0, text).id,
      ComputeFingerprint(Outcome::kSucceeded, 0, 0, text).id,
  };
  EXPECT_THAT(ids, SizeIs(8));
}

TEST(FingerprintTest, ExitClassNamesEachOutcome) {
  EXPECT_EQ(ExitClass(Outcome::kSucceeded, 0, 0), "ok");
  EXPECT_EQ(ExitClass(Outcome::kFailed, 3, 0), "exit:3");
  EXPECT_EQ(ExitClass(Outcome::kFailed, -1, 11), "signal:11");
  EXPECT_EQ(ExitClass(Outcome::kTimedOut, -1, 15), "timeout");
  EXPECT_EQ(ExitClass(Outcome::kKilled, -1, 9), "signal:9");
  EXPECT_EQ(ExitClass(Outcome::kKilled, -1, 0), "killed");
  EXPECT_EQ(ExitClass(Outcome::kCancelled, -1, 15), "cancelled");
  EXPECT_EQ(ExitClass(Outcome::kLost, -1, 0), "lost");
}

TEST(FingerprintTest, KeyHasOutcomeExitClassAndText) {
  const Fingerprint fp =
      ComputeFingerprint(Outcome::kFailed, 1, 0, "ImportError: No module named 42");
  EXPECT_EQ(fp.key, "failed|exit:1|importerror: no module named <n>");
  EXPECT_EQ(fp.id, FingerprintId(fp.key));
}

TEST(FingerprintTest, IdIsStableFnv1aPrefix) {
  // Expected values computed independently with Python:
  //   h = 0xcbf29ce484222325; for b in key: h = ((h ^ b) * 0x100000001b3) % 2**64
  //   "%016x" % h, first 12 digits.
  EXPECT_EQ(FingerprintId(""), "cbf29ce48422");
  EXPECT_EQ(FingerprintId("a"), "af63dc4c8601");
  EXPECT_EQ(FingerprintId("failed|exit:1|importerror: no module named <n>"), "4b0312121a73");
  EXPECT_THAT(FingerprintId("anything"), testing::MatchesRegex("[0-9a-f]{12}"));
}

TEST(FingerprintTest, SameTextAlwaysGivesSameFingerprint) {
  const std::string text = "RuntimeError: CUDA out of memory at 0x7f00 after 3.2s";
  EXPECT_EQ(FailedId(text), FailedId(text));
  EXPECT_THAT(NormalizeErrorText(text), Not(HasSubstr("0x7f00")));
}

TEST(FingerprintTest, ConcurrentCallsAgree) {
  const std::string text =
      "ImportError at /usr/lib/x.py line 3 after 2.5s (req_011CWQs7a9XbYv2pLq)";
  const std::string expected = FailedId(text);
  std::vector<std::string> results(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < results.size(); ++t) {
    threads.emplace_back([&results, &text, t] {
      for (int i = 0; i < 200; ++i) results[t] = FailedId(text);
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const std::string& result : results) EXPECT_EQ(result, expected);
}

}  // namespace
}  // namespace sluice
