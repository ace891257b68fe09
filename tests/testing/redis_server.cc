#include "tests/testing/redis_server.h"

#include <hiredis/hiredis.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace sluice::testing {
namespace {

using Clock = std::chrono::steady_clock;

// redis-server's absolute path, resolved before fork (execv in the child
// then needs no PATH search).
std::string FindRedisServer() {
  if (const char* env = std::getenv("SLUICE_REDIS_SERVER"); env != nullptr && *env != '\0') {
    return access(env, X_OK) == 0 ? env : "";
  }
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    const std::string candidate = dirs.substr(start, end - start) + "/redis-server";
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return "";
}

std::string ReplyText(const redisReply* r) {
  switch (r->type) {
    case REDIS_REPLY_INTEGER:
      return std::to_string(r->integer);
    case REDIS_REPLY_NIL:
      return "(nil)";
    case REDIS_REPLY_ARRAY: {
      std::vector<std::string> parts;
      for (size_t i = 0; i < r->elements; ++i) parts.push_back(ReplyText(r->element[i]));
      return absl::StrJoin(parts, "\n");
    }
    default:
      return std::string(r->str, r->len);
  }
}

}  // namespace

RedisServer::RedisServer(RedisServerOptions options)
    : options_(std::move(options)),
      socket_path_(dir_.File("redis.sock")),
      binary_(FindRedisServer()) {}

absl::StatusOr<std::unique_ptr<RedisServer>> RedisServer::Start(RedisServerOptions options) {
  std::unique_ptr<RedisServer> server(new RedisServer(std::move(options)));
  if (server->binary_.empty()) {
    return absl::FailedPreconditionError(
        "redis-server not found on PATH or at $SLUICE_REDIS_SERVER (install the redis-server "
        "package); Redis tests fail rather than skip");
  }
  if (server->socket_path_.size() >= 100) {
    return absl::FailedPreconditionError(absl::StrCat(
        "Unix socket path too long (", server->socket_path_, "); set TMPDIR to a shorter path"));
  }
  if (absl::Status s = server->Launch(); !s.ok()) return s;
  return server;
}

RedisServer::~RedisServer() {
  if (pid_ > 0) (void)Kill();
}

std::string RedisServer::Url(const std::string& key_namespace) const {
  std::vector<std::string> query;
  if (!key_namespace.empty()) query.push_back("namespace=" + key_namespace);
  if (!options_.requirepass.empty()) query.push_back("password=" + options_.requirepass);
  std::string url = "redis+unix://" + socket_path_;
  if (!query.empty()) url += "?" + absl::StrJoin(query, "&");
  return url;
}

absl::Status RedisServer::Launch() {
  std::vector<std::string> args = {binary_,
                                   "--port",
                                   "0",
                                   "--unixsocket",
                                   socket_path_,
                                   "--unixsocketperm",
                                   "700",
                                   "--dir",
                                   dir_.path().string(),
                                   "--logfile",
                                   dir_.File("redis.log"),
                                   "--daemonize",
                                   "no",
                                   "--save",
                                   "",
                                   "--appendonly",
                                   options_.appendonly ? "yes" : "no"};
  if (options_.appendonly) {
    args.insert(args.end(), {"--appendfsync", options_.appendfsync});
  }
  if (!options_.requirepass.empty()) {
    args.insert(args.end(), {"--requirepass", options_.requirepass});
  }
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    // Die with the test process, even when it is SIGKILLed.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    execv(argv[0], argv.data());
    _exit(127);
  }
  pid_ = pid;
  return WaitForPing();
}

absl::Status RedisServer::WaitForPing() {
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  std::string last = "no answer";
  while (Clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::UnavailableError(absl::StrCat(binary_, " exited (status ", status,
                                                 ") before answering PING; its log:\n", LogTail()));
    }
    absl::StatusOr<std::string> pong = Command({"PING"});
    if (pong.ok() && *pong == "PONG") return absl::OkStatus();
    last = pong.ok() ? *pong : std::string(pong.status().message());
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  (void)Kill();
  return absl::UnavailableError(absl::StrCat(binary_, " did not answer PING on ", socket_path_,
                                             " within 10 s (", last, "); its log:\n", LogTail()));
}

absl::Status RedisServer::Signal(int signo) {
  if (pid_ <= 0) return absl::FailedPreconditionError("redis-server is not running");
  kill(pid_, signo);
  int status = 0;
  if (signo == SIGTERM) {
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (waitpid(pid_, &status, WNOHANG) == 0) {
      if (Clock::now() > deadline) {
        kill(pid_, SIGKILL);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  waitpid(pid_, &status, 0);
  pid_ = -1;
  std::error_code ignored;
  std::filesystem::remove(socket_path_, ignored);  // a killed server leaves it behind
  return absl::OkStatus();
}

absl::Status RedisServer::Stop() { return Signal(SIGTERM); }
absl::Status RedisServer::Kill() { return Signal(SIGKILL); }

absl::Status RedisServer::Restart() {
  if (pid_ > 0) return absl::FailedPreconditionError("redis-server is still running");
  return Launch();
}

absl::StatusOr<std::string> RedisServer::Command(const std::vector<std::string>& argv) const {
  const timeval timeout{5, 0};
  redisContext* c = redisConnectUnixWithTimeout(socket_path_.c_str(), timeout);
  if (c == nullptr || c->err != 0) {
    std::string err = c != nullptr ? c->errstr : "out of memory";
    if (c != nullptr) redisFree(c);
    return absl::UnavailableError(absl::StrCat("cannot connect to ", socket_path_, ": ", err));
  }
  redisSetTimeout(c, timeout);
  auto run = [c](const std::vector<std::string>& args) -> absl::StatusOr<std::string> {
    std::vector<const char*> ptrs;
    std::vector<size_t> lens;
    for (const std::string& a : args) {
      ptrs.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* r = static_cast<redisReply*>(
        redisCommandArgv(c, static_cast<int>(args.size()), ptrs.data(), lens.data()));
    if (r == nullptr) return absl::UnavailableError(c->errstr);
    const bool error = r->type == REDIS_REPLY_ERROR;
    std::string text = ReplyText(r);
    freeReplyObject(r);
    if (error) return absl::InternalError(text);
    return text;
  };
  absl::StatusOr<std::string> out = std::string();
  if (!options_.requirepass.empty()) out = run({"AUTH", options_.requirepass});
  if (out.ok()) out = run(argv);
  redisFree(c);
  return out;
}

std::string RedisServer::LogTail() const {
  const std::string log = ReadFile(dir_.File("redis.log"));
  return log.size() > 2000 ? log.substr(log.size() - 2000) : log;
}

}  // namespace sluice::testing
