#include "worker/command_template.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sluice {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

PhaseIdentity GoodIdentity() {
  PhaseIdentity id;
  id.run_id = "run-7";
  id.phase_id = "phase.a:1";
  id.attempt = 2;
  id.lease_id = "lease_42";
  id.session_id = "sess-1";
  return id;
}

std::vector<std::string> ExpandOrDie(std::string_view text, const PhaseIdentity& id) {
  absl::StatusOr<CommandTemplate> tmpl = CommandTemplate::Parse(text);
  EXPECT_TRUE(tmpl.ok()) << tmpl.status();
  if (!tmpl.ok()) return {};
  absl::StatusOr<std::vector<std::string>> argv = tmpl->Expand(id);
  EXPECT_TRUE(argv.ok()) << argv.status();
  if (!argv.ok()) return {};
  return *argv;
}

absl::Status ParseStatus(std::string_view text) { return CommandTemplate::Parse(text).status(); }

TEST(CommandTemplateTest, SplitsOnBlanks) {
  EXPECT_THAT(ExpandOrDie("  python3   drain.py\t--force\n-v ", GoodIdentity()),
              ElementsAre("python3", "drain.py", "--force", "-v"));
}

TEST(CommandTemplateTest, ExpandsAllPlaceholders) {
  EXPECT_THAT(
      ExpandOrDie("run {run_id} {phase_id} {attempt} {lease_id} {session_id}", GoodIdentity()),
      ElementsAre("run", "run-7", "phase.a:1", "2", "lease_42", "sess-1"));
}

TEST(CommandTemplateTest, ExpandsPlaceholdersMidWord) {
  EXPECT_THAT(ExpandOrDie("tool --run={run_id} x{phase_id}y{attempt} {run_id}/{phase_id}.log",
                          GoodIdentity()),
              ElementsAre("tool", "--run=run-7", "xphase.a:1y2", "run-7/phase.a:1.log"));
}

TEST(CommandTemplateTest, WordsKeepPlaceholders) {
  absl::StatusOr<CommandTemplate> tmpl = CommandTemplate::Parse("tool '--id={phase_id}' a\\ b");
  ASSERT_TRUE(tmpl.ok()) << tmpl.status();
  EXPECT_THAT(tmpl->words(), ElementsAre("tool", "--id={phase_id}", "a b"));
}

TEST(CommandTemplateTest, SingleQuotesAreLiteral) {
  EXPECT_THAT(ExpandOrDie(R"(echo 'a b  c' 'x\y' '$HOME;|*' '"')", GoodIdentity()),
              ElementsAre("echo", "a b  c", R"(x\y)", "$HOME;|*", "\""));
}

TEST(CommandTemplateTest, DoubleQuotesHonourBackslashForQuoteAndBackslash) {
  EXPECT_THAT(ExpandOrDie(R"(echo "a \"b\" c" "x\\y" "p\q" "it's")", GoodIdentity()),
              ElementsAre("echo", R"(a "b" c)", R"(x\y)", R"(p\q)", "it's"));
}

TEST(CommandTemplateTest, AdjacentQuotedPartsJoinOneWord) {
  EXPECT_THAT(ExpandOrDie(R"(echo pre'mid dle'"post"fix)", GoodIdentity()),
              ElementsAre("echo", "premid dlepostfix"));
}

TEST(CommandTemplateTest, EmptyQuotesMakeEmptyWord) {
  EXPECT_THAT(ExpandOrDie("tool '' \"\" end", GoodIdentity()), ElementsAre("tool", "", "", "end"));
}

TEST(CommandTemplateTest, BackslashEscapesOutsideQuotes) {
  EXPECT_THAT(ExpandOrDie(R"(echo a\ b \' \" \\ \{literal\})", GoodIdentity()),
              ElementsAre("echo", "a b", "'", "\"", "\\", "{literal}"));
}

TEST(CommandTemplateTest, BackslashNewlineContinuesTheLine) {
  EXPECT_THAT(ExpandOrDie("tool \\\n  --flag", GoodIdentity()), ElementsAre("tool", "--flag"));
}

TEST(CommandTemplateTest, ShellCharactersHaveNoMeaning) {
  EXPECT_THAT(ExpandOrDie("echo $(id) `id` a;b c|d *.py && > out", GoodIdentity()),
              ElementsAre("echo", "$(id)", "`id`", "a;b", "c|d", "*.py", "&&", ">", "out"));
}

TEST(CommandTemplateTest, PlaceholderInsideQuotesStaysOneWord) {
  EXPECT_THAT(ExpandOrDie(R"(tool "--label=phase {phase_id} try {attempt}")", GoodIdentity()),
              ElementsAre("tool", "--label=phase phase.a:1 try 2"));
}

TEST(CommandTemplateTest, ValueIsSubstitutedAsOneWord) {
  PhaseIdentity id = GoodIdentity();
  // Characters that mean something to a shell but are allowed in ids.
  id.phase_id = "a-b.c:d_e";
  EXPECT_THAT(ExpandOrDie("tool {phase_id}", id), ElementsAre("tool", "a-b.c:d_e"));
}

TEST(CommandTemplateTest, UnusedIdentifiersAreNotValidated) {
  PhaseIdentity id = GoodIdentity();
  id.lease_id = "bad id";
  id.attempt = 0;
  EXPECT_THAT(ExpandOrDie("tool {phase_id}", id), ElementsAre("tool", "phase.a:1"));
}

TEST(CommandTemplateTest, RejectsEmptyTemplate) {
  EXPECT_EQ(ParseStatus("").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseStatus(" \t\n").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseStatus("'' arg").code(), absl::StatusCode::kInvalidArgument);
}

TEST(CommandTemplateTest, RejectsUnterminatedQuote) {
  EXPECT_EQ(ParseStatus("echo 'abc").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseStatus("echo \"abc").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseStatus("echo \"abc\\\"").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ParseStatus("echo 'abc").message(), HasSubstr("unterminated"));
}

TEST(CommandTemplateTest, RejectsTrailingBackslash) {
  EXPECT_EQ(ParseStatus("echo abc\\").code(), absl::StatusCode::kInvalidArgument);
}

TEST(CommandTemplateTest, RejectsUnknownPlaceholder) {
  absl::Status status = ParseStatus("tool {run_id} {home}");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("{home}"));
  EXPECT_EQ(ParseStatus("tool {RUN_ID}").code(), absl::StatusCode::kInvalidArgument);
}

TEST(CommandTemplateTest, RejectsUnmatchedBraces) {
  for (const char* text : {"tool {run_id", "tool run_id}", "tool {}", "tool { run_id }",
                           "tool {run_id{phase_id}}", "tool '{run_id'}", "tool {$x}"}) {
    absl::Status status = ParseStatus(text);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(status.message(), HasSubstr("unmatched")) << text;
  }
}

TEST(CommandTemplateTest, RejectsHostileIdentifiers) {
  const std::vector<std::string> hostile = {
      ";",    "a;rm -rf /", "two words", "$(id)", "`id`",   "..",
      ".",    "a/b",        "",          "a\nb",  "a\tb",   "a'b",
      "a\"b", "a\\b",       "{run_id}",  "a*",    "-\x01-", std::string(129, 'x')};
  for (const std::string& value : hostile) {
    PhaseIdentity id = GoodIdentity();
    id.phase_id = value;
    absl::StatusOr<CommandTemplate> tmpl = CommandTemplate::Parse("tool --phase={phase_id}");
    ASSERT_TRUE(tmpl.ok());
    absl::StatusOr<std::vector<std::string>> argv = tmpl->Expand(id);
    EXPECT_EQ(argv.status().code(), absl::StatusCode::kInvalidArgument) << "value: " << value;
    EXPECT_THAT(argv.status().message(), HasSubstr("phase_id")) << "value: " << value;
  }
}

TEST(CommandTemplateTest, AcceptsLongestValidIdentifier) {
  PhaseIdentity id = GoodIdentity();
  id.run_id = std::string(128, 'r');
  EXPECT_THAT(ExpandOrDie("tool {run_id}", id), ElementsAre("tool", std::string(128, 'r')));
}

TEST(CommandTemplateTest, ErrorNamesTheField) {
  absl::StatusOr<CommandTemplate> tmpl =
      CommandTemplate::Parse("tool {run_id} {phase_id} {lease_id} {session_id}");
  ASSERT_TRUE(tmpl.ok());
  for (const char* field : {"run_id", "phase_id", "lease_id", "session_id"}) {
    PhaseIdentity id = GoodIdentity();
    if (std::string(field) == "run_id") id.run_id = "a b";
    if (std::string(field) == "phase_id") id.phase_id = "a b";
    if (std::string(field) == "lease_id") id.lease_id = "a b";
    if (std::string(field) == "session_id") id.session_id = "a b";
    absl::StatusOr<std::vector<std::string>> argv = tmpl->Expand(id);
    EXPECT_EQ(argv.status().code(), absl::StatusCode::kInvalidArgument) << field;
    EXPECT_THAT(argv.status().message(), HasSubstr(field));
  }
}

TEST(CommandTemplateTest, RejectsAttemptBelowOne) {
  absl::StatusOr<CommandTemplate> tmpl = CommandTemplate::Parse("tool --attempt={attempt}");
  ASSERT_TRUE(tmpl.ok());
  for (int attempt : {0, -1}) {
    PhaseIdentity id = GoodIdentity();
    id.attempt = attempt;
    absl::StatusOr<std::vector<std::string>> argv = tmpl->Expand(id);
    EXPECT_EQ(argv.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(argv.status().message(), HasSubstr("attempt"));
  }
}

}  // namespace
}  // namespace sluice
