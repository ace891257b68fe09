// The one bounded wait of the integration and end-to-end tests: poll a
// condition on real time until it holds or a deadline passes.
//
// Unit tests never use it: they advance a FakeClock instead of sleeping.
// Integration tests cannot (a subprocess, a socket or a server thread moves
// on its own), so they poll with a deadline and assert on the result:
//
//   ASSERT_TRUE(WaitUntil([&] { return store.CountPhases()->pending == 0; },
//                         std::chrono::seconds(10)));
//
// Thread-safety: the predicate runs on the calling thread only.
#pragma once

#include <chrono>
#include <functional>
#include <thread>

namespace sluice::testing {

// How often WaitUntil looks again unless told otherwise: short enough that a
// test does not idle, long enough not to starve the processes it waits for.
inline constexpr std::chrono::milliseconds kDefaultPoll{20};

// Calls `predicate` until it returns true (true), or until `timeout` has
// passed since the call (false), sleeping `poll` in between. The predicate is
// called at least once, even with a zero timeout.
inline bool WaitUntil(const std::function<bool()>& predicate, std::chrono::milliseconds timeout,
                      std::chrono::milliseconds poll = kDefaultPoll) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!predicate()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(poll);
  }
  return true;
}

}  // namespace sluice::testing
