// A strict parser of the Prometheus text exposition format 0.0.4, for tests
// of the coordinator's metrics: every line must parse, and the samples,
// TYPE and HELP lines come back as data to assert on.
//
// Pure and thread-compatible.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace sluice::testing {

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct Exposition {
  std::map<std::string, std::string> types;  // family -> counter|gauge|histogram|...
  std::map<std::string, std::string> help;
  std::vector<Sample> samples;
  std::vector<std::string> errors;  // "line N: why"; empty when every line parsed
};

// Parses `text`; what does not follow the format is listed in `errors`.
Exposition ParseExposition(const std::string& text);

// The family a sample belongs to (histogram samples carry suffixes); "" when
// it has no TYPE.
std::string FamilyOf(const Exposition& e, const std::string& sample);

// The sample `name` with exactly `labels`; null when there is none.
const Sample* Find(const Exposition& e, const std::string& name,
                   const std::map<std::string, std::string>& labels = {});

}  // namespace sluice::testing
