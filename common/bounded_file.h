// Reading a small configuration file (certificate, key, token file) named by
// a flag: one helper for the worker, the CLI and the coordinator. Pure POSIX,
// thread-safe.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace sluice {

// The content of the regular file `path`, at most `max_bytes` long. The file
// is opened O_CLOEXEC (never leaked into a phase) and O_NONBLOCK (a FIFO put
// in its place cannot hang the caller), then checked with fstat on the open
// descriptor (no race between the check and the read). InvalidArgument
// "FLAG PATH: reason" (a configuration error) when it cannot be opened, is
// not a regular file, or is larger than max_bytes. `mode`, when given,
// receives the file's st_mode.
absl::StatusOr<std::string> ReadBoundedRegularFile(const std::string& flag, const std::string& path,
                                                   size_t max_bytes, mode_t* mode = nullptr);

}  // namespace sluice
