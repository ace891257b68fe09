// Child processes for integration and end-to-end tests: start a program with
// its output in files, wait for it with a deadline, tell whether a pid is
// gone, run a shell command and read what it printed.
//
// Thread-safety: every function may be called from any thread; none keeps
// state. Ownership: a pid returned by Spawn is the caller's child, to be
// reaped with WaitExit (a child never reaped stays a zombie until the test
// binary exits).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace sluice::testing {

// Starts argv[0] (a path, not looked up in $PATH) with `argv`, stdin from
// /dev/null, stdout and stderr written to the two files (created or
// truncated), the environment of this process plus `extra_env` ("NAME=VALUE";
// a name already set is replaced), no blocked signals and default
// dispositions for SIGINT, SIGTERM and SIGPIPE. Returns the pid, 0 when it
// could not be started.
pid_t Spawn(const std::vector<std::string>& argv, const std::string& stdout_path,
            const std::string& stderr_path, const std::vector<std::string>& extra_env = {});

// A wait status as a shell reports it: the exit code, 128+N for a death by
// signal N, -1 for anything else.
int DecodeWaitStatus(int status);

// Waits for the child `pid` to exit and reaps it; its DecodeWaitStatus code,
// -1 when `pid` is not a child of this process, nullopt when it is still
// running at the deadline.
std::optional<int> WaitExit(pid_t pid, std::chrono::milliseconds timeout);

// True when no process `pid` exists or it is a zombie (dead, not reaped:
// the parent may be a process the test does not control).
bool ProcessGone(pid_t pid);

// SIGKILLs the whole process group `pgid` (a phase and everything it
// started); a group that is already gone is not an error.
void KillProcessGroup(pid_t pgid);

// The pid a script wrote to `path` ("PID\n"), once the line is complete; 0
// before that.
pid_t ReadPidFile(const std::string& path);

// What a shell command printed on stdout, and its DecodeWaitStatus code (-1
// when it could not be run).
struct ShellResult {
  int exit_code = -1;
  std::string output;
};

// Runs `command` with /bin/sh -c and waits for it; add " 2>&1" to the
// command to read its stderr too.
ShellResult RunShell(const std::string& command);

// `command` wrapped to run on a pseudo-terminal (util-linux script(1)), for
// RunShell or std::system. The pty's shell is /bin/sh and execs the command,
// so the caller's $SHELL does not matter (an empty one breaks script(1); dash
// left as the parent dies of a Ctrl-C itself). `command` must not contain a
// single quote.
std::string InPty(const std::string& command);

}  // namespace sluice::testing
