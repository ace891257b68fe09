#include "worker/phase_log_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>

#include "absl/strings/str_cat.h"

namespace sluice {
namespace {

int OpenRetrying(const char* path, int flags, mode_t mode) {
  int fd;
  do {
    fd = ::open(path, flags, mode);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

// linkat through /proc/self/fd needs no privilege (AT_EMPTY_PATH needs
// CAP_DAC_READ_SEARCH); the latter is the fallback where /proc is missing.
bool Link(int fd, const std::string& path) {
  char proc[48];
  std::snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
  if (::linkat(AT_FDCWD, proc, AT_FDCWD, path.c_str(), AT_SYMLINK_FOLLOW) == 0) return true;
  if (errno == EEXIST) return false;
  return ::linkat(fd, "", AT_FDCWD, path.c_str(), AT_EMPTY_PATH) == 0;
}

}  // namespace

PhaseLogFile::~PhaseLogFile() {
  if (fd_ >= 0) ::close(fd_);
}

// O_CLOEXEC on every descriptor: Run() may be called from several threads,
// and a descriptor must not leak into a sibling's child. The spawned child
// gets its copy through a dup2 file action, which clears the flag.
absl::Status PhaseLogFile::Open(const std::string& path, bool append) {
  path_ = path;
  if (path.empty()) {
    fd_ = OpenRetrying("/dev/null", O_WRONLY | O_CLOEXEC, 0);
    if (fd_ < 0) return absl::ErrnoToStatus(errno, "cannot open /dev/null");
    return absl::OkStatus();
  }
  nameable_ = true;
  if (!append) {
    // O_RDWR: an O_TMPFILE must be writable, and the tails are read back
    // through this descriptor.
    const std::string dir = std::filesystem::path(path).parent_path().string();
    fd_ = OpenRetrying(dir.empty() ? "." : dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd_ >= 0) return absl::OkStatus();
    // EOPNOTSUPP/EISDIR: no O_TMPFILE here. Any other error (a missing
    // directory) is met again, and told, by the plain open below.
  }
  fd_ = OpenRetrying(path.c_str(), O_RDWR | O_CREAT | (append ? O_APPEND : O_TRUNC) | O_CLOEXEC,
                     0600);
  if (fd_ < 0) return absl::ErrnoToStatus(errno, absl::StrCat("cannot open log file ", path));
  named_ = true;
  return absl::OkStatus();
}

absl::Status PhaseLogFile::NameIfWritten() {
  if (named_ || !nameable_ || fd_ < 0) return absl::OkStatus();
  struct stat st {};
  if (::fstat(fd_, &st) != 0 || st.st_size == 0) return absl::OkStatus();
  // A file already at the path (an attempt's logs are named by its lease,
  // so only a rerun of the same lease) is replaced, as O_TRUNC did.
  bool linked = Link(fd_, path_);
  if (!linked && errno == EEXIST) {
    (void)::unlink(path_.c_str());
    linked = Link(fd_, path_);
  }
  if (!linked) {
    const int err = errno;
    // Asked once: the output stays readable through ReadEnd for the report.
    nameable_ = false;
    return absl::ErrnoToStatus(err, absl::StrCat("cannot create log file ", path_));
  }
  named_ = true;
  return absl::OkStatus();
}

std::string PhaseLogFile::ReadEnd(size_t max_bytes, bool* from_start) const {
  *from_start = true;
  if (fd_ < 0 || path_.empty() || max_bytes == 0) return {};
  struct stat st {};
  if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0) return {};
  const auto size = static_cast<size_t>(st.st_size);
  const size_t want = std::min(size, max_bytes);
  const off_t offset = static_cast<off_t>(size - want);
  *from_start = offset == 0;
  std::string buf(want, '\0');
  size_t got = 0;
  while (got < want) {
    const ssize_t n = ::pread(fd_, buf.data() + got, want - got, offset + static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  buf.resize(got);
  return buf;
}

}  // namespace sluice
