#include "worker/telemetry_counter.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/unique_fd.h"
#include "nlohmann/json.hpp"

namespace sluice {
namespace {

bool IsBlank(const std::string& line) {
  for (char c : line) {
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != '\f' && c != '\v') return false;
  }
  return true;
}

void CountType(const std::string& type, TelemetryCount& count) {
  auto it = count.by_type.find(type);
  if (it != count.by_type.end() && type != kOtherTelemetryType) {
    ++it->second;
    return;
  }
  const size_t named = count.by_type.size() - count.by_type.count(kOtherTelemetryType);
  if (type.size() > kMaxTelemetryTypeBytes || named >= kMaxTelemetryTypes ||
      type == kOtherTelemetryType) {
    // A phase's own "other" events share the bucket but are not folded.
    if (type != kOtherTelemetryType) ++count.folded_events;
    ++count.by_type[kOtherTelemetryType];
    return;
  }
  count.by_type.emplace(type, 1);
}

void CountLine(const std::string& line, TelemetryCount& count) {
  if (IsBlank(line)) return;
  // allow_exceptions=false: a malformed line becomes a "discarded" value.
  const nlohmann::json event = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (event.is_discarded() || !event.is_object()) {
    ++count.invalid_lines;
    return;
  }
  ++count.events;
  // A missing, non-string or empty "type" is "untyped": an empty key would
  // be unreadable in reports.
  const auto type = event.find("type");
  if (type != event.end() && type->is_string() && !type->get_ref<const std::string&>().empty()) {
    CountType(type->get_ref<const std::string&>(), count);
  } else {
    CountType("untyped", count);
  }
}

}  // namespace

absl::StatusOr<TelemetryCount> CountTelemetryFile(const std::string& path) {
  TelemetryCount count;
  // O_NONBLOCK: a FIFO put in the file's place must not block the open;
  // fstat on the open descriptor then rejects it without a read.
  const UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (fd.get() < 0) {
    if (errno == ENOENT) return count;  // the phase wrote no telemetry
    const int err = errno;
    return absl::ErrnoToStatus(err, absl::StrCat("cannot open telemetry file ", path));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    const int err = errno;
    return absl::ErrnoToStatus(err, absl::StrCat("telemetry file ", path));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("telemetry file ", path, " is not a regular file"));
  }

  // Reads in chunks; a line is kept only while it is within the bound, so
  // memory stays at one chunk plus one line whatever the file holds.
  std::vector<char> chunk(64 * 1024);
  std::string line;
  bool skipping = false;  // inside a line that went over the bound
  bool any_bytes = false;
  for (;;) {
    const ssize_t n = ::read(fd.get(), chunk.data(), chunk.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      return absl::ErrnoToStatus(err, absl::StrCat("error reading telemetry file ", path));
    }
    if (n == 0) break;
    any_bytes = true;
    const char* p = chunk.data();
    const char* const end = p + n;
    while (p < end) {
      const auto* newline = static_cast<const char*>(std::memchr(p, '\n', size_t(end - p)));
      const char* const piece_end = newline != nullptr ? newline : end;
      const auto piece = static_cast<size_t>(piece_end - p);
      if (!skipping && line.size() + piece > kMaxTelemetryLineBytes) {
        skipping = true;
        std::string().swap(line);
      }
      if (!skipping) line.append(p, piece);
      p = piece_end;
      if (newline == nullptr) break;
      ++p;
      if (skipping) {
        ++count.oversized_lines;
        ++count.invalid_lines;
        skipping = false;
      } else {
        CountLine(line, count);
      }
      line.clear();
    }
  }
  if (skipping) {
    ++count.oversized_lines;
    ++count.invalid_lines;
  } else if (!line.empty()) {
    CountLine(line, count);  // a last line without a newline
  }
  // A file holding only "\n" counts as written.
  count.file_written = any_bytes;
  return count;
}

}  // namespace sluice
