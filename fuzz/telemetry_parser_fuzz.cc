// libFuzzer target: CountTelemetryFile on arbitrary bytes, written to a real
// (in-memory) regular file as a phase would write $SLUICE_TELEMETRY_FILE.
// Properties: it never crashes and never fails on a regular file; every
// bound holds (type names up to kMaxTelemetryTypeBytes, at most
// kMaxTelemetryTypes distinct names besides "other"); counts are >= 0; the
// per-type counts add up to the events; an empty file is "not written".
#include <fcntl.h>
#include <sys/mman.h>
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

// One in-memory regular file per fuzzing process (memfd: nothing is left on
// disk whatever way libFuzzer exits), rewritten for every input and opened
// by the parser through its /proc/self/fd path.
int ScratchFd() {
  static const int fd = ::memfd_create("sluice-telemetry-fuzz", MFD_CLOEXEC);
  return fd;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int fd = ScratchFd();
  Check(fd >= 0, "the scratch memfd exists");
  Check(::ftruncate(fd, 0) == 0, "the scratch file is emptied");
  size_t written = 0;
  while (written < size) {
    const ssize_t n = ::pwrite(fd, data + written, size - written, static_cast<off_t>(written));
    Check(n > 0, "the scratch file is written");
    written += static_cast<size_t>(n);
  }
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
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
