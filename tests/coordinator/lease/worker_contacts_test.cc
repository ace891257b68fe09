// WorkerContacts (coordinator/lease/worker_contacts.h): the in-memory last
// contact per worker, bounded in time and in size (issue #14 item 8).
#include "coordinator/lease/worker_contacts.h"

#include <string>

#include "gtest/gtest.h"

namespace sluice {
namespace {

TEST(WorkerContactsTest, LastSeenIsTheLaterOfTheStoredTimeAndTheLastCall) {
  WorkerContacts contacts;
  EXPECT_EQ(contacts.LastSeen("w1", 5), 5);
  contacts.Seen("w1", 100);
  contacts.Seen("w1", 50);  // times only move forward
  EXPECT_EQ(contacts.LastSeen("w1", 5), 100);
  EXPECT_EQ(contacts.LastSeen("w1", 500), 500);
}

TEST(WorkerContactsTest, WorkersUnseenForTheForgetTimeAreForgotten) {
  // Bug (#14 item 8): every worker id ever seen was kept forever.
  WorkerContacts contacts(/*forget_after_ms=*/1'000, /*capacity=*/100);
  contacts.Seen("old", 0);
  contacts.Seen("recent", 600);
  contacts.Forget(999);
  EXPECT_EQ(contacts.size(), 2u);
  contacts.Forget(1'000);
  EXPECT_EQ(contacts.size(), 1u);
  EXPECT_EQ(contacts.LastSeen("old", -1), -1);
  EXPECT_EQ(contacts.LastSeen("recent", -1), 600);
}

TEST(WorkerContactsTest, TheMapNeverHoldsMoreThanItsCapacityAndDropsTheLeastRecentlySeen) {
  // Bug (#14 item 8): a churning fleet (new ids every restart) grew the map
  // without bound.
  WorkerContacts contacts(/*forget_after_ms=*/1'000'000, /*capacity=*/3);
  contacts.Seen("a", 10);
  contacts.Seen("b", 30);
  contacts.Seen("c", 20);
  contacts.Seen("d", 40);
  EXPECT_EQ(contacts.size(), 3u);
  EXPECT_EQ(contacts.LastSeen("a", -1), -1);  // least recently seen: dropped
  EXPECT_EQ(contacts.LastSeen("c", -1), 20);
  contacts.Seen("c", 50);  // a known worker never evicts another
  EXPECT_EQ(contacts.size(), 3u);
  for (int i = 0; i < 1'000; ++i) contacts.Seen("w" + std::to_string(i), 100 + i);
  EXPECT_EQ(contacts.size(), 3u);
  EXPECT_EQ(contacts.LastSeen("w999", -1), 1'099);
}

}  // namespace
}  // namespace sluice
