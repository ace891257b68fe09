// A loopback TCP proxy for fault tests: a worker talks to the coordinator
// through it, and the test cuts the link with Pause() and restores it with
// Resume(). Works without privileges (unlike network namespaces), so the same
// test runs on a laptop, in CI and in an unprivileged container.
//
// Pause() is a cut the endpoints notice: every open connection is reset (RST)
// and new connections are accepted and reset at once, until Resume(). (A
// silent black hole would only show after the clients' RPC deadlines, which
// are far longer than the short lease TTLs the tests use.)
//
// BlackHole() is the silent kind of cut, as when a firewall or a dead route
// drops packets: open connections stay open but no byte moves either way,
// and new connections wait unaccepted in the listen backlog; nobody gets a
// reset. It shows what only a deadline can detect. Resume() forwards again
// (bytes held meanwhile go through, as TCP retransmits would deliver them).
//
// One poll()-based thread forwards bytes in both directions; the upstream
// connect is a blocking loopback connect (immediate, or refused when the
// target is down, in which case the client is reset).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace sluice::testing {

class TcpProxy {
 public:
  // Listens on 127.0.0.1 (a free port) and forwards every connection to
  // 127.0.0.1:target_port.
  static absl::StatusOr<std::unique_ptr<TcpProxy>> Start(int target_port);
  ~TcpProxy();
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  // Thread-safe; each returns once the forwarding thread has applied it.
  // Pause() and BlackHole() replace each other; Resume() ends either.
  void Pause();
  void BlackHole();
  void Resume();

  // Connections forwarded so far, and connections reset because of a pause.
  int64_t forwarded() const { return forwarded_.load(); }
  int64_t reset() const { return reset_.load(); }

 private:
  struct Pair;
  TcpProxy(int listen_fd, int port, int target_port, int wake_read, int wake_write);
  void Loop();
  void Wake();
  void WaitApplied(uint64_t generation);

  const int listen_fd_;
  const int port_;
  const int target_port_;
  const int wake_read_;
  const int wake_write_;
  std::atomic<bool> paused_{false};
  std::atomic<bool> black_hole_{false};
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> requested_{0};  // bumped by Pause/Resume
  std::atomic<uint64_t> applied_{0};    // the loop's last seen request
  std::atomic<int64_t> forwarded_{0};
  std::atomic<int64_t> reset_{0};
  std::thread thread_;
};

}  // namespace sluice::testing
