// One hiredis connection to Redis, shared by the Redis stores
// (redis_state_store.h, redis_leader_lease_store.h): connect and reconnect
// with backoff, AUTH and SELECT, SCRIPT LOAD of the owner's Lua scripts, and
// EVALSHA with a reload on NOSCRIPT.
//
// Contract:
// - Thread-safe: one connection behind a mutex, so calls are serialized
//   (Redis is single-threaded anyway).
// - Lazy: nothing is sent before the first call. A broken connection is
//   dropped and the next call reconnects (with AUTH and SELECT, then SCRIPT
//   LOAD of every script), retrying a failed connect no sooner than an
//   exponential backoff (reconnect_backoff_initial doubling to
//   reconnect_backoff_max) allows. A connection the server closed while idle
//   (Redis restarted) is detected before sending and replaced.
// - Errors: Unavailable while Redis cannot be reached, times out, or refuses
//   (LOADING, BUSY, READONLY, OOM, NOAUTH, ...). When a reply is lost after
//   the command was sent the call returns Unavailable although the command
//   may have run: callers must treat Unavailable as "unknown outcome".
//   Script errors whose first word is a status code (FAILED_PRECONDITION,
//   ALREADY_EXISTS, INTERNAL, NOT_LEADER) map to that code.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "coordinator/store/redis/redis_url.h"

struct redisContext;
struct redisReply;

namespace sluice {

// A parsed reply, detached from hiredis.
struct RedisReply {
  enum class Type { kNil, kInteger, kString, kStatus, kArray, kError };
  Type type = Type::kNil;
  int64_t integer = 0;
  std::string str;  // kString, kStatus, kError
  std::vector<RedisReply> elements;

  bool nil() const { return type == Type::kNil; }
  // Strings and integers as text; nil as "".
  std::string Text() const { return type == Type::kInteger ? std::to_string(integer) : str; }
  // Integers, and strings holding an integer; anything else is 0.
  int64_t Int() const;
  int32_t Int32() const { return static_cast<int32_t>(Int()); }
};

// A reply read in place, in hiredis's own memory: valid only inside the visit
// it is passed to (RedisConnection::VisitPipelined). For readers of many
// replies (a long history) that decode each at once instead of copying it
// into a RedisReply first.
class RedisReplyView {
 public:
  explicit RedisReplyView(const redisReply* reply) : r_(reply) {}
  bool nil() const;
  bool array() const;
  size_t size() const;  // an array's elements; 0 otherwise
  RedisReplyView operator[](size_t i) const;
  // As RedisReply's: strings and integers as text, nil as "".
  std::string Text() const;
  int64_t Int() const;
  int32_t Int32() const { return static_cast<int32_t>(Int()); }

 private:
  const redisReply* r_;
};

// Internal unless `r` is an array whose size is a multiple of multiple_of
// (0: any size); `what` names the call in the message.
absl::Status ExpectRedisArray(const RedisReply& r, size_t multiple_of, const char* what);

// Maps an error reply's message (see the file comment); `where` names the server.
absl::Status RedisErrorToStatus(const std::string& message, const std::string& where);

// A script as sent to Redis: the shebang (`#!lua flags=no-cluster`, plus
// no-writes for readers, so Redis refuses a writer whole when out of memory),
// scripts/prelude.lua, scripts/fence_prelude.lua when fenced, then `body`.
enum class ScriptAccess { kRead, kWrite };
std::string ComposeRedisScript(ScriptAccess access, bool fenced, const char* body);

class RedisConnection {
 public:
  // `scripts` are full sources (ComposeRedisScript); RunScript(i) runs
  // scripts[i]. Does not connect.
  RedisConnection(RedisOptions options, std::vector<std::string> scripts);
  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  const RedisOptions& options() const { return options_; }
  // "<namespace>:", the start of every key.
  const std::string& prefix() const { return prefix_; }
  // host:port or the socket path, for messages.
  std::string Where() const;

  // Runs one plain command with the command timeout; an error reply becomes
  // a status.
  absl::StatusOr<RedisReply> Command(const std::vector<std::string>& argv) ABSL_LOCKS_EXCLUDED(mu_);
  // EVALSHA of script `index` with no KEYS and ARGV = {prefix, args...}; a
  // NOSCRIPT answer (SCRIPT FLUSH) reloads the script and retries once.
  absl::StatusOr<RedisReply> RunScript(size_t index, const std::vector<std::string>& args,
                                       absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<RedisReply> RunScript(size_t index, const std::vector<std::string>& args) {
    return RunScript(index, args, options_.command_timeout);
  }
  // RunScript of script `index` once per element of `calls`, pipelined: all
  // are sent, then all answers read, so the batch costs one round trip. One
  // answer per call, in order. Each script is atomic on its own; when the
  // connection breaks mid-batch, the unanswered calls get Unavailable (they
  // may or may not have run, as for RunScript). NOSCRIPT answers reload the
  // script and run those calls again, one by one.
  std::vector<absl::StatusOr<RedisReply>> RunScriptPipelined(
      size_t index, const std::vector<std::vector<std::string>>& calls) ABSL_LOCKS_EXCLUDED(mu_);
  // Fills command i's arguments (pointers and lengths that stay valid until
  // the call returns).
  using CommandFiller =
      absl::FunctionRef<void(size_t, std::vector<const char*>&, std::vector<size_t>&)>;
  // `count` plain commands, pipelined as RunScriptPipelined (one round
  // trip; not a transaction: other clients' commands may run in between),
  // each reply passed to `visit` in order and in place (no copy). Returns
  // the first failure: an error reply, a visit's error, or a lost
  // connection (Unavailable); the replies after it are read but not
  // visited. `visit` runs under the connection's lock and must not call
  // back into it.
  absl::Status VisitPipelined(size_t count, CommandFiller command,
                              absl::FunctionRef<absl::Status(size_t, RedisReplyView)> visit)
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::Status EnsureConnectedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status ConnectLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // AUTH or SELECT on a fresh connection; drops it on an error reply.
  absl::Status SetupCommandLocked(const std::vector<std::string>& argv, const char* what)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DropLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sends `count` commands (command(i, ...) fills each), then reads their
  // replies, passing each to on_reply in order (error replies too). A lost
  // connection is Unavailable, and the replies after it are not read.
  absl::Status PipelineLocked(size_t count, CommandFiller command,
                              absl::FunctionRef<void(size_t, const redisReply*)> on_reply)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // One round trip on the current connection; an I/O error drops it.
  absl::StatusOr<RedisReply> RawLocked(const std::vector<std::string>& argv)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<RedisReply> SendLocked(const std::vector<std::string>& argv,
                                        absl::Duration timeout) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const RedisOptions options_;
  const std::string prefix_;
  const std::vector<std::string> scripts_;

  absl::Mutex mu_;
  std::vector<std::string> shas_ ABSL_GUARDED_BY(mu_);  // per script, from SCRIPT LOAD
  redisContext* ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
  absl::Time next_connect_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Duration backoff_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();
  std::string last_error_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sluice
