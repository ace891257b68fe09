#include "worker/startup_hardening.h"

#include <fcntl.h>
#include <grp.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

namespace sluice {
namespace {

absl::Status SetCloseOnExecByWalk() {
  std::vector<int> fds;
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end;
       it.increment(ec)) {
    int fd = -1;
    if (absl::SimpleAtoi(it->path().filename().string(), &fd) && fd > STDERR_FILENO) {
      fds.push_back(fd);
    }
  }
  if (ec) return absl::InternalError(absl::StrCat("cannot list /proc/self/fd: ", ec.message()));
  for (int fd : fds) {
    const int flags = ::fcntl(fd, F_GETFD);
    // The directory's own descriptor is gone by now (EBADF): nothing to do.
    if (flags >= 0) ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status MarkInheritedDescriptorsCloseOnExec() {
  // close_range(CLOSE_RANGE_CLOEXEC) needs Linux 5.11; older kernels walk.
  if (::close_range(STDERR_FILENO + 1, ~0U, CLOSE_RANGE_CLOEXEC) == 0) return absl::OkStatus();
  return SetCloseOnExecByWalk();
}

absl::Status MakeNonDumpable() {
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    return absl::InternalError(absl::StrCat("prctl(PR_SET_DUMPABLE): ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<RunAs> ParseRunAs(std::string_view spec_view) {
  const std::string spec(spec_view);
  const size_t colon = spec.find(':');
  RunAs r;
  uint32_t uid = 0;
  uint32_t gid = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(spec.substr(0, colon), &uid) ||
      !absl::SimpleAtoi(spec.substr(colon + 1), &gid) ||
      spec.find_first_not_of("0123456789:") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("--run-as ", spec, ": expected UID:GID, both numeric, e.g. 10001:10001"));
  }
  if (uid == 0 || gid == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--run-as ", spec, ": uid and gid must not be 0 (root)"));
  }
  r.uid = static_cast<uid_t>(uid);
  r.gid = static_cast<gid_t>(gid);
  return r;
}

absl::Status DropPrivileges(const RunAs& to) {
  auto fail = [](const char* what) {
    return absl::FailedPreconditionError(
        absl::StrCat("--run-as: ", what, ": ", std::strerror(errno),
                     " (the worker must start as root, or with CAP_SETUID and CAP_SETGID)"));
  };
  // Groups first: after setuid the process may no longer change them.
  const gid_t groups[] = {to.gid};
  if (::setgroups(1, groups) != 0) return fail("setgroups");
  if (::setresgid(to.gid, to.gid, to.gid) != 0) return fail("setresgid");
  if (::setresuid(to.uid, to.uid, to.uid) != 0) return fail("setresuid");
  // The saved ids are gone too: getting root back must fail.
  if (::setuid(0) == 0 || ::getuid() != to.uid || ::geteuid() != to.uid || ::getegid() != to.gid) {
    return absl::FailedPreconditionError("--run-as: root could be regained after the drop");
  }
  return absl::OkStatus();
}

}  // namespace sluice
