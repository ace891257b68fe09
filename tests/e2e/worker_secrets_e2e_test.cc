// Secrets and descriptors kept from phases (issue #14 items 5 and 10), with
// the built binaries as processes on the embedded SQLite store:
//  - `sluice drain` starts its workers without the operator's sluice secrets
//    (IsScrubbedFromPhases), so a phase cannot read them in its worker's
//    /proc/PID/environ either, and without the drain's open descriptors;
//  - a worker marks every descriptor it inherited close-on-exec;
//  - `sluice-worker --run-as UID:GID` reads its token file and then drops to
//    that user for good: its phases cannot read the root-only token file, nor
//    the worker's environment (the worker is non-dumpable). Needs root, which
//    CI and this sandbox have; elsewhere that one test is skipped and says so.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/e2e_support.h"
#include "tests/testing/process.h"
#include "tests/testing/test_env.h"
#include "tests/testing/wait.h"

namespace sluice {
namespace {

using ::sluice::testing::ReadFile;
using ::sluice::testing::WaitExit;
using ::sluice::testing::WriteFile;
using std::chrono::milliseconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kAdminSecret[] = "admin-secret-7f3a";

// Shell lines that set $w to the pid of the phase's sluice-worker: its
// parent, or a grandparent when a launcher (a containment shim) sits between.
constexpr char kFindWorker[] =
    "w=$PPID\n"
    "while [ \"$(cat /proc/$w/comm)\" != sluice-worker ] && [ \"$w\" -gt 1 ]; do "
    "w=$(cut -d' ' -f4 /proc/$w/stat); done\n";

// A descriptor this test holds open without O_CLOEXEC while it starts
// children, as a shell or CI runner may: it must never reach a phase.
class LeakyDescriptor {
 public:
  LeakyDescriptor() : fd_(::open("/dev/null", O_RDONLY)) {}
  ~LeakyDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  int fd() const { return fd_; }

 private:
  int fd_;
};

// The descriptor numbers `ls /proc/self/fd` printed, one per line.
std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipWhitespace());
}

class WorkerSecretsE2ETest : public e2e::ProcessTest {
 protected:
  void WriteBacklog(const std::string& run, int phases) {
    std::string backlog;
    for (int i = 0; i < phases; ++i) {
      backlog += absl::StrCat("{\"run_id\": \"", run, "\", \"phase_id\": \"p", i, "\"}\n");
    }
    WriteFile(dir_.File("backlog.jsonl"), backlog);
  }
  // The first attempt's stdout log of `phase` under `log_dir`/`run`.
  static std::string AttemptStdout(const std::string& log_dir, const std::string& run,
                                   const std::string& phase) {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(log_dir + "/" + run, ec)) {
      const std::string name = entry.path().filename().string();
      if (name.starts_with(phase + ".attempt1.") && name.ends_with(".stdout.log")) {
        return ReadFile(entry.path().string());
      }
    }
    return "";
  }
};

// Bug: `sluice drain` started its workers with the operator's whole
// environment, admin token included: phases no longer saw it in their own
// environment, but read it from their worker's /proc/PID/environ; and every
// descriptor the drain had open reached the workers and their phases.
TEST_F(WorkerSecretsE2ETest, DrainKeepsTheOperatorsSecretsAndDescriptorsFromWorkersAndPhases) {
  WriteBacklog("r-env", 2);
  const std::string script = dir_.File("phase.sh");
  WriteFile(script, "#!/bin/sh\nout=" + dir_.File("out-") + "$SLUICE_PHASE_ID\n" + kFindWorker +
                        "tr '\\0' '\\n' < /proc/$w/environ > \"$out.worker-env\"\n"
                        "env > \"$out.phase-env\"\n"
                        "ls /proc/$$/fd > \"$out.fds\"\n");
  ASSERT_EQ(::chmod(script.c_str(), 0755), 0);
  const LeakyDescriptor leaky;
  ASSERT_GT(leaky.fd(), STDERR_FILENO);
  const pid_t drain = sluice::testing::Spawn(
      {sluice::testing::BinPath("sluice"), "drain", dir_.File("backlog.jsonl"), "--exec", script,
       "--store", "sqlite://" + dir_.File("state.db"), "--workers", "1", "--grace-seconds", "1"},
      dir_.File("drain.out"), dir_.File("drain.err"),
      {absl::StrCat("SLUICE_ADMIN_TOKEN=", kAdminSecret), "SLUICE_PLAIN_SETTING=kept"});
  ASSERT_GT(drain, 0);
  ASSERT_EQ(WaitExit(drain, milliseconds(60'000)), 0) << ReadFile(dir_.File("drain.err"));
  for (const std::string phase : {"p0", "p1"}) {
    const std::string out = dir_.File("out-" + phase);
    const std::string worker_env = ReadFile(out + ".worker-env");
    ASSERT_THAT(worker_env, HasSubstr("PATH=")) << "the phase could not read its worker's env";
    EXPECT_THAT(worker_env, Not(HasSubstr(kAdminSecret)));
    EXPECT_THAT(ReadFile(out + ".phase-env"), Not(HasSubstr(kAdminSecret)));
    // The rule removes sluice's secrets only: other variables pass.
    EXPECT_THAT(worker_env, HasSubstr("SLUICE_PLAIN_SETTING=kept"));
    EXPECT_THAT(ReadFile(out + ".phase-env"), HasSubstr("SLUICE_PLAIN_SETTING=kept"));
    // stdin, stdout, stderr and the shell's own: nothing inherited.
    EXPECT_THAT(Lines(ReadFile(out + ".fds")), Not(::testing::Contains(std::to_string(leaky.fd()))))
        << ReadFile(out + ".fds");
  }
}

// Bug: a descriptor the worker inherited without close-on-exec (from the
// shell or service manager that started it) reached every phase it ran.
TEST_F(WorkerSecretsE2ETest, DescriptorsTheWorkerInheritedDoNotReachPhases) {
  const std::string address = StartCoordinator("coordinator", "sqlite://" + dir_.File("state.db"),
                                               "0", {"--max-lease-wait-ms", "1000"});
  ASSERT_FALSE(address.empty());
  WriteBacklog("r-fd", 1);
  ASSERT_EQ(Sluice({"import", dir_.File("backlog.jsonl"), "--coordinator", address}).exit_code, 0);
  ASSERT_EQ(Sluice({"session", "start", "--coordinator", address}).exit_code, 0);
  pid_t worker = 0;
  {
    const LeakyDescriptor leaky;
    ASSERT_GT(leaky.fd(), STDERR_FILENO);
    // ls itself opens /proc/self/fd as the lowest free descriptor: 3.
    worker = StartWorker(e2e::WorkerSpec("w-fd", address, "/bin/ls /proc/self/fd").Slots(1));
  }
  ASSERT_TRUE(WaitSessionDone(address, milliseconds(30'000))) << Log("w-fd");
  EXPECT_THAT(Lines(AttemptStdout(LogDir("w-fd"), "r-fd", "p0")), ElementsAre("0", "1", "2", "3"));
  EXPECT_EQ(StopChild(worker, SIGTERM), 0) << Log("w-fd");
}

// Bug: in the Helm chart the worker's token file was readable by its phases
// (same uid and group); a phase could take the token and act as the worker.
TEST_F(WorkerSecretsE2ETest, PhasesOfAWorkerRunAsAnotherUserCannotReadItsTokenFile) {
  if (::geteuid() != 0) GTEST_SKIP() << "--run-as needs root (CI runs this suite as root)";
  constexpr uid_t kUid = 65534;  // nobody
  constexpr gid_t kGid = 65534;
  const std::string worker_token = "worker-token-5b1c";
  WriteFile(dir_.File("worker-tokens"), worker_token + "\n");
  WriteFile(dir_.File("admin-token"), "admin-token-9e2d\n");
  ASSERT_EQ(::chmod(dir_.File("worker-tokens").c_str(), 0600), 0);
  ASSERT_EQ(::chmod(dir_.File("admin-token").c_str(), 0600), 0);
  // As the chart mounts it: root's, 0400.
  const std::string token_file = dir_.File("worker-token");
  WriteFile(token_file, worker_token + "\n");
  ASSERT_EQ(::chmod(token_file.c_str(), 0400), 0);
  // The phase user may enter the scratch directory and write its findings
  // and the worker's logs into a directory of its own.
  ASSERT_EQ(::chmod(dir_.path().c_str(), 0755), 0);
  const std::string shared = dir_.File("nobody");
  std::filesystem::create_directory(shared);
  ASSERT_EQ(::chown(shared.c_str(), kUid, kGid), 0);
  const std::string script = dir_.File("phase.sh");
  WriteFile(script, "#!/bin/sh\nout=" + shared + "/$SLUICE_PHASE_ID\n" + kFindWorker +
                        "id -u > \"$out.uid\"\n"
                        "if cat " +
                        token_file +
                        " > \"$out.token\" 2>&1; then echo read; "
                        "else echo refused; fi > \"$out.token-result\"\n"
                        "if tr '\\0' '\\n' < /proc/$w/environ > \"$out.env\" 2>&1; then echo "
                        "read; else echo refused; fi > \"$out.env-result\"\n");
  ASSERT_EQ(::chmod(script.c_str(), 0755), 0);

  const std::string address =
      StartCoordinator("coordinator", "sqlite://" + dir_.File("state.db"), "0",
                       {"--max-lease-wait-ms", "1000", "--token-file", dir_.File("worker-tokens"),
                        "--admin-token-file", dir_.File("admin-token")});
  ASSERT_FALSE(address.empty());
  WriteBacklog("r-runas", 2);
  ASSERT_EQ(Sluice({"import", dir_.File("backlog.jsonl"), "--coordinator", address, "--token-file",
                    dir_.File("admin-token")})
                .exit_code,
            0);
  ASSERT_EQ(Sluice({"session", "start", "--coordinator", address, "--token-file",
                    dir_.File("admin-token")})
                .exit_code,
            0);
  const pid_t worker = StartChild({sluice::testing::BinPath("sluice-worker"),
                                   "--coordinator",
                                   address,
                                   "--exec",
                                   script,
                                   "--slots",
                                   "1",
                                   "--worker-id",
                                   "w-runas",
                                   "--log-dir",
                                   shared + "/logs",
                                   "--lease-wait-ms",
                                   "1000",
                                   "--grace-seconds",
                                   "1",
                                   "--drain-timeout",
                                   "5",
                                   "--token-file",
                                   token_file,
                                   "--run-as",
                                   absl::StrCat(kUid, ":", kGid)},
                                  "w-runas");
  ASSERT_GT(worker, 0);
  const auto done = [&] {
    return Status({"--coordinator", address, "--token-file", dir_.File("admin-token")},
                  /*expect_ok=*/false)
        .value("session_done", false);
  };
  ASSERT_TRUE(sluice::testing::WaitUntil(done, milliseconds(30'000), milliseconds(250)))
      << Log("w-runas");
  for (const std::string phase : {"p0", "p1"}) {
    const std::string out = shared + "/" + phase;
    // The token was read before the drop: the worker leased and reported.
    EXPECT_EQ(ReadFile(out + ".uid"), absl::StrCat(kUid, "\n")) << Log("w-runas");
    EXPECT_EQ(ReadFile(out + ".token-result"), "refused\n") << ReadFile(out + ".token");
    EXPECT_THAT(ReadFile(out + ".token"), Not(HasSubstr(worker_token)));
    EXPECT_EQ(ReadFile(out + ".env-result"), "refused\n") << ReadFile(out + ".env");
  }
  EXPECT_EQ(StopChild(worker, SIGTERM), 0) << Log("w-runas");
}

// --run-as takes numeric ids and never root; a bad value is a usage error.
TEST_F(WorkerSecretsE2ETest, RunAsRejectsNamesAndRoot) {
  for (const std::string bad : {"nobody:nogroup", "0:0", "1000", "1000:", "-1:5"}) {
    const e2e::CommandResult r = Run({sluice::testing::BinPath("sluice-worker"), "--coordinator",
                                      "127.0.0.1:1", "--exec", "/bin/true", "--run-as", bad},
                                     milliseconds(10'000));
    EXPECT_EQ(r.exit_code, 2) << bad;
    EXPECT_THAT(r.err, HasSubstr("--run-as")) << bad;
  }
}

}  // namespace
}  // namespace sluice
