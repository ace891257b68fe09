// The one contract every StateStore passes (coordinator/store/state_store.h).
//
// The TEST_P bodies live in state_store_*contract.cc (by topic: import and
// leasing, reports and budgets, expiry, sessions), compiled once into the
// OBJECT library `sluice_store_contract` (tests/CMakeLists.txt). A backend
// gets the whole suite by linking that library and instantiating the fixture
// with a factory in its own test file:
//
//   // tests/contract/redis_state_store_contract_test.cc
//   #include "tests/contract/state_store_contract.h"
//   INSTANTIATE_TEST_SUITE_P(
//       Redis, StateStoreContractTest,
//       ::testing::Values(sluice::contract::StoreFactory{
//           "redis", [] { return ...a fresh, empty RedisStateStore...; }}),
//       sluice::contract::StoreFactoryName);
//
//   # tests/CMakeLists.txt
//   sluice_add_test(redis_state_store_contract_test
//     SOURCES contract/redis_state_store_contract_test.cc
//     LIBS sluice_store_contract <redis store lib> sluice_testing LABELS contract)
//
// What the suite cannot check generically: that a mutating call applies
// whole or not at all when it fails *midway*. Each backend proves that on its
// own with a fault only it can inject (the SQLite test uses a trigger that
// aborts a transaction halfway, see state_store_contract_test.cc).
#pragma once

#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "coordinator/store/state_store.h"
#include "gtest/gtest.h"

namespace sluice::contract {

struct StoreFactory {
  // Shown in test names: [A-Za-z0-9_] only.
  std::string name;
  // A fresh, empty store, used by one test only and destroyed at its end. It
  // owns whatever backs it (a temp dir, a Redis database) or cleans it up on
  // destruction. Failing to create one: throw, or return nullptr.
  std::function<std::unique_ptr<StateStore>()> make;
};

// Test logs show the factory's name, not its bytes.
inline void PrintTo(const StoreFactory& factory, std::ostream* os) { *os << factory.name; }

// For INSTANTIATE_TEST_SUITE_P's name generator.
inline std::string StoreFactoryName(const ::testing::TestParamInfo<StoreFactory>& info) {
  return info.param.name;
}

class StateStoreContractTest : public ::testing::TestWithParam<StoreFactory> {
 protected:
  void SetUp() override;

  StateStore& store() { return *store_; }

  std::unique_ptr<StateStore> store_;
};

}  // namespace sluice::contract

// Lets each backend's file write `StateStoreContractTest` unqualified.
using sluice::contract::StateStoreContractTest;
