#include "common/run_family.h"

#include <cctype>

#include "absl/strings/str_cat.h"
#include "re2/re2.h"

namespace sluice {
namespace {

bool IsSeparator(char c) { return c == '-' || c == '_' || c == '.' || c == ':'; }

bool AllDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// A number, a version ("v2", "rc1") or a single letter.
bool IsVariantToken(std::string_view token) {
  if (token.empty()) return false;
  if (AllDigits(token)) return true;
  if (token.size() == 1 && std::isalpha(static_cast<unsigned char>(token[0]))) return true;
  const char first = static_cast<char>(std::tolower(static_cast<unsigned char>(token[0])));
  if (first == 'v' && AllDigits(token.substr(1))) return true;
  if (token.size() > 2) {
    const char second = static_cast<char>(std::tolower(static_cast<unsigned char>(token[1])));
    if (first == 'r' && second == 'c' && AllDigits(token.substr(2))) return true;
  }
  return false;
}

}  // namespace

std::string RunFamily(std::string_view run_id) {
  size_t end = run_id.size();
  while (true) {
    // The last token is run_id[sep + 1, end); its separator is at `sep`.
    size_t sep = end;
    while (sep > 0 && !IsSeparator(run_id[sep - 1])) --sep;
    if (sep == 0) break;  // the first token always stays
    const std::string_view token = run_id.substr(sep, end - sep);
    if (!IsVariantToken(token)) break;
    end = sep - 1;
    // "a--b": drop separators left behind by empty tokens.
    while (end > 0 && IsSeparator(run_id[end - 1])) --end;
    if (end == 0) return std::string(run_id);  // only separators before: keep the id
  }
  return std::string(run_id.substr(0, end));
}

absl::StatusOr<RunFamilyRule> RunFamilyRule::Compile(const std::string& pattern) {
  RunFamilyRule rule;
  if (pattern.empty()) return rule;
  auto re = std::make_shared<const re2::RE2>(pattern, re2::RE2::Quiet);
  if (!re->ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--family-pattern \"", pattern, "\" does not compile: ", re->error()));
  }
  if (re->NumberOfCapturingGroups() < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--family-pattern \"", pattern, "\" has no capture group; the first group is the family"));
  }
  rule.pattern_ = pattern;
  rule.re_ = std::move(re);
  return rule;
}

std::string RunFamilyRule::Family(std::string_view run_id) const {
  if (!re_) return RunFamily(run_id);
  std::string family;
  if (re2::RE2::FullMatch(run_id, *re_, &family) && !family.empty()) return family;
  return std::string(run_id);
}

}  // namespace sluice
