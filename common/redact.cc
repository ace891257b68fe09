#include "common/redact.h"

#include <algorithm>
#include <array>
#include <cctype>

namespace sluice {

bool IsSecretName(std::string_view name) {
  std::string upper(name);
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  static constexpr std::array<std::string_view, 7> kWords = {"TOKEN",      "SECRET", "PASS",  "KEY",
                                                             "CREDENTIAL", "AUTH",   "COOKIE"};
  for (std::string_view w : kWords) {
    if (upper.find(w) != std::string::npos) return true;
  }
  return false;
}

bool IsScrubbedFromPhases(std::string_view name) {
  return name.starts_with("SLUICE_") && IsSecretName(name);
}

std::string RedactUrl(std::string_view url) {
  std::string out;
  const size_t scheme_end = url.find("://");
  size_t rest = 0;
  if (scheme_end != std::string_view::npos) {
    rest = scheme_end + 3;
    out.append(url.substr(0, rest));
    // User-info ends at the last '@' anywhere: a password may hold '/' or '?'
    // unencoded, and redacting too much beats printing a secret.
    const std::string_view after_scheme = url.substr(rest);
    const size_t at = after_scheme.rfind('@');
    if (at != std::string_view::npos) {
      const std::string_view userinfo = after_scheme.substr(0, at);
      const size_t colon = userinfo.find(':');
      if (colon == std::string_view::npos) {
        out.append(kRedacted);
      } else {
        out.append(userinfo.substr(0, colon + 1));
        out.append(kRedacted);
      }
      rest += at;  // continue at the '@'
    }
  }
  const size_t query = url.find('?', rest);
  out.append(url.substr(rest, query == std::string_view::npos ? url.size() - rest : query - rest));
  if (query == std::string_view::npos) return out;
  out.push_back('?');
  size_t pos = query + 1;
  bool first = true;
  while (pos <= url.size()) {
    size_t end = url.find_first_of("&#", pos);
    if (end == std::string_view::npos) end = url.size();
    const std::string_view param = url.substr(pos, end - pos);
    if (!first) out.push_back('&');
    first = false;
    const size_t eq = param.find('=');
    if (eq != std::string_view::npos && IsSecretName(param.substr(0, eq))) {
      out.append(param.substr(0, eq + 1));
      out.append(kRedacted);
    } else {
      out.append(param);
    }
    if (end < url.size() && url[end] == '#') {
      out.append(url.substr(end));
      break;
    }
    pos = end + 1;
  }
  return out;
}

}  // namespace sluice
