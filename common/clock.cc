#include "common/clock.h"

#include <chrono>

namespace sluice {

int64_t SystemClock::NowMs() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

const Clock& SystemClock::Default() {
  static const SystemClock* const kClock = new SystemClock();
  return *kClock;
}

}  // namespace sluice
