// TerminationWatcher: the signals reach the callback on the watcher's own
// thread, and a watcher stops when destroyed. Each case runs in a fresh
// process (a "threadsafe" death test re-executes the binary), because the
// signal mask is per process and the test runner's own threads do not block
// the termination signals.
#include "common/signals.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "gtest/gtest.h"

namespace sluice {
namespace {

class TerminationWatcherTest : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

// Waits (up to 10 s) for `done`; exits with `code` once it holds, 99 if not.
template <typename Pred>
[[noreturn]] void ExitWhen(Pred done, int code) {
  for (int i = 0; i < 10'000 && !done(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  _exit(done() ? code : 99);
}

TEST_F(TerminationWatcherTest, EachSignalOfTheSetReachesTheCallbackOnTheWatchersThread) {
  EXPECT_EXIT(
      {
        BlockTerminationSignals();
        std::atomic<int> seen_mask{0};
        std::atomic<bool> on_other_thread{true};
        const std::thread::id main_thread = std::this_thread::get_id();
        TerminationWatcher watcher([&](int sig) {
          if (std::this_thread::get_id() == main_thread) on_other_thread = false;
          seen_mask |= sig == SIGTERM ? 1 : sig == SIGINT ? 2 : sig == SIGHUP ? 4 : 8;
        });
        kill(getpid(), SIGTERM);
        ExitWhen([&] { return seen_mask.load() == 1; }, 0);
      },
      ::testing::ExitedWithCode(0), "");
  EXPECT_EXIT(
      {
        BlockTerminationSignals();
        std::atomic<int> seen_mask{0};
        TerminationWatcher watcher([&](int sig) {
          seen_mask |= sig == SIGTERM ? 1 : sig == SIGINT ? 2 : sig == SIGHUP ? 4 : 8;
        });
        kill(getpid(), SIGINT);
        kill(getpid(), SIGHUP);
        ExitWhen([&] { return seen_mask.load() == 6; }, 0);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST_F(TerminationWatcherTest, ASignalAfterTheWatcherIsGoneStaysPendingAndDoesNotKill) {
  // Blocked and unwatched, SIGTERM is left pending: the process exits with
  // its own code, not by the signal. A new watcher then takes it.
  EXPECT_EXIT(
      {
        BlockTerminationSignals();
        std::atomic<int> first{0};
        {
          TerminationWatcher watcher([&](int) { ++first; });
        }
        kill(getpid(), SIGTERM);
        sigset_t pending;
        sigpending(&pending);
        if (first.load() != 0 || sigismember(&pending, SIGTERM) != 1) _exit(98);
        std::atomic<int> second{0};
        TerminationWatcher again([&](int sig) {
          if (sig == SIGTERM) ++second;
        });
        ExitWhen([&] { return second.load() == 1; }, 7);
      },
      ::testing::ExitedWithCode(7), "");
}

TEST_F(TerminationWatcherTest, ManyWatchersOneAfterAnotherEachStopWhenDestroyed) {
  // The destructor wakes the thread; it never waits for a signal to come.
  EXPECT_EXIT(
      {
        BlockTerminationSignals();
        for (int i = 0; i < 200; ++i) {
          TerminationWatcher watcher([](int) {});
        }
        _exit(3);
      },
      ::testing::ExitedWithCode(3), "");
}

}  // namespace
}  // namespace sluice
