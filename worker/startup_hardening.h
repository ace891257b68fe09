// What sluice-worker does to itself at start so that its phases get nothing
// of the worker's but what they are given (issue #14 items 5 and 10):
//  - descriptors it inherited (from a shell, `sluice drain`, a CI runner) are
//    marked close-on-exec, so they never reach a phase;
//  - it becomes non-dumpable, so a phase running as the same user cannot read
//    its memory or /proc/PID/environ (where $SLUICE_TOKEN may be) nor ptrace it;
//  - with --run-as UID:GID it drops to that user and group for good, after
//    it has read its secrets (token file, TLS key), so phases cannot read the
//    secret files themselves (mounted root-only, 0400).
// Process-wide effects; call from main() before any thread is started.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace sluice {

// Marks every descriptor above stderr close-on-exec (close_range, else a walk
// of /proc/self/fd). Internal on failure.
absl::Status MarkInheritedDescriptorsCloseOnExec();

// PR_SET_DUMPABLE 0: /proc/PID/{environ,mem,fd} become root's and ptrace by
// the same uid is refused. Children get their own dumpable flag back at
// exec. Internal on failure.
absl::Status MakeNonDumpable();

struct RunAs {
  uid_t uid = 0;
  gid_t gid = 0;
};

// "UID:GID", both numeric (no user database in a minimal image).
// InvalidArgument naming --run-as otherwise, and for uid or gid 0.
absl::StatusOr<RunAs> ParseRunAs(std::string_view spec);

// Drops every privilege for good: supplementary groups cleared, then gid,
// then uid (real, effective and saved); then checks that regaining root
// fails. FailedPrecondition (with the errno text) when the process may not
// change ids: it needs root, or CAP_SETUID and CAP_SETGID.
absl::Status DropPrivileges(const RunAs& to);

}  // namespace sluice
