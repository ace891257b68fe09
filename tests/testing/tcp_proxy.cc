#include "tests/testing/tcp_proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <list>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace sluice::testing {
namespace {

constexpr size_t kMaxBuffered = 256 * 1024;  // per direction; reading pauses above it

void SetNonBlocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

// Closes with SO_LINGER 0, so the peer gets an RST: a cut, not a goodbye.
void Reset(int fd) {
  if (fd < 0) return;
  linger l{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  ::close(fd);
}

sockaddr_in Loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  return addr;
}

}  // namespace

// One proxied connection: bytes read from one side wait in the buffer toward
// the other until it can take them.
struct TcpProxy::Pair {
  int client = -1;
  int upstream = -1;
  std::string to_upstream;
  std::string to_client;
  bool broken = false;
};

absl::StatusOr<std::unique_ptr<TcpProxy>> TcpProxy::Start(int target_port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr = Loopback(0);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 64) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    return absl::InternalError(absl::StrCat("proxy listen: ", why));
  }
  SetNonBlocking(fd);
  int wake[2];
  if (::pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    ::close(fd);
    return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  }
  return std::unique_ptr<TcpProxy>(
      new TcpProxy(fd, ntohs(addr.sin_port), target_port, wake[0], wake[1]));
}

TcpProxy::TcpProxy(int listen_fd, int port, int target_port, int wake_read, int wake_write)
    : listen_fd_(listen_fd),
      port_(port),
      target_port_(target_port),
      wake_read_(wake_read),
      wake_write_(wake_write) {
  thread_ = std::thread([this] { Loop(); });
}

TcpProxy::~TcpProxy() {
  stop_.store(true);
  Wake();
  thread_.join();
  ::close(listen_fd_);
  ::close(wake_read_);
  ::close(wake_write_);
}

void TcpProxy::Wake() {
  const char byte = 1;
  [[maybe_unused]] const ssize_t n = ::write(wake_write_, &byte, 1);
}

void TcpProxy::WaitApplied(uint64_t generation) {
  while (applied_.load() < generation && !stop_.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

void TcpProxy::Pause() {
  black_hole_.store(false);
  paused_.store(true);
  const uint64_t generation = ++requested_;
  Wake();
  WaitApplied(generation);
}

void TcpProxy::BlackHole() {
  paused_.store(false);
  black_hole_.store(true);
  const uint64_t generation = ++requested_;
  Wake();
  WaitApplied(generation);
}

void TcpProxy::Resume() {
  paused_.store(false);
  black_hole_.store(false);
  const uint64_t generation = ++requested_;
  Wake();
  WaitApplied(generation);
}

void TcpProxy::Loop() {
  std::list<Pair> pairs;
  auto close_pair = [](Pair& p) {
    Reset(p.client);
    Reset(p.upstream);
    p.client = p.upstream = -1;
  };
  while (!stop_.load()) {
    // Apply the latest Pause/Resume before looking at any socket.
    const uint64_t generation = requested_.load();
    const bool paused = paused_.load();
    if (paused) {
      // Counted before the resets, so a client that saw one sees the count.
      reset_ += static_cast<int64_t>(pairs.size());
      for (Pair& p : pairs) close_pair(p);
      pairs.clear();
    }
    applied_.store(generation);

    if (black_hole_.load()) {
      // Touch no socket: connections stay open with their bytes held (here
      // and in the kernel buffers), new ones wait in the listen backlog.
      pollfd wake{wake_read_, POLLIN, 0};
      if (::poll(&wake, 1, 200) > 0 && (wake.revents & POLLIN)) {
        char drain[64];
        while (::read(wake_read_, drain, sizeof drain) > 0) {
        }
      }
      continue;
    }

    std::vector<pollfd> fds = {{wake_read_, POLLIN, 0}, {listen_fd_, POLLIN, 0}};
    for (Pair& p : pairs) {
      // Read a side only while the buffer toward the other side has room.
      fds.push_back({p.client,
                     static_cast<short>((p.to_upstream.size() < kMaxBuffered ? POLLIN : 0) |
                                        (p.to_client.empty() ? 0 : POLLOUT)),
                     0});
      fds.push_back({p.upstream,
                     static_cast<short>((p.to_client.size() < kMaxBuffered ? POLLIN : 0) |
                                        (p.to_upstream.empty() ? 0 : POLLOUT)),
                     0});
    }
    if (::poll(fds.data(), fds.size(), 200) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[0].revents & POLLIN) {
      char drain[64];
      while (::read(wake_read_, drain, sizeof drain) > 0) {
      }
    }
    if (requested_.load() != generation) continue;  // a Pause/Resume came in: apply it first

    if (fds[1].revents & POLLIN) {
      while (true) {
        const int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (client < 0) break;
        if (paused) {
          ++reset_;
          Reset(client);
          continue;
        }
        const int upstream = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        const sockaddr_in target = Loopback(target_port_);
        if (upstream < 0 ||
            ::connect(upstream, reinterpret_cast<const sockaddr*>(&target), sizeof target) != 0) {
          Reset(upstream);  // the target is down: the client sees a reset, as it would directly
          Reset(client);
          continue;
        }
        const int one = 1;
        ::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        ::setsockopt(upstream, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        SetNonBlocking(client);
        SetNonBlocking(upstream);
        pairs.push_back(Pair{client, upstream, {}, {}, false});
        ++forwarded_;
      }
    }

    // Pairs accepted in this round are past the end of fds; they are polled
    // next round.
    size_t i = 2;
    for (Pair& p : pairs) {
      if (i + 1 >= fds.size()) break;
      const short client_events = fds[i].revents;
      const short upstream_events = fds[i + 1].revents;
      i += 2;
      auto pump = [&p](int from, short from_events, std::string& buffer) {
        if (!(from_events & (POLLIN | POLLHUP | POLLERR))) return;
        char chunk[16384];
        const ssize_t n = ::read(from, chunk, sizeof chunk);
        if (n > 0) {
          buffer.append(chunk, static_cast<size_t>(n));
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
          p.broken = true;  // EOF or error on one side ends the whole connection
        }
      };
      auto flush = [&p](int to, short to_events, std::string& buffer) {
        if (buffer.empty() || !(to_events & POLLOUT)) return;
        const ssize_t n = ::send(to, buffer.data(), buffer.size(), MSG_NOSIGNAL);
        if (n > 0) {
          buffer.erase(0, static_cast<size_t>(n));
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
          p.broken = true;
        }
      };
      pump(p.client, client_events, p.to_upstream);
      pump(p.upstream, upstream_events, p.to_client);
      flush(p.upstream, upstream_events, p.to_upstream);
      flush(p.client, client_events, p.to_client);
    }
    for (auto it = pairs.begin(); it != pairs.end();) {
      if (it->broken) {
        // Pass on what is buffered, best effort, then close both sides.
        if (!it->to_client.empty()) {
          ::send(it->client, it->to_client.data(), it->to_client.size(), MSG_NOSIGNAL);
        }
        if (!it->to_upstream.empty()) {
          ::send(it->upstream, it->to_upstream.data(), it->to_upstream.size(), MSG_NOSIGNAL);
        }
        ::close(it->client);
        ::close(it->upstream);
        it = pairs.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (Pair& p : pairs) close_pair(p);
}

}  // namespace sluice::testing
