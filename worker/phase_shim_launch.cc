#include "worker/phase_shim_launch.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace sluice {

absl::Status CheckPhaseCgroupParent(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat("phase cgroup ", dir, " is not a directory"));
  }
  for (const char* file : {"cgroup.procs", "cgroup.kill"}) {
    if (::access((dir + "/" + file).c_str(), F_OK) != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("phase cgroup ", dir, " has no ", file,
                       " (it must be a cgroup v2 directory, on Linux 5.14 or later)"));
    }
  }
  if (::access(dir.c_str(), W_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("phase cgroup ", dir, " is not writable by this user (delegate it)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> FindPhaseShim() {
  std::string path;
  if (const char* shim = std::getenv("SLUICE_PHASE_SHIM"); shim != nullptr && *shim != '\0') {
    path = shim;
  } else {
    char exe[4096];
    const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0) {
      const int err = errno;
      return absl::ErrnoToStatus(err, "cannot find the worker's own executable (/proc/self/exe)");
    }
    path.assign(exe, static_cast<size_t>(n));
    path = path.substr(0, path.rfind('/') + 1) + "sluice-phase-shim";
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || ::access(path.c_str(), X_OK) != 0) {
    return absl::NotFoundError(absl::StrCat(
        "phase containment needs ", path,
        " (install sluice-phase-shim beside sluice-worker, or set SLUICE_PHASE_SHIM)"));
  }
  return path;
}

std::vector<std::string> PhaseShimArgv(const std::string& shim_path,
                                       const std::string& cgroup_parent) {
  const char* worker_path = std::getenv("PATH");
  return {shim_path, std::to_string(::getpid()),
          worker_path != nullptr ? absl::StrCat("P", worker_path) : std::string("-"),
          cgroup_parent.empty() ? std::string("-") : absl::StrCat("C", cgroup_parent)};
}

ShimStatusPipe::ShimStatusPipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) == 0) {
    read_ = fds[0];
    write_ = fds[1];
  } else {
    error_ = errno;
  }
}

ShimStatusPipe::~ShimStatusPipe() {
  CloseWrite();
  if (read_ >= 0) ::close(read_);
}

void ShimStatusPipe::CloseWrite() {
  if (write_ >= 0) ::close(write_);
  write_ = -1;
}

std::optional<phase_shim::ShimStartError> ShimStatusPipe::ReadStartError() {
  phase_shim::ShimStartError record;
  size_t got = 0;
  auto* bytes = reinterpret_cast<char*>(&record);
  while (got < sizeof(record)) {
    const ssize_t n = ::read(read_, bytes + got, sizeof(record) - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  if (got == 0) return std::nullopt;
  if (got < sizeof(record)) record = {static_cast<int32_t>(phase_shim::StartStage::kSetup), EIO};
  return record;
}

}  // namespace sluice
