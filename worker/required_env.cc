#include "worker/required_env.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace sluice {

EnvLookup ProcessEnvLookup() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

absl::Status CheckRequiredEnv(const std::vector<std::string>& requirements,
                              const std::map<std::string, std::string>& overrides,
                              const EnvLookup& own) {
  std::vector<std::string> problems;
  for (const std::string& requirement : requirements) {
    const size_t eq = requirement.find('=');
    const std::string name = requirement.substr(0, eq);
    if (name.empty()) {
      problems.push_back(absl::StrCat("'", requirement, "' is not NAME or NAME=VALUE"));
      continue;
    }
    std::optional<std::string> value;
    if (auto it = overrides.find(name); it != overrides.end()) {
      value = it->second;
    } else {
      value = own(name);
    }
    if (!value) {
      problems.push_back(absl::StrCat(name,
                                      " is not set (neither in the worker's environment nor "
                                      "by --env)"));
    } else if (eq != std::string::npos && *value != requirement.substr(eq + 1)) {
      problems.push_back(
          absl::StrCat(name, " is '", *value, "', required '", requirement.substr(eq + 1), "'"));
    }
  }
  if (problems.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("--require-env: phases would not get their required environment: ",
                   absl::StrJoin(problems, "; ")));
}

}  // namespace sluice
