// Bearer-token authentication for the coordinator's gRPC services.
//
// Two kinds of token, loaded from files (never from a command-line argument
// that `ps` would show):
//   - worker tokens (--token-file / $SLUICE_WORKER_TOKENS_FILE): a line is
//     `TOKEN` (any worker id) or `WORKER_ID:TOKEN` (only that worker id);
//   - admin tokens (--admin-token-file / $SLUICE_ADMIN_TOKEN_FILE): a line is
//     `TOKEN`. An admin token may call everything, as any worker.
// Blank lines and lines starting with '#' are ignored. A token is 16..512
// printable ASCII characters without white space or ':'.
//
// Decisions (Authorize):
//   no `authorization: Bearer <token>` header, or an unknown token -> Unauthenticated
//   a worker token on an OperatorService call                       -> PermissionDenied
//   a worker token bound to w1 used with worker_id w2               -> PermissionDenied
//   an unbound worker token used with a worker_id bound to a token  -> PermissionDenied
//     (a bound worker id is reserved for its token)
// With no tokens configured the Authenticator is disabled and allows every
// call (the coordinator warns at start-up when that is not on loopback).
//
// Token values never appear in a Status message, a log line or --print-config.
// Tokens are compared in constant time (ConstantTimeEquals), and every
// configured token is compared on every call, so neither timing nor an early
// exit tells which token or how much of it matched.
//
// Thread-safety: immutable after construction; Authorize is safe to call from
// any number of threads.
#pragma once

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace grpc {
class ServerContext;
}

namespace sluice {

inline constexpr size_t kMinTokenLength = 16;
inline constexpr size_t kMaxTokenLength = 512;

// True when `presented` equals `expected`. The time taken depends only on
// presented.size(), never on the content of either or where they differ. A
// hand-written loop (no early exit, no data-dependent branch) instead of
// OpenSSL's CRYPTO_memcmp, which needs equal lengths and would add a direct
// libcrypto dependency to code that is otherwise pure.
bool ConstantTimeEquals(std::string_view expected, std::string_view presented);

struct TokenEntry {
  std::string token;
  std::string worker_id;  // empty: not bound to a worker
};

enum class TokenFileKind { kWorker, kAdmin };

// Parses a token file's content. `name` is used in messages ("FILE:LINE:
// reason"), which never contain a token. InvalidArgument for a malformed
// line, a short or long token, a bad worker id, a duplicate token, a
// `WORKER_ID:` prefix in an admin file, or a file with no token.
absl::StatusOr<std::vector<TokenEntry>> ParseTokenFile(std::string_view name,
                                                       std::string_view content,
                                                       TokenFileKind kind);

// Reads and parses `path`; NotFound/PermissionDenied-style errors come back as
// InvalidArgument naming the file (a configuration error).
absl::StatusOr<std::vector<TokenEntry>> ReadTokenFile(const std::string& path, TokenFileKind kind);

enum class CallKind { kWorker, kOperator };

class Authenticator {
 public:
  // Disabled: allows everything.
  Authenticator() = default;
  // InvalidArgument when the same token appears as a worker and an admin token.
  static absl::StatusOr<Authenticator> Create(std::vector<TokenEntry> worker_tokens,
                                              std::vector<TokenEntry> admin_tokens);
  // Reads the files; an empty path means none of that kind. Both empty: disabled.
  static absl::StatusOr<Authenticator> FromFiles(const std::string& worker_token_file,
                                                 const std::string& admin_token_file);

  bool enabled() const { return !worker_.empty() || !admin_.empty(); }
  size_t worker_token_count() const { return worker_.size(); }
  size_t admin_token_count() const { return admin_.size(); }

  // `authorization` is the value of the "authorization" request header, if
  // any. `worker_id` is the worker id the request names (kWorker calls only).
  absl::Status Authorize(std::optional<std::string_view> authorization, CallKind kind,
                         std::string_view worker_id) const;

  // Authorize with the header taken from a gRPC server call.
  absl::Status Authorize(const grpc::ServerContext& context, CallKind kind,
                         std::string_view worker_id) const;

 private:
  std::vector<TokenEntry> worker_;
  std::vector<TokenEntry> admin_;
  // Worker ids bound to a worker token: reserved for that token.
  std::set<std::string, std::less<>> pinned_ids_;
};

}  // namespace sluice
