// The worker's factory of coordinator clients (client/coordinator_client_factory.h),
// against a real TCP listener on loopback that counts connections.
#include "client/coordinator_client_factory.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_env.h"

namespace sluice {
namespace {

using ::sluice::testing::ScratchDir;
using ::sluice::testing::WriteFile;
using ::testing::HasSubstr;

// A loopback TCP listener that never answers: it only counts who connects.
class SilentListener {
 public:
  SilentListener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        ::listen(fd_, 16) != 0 || ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len)) {
      ADD_FAILURE() << "cannot listen on loopback";
      return;
    }
    address_ = absl::StrCat("127.0.0.1:", ntohs(addr.sin_port));
  }
  ~SilentListener() {
    if (fd_ >= 0) ::close(fd_);
  }
  const std::string& address() const { return address_; }
  // Connections made so far (accepted and closed here).
  int Connections() {
    int n = 0;
    while (true) {
      const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return n;
      ::close(c);
      ++n;
    }
  }

 private:
  int fd_ = -1;
  std::string address_;
};

// Bug: when the TLS channel to a leader learnt from a standby could not be
// built (here: the CA file was removed after start), the worker fell back to
// a plaintext channel and sent its bearer token in clear.
TEST(CoordinatorClientFactoryTest, LeaderWhoseTlsChannelCannotBeBuiltIsNeverReachedInPlaintext) {
  ScratchDir dir;
  const std::string ca = dir.File("ca.crt");
  WriteFile(ca, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
  ChannelOptions options;
  options.tls_ca_file = ca;
  FailoverCoordinatorClient::Factory factory =
      MakeCoordinatorClientFactory({}, options, "secret-token-0123456789abcdef");
  ASSERT_EQ(std::remove(ca.c_str()), 0);

  SilentListener leader;
  std::unique_ptr<CoordinatorClient> client = factory(leader.address());
  ASSERT_NE(client, nullptr);
  WorkerInfo worker;
  worker.worker_id = "w1";
  worker.slots = 1;
  const absl::StatusOr<WorkerRegistration> registered = client->Register(worker);
  EXPECT_EQ(registered.status().code(), absl::StatusCode::kUnavailable) << registered.status();
  EXPECT_THAT(std::string(registered.status().message()), HasSubstr("--tls-ca"));
  EXPECT_THAT(std::string(registered.status().message()), HasSubstr(leader.address()));
  EXPECT_EQ(client->Report(AttemptReport{}).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(leader.Connections(), 0) << "a connection was made without TLS";
}

// The same factory with nothing wrong: a listed address gets the channel made
// at start, any other address a channel of its own (both reach the listener).
TEST(CoordinatorClientFactoryTest, BuildsAChannelForAnAddressLearntAtRunTime) {
  SilentListener leader;
  FailoverCoordinatorClient::Factory factory = MakeCoordinatorClientFactory({}, {}, "");
  std::unique_ptr<CoordinatorClient> client = factory(leader.address());
  ASSERT_NE(client, nullptr);
  // The listener never answers: the call ends at its deadline or as
  // unavailable, after connecting.
  const absl::StatusOr<std::vector<std::string>> renewed = client->Heartbeat("w1", {}, 2'000);
  EXPECT_FALSE(renewed.ok());
  EXPECT_GE(leader.Connections(), 1);
}

}  // namespace
}  // namespace sluice
