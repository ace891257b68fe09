#pragma once

#include <unistd.h>

namespace sluice {

// Owns a file descriptor and closes it on scope exit. A negative descriptor
// (a failed open) is held and never closed, so callers check get() < 0.
// Not copyable; not thread-safe beyond what the descriptor itself is.
class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) : fd_(fd) {}
  ~UniqueFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace sluice
