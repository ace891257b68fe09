#include "coordinator/store/redis/redis_connection.h"

#include <hiredis/hiredis.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/leadership/not_leader.h"
#include "coordinator/store/redis/redis_lua_scripts.h"

namespace sluice {
namespace {

RedisReply Convert(const redisReply* r) {
  RedisReply out;
  switch (r->type) {
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_STRING:
      out.type = RedisReply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = RedisReply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = RedisReply::Type::kError;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::kArray;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(Convert(r->element[i]));
      break;
    default:
      out.type = RedisReply::Type::kNil;
  }
  return out;
}

// Blocks SIGPIPE in this thread while hiredis writes to a socket the server
// may have closed (hiredis 0.14 uses write(), which raises SIGPIPE), and
// swallows a SIGPIPE raised meanwhile; the write then fails with EPIPE.
class ScopedSigpipeBlock {
 public:
  ScopedSigpipeBlock() {
    sigset_t pipe_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old_);
  }
  ~ScopedSigpipeBlock() {
    if (!was_pending_) {
      sigset_t pending;
      sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        sigset_t pipe_set;
        sigemptyset(&pipe_set);
        sigaddset(&pipe_set, SIGPIPE);
        const timespec zero{0, 0};
        while (sigtimedwait(&pipe_set, nullptr, &zero) < 0 && errno == EINTR) {
        }
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  ScopedSigpipeBlock(const ScopedSigpipeBlock&) = delete;
  ScopedSigpipeBlock& operator=(const ScopedSigpipeBlock&) = delete;

 private:
  sigset_t old_;
  bool was_pending_ = false;
};

// True when the server closed an idle connection (or sent something we did
// not ask for): it must be replaced before anything is sent on it.
bool IdleConnectionBroken(int fd) {
  pollfd p{fd, POLLIN, 0};
  const int n = poll(&p, 1, 0);
  if (n == 0) return false;
  if (n < 0) return errno != EINTR;
  char c;
  const ssize_t got = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (got < 0) return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
  return true;  // EOF, or unsolicited bytes
}

}  // namespace

int64_t RedisReply::Int() const {
  if (type == Type::kInteger) return integer;
  int64_t v = 0;
  return absl::SimpleAtoi(str, &v) ? v : 0;
}

absl::Status ExpectRedisArray(const RedisReply& r, size_t multiple_of, const char* what) {
  if (r.type != RedisReply::Type::kArray ||
      (multiple_of != 0 && r.elements.size() % multiple_of != 0)) {
    return absl::InternalError(absl::StrCat("redis: unexpected reply to ", what));
  }
  return absl::OkStatus();
}

// Maps an error reply. Script errors carry a status code as their first word.
absl::Status RedisErrorToStatus(const std::string& message, const std::string& where) {
  const std::string code = message.substr(0, message.find(' '));
  const std::string rest = message.size() > code.size() ? message.substr(code.size() + 1) : "";
  if (code == "FAILED_PRECONDITION") return absl::FailedPreconditionError(rest);
  if (code == "INVALID_ARGUMENT") return absl::InvalidArgumentError(rest);
  if (code == "ALREADY_EXISTS") return absl::AlreadyExistsError(rest);
  if (code == "INTERNAL") return absl::InternalError(absl::StrCat("redis store: ", rest));
  if (code == "NOT_LEADER") return NotLeaderError(rest);
  static const char* const kTransient[] = {"LOADING",     "BUSY",       "MASTERDOWN", "READONLY",
                                           "OOM",         "NOAUTH",     "WRONGPASS",  "TRYAGAIN",
                                           "CLUSTERDOWN", "NOREPLICAS", "NOPERM"};
  for (const char* t : kTransient) {
    if (code == t) return absl::UnavailableError(absl::StrCat("redis ", where, ": ", message));
  }
  return absl::InternalError(absl::StrCat("redis ", where, ": ", message));
}

std::string ComposeRedisScript(ScriptAccess access, bool fenced, const char* body) {
  return absl::StrCat(access == ScriptAccess::kWrite ? "#!lua flags=no-cluster\n"
                                                     : "#!lua flags=no-writes,no-cluster\n",
                      redis_lua::kPreludeLua, fenced ? redis_lua::kFencePreludeLua : "", body);
}

RedisConnection::RedisConnection(RedisOptions options, std::vector<std::string> scripts)
    : options_(std::move(options)),
      prefix_(absl::StrCat(options_.key_namespace, ":")),
      scripts_(std::move(scripts)) {}

RedisConnection::~RedisConnection() {
  absl::MutexLock lock(&mu_);
  DropLocked();
}

std::string RedisConnection::Where() const {
  return options_.unix_socket.empty() ? absl::StrCat(options_.host, ":", options_.port)
                                      : options_.unix_socket;
}

void RedisConnection::DropLocked() {
  if (ctx_ != nullptr) redisFree(ctx_);
  ctx_ = nullptr;
}

absl::Status RedisConnection::ConnectLocked() {
  const timeval connect_tv = absl::ToTimeval(options_.connect_timeout);
  redisContext* c = options_.unix_socket.empty()
                        ? redisConnectWithTimeout(options_.host.c_str(), options_.port, connect_tv)
                        : redisConnectUnixWithTimeout(options_.unix_socket.c_str(), connect_tv);
  if (c == nullptr) return absl::UnavailableError("redis: cannot allocate a connection");
  if (c->err != 0) {
    absl::Status s =
        absl::UnavailableError(absl::StrCat("redis ", Where(), ": cannot connect: ", c->errstr));
    redisFree(c);
    return s;
  }
  redisSetTimeout(c, absl::ToTimeval(options_.command_timeout));
  if (options_.unix_socket.empty()) redisEnableKeepAlive(c);
  ctx_ = c;

  if (!options_.password.empty()) {
    std::vector<std::string> auth = {"AUTH"};
    if (!options_.username.empty()) auth.push_back(options_.username);
    auth.push_back(options_.password);
    absl::Status s = SetupCommandLocked(auth, "AUTH failed");
    if (!s.ok()) return absl::UnavailableError(s.message());
  }
  if (options_.password.empty()) {
    // A server that wants a password answers NOAUTH to a small command; to a
    // script of more than 16 KiB, the first command otherwise, Redis 7
    // answers a protocol error instead ("unauthenticated bulk length").
    SLUICE_RETURN_IF_ERROR(SetupCommandLocked({"PING"}, "PING failed"));
  }
  if (options_.db != 0) {
    SLUICE_RETURN_IF_ERROR(
        SetupCommandLocked({"SELECT", std::to_string(options_.db)}, "SELECT failed"));
  }
  // Load every script now, so a restarted Redis never answers NOSCRIPT in
  // the middle of a drain. SHA1s are deterministic: the same on every server.
  std::vector<std::string> shas;
  for (const std::string& script : scripts_) {
    absl::StatusOr<RedisReply> r = RawLocked({"SCRIPT", "LOAD", script});
    if (!r.ok()) return r.status();
    if (r->type != RedisReply::Type::kString) {
      DropLocked();
      return RedisErrorToStatus(r->str, Where());
    }
    shas.push_back(r->str);
  }
  shas_ = std::move(shas);
  return absl::OkStatus();
}

absl::Status RedisConnection::SetupCommandLocked(const std::vector<std::string>& argv,
                                                 const char* what) {
  SLUICE_ASSIGN_OR_RETURN(RedisReply r, RawLocked(argv));
  if (r.type != RedisReply::Type::kError) return absl::OkStatus();
  DropLocked();
  // The reply names the problem (NOAUTH, WRONGPASS, ...); the argv, which may
  // hold the password, is never part of the message.
  const absl::Status mapped = RedisErrorToStatus(r.str, Where());
  return absl::Status(mapped.code(), absl::StrCat("redis ", Where(), ": ", what, ": ", r.str));
}

absl::Status RedisConnection::EnsureConnectedLocked() {
  if (ctx_ != nullptr) {
    if (!IdleConnectionBroken(ctx_->fd)) return absl::OkStatus();
    DropLocked();  // closed while idle (e.g. Redis restarted): nothing was sent yet
  }
  const absl::Time now = absl::Now();
  if (now < next_connect_at_) {
    return absl::UnavailableError(absl::StrCat(last_error_, " (next reconnect attempt in ",
                                               absl::FormatDuration(next_connect_at_ - now), ")"));
  }
  absl::Status s = ConnectLocked();
  if (!s.ok()) {
    backoff_ = backoff_ == absl::ZeroDuration()
                   ? options_.reconnect_backoff_initial
                   : std::min(backoff_ * 2, options_.reconnect_backoff_max);
    next_connect_at_ = absl::Now() + backoff_;
    last_error_ = std::string(s.message());
    return s;
  }
  backoff_ = absl::ZeroDuration();
  next_connect_at_ = absl::InfinitePast();
  return absl::OkStatus();
}

absl::StatusOr<RedisReply> RedisConnection::RawLocked(const std::vector<std::string>& argv) {
  std::vector<const char*> args;
  std::vector<size_t> lens;
  args.reserve(argv.size());
  lens.reserve(argv.size());
  for (const std::string& a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  redisReply* raw = nullptr;
  {
    ScopedSigpipeBlock no_sigpipe;
    raw = static_cast<redisReply*>(
        redisCommandArgv(ctx_, static_cast<int>(argv.size()), args.data(), lens.data()));
  }
  if (raw == nullptr) {
    std::string err = ctx_->errstr;
    if (err.empty()) err = "connection lost";
    DropLocked();
    // The next call reconnects at once; only failed connects back off.
    next_connect_at_ = absl::InfinitePast();
    return absl::UnavailableError(
        absl::StrCat("redis ", Where(), ": ", err, " (during ", argv.empty() ? "" : argv[0],
                     "; a command already sent may or may not have been applied)"));
  }
  RedisReply reply = Convert(raw);
  freeReplyObject(raw);
  return reply;
}

absl::StatusOr<RedisReply> RedisConnection::SendLocked(const std::vector<std::string>& argv,
                                                       absl::Duration timeout) {
  SLUICE_RETURN_IF_ERROR(EnsureConnectedLocked());
  const bool custom = timeout != options_.command_timeout;
  if (custom) redisSetTimeout(ctx_, absl::ToTimeval(timeout));
  absl::StatusOr<RedisReply> r = RawLocked(argv);
  if (custom && ctx_ != nullptr) redisSetTimeout(ctx_, absl::ToTimeval(options_.command_timeout));
  return r;
}

absl::StatusOr<RedisReply> RedisConnection::Command(const std::vector<std::string>& argv) {
  absl::MutexLock lock(&mu_);
  SLUICE_ASSIGN_OR_RETURN(RedisReply r, SendLocked(argv, options_.command_timeout));
  if (r.type == RedisReply::Type::kError) return RedisErrorToStatus(r.str, Where());
  return r;
}

absl::StatusOr<RedisReply> RedisConnection::RunScript(size_t index,
                                                      const std::vector<std::string>& args,
                                                      absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  for (int round = 0; round < 2; ++round) {
    SLUICE_RETURN_IF_ERROR(EnsureConnectedLocked());
    std::vector<std::string> argv;
    argv.reserve(args.size() + 4);
    argv.push_back("EVALSHA");
    argv.push_back(shas_[index]);
    argv.push_back("0");
    argv.push_back(prefix_);
    argv.insert(argv.end(), args.begin(), args.end());
    SLUICE_ASSIGN_OR_RETURN(RedisReply r, SendLocked(argv, timeout));
    if (r.type != RedisReply::Type::kError) return r;
    if (!absl::StartsWith(r.str, "NOSCRIPT")) return RedisErrorToStatus(r.str, Where());
    // Someone ran SCRIPT FLUSH: nothing ran; load it again and retry once.
    SLUICE_ASSIGN_OR_RETURN(RedisReply loaded,
                            SendLocked({"SCRIPT", "LOAD", scripts_[index]}, timeout));
    if (loaded.type == RedisReply::Type::kError) return RedisErrorToStatus(loaded.str, Where());
    shas_[index] = loaded.Text();
  }
  return absl::UnavailableError(absl::StrCat("redis ", Where(), ": script keeps disappearing"));
}

absl::Status RedisConnection::PipelineLocked(
    size_t count, CommandFiller command,
    absl::FunctionRef<void(size_t, const redisReply*)> on_reply) {
  SLUICE_RETURN_IF_ERROR(EnsureConnectedLocked());
  ScopedSigpipeBlock no_sigpipe;
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (size_t i = 0; i < count; ++i) {
    argv.clear();
    lens.clear();
    command(i, argv, lens);
    // Appending only fills hiredis' output buffer; a failure here is out
    // of memory, and then nothing of the batch was sent.
    if (redisAppendCommandArgv(ctx_, static_cast<int>(argv.size()), argv.data(), lens.data()) !=
        REDIS_OK) {
      DropLocked();
      return absl::UnavailableError(
          absl::StrCat("redis ", Where(), ": cannot queue a pipelined command"));
    }
  }
  for (size_t i = 0; i < count; ++i) {
    void* raw = nullptr;
    if (redisGetReply(ctx_, &raw) != REDIS_OK || raw == nullptr) {
      std::string err = ctx_ != nullptr ? ctx_->errstr : "";
      if (err.empty()) err = "connection lost";
      DropLocked();
      next_connect_at_ = absl::InfinitePast();  // the next call reconnects at once
      return absl::UnavailableError(
          absl::StrCat("redis ", Where(), ": ", err,
                       " (during a pipeline; a command already sent may or may not have been "
                       "applied)"));
    }
    on_reply(i, static_cast<const redisReply*>(raw));
    freeReplyObject(raw);
  }
  return absl::OkStatus();
}

std::vector<absl::StatusOr<RedisReply>> RedisConnection::RunScriptPipelined(
    size_t index, const std::vector<std::vector<std::string>>& calls) {
  std::vector<absl::StatusOr<RedisReply>> answers;
  answers.reserve(calls.size());
  std::vector<size_t> reload;  // calls answered NOSCRIPT: nothing of them ran
  {
    absl::MutexLock lock(&mu_);
    const absl::Status io = PipelineLocked(
        calls.size(),
        [&](size_t i, std::vector<const char*>& argv, std::vector<size_t>& lens) {
          argv = {"EVALSHA", shas_[index].c_str(), "0", prefix_.c_str()};
          lens = {7, shas_[index].size(), 1, prefix_.size()};
          for (const std::string& a : calls[i]) {
            argv.push_back(a.data());
            lens.push_back(a.size());
          }
        },
        [&](size_t i, const redisReply* raw) {
          RedisReply reply = Convert(raw);
          if (reply.type != RedisReply::Type::kError) {
            answers.push_back(std::move(reply));
          } else if (absl::StartsWith(reply.str, "NOSCRIPT")) {
            reload.push_back(i);
            answers.push_back(absl::UnavailableError("NOSCRIPT"));
          } else {
            answers.push_back(RedisErrorToStatus(reply.str, Where()));
          }
        });
    while (answers.size() < calls.size()) answers.push_back(io);
  }
  // Someone ran SCRIPT FLUSH: those calls did not run; RunScript reloads.
  for (size_t i : reload) answers[i] = RunScript(index, calls[i]);
  return answers;
}

absl::Status RedisConnection::VisitPipelined(
    size_t count, CommandFiller command,
    absl::FunctionRef<absl::Status(size_t, RedisReplyView)> visit) {
  absl::MutexLock lock(&mu_);
  absl::Status first;
  const absl::Status io = PipelineLocked(count, command, [&](size_t i, const redisReply* raw) {
    if (!first.ok()) return;  // read on to keep the connection in step
    first = raw->type == REDIS_REPLY_ERROR
                ? RedisErrorToStatus(std::string(raw->str, raw->len), Where())
                : visit(i, RedisReplyView(raw));
  });
  return first.ok() ? io : first;
}

bool RedisReplyView::nil() const { return r_->type == REDIS_REPLY_NIL; }
bool RedisReplyView::array() const { return r_->type == REDIS_REPLY_ARRAY; }
size_t RedisReplyView::size() const { return array() ? r_->elements : 0; }
RedisReplyView RedisReplyView::operator[](size_t i) const { return RedisReplyView(r_->element[i]); }

std::string RedisReplyView::Text() const {
  switch (r_->type) {
    case REDIS_REPLY_INTEGER:
      return std::to_string(r_->integer);
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
      return std::string(r_->str, r_->len);
    default:
      return {};
  }
}

int64_t RedisReplyView::Int() const {
  if (r_->type == REDIS_REPLY_INTEGER) return r_->integer;
  if (r_->type != REDIS_REPLY_STRING && r_->type != REDIS_REPLY_STATUS) return 0;
  int64_t v = 0;
  return absl::SimpleAtoi(absl::string_view(r_->str, r_->len), &v) ? v : 0;
}

}  // namespace sluice
