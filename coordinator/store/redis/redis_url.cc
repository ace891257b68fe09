#include "coordinator/store/redis/redis_url.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace sluice {
namespace {

constexpr const char* kUrlForms =
    "expected redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?namespace=NAME] or "
    "redis+unix:///PATH[?db=N&password=P&namespace=NAME]";

}  // namespace

bool IsValidRedisNamespace(const std::string& ns) {
  if (ns.empty() || ns.size() > 64) return false;
  return std::all_of(ns.begin(), ns.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
}

absl::Status ValidateRedisOptions(const RedisOptions& options) {
  if (!IsValidRedisNamespace(options.key_namespace)) {
    return absl::InvalidArgumentError(
        absl::StrCat("redis namespace ", options.key_namespace, " must be 1..64 of [A-Za-z0-9_-]"));
  }
  if (options.db < 0) return absl::InvalidArgumentError("redis db must be >= 0");
  if (options.import_slice_phases <= 0) {
    return absl::InvalidArgumentError("redis import_slice_phases must be > 0");
  }
  if (options.session_cache_max_age < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("redis session_cache_max_age must be >= 0");
  }
  return absl::OkStatus();
}

std::string PercentDecode(const std::string& in) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size() &&
        absl::ascii_isxdigit(static_cast<unsigned char>(in[i + 1])) &&
        absl::ascii_isxdigit(static_cast<unsigned char>(in[i + 2]))) {
      auto val = [](char c) {
        return c <= '9' ? c - '0' : (absl::ascii_tolower(static_cast<unsigned char>(c)) - 'a' + 10);
      };
      out.push_back(static_cast<char>(val(in[i + 1]) * 16 + val(in[i + 2])));
      i += 2;
    } else {
      out.push_back(in[i]);
    }
  }
  return out;
}

absl::StatusOr<RedisOptions> ParseRedisUrl(const std::string& url) {
  RedisOptions o;
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(
        absl::StrCat("--store ", url, ": ", why, " (", kUrlForms, ")"));
  };
  std::string rest;
  bool unix_form = false;
  if (absl::StartsWith(url, "redis://")) {
    rest = url.substr(8);
  } else if (absl::StartsWith(url, "redis+unix://")) {
    rest = url.substr(13);
    unix_form = true;
  } else {
    return bad("not a redis URL");
  }
  std::string query;
  if (const size_t q = rest.find('?'); q != std::string::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  bool db_set = false;
  bool password_set = false;
  if (unix_form) {
    if (rest.empty() || rest[0] != '/') return bad("the socket path must be absolute");
    o.unix_socket = PercentDecode(rest);
  } else {
    if (const size_t at = rest.rfind('@'); at != std::string::npos) {
      const std::string userinfo = rest.substr(0, at);
      rest = rest.substr(at + 1);
      const size_t colon = userinfo.find(':');
      if (colon == std::string::npos) {
        // redis://PASSWORD@host is a common shorthand.
        o.password = PercentDecode(userinfo);
      } else {
        o.username = PercentDecode(userinfo.substr(0, colon));
        o.password = PercentDecode(userinfo.substr(colon + 1));
      }
      password_set = !o.password.empty();
    }
    std::string hostport = rest;
    if (const size_t slash = rest.find('/'); slash != std::string::npos) {
      hostport = rest.substr(0, slash);
      const std::string db = rest.substr(slash + 1);
      if (!db.empty()) {
        if (!absl::SimpleAtoi(db, &o.db) || o.db < 0) return bad("DB must be a number");
        db_set = true;
      }
    }
    if (hostport.empty()) return bad("missing HOST");
    std::string port;
    if (hostport[0] == '[') {
      const size_t close = hostport.find(']');
      if (close == std::string::npos) return bad("unclosed [ in IPv6 host");
      o.host = hostport.substr(1, close - 1);
      if (close + 1 < hostport.size()) {
        if (hostport[close + 1] != ':') return bad("junk after ]");
        port = hostport.substr(close + 2);
      }
    } else if (const size_t colon = hostport.rfind(':'); colon != std::string::npos) {
      o.host = hostport.substr(0, colon);
      port = hostport.substr(colon + 1);
    } else {
      o.host = hostport;
    }
    if (o.host.empty()) return bad("missing HOST");
    if (!port.empty() && (!absl::SimpleAtoi(port, &o.port) || o.port <= 0 || o.port > 65535)) {
      return bad("PORT must be 1..65535");
    }
  }
  if (!query.empty()) {
    for (absl::string_view kv : absl::StrSplit(query, '&')) {
      const std::string pair(kv);
      const size_t eq = pair.find('=');
      if (eq == std::string::npos) return bad(absl::StrCat("query parameter ", pair, " has no ="));
      const std::string key = pair.substr(0, eq);
      const std::string value = PercentDecode(pair.substr(eq + 1));
      if (key == "namespace") {
        o.key_namespace = value;
      } else if (key == "db") {
        if (db_set) return bad("DB given twice");
        if (!absl::SimpleAtoi(value, &o.db) || o.db < 0) return bad("db must be a number");
        db_set = true;
      } else if (key == "password") {
        if (password_set) return bad("password given twice");
        o.password = value;
        password_set = true;
      } else if (key == "password_file") {
        if (password_set) return bad("password given twice");
        if (value.empty()) return bad("password_file needs a path");
        o.password_file = value;
        password_set = true;
      } else if (key == "user") {
        o.username = value;
      } else {
        return bad(absl::StrCat("unknown query parameter ", key));
      }
    }
  }
  if (!IsValidRedisNamespace(o.key_namespace)) {
    return bad(absl::StrCat("namespace ", o.key_namespace, " must be 1..64 of [A-Za-z0-9_-]"));
  }
  return o;
}

}  // namespace sluice
