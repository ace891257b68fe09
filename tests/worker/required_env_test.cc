#include "worker/required_env.h"

#include <map>
#include <optional>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sluice {
namespace {

using ::testing::HasSubstr;

EnvLookup Env(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(RequiredEnvTest, NameOnlyNeedsTheVariableSetInEitherPlace) {
  EXPECT_TRUE(CheckRequiredEnv({"A"}, {}, Env({{"A", ""}})).ok());
  EXPECT_TRUE(CheckRequiredEnv({"A"}, {{"A", "x"}}, Env({})).ok());
  const absl::Status st = CheckRequiredEnv({"A"}, {}, Env({{"B", "1"}}));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("A is not set"));
}

TEST(RequiredEnvTest, ValueMustMatchAndEnvOverridesTheWorkersOwn) {
  EXPECT_TRUE(
      CheckRequiredEnv({"TELEMETRY_DB_ENABLED=1"}, {}, Env({{"TELEMETRY_DB_ENABLED", "1"}})).ok());
  // --env wins over the worker's environment, as it does for the phases.
  EXPECT_TRUE(CheckRequiredEnv({"TELEMETRY_DB_ENABLED=1"}, {{"TELEMETRY_DB_ENABLED", "1"}},
                               Env({{"TELEMETRY_DB_ENABLED", "0"}}))
                  .ok());
  const absl::Status st =
      CheckRequiredEnv({"TELEMETRY_DB_ENABLED=1"}, {{"TELEMETRY_DB_ENABLED", "0"}},
                       Env({{"TELEMETRY_DB_ENABLED", "1"}}));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("TELEMETRY_DB_ENABLED is '0', required '1'"));
  // An empty required value is a value: NAME= requires it set and empty.
  EXPECT_TRUE(CheckRequiredEnv({"E="}, {}, Env({{"E", ""}})).ok());
  EXPECT_FALSE(CheckRequiredEnv({"E="}, {}, Env({{"E", "x"}})).ok());
}

TEST(RequiredEnvTest, EveryUnmetRequirementIsNamedAndMalformedOnesAreErrors) {
  const absl::Status st =
      CheckRequiredEnv({"A", "B=2", "=3", "C"}, {}, Env({{"B", "1"}, {"C", "c"}}));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("A is not set"));
  EXPECT_THAT(st.message(), HasSubstr("B is '1', required '2'"));
  EXPECT_THAT(st.message(), HasSubstr("'=3' is not NAME or NAME=VALUE"));
  EXPECT_THAT(st.message(), ::testing::Not(HasSubstr("C ")));
  EXPECT_TRUE(CheckRequiredEnv({}, {}, Env({})).ok());
}

}  // namespace
}  // namespace sluice
