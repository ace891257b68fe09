// Helpers for end-to-end tests that run the built binaries as processes:
// posix_spawn with output to files, bounded waits, and the ledger that
// sluice-example-phase writes. (The same helpers as drain_e2e_test.cc, which
// predates this header.)
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "tests/testing/test_env.h"

extern char** environ;

namespace sluice::e2e {

using std::chrono::milliseconds;

inline bool WaitFor(const std::function<bool()>& condition, milliseconds timeout,
                    milliseconds poll = milliseconds(50)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(poll);
  }
  return true;
}

// Starts `argv` with stdin from /dev/null and stdout/stderr to files, with
// default signal dispositions; returns the pid (0 on failure).
inline pid_t Spawn(const std::vector<std::string>& argv, const std::string& stdout_path,
                   const std::string& stderr_path) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, stdout_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, stderr_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t empty;
  sigemptyset(&empty);
  posix_spawnattr_setsigmask(&attr, &empty);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  return rc == 0 ? pid : 0;
}

// Exit code as a shell reports it: 128+N for a death by signal N.
inline int DecodeWaitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Waits for `pid` to exit; nullopt when it is still running at the deadline.
inline std::optional<int> WaitExit(pid_t pid, milliseconds timeout) {
  std::optional<int> code;
  WaitFor(
      [&] {
        int status = 0;
        const pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) code = DecodeWaitStatus(status);
        if (r < 0) code = -1;
        return code.has_value();
      },
      timeout, milliseconds(20));
  return code;
}

// Gone: no such process, or a zombie.
inline bool ProcessGone(pid_t pid) {
  if (::kill(pid, 0) != 0) return errno == ESRCH;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string content((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  if (content.empty()) return true;
  const size_t paren = content.rfind(')');
  return paren != std::string::npos && paren + 2 < content.size() && content[paren + 2] == 'Z';
}

// What sluice-example-phase wrote: "start R P A PID" and "end R P A ok|fail N".
struct Ledger {
  using Key = std::tuple<std::string, std::string, int>;  // run, phase, attempt
  struct Line {
    bool start = false;
    Key key;
    bool ok = false;
    int64_t number = 0;  // start: pid; end: telemetry events
  };
  std::vector<Line> lines;
  std::map<Key, int> starts;
  std::map<Key, int> ends;
  std::map<Key, int64_t> end_events;

  static Ledger Read(const std::string& path) {
    Ledger ledger;
    std::istringstream in(sluice::testing::ReadFile(path));
    std::string text;
    while (std::getline(in, text)) {
      const std::vector<std::string> w = absl::StrSplit(text, ' ', absl::SkipEmpty());
      Line line;
      if (w.size() == 5 && w[0] == "start") {
        line.start = true;
        line.key = {w[1], w[2], std::atoi(w[3].c_str())};
        line.number = std::atoll(w[4].c_str());
        ++ledger.starts[line.key];
      } else if (w.size() == 6 && w[0] == "end") {
        line.key = {w[1], w[2], std::atoi(w[3].c_str())};
        line.ok = w[4] == "ok";
        line.number = std::atoll(w[5].c_str());
        ++ledger.ends[line.key];
        ledger.end_events[line.key] += line.number;
      } else {
        ADD_FAILURE() << "unexpected ledger line: " << text;
        continue;
      }
      ledger.lines.push_back(line);
    }
    return ledger;
  }

  // SIGKILLs the process groups of phases still running (orphans of a
  // SIGKILLed worker keep running in their own group).
  void KillOrphans() const {
    for (const Line& line : lines) {
      const auto pid = static_cast<pid_t>(line.number);
      if (!line.start || pid <= 0 || ProcessGone(pid)) continue;
      const std::string cmdline =
          sluice::testing::ReadFile("/proc/" + std::to_string(pid) + "/cmdline");
      if (cmdline.find("sluice-example-phase") != std::string::npos) ::kill(-pid, SIGKILL);
    }
  }
};

}  // namespace sluice::e2e
