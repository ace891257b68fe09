// The fault-test proxy itself: bytes pass both ways; Pause() resets open
// connections and new ones until Resume(); BlackHole() holds bytes silently
// until Resume(); a target that is down shows as a
// reset. A real echo server on loopback, no fakes.
#include "tests/testing/tcp_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace sluice::testing {
namespace {

// Echoes every byte back, one connection at a time.
class EchoServer {
 public:
  EchoServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(fd_, 8), 0);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] {
      while (!stop_.load()) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        const int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) continue;
        char buf[4096];
        ssize_t n;
        while ((n = ::recv(c, buf, sizeof buf, 0)) > 0) ::send(c, buf, n, MSG_NOSIGNAL);
        ::close(c);
      }
    });
  }
  ~EchoServer() {
    stop_.store(true);
    thread_.join();
    ::close(fd_);
  }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

int Connect(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  timeval tv{5, 0};  // a broken proxy fails the test instead of hanging it
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  return fd;
}

// Sends `text` and reads as many bytes back; "" on EOF or an error.
std::string RoundTrip(int fd, const std::string& text) {
  if (::send(fd, text.data(), text.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(text.size())) {
    return "";
  }
  std::string got;
  char buf[4096];
  while (got.size() < text.size()) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return "";
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

// True when the connection was ended by the other side (EOF or reset).
bool EndedByPeer(int fd) {
  char byte;
  const ssize_t n = ::recv(fd, &byte, 1, 0);
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

TEST(TcpProxyTest, ForwardsBothWaysAndPauseCutsUntilResume) {
  EchoServer echo;
  auto proxy = TcpProxy::Start(echo.port());
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  const int port = (*proxy)->port();
  ASSERT_NE(port, echo.port());

  int a = Connect(port);
  const std::string big(300'000, 'x');  // more than one buffer's worth
  EXPECT_EQ(RoundTrip(a, "hello"), "hello");
  EXPECT_EQ(RoundTrip(a, big), big);

  (*proxy)->Pause();
  EXPECT_TRUE(EndedByPeer(a)) << "an open connection survived the cut";
  ::close(a);
  const int during = Connect(port);  // the kernel accepts; the proxy resets it
  EXPECT_TRUE(EndedByPeer(during)) << "a new connection got through a paused proxy";
  ::close(during);
  EXPECT_GE((*proxy)->reset(), 2);

  (*proxy)->Resume();
  const int b = Connect(port);
  EXPECT_EQ(RoundTrip(b, "again"), "again");
  ::close(b);
  EXPECT_EQ((*proxy)->forwarded(), 2);
}

// True when nothing arrives within `ms` and the connection is still open.
bool SilentFor(int fd, int ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, ms) == 0;
}

TEST(TcpProxyTest, BlackHoleHoldsBytesWithoutAResetUntilResume) {
  EchoServer echo;
  auto proxy = TcpProxy::Start(echo.port());
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  const int a = Connect((*proxy)->port());
  EXPECT_EQ(RoundTrip(a, "before"), "before");

  (*proxy)->BlackHole();
  const std::string held = "held";
  ASSERT_EQ(::send(a, held.data(), held.size(), MSG_NOSIGNAL), static_cast<ssize_t>(held.size()));
  EXPECT_TRUE(SilentFor(a, 500)) << "bytes (or a reset) got through the black hole";
  EXPECT_EQ((*proxy)->reset(), 0);

  (*proxy)->Resume();
  std::string got;
  char buf[16];
  while (got.size() < held.size()) {
    const ssize_t n = ::recv(a, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  EXPECT_EQ(got, held) << "the held bytes were lost";
  EXPECT_EQ(RoundTrip(a, "after"), "after");
  ::close(a);
  EXPECT_EQ((*proxy)->forwarded(), 1);
}

TEST(TcpProxyTest, ATargetThatIsDownShowsAsAReset) {
  int dead_port = 0;
  {
    EchoServer gone;
    dead_port = gone.port();
  }
  auto proxy = TcpProxy::Start(dead_port);
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  const int fd = Connect((*proxy)->port());
  EXPECT_TRUE(EndedByPeer(fd));
  ::close(fd);
  EXPECT_EQ((*proxy)->forwarded(), 0);
}

}  // namespace
}  // namespace sluice::testing
