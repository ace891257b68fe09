// ServiceSupervisor with real subprocesses: a shell service that records
// its pid, python3's http.server behind an HTTP health check, kill -9,
// SIGSTOP (a hung server), and stopping the whole process group.
#include "worker/service_supervisor.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/process.h"
#include "tests/testing/test_env.h"
#include "tests/testing/wait.h"

namespace sluice {
namespace {

using ::sluice::testing::ProcessGone;
using ::sluice::testing::ReadFile;
using ::sluice::testing::ScratchDir;
using ::sluice::testing::WaitUntil;
using std::chrono::milliseconds;
using ::testing::HasSubstr;

int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

size_t Lines(const std::string& path) {
  const std::vector<std::string> lines = absl::StrSplit(ReadFile(path), '\n', absl::SkipEmpty());
  return lines.size();
}

class ServiceSupervisorTest : public ::testing::Test {
 protected:
  ServiceConfig Config(std::vector<std::string> argv, std::string health = "") {
    ServiceConfig c;
    c.argv = std::move(argv);
    c.health = std::move(health);
    c.stdout_path = dir_.File("service.out");
    c.stderr_path = dir_.File("service.err");
    c.health_interval_ms = 100;
    c.health_timeout_ms = 300;
    c.grace_ms = 500;
    c.min_backoff_ms = 100;
    return c;
  }

  ScratchDir dir_;
  PosixProcessRunner runner_;
};

TEST_F(ServiceSupervisorTest, RestartsAfterKill9AndStopKillsTheWholeGroup) {
  const std::string pids = dir_.File("pids");
  const std::string child = dir_.File("child");
  ServiceSupervisor supervisor(
      Config({"/bin/sh", "-c",
              "echo $$ >> '" + pids + "'; sleep 600 & echo $! > '" + child + "'; wait"}),
      runner_);
  ASSERT_TRUE(supervisor.Start().ok());
  ASSERT_TRUE(supervisor.WaitHealthy(10'000));
  EXPECT_EQ(supervisor.starts(), 1);
  const pid_t first = supervisor.pid();
  ASSERT_GT(first, 0);
  ASSERT_TRUE(WaitUntil([&] { return Lines(child) == 1; }, milliseconds(5'000)));
  const pid_t first_child = std::stoi(ReadFile(child));

  ASSERT_EQ(::kill(first, SIGKILL), 0);
  ASSERT_TRUE(WaitUntil([&] { return supervisor.starts() == 2 && supervisor.healthy(); },
                        milliseconds(10'000)));
  const pid_t second = supervisor.pid();
  EXPECT_NE(second, first);
  EXPECT_TRUE(WaitUntil([&] { return ProcessGone(first_child); }, milliseconds(5'000)))
      << "the dead service's group was not cleaned up";
  // The new shell records itself shortly after it started.
  EXPECT_TRUE(WaitUntil([&] { return Lines(pids) == 2; }, milliseconds(5'000))) << Lines(pids);
  ASSERT_TRUE(WaitUntil([&] { return ReadFile(child) != std::to_string(first_child) + "\n"; },
                        milliseconds(5'000)));
  const pid_t second_child = std::stoi(ReadFile(child));

  supervisor.Stop();
  EXPECT_FALSE(supervisor.healthy());
  EXPECT_TRUE(ProcessGone(second));
  // SIGKILL to the group is delivered asynchronously: the grandchild (not
  // the supervisor's child, so not reaped by Stop) dies a moment later.
  EXPECT_TRUE(WaitUntil([&] { return ProcessGone(second_child); }, milliseconds(2'000)))
      << "the service's group was not stopped";
  EXPECT_EQ(supervisor.starts(), 2);
}

TEST_F(ServiceSupervisorTest, HttpHealthGatesHealthyAndAHungServerIsRestarted) {
  const int port = FreePort();
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/";
  ServiceSupervisor supervisor(Config({"python3", "-m", "http.server", std::to_string(port),
                                       "--bind", "127.0.0.1", "--directory", dir_.path().string()},
                                      url),
                               runner_);
  ASSERT_TRUE(supervisor.Start().ok());
  ASSERT_TRUE(supervisor.WaitHealthy(20'000)) << ReadFile(dir_.File("service.err"));
  const pid_t first = supervisor.pid();
  // Hung: alive but answering nothing. Three failed probes restart it.
  ASSERT_EQ(::kill(first, SIGSTOP), 0);
  EXPECT_TRUE(WaitUntil([&] { return !supervisor.healthy(); }, milliseconds(5'000)));
  ASSERT_TRUE(WaitUntil([&] { return supervisor.starts() == 2 && supervisor.healthy(); },
                        milliseconds(20'000)))
      << ReadFile(dir_.File("service.err"));
  EXPECT_TRUE(ProcessGone(first));
  supervisor.Stop();
  EXPECT_TRUE(ProcessGone(supervisor.pid() == 0 ? first : supervisor.pid()));
}

TEST_F(ServiceSupervisorTest, CommandHealthCheckMustPassBeforeHealthy) {
  const std::string flag = dir_.File("ready");
  ServiceSupervisor supervisor(Config({"sleep", "600"}, "test -e '" + flag + "'"), runner_);
  ASSERT_TRUE(supervisor.Start().ok());
  EXPECT_FALSE(supervisor.WaitHealthy(1'000));
  EXPECT_GT(supervisor.pid(), 0);  // running, not yet healthy
  std::ofstream(flag) << "yes\n";
  EXPECT_TRUE(supervisor.WaitHealthy(5'000));
  EXPECT_EQ(supervisor.starts(), 1);
  const pid_t pid = supervisor.pid();
  supervisor.Stop();
  EXPECT_TRUE(ProcessGone(pid));
}

TEST(HealthCheckTest, RejectsWhatItCannotCheck) {
  for (const char* bad :
       {"", "https://example.org/health", "http://:8000/", "http://h:0/", "http://h:99999/",
        "http://h:port/", "check {run_id}", "unterminated '"}) {
    EXPECT_EQ(HealthCheck::Parse(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_TRUE(HealthCheck::Parse("http://127.0.0.1:8000/healthz")->is_http());
  EXPECT_TRUE(HealthCheck::Parse("http://localhost")->is_http());
  EXPECT_FALSE(HealthCheck::Parse("curl -fsS https://example.org/")->is_http());
  EXPECT_THAT(
      std::string(SplitServiceCommand("--service", "uvicorn app:{phase_id}").status().message()),
      HasSubstr("--service: placeholders"));
  EXPECT_THAT(*SplitServiceCommand("--service", "uvicorn 'app:main' --port 8000"),
              ::testing::ElementsAre("uvicorn", "app:main", "--port", "8000"));
}

TEST(ServiceSupervisorConfigTest, EmptyCommandIsRejected) {
  PosixProcessRunner runner;
  ServiceSupervisor supervisor(ServiceConfig{}, runner);
  EXPECT_EQ(supervisor.Start().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sluice
