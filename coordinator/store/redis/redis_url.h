// Where and how to reach Redis: RedisOptions and the two --store URL forms
//   redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?namespace=NAME]
//   redis+unix:///path/to/redis.sock[?db=N&password=P&namespace=NAME]
// plus, in both, password_file=PATH instead of a password (docs/redis.md).
// Pure code: no I/O, thread-compatible.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace sluice {

struct RedisOptions {
  // Where Redis listens: a Unix socket when unix_socket is set, else host:port.
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string unix_socket;
  // AUTH: sent when password is non-empty (with username when that is set,
  // Redis 6 ACL users). Empty: no AUTH.
  std::string username;
  std::string password;
  // password_file=PATH: the password is the file's first line, read by
  // OpenStore (store_factory.h), so it never has to be in a command line.
  std::string password_file;
  int db = 0;  // SELECT db (0..15 on a default Redis); 0 sends nothing
  // Every key starts with "<key_namespace>:". [A-Za-z0-9_-]{1,64}, so two
  // namespaces can never produce the same key. Default "sluice".
  std::string key_namespace = "sluice";
  // Applies to each connect attempt.
  absl::Duration connect_timeout = absl::Seconds(2);
  // Applies to each command; each slice of an import's commit uses
  // import_timeout instead: a slice normally takes well under 0.1 s, the
  // margin is for a Redis that is itself slow (swapping, a huge AOF fsync).
  absl::Duration command_timeout = absl::Seconds(2);
  absl::Duration import_timeout = absl::Seconds(60);
  // Phases one import script applies at most (> 0). Redis serves nobody else
  // while a script runs, so this bounds how long an import stalls leases,
  // reports and the leader lease's renewal: 1,000 new phases take 15-45 ms (at
  // worst ~100 ms on a loaded 2-core machine; docs/performance.md). Smaller
  // slices cost more round trips; larger ones block longer.
  int64_t import_slice_phases = 1'000;
  // How long RedisStateStore::LatestSession may answer from its cache since a
  // reply last confirmed the session generation (>= 0; zero: read every
  // time). A session written by another process is seen at this store's
  // next lease or report reply, and within this long even while the store
  // makes neither (an idle coordinator waiting for `sluice start --store`).
  absl::Duration session_cache_max_age = absl::Seconds(1);
  // Reconnect backoff after a failed connect: first delay, doubled to max.
  absl::Duration reconnect_backoff_initial = absl::Milliseconds(50);
  absl::Duration reconnect_backoff_max = absl::Seconds(2);
};

// Parses the two URL forms above. Query parameters: namespace, db (unix
// form; the TCP form takes /DB), password (unix form; the TCP form takes the
// userinfo), password_file (either form; not with a password). InvalidArgument naming the accepted
// forms on anything else.
absl::StatusOr<RedisOptions> ParseRedisUrl(const std::string& url);

// Decodes %XX escapes; a '%' not followed by two hex digits stays as it is.
std::string PercentDecode(const std::string& in);

// [A-Za-z0-9_-]{1,64}.
bool IsValidRedisNamespace(const std::string& ns);

// InvalidArgument for a bad namespace or a negative db (options built in
// code rather than parsed from a URL).
absl::Status ValidateRedisOptions(const RedisOptions& options);

}  // namespace sluice
