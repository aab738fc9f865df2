// HostTier: slot lifecycle, dedup, LRU eviction, leases and pins, metadata budget.
#include "tier/host_tier.h"

#include <cstring>

#include <gtest/gtest.h>

namespace strata {
namespace {

constexpr size_t kBlock = 4096;

BlockKey K(uint8_t v) {
  BlockKey k;
  k.bytes.fill(v);
  k.bytes[31] = 0xee;
  return k;
}

std::unique_ptr<HostTier> MakeTier(uint32_t blocks) {
  auto t = HostTier::Create({.capacity_bytes = blocks * kBlock, .pin_for_cuda = false}, kBlock);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return std::move(t).value();
}

void Put(HostTier& tier, uint8_t v) {
  uint32_t slot;
  ASSERT_EQ(tier.Reserve(K(v), &slot), HostTier::ReserveResult::kReserved);
  std::memset(tier.data(slot), v, kBlock);
  tier.Commit(slot);
}

TEST(HostTierTest, CapacityIsBudgetOverBlockSize) {
  auto t = HostTier::Create({.capacity_bytes = 10 * kBlock + 100, .pin_for_cuda = false}, kBlock);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ((*t)->capacity_blocks(), 10u);
  auto none = HostTier::Create({.capacity_bytes = kBlock - 1}, kBlock);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("holds no block"), std::string::npos);
}

TEST(HostTierTest, WritingSlotIsNotMatchableUntilCommitted) {
  auto tier = MakeTier(4);
  uint32_t slot;
  ASSERT_EQ(tier->Reserve(K(1), &slot), HostTier::ReserveResult::kReserved);
  EXPECT_FALSE(tier->Contains(K(1)));
  EXPECT_EQ(tier->Lease(K(1)), HostTier::kNoSlot);
  uint32_t other;
  EXPECT_EQ(tier->Reserve(K(1), &other), HostTier::ReserveResult::kInFlight);  // dedup
  tier->Commit(slot);
  EXPECT_TRUE(tier->Contains(K(1)));
  EXPECT_EQ(tier->Reserve(K(1), &other), HostTier::ReserveResult::kPresent);
}

TEST(HostTierTest, AbortFreesTheSlotAndKey) {
  auto tier = MakeTier(1);
  uint32_t slot;
  ASSERT_EQ(tier->Reserve(K(1), &slot), HostTier::ReserveResult::kReserved);
  tier->Abort(slot);
  EXPECT_FALSE(tier->Contains(K(1)));
  EXPECT_EQ(tier->stats().used_blocks, 0u);
  Put(*tier, 2);  // the single slot is free again
  EXPECT_TRUE(tier->Contains(K(2)));
}

TEST(HostTierTest, EvictsLeastRecentlyUsed) {
  auto tier = MakeTier(3);
  Put(*tier, 1);
  Put(*tier, 2);
  Put(*tier, 3);
  EXPECT_EQ(tier->MatchPrefix(std::vector{K(1)}, nullptr), 1u);  // touch 1: LRU order 2,3,1
  uint32_t slot;
  EXPECT_EQ(tier->Reserve(K(3), &slot), HostTier::ReserveResult::kPresent);  // refresh 3: 2,1,3
  Put(*tier, 4);                                                             // evicts 2
  EXPECT_FALSE(tier->Contains(K(2)));
  EXPECT_TRUE(tier->Contains(K(1)));
  Put(*tier, 5);  // evicts 1
  EXPECT_FALSE(tier->Contains(K(1)));
  EXPECT_TRUE(tier->Contains(K(3)));
  EXPECT_EQ(tier->stats().evictions, 2u);
}

TEST(HostTierTest, LeasedBlocksAreNeverEvictedOrOverwritten) {
  auto tier = MakeTier(2);
  Put(*tier, 1);
  Put(*tier, 2);
  std::vector<uint32_t> leases;
  ASSERT_EQ(tier->MatchPrefix(std::vector{K(1), K(2)}, &leases), 2u);
  uint32_t slot;
  EXPECT_EQ(tier->Reserve(K(3), &slot), HostTier::ReserveResult::kFull);
  EXPECT_EQ(tier->stats().rejected_full, 1u);
  for (uint8_t v : {1, 2}) {
    const uint32_t s = leases[v - 1];
    for (size_t i = 0; i < kBlock; ++i) ASSERT_EQ(tier->data(s)[i], std::byte{v});
  }
  tier->Unlease(leases[1]);  // 2 becomes evictable
  Put(*tier, 3);
  EXPECT_TRUE(tier->Contains(K(1)));
  EXPECT_FALSE(tier->Contains(K(2)));
  tier->Unlease(leases[0]);
  EXPECT_EQ(tier->stats().leased_blocks, 0u);
}

TEST(HostTierTest, MultipleLeasesOnOneBlock) {
  auto tier = MakeTier(1);
  Put(*tier, 1);
  uint32_t a = tier->Lease(K(1)), b = tier->Lease(K(1));
  ASSERT_EQ(a, b);
  tier->Unlease(a);
  uint32_t slot;
  EXPECT_EQ(tier->Reserve(K(2), &slot), HostTier::ReserveResult::kFull);  // still one lease
  tier->Unlease(b);
  Put(*tier, 2);
  EXPECT_FALSE(tier->Contains(K(1)));
}

TEST(HostTierTest, PinnedBlocksStay) {
  auto tier = MakeTier(2);
  Put(*tier, 1);
  Put(*tier, 2);
  ASSERT_TRUE(tier->Pin(K(1)).ok());
  Put(*tier, 3);  // evicts 2, not the pinned 1
  Put(*tier, 4);  // evicts 3
  EXPECT_TRUE(tier->Contains(K(1)));
  EXPECT_EQ(tier->stats().pinned_blocks, 1u);
  ASSERT_TRUE(tier->Unpin(K(1)).ok());
  EXPECT_EQ(tier->Unpin(K(1)).code(), StatusCode::kNotFound);
  EXPECT_EQ(tier->Pin(K(9)).code(), StatusCode::kNotFound);
  Put(*tier, 5);  // 4 is older than the unpinned 1 (re-added as most recent)
  EXPECT_FALSE(tier->Contains(K(4)));
  EXPECT_TRUE(tier->Contains(K(1)));
}

TEST(HostTierTest, MatchPrefixStopsAtFirstMiss) {
  auto tier = MakeTier(8);
  Put(*tier, 1);
  Put(*tier, 2);
  Put(*tier, 4);
  std::vector<uint32_t> leases;
  EXPECT_EQ(tier->MatchPrefix(std::vector{K(1), K(2), K(3), K(4)}, &leases), 2u);
  EXPECT_EQ(leases.size(), 2u);
  EXPECT_EQ(tier->stats().leased_blocks, 2u);
  for (uint32_t s : leases) tier->Unlease(s);
}

TEST(HostTierTest, MetadataWithinSixtyFourBytesPerBlock) {
  // Worst case for the power-of-two table is just above a power of two.
  for (uint32_t blocks : {1000u, 1025u, 4096u, 70000u}) {
    auto t = HostTier::Create({.capacity_bytes = uint64_t{blocks} * 64, .pin_for_cuda = false}, 64);
    ASSERT_TRUE(t.ok());
    const auto st = (*t)->stats();
    EXPECT_LE(st.index_bytes, st.capacity_blocks * 64 + 256) << blocks << " blocks";
  }
}

}  // namespace
}  // namespace strata
