// LRU policy: order of victims under add, touch and remove.
#include <gtest/gtest.h>

#include "tier/eviction_policy.h"

namespace strata {
namespace {

TEST(LruPolicyTest, EvictsLeastRecentlyUsedFirst) {
  auto lru = MakeLruPolicy();
  lru->Reset(8);
  EXPECT_EQ(lru->Victim(), EvictionPolicy::kNone);
  for (uint32_t s : {3u, 1u, 4u, 5u}) lru->Add(s);
  EXPECT_EQ(lru->size(), 4u);
  EXPECT_EQ(lru->Victim(), 3u);
  lru->Touch(3);  // order now 1,4,5,3
  EXPECT_EQ(lru->Victim(), 1u);
  lru->Remove(1);
  EXPECT_EQ(lru->Victim(), 4u);
  lru->Remove(4);
  lru->Remove(5);
  EXPECT_EQ(lru->Victim(), 3u);
  lru->Remove(3);
  EXPECT_EQ(lru->Victim(), EvictionPolicy::kNone);
  EXPECT_EQ(lru->size(), 0u);
  EXPECT_EQ(lru->name(), "lru");
}

TEST(LruPolicyTest, ReAddGoesToTheMostRecentEnd) {
  auto lru = MakeLruPolicy();
  lru->Reset(4);
  lru->Add(0);
  lru->Add(1);
  lru->Remove(0);  // e.g. leased
  lru->Add(0);     // lease ended: most recent
  EXPECT_EQ(lru->Victim(), 1u);
}

}  // namespace
}  // namespace strata
