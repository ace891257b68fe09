#include "tests/testing/process.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "tests/testing/leftovers.h"
#include "tests/testing/test_env.h"
#include "tests/testing/wait.h"

extern char** environ;

namespace sluice::testing {
namespace {

// NAME of "NAME=VALUE" (the whole text when there is no '=').
std::string_view EnvName(std::string_view entry) { return entry.substr(0, entry.find('=')); }

// This process's environment with `extra` added, replacing same-named entries.
std::vector<std::string> MergedEnvironment(const std::vector<std::string>& extra) {
  std::vector<std::string> merged;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view name = EnvName(*e);
    bool replaced = false;
    for (const std::string& x : extra) replaced = replaced || EnvName(x) == name;
    if (!replaced) merged.emplace_back(*e);
  }
  merged.insert(merged.end(), extra.begin(), extra.end());
  return merged;
}

std::vector<char*> NullTerminated(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (const std::string& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

}  // namespace

pid_t Spawn(const std::vector<std::string>& argv, const std::string& stdout_path,
            const std::string& stderr_path, const std::vector<std::string>& extra_env) {
  if (argv.empty()) return 0;
  std::vector<char*> args = NullTerminated(argv);
  const std::vector<std::string> env_strings = MergedEnvironment(extra_env);
  std::vector<char*> env = NullTerminated(env_strings);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, stdout_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, stderr_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // gtest or a caller may have blocked or ignored signals; the child starts
  // as it would from a shell.
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
  const int rc = posix_spawn(&pid, args[0], &actions, &attr, args.data(), env.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  return rc == 0 ? pid : 0;
}

int DecodeWaitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

std::optional<int> WaitExit(pid_t pid, std::chrono::milliseconds timeout) {
  std::optional<int> code;
  WaitUntil(
      [&] {
        int status = 0;
        const pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) code = DecodeWaitStatus(status);
        if (r < 0) code = -1;
        return code.has_value();
      },
      timeout);
  return code;
}

bool ProcessGone(pid_t pid) {
  if (::kill(pid, 0) != 0) return errno == ESRCH;
  // /proc/PID/stat is "PID (COMM) STATE ..."; COMM may hold ')' itself.
  const std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  if (stat.empty()) return true;
  const size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z';
}

std::vector<pid_t> ProcessesWithEnv(const std::string& name_value) {
  std::vector<pid_t> found;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return found;
  while (const dirent* entry = ::readdir(proc)) {
    char* end = nullptr;
    const long pid = std::strtol(entry->d_name, &end, 10);
    if (pid <= 0 || *end != '\0') continue;
    // NUL-separated entries; a zombie's (and a kernel thread's) is empty.
    const std::string env = ReadFile("/proc/" + std::string(entry->d_name) + "/environ");
    size_t start = 0;
    while (start < env.size()) {
      size_t stop = env.find('\0', start);
      if (stop == std::string::npos) stop = env.size();
      if (env.compare(start, stop - start, name_value) == 0) {
        if (!ProcessGone(static_cast<pid_t>(pid))) found.push_back(static_cast<pid_t>(pid));
        break;
      }
      start = stop + 1;
    }
  }
  ::closedir(proc);
  return found;
}

void KillProcessGroup(pid_t pgid) {
  if (pgid > 0) ::kill(-pgid, SIGKILL);
}

pid_t ReadPidFile(const std::string& path) {
  const std::string text = ReadFile(path);
  if (text.empty() || text.back() != '\n') return 0;
  return static_cast<pid_t>(std::atol(text.c_str()));
}

ShellResult RunShell(const std::string& command) {
  ShellResult result;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  size_t n = 0;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) result.output.append(buffer, n);
  const int status = pclose(pipe);
  result.exit_code = status == -1 ? -1 : DecodeWaitStatus(status);
  return result;
}

std::string InPty(const std::string& command) {
  return absl::StrCat("env SHELL=/bin/sh script -qfec 'exec ", command, "' /dev/null");
}

}  // namespace sluice::testing
