// libFuzzer target: CountTelemetryFile on arbitrary bytes, written to a real
// file as a phase would write $SLUICE_TELEMETRY_FILE.
// Properties: it never crashes and never fails on a regular file; every
// bound holds (type names up to kMaxTelemetryTypeBytes, at most
// kMaxTelemetryTypes distinct names besides "other"); counts are >= 0; the
// per-type counts add up to the events; an empty file is "not written".
#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "worker/telemetry_counter.h"

namespace {

void Check(bool condition, const char* what) {
  if (!condition) {
    __builtin_printf("property violated: %s\n", what);
    std::abort();
  }
}

// One scratch file per fuzzing process, rewritten for every input.
const std::string& ScratchPath() {
  static const std::string path = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string p = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                    "/sluice-telemetry-fuzz-" + std::to_string(getpid()) + ".jsonl";
    return p;
  }();
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = ScratchPath();
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  Check(fd >= 0, "scratch file opens");
  size_t written = 0;
  while (written < size) {
    const ssize_t n = ::write(fd, data + written, size - written);
    Check(n > 0, "scratch file is written");
    written += static_cast<size_t>(n);
  }
  ::close(fd);
  auto count = sluice::CountTelemetryFile(path);
  Check(count.ok(), "a regular file is always counted");
  Check(count->file_written == (size > 0), "file_written says whether there were bytes");
  Check(count->events >= 0 && count->invalid_lines >= 0 && count->oversized_lines >= 0 &&
            count->folded_events >= 0,
        "counts are not negative");
  Check(count->oversized_lines <= count->invalid_lines, "oversized lines are invalid lines");
  Check(count->folded_events <= count->events, "folded events are events");
  size_t names = 0;
  int64_t sum = 0;
  for (const auto& [type, n] : count->by_type) {
    Check(n > 0, "a listed type has events");
    Check(type.size() <= sluice::kMaxTelemetryTypeBytes, "type names are bounded");
    if (type != sluice::kOtherTelemetryType) ++names;
    sum += n;
  }
  Check(names <= sluice::kMaxTelemetryTypes, "distinct types are bounded");
  Check(sum == count->events, "per-type counts add up to the events");
  return 0;
}
