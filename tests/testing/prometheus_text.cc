#include "tests/testing/prometheus_text.h"

#include <cmath>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace sluice::testing {
namespace {

const std::regex kMetricName("[a-zA-Z_:][a-zA-Z0-9_:]*");
const std::regex kLabelName("[a-zA-Z_][a-zA-Z0-9_]*");

bool ParseValue(const std::string& text, double* out) {
  if (text == "+Inf" || text == "Inf") {
    *out = INFINITY;
    return true;
  }
  if (text == "-Inf") {
    *out = -INFINITY;
    return true;
  }
  if (text == "NaN") {
    *out = NAN;
    return true;
  }
  static const std::regex kFloat(R"([-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?)");
  if (!std::regex_match(text, kFloat)) return false;
  *out = std::stod(text);
  return true;
}

// Parses `{a="x",b="y\"z"}` starting at line[pos] == '{'; advances pos past '}'.
bool ParseLabels(const std::string& line, size_t& pos, std::map<std::string, std::string>* labels,
                 std::string* why) {
  ++pos;  // '{'
  while (pos < line.size() && line[pos] != '}') {
    size_t eq = line.find('=', pos);
    if (eq == std::string::npos) return *why = "label without '='", false;
    const std::string name = line.substr(pos, eq - pos);
    if (!std::regex_match(name, kLabelName)) return *why = "bad label name '" + name + "'", false;
    if (labels->contains(name)) return *why = "duplicate label " + name, false;
    pos = eq + 1;
    if (pos >= line.size() || line[pos] != '"') return *why = "label value not quoted", false;
    ++pos;
    std::string value;
    while (true) {
      if (pos >= line.size()) return *why = "unterminated label value", false;
      const char c = line[pos++];
      if (c == '"') break;
      if (c == '\\') {
        if (pos >= line.size()) return *why = "dangling escape", false;
        const char e = line[pos++];
        if (e == 'n') {
          value += '\n';
        } else if (e == '\\' || e == '"') {
          value += e;
        } else {
          return *why = std::string("bad escape \\") + e, false;
        }
      } else {
        value += c;
      }
    }
    (*labels)[name] = value;
    if (pos < line.size() && line[pos] == ',') ++pos;
  }
  if (pos >= line.size()) return *why = "unterminated label set", false;
  ++pos;  // '}'
  return true;
}

}  // namespace

Exposition ParseExposition(const std::string& text) {
  Exposition e;
  if (!text.empty() && text.back() != '\n') e.errors.push_back("missing final newline");
  int n = 0;
  for (absl::string_view sv : absl::StrSplit(text, '\n')) {
    ++n;
    const std::string line(sv);
    auto fail = [&](const std::string& why) {
      e.errors.push_back("line " + std::to_string(n) + ": " + why + ": " + line);
    };
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::vector<std::string> parts = absl::StrSplit(line, absl::MaxSplits(' ', 3));
      if (parts.size() >= 2 && (parts[1] == "HELP" || parts[1] == "TYPE")) {
        if (parts.size() < 3 || !std::regex_match(parts[2], kMetricName)) {
          fail("bad metric name in " + parts[1]);
          continue;
        }
        if (parts[1] == "TYPE") {
          static const std::set<std::string> kTypes = {"counter", "gauge", "histogram", "summary",
                                                       "untyped"};
          if (parts.size() != 4 || !kTypes.contains(parts[3])) {
            fail("bad TYPE");
          } else if (e.types.contains(parts[2])) {
            fail("second TYPE for " + parts[2]);
          } else {
            bool seen = false;
            for (const Sample& s : e.samples) seen |= s.name.starts_with(parts[2]);
            if (seen) fail("TYPE after samples of " + parts[2]);
            e.types[parts[2]] = parts[3];
          }
        } else {
          e.help[parts[2]] = parts.size() == 4 ? parts[3] : "";
        }
      }
      continue;  // other comments are allowed
    }
    Sample s;
    size_t pos = 0;
    while (pos < line.size() && line[pos] != '{' && line[pos] != ' ') ++pos;
    s.name = line.substr(0, pos);
    if (!std::regex_match(s.name, kMetricName)) {
      fail("bad metric name");
      continue;
    }
    std::string why;
    if (pos < line.size() && line[pos] == '{' && !ParseLabels(line, pos, &s.labels, &why)) {
      fail(why);
      continue;
    }
    if (pos >= line.size() || line[pos] != ' ') {
      fail("no space before the value");
      continue;
    }
    std::vector<std::string> rest = absl::StrSplit(line.substr(pos + 1), ' ');
    if (rest.empty() || rest.size() > 2 || !ParseValue(rest[0], &s.value)) {
      fail("bad value");
      continue;
    }
    if (rest.size() == 2 && !std::regex_match(rest[1], std::regex("-?[0-9]+"))) {
      fail("bad timestamp");
      continue;
    }
    e.samples.push_back(std::move(s));
  }
  return e;
}

// The family a sample belongs to (histogram samples carry suffixes).
std::string FamilyOf(const Exposition& e, const std::string& sample) {
  if (e.types.contains(sample)) return sample;
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string s(suffix);
    if (sample.size() > s.size() && sample.ends_with(s)) {
      const std::string base = sample.substr(0, sample.size() - s.size());
      if (e.types.contains(base) && e.types.at(base) == "histogram") return base;
    }
  }
  return "";
}

const Sample* Find(const Exposition& e, const std::string& name,
                   const std::map<std::string, std::string>& labels) {
  for (const Sample& s : e.samples) {
    if (s.name == name && s.labels == labels) return &s;
  }
  return nullptr;
}

}  // namespace sluice::testing
