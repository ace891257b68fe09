#include "common/run_family.h"

#include "gtest/gtest.h"

namespace sluice {
namespace {

TEST(RunFamilyTest, StripsTrailingVersions) {
  EXPECT_EQ(RunFamily("research-system-v1"), "research-system");
  EXPECT_EQ(RunFamily("research-system-v2"), "research-system");
  EXPECT_EQ(RunFamily("research-system-V13"), "research-system");
  EXPECT_EQ(RunFamily("svc_rc2"), "svc");
  EXPECT_EQ(RunFamily("research-system-v1.2.3"), "research-system");
}

TEST(RunFamilyTest, StripsTrailingDates) {
  EXPECT_EQ(RunFamily("build-2024-01-05"), "build");
  EXPECT_EQ(RunFamily("build-20240105"), "build");
  EXPECT_EQ(RunFamily("nightly.2024.01.05"), "nightly");
}

TEST(RunFamilyTest, StripsTrailingLettersAndNumbers) {
  EXPECT_EQ(RunFamily("run-a"), "run");
  EXPECT_EQ(RunFamily("run-b"), "run");
  EXPECT_EQ(RunFamily("shard-7"), "shard");
  EXPECT_EQ(RunFamily("svc-v2-a"), "svc");
}

TEST(RunFamilyTest, KeepsIdsWithoutVariant) {
  EXPECT_EQ(RunFamily("research-system"), "research-system");
  EXPECT_EQ(RunFamily("python3-tests"), "python3-tests");
  EXPECT_EQ(RunFamily("alpha-beta"), "alpha-beta");
  EXPECT_EQ(RunFamily("v1"), "v1");  // the first token always stays
  EXPECT_EQ(RunFamily("2024-01-05"), "2024");
  EXPECT_EQ(RunFamily(""), "");
  EXPECT_EQ(RunFamily("vx-abc"), "vx-abc");
}

TEST(RunFamilyTest, KeepsSpellingAndHandlesSeparatorRuns) {
  EXPECT_EQ(RunFamily("Research-System-V2"), "Research-System");
  EXPECT_EQ(RunFamily("a--b"), "a");
  EXPECT_EQ(RunFamily("ns:job-3"), "ns:job");
  EXPECT_EQ(RunFamily("x:y-3"), "x");  // "y" is a single letter too
  EXPECT_EQ(RunFamily("-3"), "-3");
}

TEST(RunFamilyRuleTest, DefaultRuleIsRunFamily) {
  const RunFamilyRule rule;
  EXPECT_EQ(rule.Family("research-system-v2"), "research-system");
  EXPECT_EQ(rule.Family("run-a"), "run");
  auto compiled = RunFamilyRule::Compile("");
  ASSERT_TRUE(compiled.ok());
  EXPECT_EQ(compiled->Family("build-2024-01-05"), "build");
}

TEST(RunFamilyRuleTest, PatternGroupIsTheFamilyAndNonMatchingIdsStandAlone) {
  auto rule = RunFamilyRule::Compile("(.*)-(?:v[0-9]+|[0-9]{8})");
  ASSERT_TRUE(rule.ok()) << rule.status();
  EXPECT_EQ(rule->Family("svc-v1"), "svc");
  EXPECT_EQ(rule->Family("svc-20240105"), "svc");
  EXPECT_EQ(rule->Family("svc-a"), "svc-a");  // letters are not variants under this rule
  EXPECT_EQ(rule->Family("x-svc-v1-extra"), "x-svc-v1-extra");  // must match the whole id
  EXPECT_EQ(rule->pattern(), "(.*)-(?:v[0-9]+|[0-9]{8})");
}

TEST(RunFamilyRuleTest, BadPatternsAreInvalidArgumentsWithAReason) {
  auto broken = RunFamilyRule::Compile("(unclosed");
  ASSERT_FALSE(broken.ok());
  EXPECT_EQ(broken.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(broken.status().message()).find("does not compile"), std::string::npos);
  auto no_group = RunFamilyRule::Compile(".*-v[0-9]+");
  ASSERT_FALSE(no_group.ok());
  EXPECT_NE(std::string(no_group.status().message()).find("no capture group"), std::string::npos);
}

}  // namespace
}  // namespace sluice
