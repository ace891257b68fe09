#include "coordinator/grpc/auth.h"

#include <grpcpp/server_context.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "spdlog/spdlog.h"

namespace sluice {
namespace {

constexpr size_t kMaxTokenFileBytes = 1024 * 1024;

bool IsTokenChar(char c) { return c > 0x20 && c < 0x7f && c != ':'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && absl::ascii_isspace(static_cast<unsigned char>(s.front()))) {
    s.remove_prefix(1);
  }
  while (!s.empty() && absl::ascii_isspace(static_cast<unsigned char>(s.back()))) {
    s.remove_suffix(1);
  }
  return s;
}

// The token of "Bearer <token>" (scheme case-insensitive, RFC 6750), if any.
std::optional<std::string_view> BearerToken(std::string_view header) {
  constexpr std::string_view kScheme = "bearer ";
  if (header.size() <= kScheme.size()) return std::nullopt;
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (absl::ascii_tolower(static_cast<unsigned char>(header[i])) != kScheme[i]) {
      return std::nullopt;
    }
  }
  std::string_view token = Trim(header.substr(kScheme.size()));
  if (token.empty()) return std::nullopt;
  return token;
}

}  // namespace

bool ConstantTimeEquals(std::string_view expected, std::string_view presented) {
  // Every byte of `presented` is compared against some byte of `expected`
  // (cycling when lengths differ) and the differences are OR-ed together, so
  // the loop does the same work whatever the content. The length difference
  // is folded in last; only presented.size() (known to the caller) is
  // observable through timing.
  volatile unsigned char diff = 0;
  const size_t n = expected.size();
  for (size_t i = 0; i < presented.size(); ++i) {
    const unsigned char e = n == 0 ? 0 : static_cast<unsigned char>(expected[i % n]);
    diff = static_cast<unsigned char>(diff | (e ^ static_cast<unsigned char>(presented[i])));
  }
  const bool same_length = expected.size() == presented.size();
  return diff == 0 && same_length;
}

absl::StatusOr<std::vector<TokenEntry>> ParseTokenFile(std::string_view name_view,
                                                       std::string_view content,
                                                       TokenFileKind kind) {
  const std::string name(name_view);
  std::vector<TokenEntry> entries;
  size_t line_no = 0;
  size_t start = 0;
  while (start <= content.size()) {
    size_t end = content.find('\n', start);
    if (end == std::string_view::npos) end = content.size();
    std::string_view line = Trim(content.substr(start, end - start));
    ++line_no;
    start = end + 1;
    if (line.empty() || line.front() == '#') continue;
    const std::string where = absl::StrCat(name, ":", line_no, ": ");
    TokenEntry entry;
    std::string_view token = line;
    const size_t colon = line.rfind(':');
    if (colon != std::string_view::npos) {
      if (kind == TokenFileKind::kAdmin) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, "admin tokens are not bound to a worker (no WORKER_ID: prefix)"));
      }
      if (absl::Status st = ValidateId("worker id", line.substr(0, colon)); !st.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(where, st.message()));
      }
      entry.worker_id = std::string(line.substr(0, colon));
      token = line.substr(colon + 1);
    }
    if (token.size() < kMinTokenLength || token.size() > kMaxTokenLength) {
      return absl::InvalidArgumentError(absl::StrCat(where, "token is ", token.size(),
                                                     " characters long (", kMinTokenLength, " to ",
                                                     kMaxTokenLength, ")"));
    }
    for (size_t i = 0; i < token.size(); ++i) {
      if (!IsTokenChar(token[i])) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, "token has a forbidden character at position ", i + 1,
                         " (printable ASCII without spaces or ':')"));
      }
    }
    entry.token = std::string(token);
    for (const TokenEntry& other : entries) {
      if (other.token == entry.token) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, "the same token appears on an earlier line"));
      }
    }
    entries.push_back(std::move(entry));
  }
  if (entries.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": no token in the file"));
  }
  return entries;
}

absl::StatusOr<std::vector<TokenEntry>> ReadTokenFile(const std::string& path, TokenFileKind kind) {
  struct stat info {};
  if (stat(path.c_str(), &info) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("token file ", path, ": ", std::strerror(errno)));
  }
  if (!S_ISREG(info.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat("token file ", path, ": not a regular file"));
  }
  if (static_cast<size_t>(info.st_size) > kMaxTokenFileBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("token file ", path, ": larger than ", kMaxTokenFileBytes, " bytes"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("token file ", path, ": cannot open: ", std::strerror(errno)));
  }
  std::ostringstream content;
  content << in.rdbuf();
  if ((info.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    spdlog::warn("token file {} is readable by group or others (mode {:o}); chmod 600 it", path,
                 info.st_mode & 0777);
  }
  return ParseTokenFile(path, content.str(), kind);
}

absl::StatusOr<Authenticator> Authenticator::Create(std::vector<TokenEntry> worker_tokens,
                                                    std::vector<TokenEntry> admin_tokens) {
  for (const TokenEntry& a : admin_tokens) {
    for (const TokenEntry& w : worker_tokens) {
      if (a.token == w.token) {
        return absl::InvalidArgumentError(
            "a token appears both as a worker token and as an admin token; the admin token must "
            "be separate");
      }
    }
  }
  Authenticator auth;
  auth.worker_ = std::move(worker_tokens);
  auth.admin_ = std::move(admin_tokens);
  for (const TokenEntry& w : auth.worker_) {
    if (!w.worker_id.empty()) auth.pinned_ids_.insert(w.worker_id);
  }
  return auth;
}

absl::StatusOr<Authenticator> Authenticator::FromFiles(const std::string& worker_token_file,
                                                       const std::string& admin_token_file) {
  std::vector<TokenEntry> workers;
  std::vector<TokenEntry> admins;
  if (!worker_token_file.empty()) {
    auto parsed = ReadTokenFile(worker_token_file, TokenFileKind::kWorker);
    if (!parsed.ok()) return parsed.status();
    workers = std::move(*parsed);
  }
  if (!admin_token_file.empty()) {
    auto parsed = ReadTokenFile(admin_token_file, TokenFileKind::kAdmin);
    if (!parsed.ok()) return parsed.status();
    admins = std::move(*parsed);
  }
  return Create(std::move(workers), std::move(admins));
}

absl::Status Authenticator::Authorize(std::optional<std::string_view> authorization, CallKind kind,
                                      std::string_view worker_id) const {
  if (!enabled()) return absl::OkStatus();
  std::optional<std::string_view> token;
  if (authorization) token = BearerToken(*authorization);
  if (!token) {
    return absl::UnauthenticatedError(
        "missing credentials: send the header \"authorization: Bearer <token>\"");
  }
  // Compare against every token (no early exit): the time taken does not
  // depend on which token matched, or whether any did.
  bool admin = false;
  const TokenEntry* worker = nullptr;
  for (const TokenEntry& e : admin_) {
    if (ConstantTimeEquals(e.token, *token)) admin = true;
  }
  for (const TokenEntry& e : worker_) {
    if (ConstantTimeEquals(e.token, *token)) worker = &e;
  }
  if (admin) return absl::OkStatus();
  if (worker == nullptr) return absl::UnauthenticatedError("invalid token");
  if (kind == CallKind::kOperator) {
    return absl::PermissionDeniedError(
        "a worker token may not call the operator service; use an admin token");
  }
  if (!worker->worker_id.empty() && worker->worker_id != worker_id) {
    // The request's worker_id is not echoed: it is unvalidated input.
    return absl::PermissionDeniedError("this token is bound to a different worker_id");
  }
  if (worker->worker_id.empty() && pinned_ids_.contains(worker_id)) {
    // An unpinned token must not take the identity (leases, reports) of a
    // worker whose id is pinned to another token.
    return absl::PermissionDeniedError(
        "this worker_id is reserved for the token bound to it in the worker token file");
  }
  return absl::OkStatus();
}

absl::Status Authenticator::Authorize(const grpc::ServerContext& context, CallKind kind,
                                      std::string_view worker_id) const {
  if (!enabled()) return absl::OkStatus();
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  std::optional<std::string_view> header;
  if (it != metadata.end()) header = std::string_view(it->second.data(), it->second.size());
  return Authorize(header, kind, worker_id);
}

}  // namespace sluice
