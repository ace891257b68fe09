// A real redis-server for tests: started on a Unix socket in a fresh temp
// directory (`--port 0 --unixsocket DIR/redis.sock --save '' --appendonly no`
// by default), ready once it answers PING, killed when the object goes away
// (and by the kernel if the test process dies: PR_SET_PDEATHSIG).
//
// A missing or failing redis-server is an error the test must ASSERT on:
// Redis tests fail loudly, they never skip. The binary is $SLUICE_REDIS_SERVER
// when set, else `redis-server` from PATH.
//
// Not thread-safe: drive one server from the test's main thread.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tests/testing/test_env.h"

namespace sluice::testing {

struct RedisServerOptions {
  // AOF on, so Stop() + Start() keeps every write.
  bool appendonly = false;
  // With appendonly: "always" (fsync per write) or "everysec" (the operators'
  // default; a killed redis-server still loses nothing, only a host crash
  // can lose the last second).
  std::string appendfsync = "always";
  // requirepass; clients must AUTH.
  std::string requirepass;
};

class RedisServer {
 public:
  // Starts a server and waits (up to 10 s) for PING. The error names the
  // binary and quotes the server's log when it does not come up.
  static absl::StatusOr<std::unique_ptr<RedisServer>> Start(RedisServerOptions options = {});
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  const std::string& socket_path() const { return socket_path_; }
  // redis+unix://SOCKET?namespace=NS (NS omitted when empty), with the
  // password when the server requires one.
  std::string Url(const std::string& key_namespace = "") const;

  bool running() const { return pid_ > 0; }
  // SIGTERM and wait: Redis shuts down cleanly (the AOF is flushed).
  absl::Status Stop();
  // SIGKILL and wait: a crash.
  absl::Status Kill();
  // Starts the stopped server again: same directory, socket and options.
  absl::Status Restart();

  // Runs one command on a fresh connection (AUTH when needed). The reply as
  // text: strings and status as is, integers in decimal, nil as "(nil)",
  // arrays one element per line. An error reply is an error.
  absl::StatusOr<std::string> Command(const std::vector<std::string>& argv) const;

 private:
  explicit RedisServer(RedisServerOptions options);
  absl::Status Launch();
  absl::Status WaitForPing();
  absl::Status Signal(int signo);
  std::string LogTail() const;

  RedisServerOptions options_;
  ScratchDir dir_;
  std::string socket_path_;
  std::string binary_;
  pid_t pid_ = -1;
};

}  // namespace sluice::testing
