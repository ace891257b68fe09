// ConfigureMutexDeadlockChecks: the product's binaries run without abseil's
// lock-order checks, tests keep them. Each case runs in a fresh process (a
// "threadsafe" death test), because the mode is global to the process.
#include "common/mutex_checks.h"

#include <cstdlib>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"

namespace sluice {
namespace {

class MutexChecksTest : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

// Takes two mutexes in one order, then in the other: no deadlock (one
// thread), but an order that could deadlock with two.
void TakeTwoMutexesInBothOrders() {
  absl::Mutex a;
  absl::Mutex b;
  {
    absl::MutexLock first(&a);
    absl::MutexLock second(&b);
  }
  {
    absl::MutexLock first(&b);
    absl::MutexLock second(&a);
  }
}

TEST_F(MutexChecksTest, WithoutTheVariableAnInvertedLockOrderDoesNotAbort) {
  EXPECT_EXIT(
      {
        unsetenv(kMutexDeadlockChecksEnv);
        ConfigureMutexDeadlockChecks();
        TakeTwoMutexesInBothOrders();
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

// Debian's abseil checks lock order (built without NDEBUG): with the
// variable the checks stay on, and the same order aborts.
TEST_F(MutexChecksTest, WithTheVariableAnInvertedLockOrderAborts) {
  EXPECT_DEATH(
      {
        setenv(kMutexDeadlockChecksEnv, "1", 1);
        ConfigureMutexDeadlockChecks();
        TakeTwoMutexesInBothOrders();
        std::_Exit(0);
      },
      "potential deadlock");
}

}  // namespace
}  // namespace sluice
