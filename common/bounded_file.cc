#include "common/bounded_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace sluice {
namespace {

absl::Status Bad(const std::string& flag, const std::string& path, const std::string& reason) {
  return absl::InvalidArgumentError(absl::StrCat(flag, " ", path, ": ", reason));
}

}  // namespace

absl::StatusOr<std::string> ReadBoundedRegularFile(const std::string& flag, const std::string& path,
                                                   size_t max_bytes, mode_t* mode) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) return Bad(flag, path, std::strerror(errno));
  struct stat info {};
  absl::Status status;
  std::string content;
  if (::fstat(fd, &info) != 0) {
    status = Bad(flag, path, std::strerror(errno));
  } else if (!S_ISREG(info.st_mode)) {
    status = Bad(flag, path, "not a regular file");
  } else if (static_cast<size_t>(info.st_size) > max_bytes) {
    status = Bad(flag, path, absl::StrCat("larger than ", max_bytes, " bytes"));
  } else {
    // Read up to one byte past the bound: a file that grew since fstat is
    // still refused, never read without limit.
    char buffer[16 * 1024];
    while (status.ok()) {
      const ssize_t n = ::read(fd, buffer, sizeof(buffer));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        status = Bad(flag, path, absl::StrCat("cannot read: ", std::strerror(errno)));
      } else if (n == 0) {
        break;
      } else if (content.size() + static_cast<size_t>(n) > max_bytes) {
        status = Bad(flag, path, absl::StrCat("larger than ", max_bytes, " bytes"));
      } else {
        content.append(buffer, static_cast<size_t>(n));
      }
    }
  }
  ::close(fd);
  if (!status.ok()) return status;
  if (mode != nullptr) *mode = info.st_mode;
  return content;
}

}  // namespace sluice
