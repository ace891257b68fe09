#include "worker/telemetry_counter.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace sluice {
namespace {

bool IsBlank(const std::string& line) {
  for (char c : line) {
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != '\f' && c != '\v') return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<TelemetryCount> CountTelemetryFile(const std::string& path) {
  TelemetryCount count;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return count;  // the phase wrote no telemetry
    const int err = errno;
    return absl::ErrnoToStatus(err, absl::StrCat("telemetry file ", path));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("telemetry file ", path, " is not a regular file"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    return absl::ErrnoToStatus(err, absl::StrCat("cannot open telemetry file ", path));
  }

  std::string line;
  bool any_bytes = false;
  while (std::getline(in, line)) {
    any_bytes = true;
    if (IsBlank(line)) continue;
    // allow_exceptions=false: a malformed line becomes a "discarded" value.
    const nlohmann::json event = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (event.is_discarded() || !event.is_object()) {
      ++count.invalid_lines;
      continue;
    }
    ++count.events;
    // A missing, non-string or empty "type" is "untyped": an empty key would
    // be unreadable in reports.
    const auto type = event.find("type");
    if (type != event.end() && type->is_string() && !type->get_ref<const std::string&>().empty()) {
      ++count.by_type[type->get<std::string>()];
    } else {
      ++count.by_type["untyped"];
    }
  }
  if (in.bad()) {
    return absl::DataLossError(absl::StrCat("error reading telemetry file ", path));
  }
  // A file holding only "\n" counts as written; getline saw a line.
  count.file_written = any_bytes;
  return count;
}

}  // namespace sluice
