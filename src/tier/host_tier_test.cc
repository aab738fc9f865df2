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

// Write-back support: Reserve names the block it evicted, whose bytes are still in the slot.
TEST(HostTierTest, ReserveSaysWhichBlockItEvicted) {
  auto t = MakeTier(2);
  std::optional<BlockKey> evicted;
  uint32_t slot;
  ASSERT_EQ(t->Reserve(K(1), &slot, &evicted), HostTier::ReserveResult::kReserved);
  EXPECT_FALSE(evicted.has_value());  // a free slot
  std::memset(t->data(slot), 1, kBlock);
  t->Commit(slot);
  Put(*t, 2);
  ASSERT_EQ(t->Reserve(K(3), &slot, &evicted), HostTier::ReserveResult::kReserved);
  ASSERT_TRUE(evicted.has_value());
  EXPECT_EQ(*evicted, K(1));                           // the LRU block
  EXPECT_EQ(t->data(slot)[kBlock - 1], std::byte{1});  // its bytes are still there
  EXPECT_FALSE(t->Contains(K(1)));
  t->Abort(slot);
}

TEST(HostTierTest, CommitKeepingLeasesHoldsTheBlocksUntilUnleased) {
  auto t = MakeTier(2);
  uint32_t a, b;
  ASSERT_EQ(t->Reserve(K(1), &a), HostTier::ReserveResult::kReserved);
  ASSERT_EQ(t->Reserve(K(2), &b), HostTier::ReserveResult::kReserved);
  const uint32_t chain[] = {a, b};
  t->Commit(chain, /*keep_leases=*/true);
  EXPECT_TRUE(t->Contains(K(1)));
  EXPECT_EQ(t->stats().leased_blocks, 2u);
  uint32_t c;
  EXPECT_EQ(t->Reserve(K(3), &c), HostTier::ReserveResult::kFull);  // nothing evictable
  t->Unlease(chain);
  EXPECT_EQ(t->stats().leased_blocks, 0u);
  ASSERT_EQ(t->Reserve(K(3), &c), HostTier::ReserveResult::kReserved);
  t->Abort(c);
}

TEST(HostTierTest, LeaseEachLeasesWhatIsThere) {
  auto t = MakeTier(4);
  Put(*t, 1);
  Put(*t, 3);
  const BlockKey keys[] = {K(1), K(2), K(3)};
  uint32_t slots[3];
  t->LeaseEach(keys, slots);
  EXPECT_NE(slots[0], HostTier::kNoSlot);
  EXPECT_EQ(slots[1], HostTier::kNoSlot);
  EXPECT_NE(slots[2], HostTier::kNoSlot);
  EXPECT_EQ(t->stats().leased_blocks, 2u);
  t->Unlease(slots[0]);
  t->Unlease(slots[2]);
  EXPECT_EQ(t->stats().leased_blocks, 0u);
}

TEST(HostTierTest, StagingSlotsSitPastTheCapacityAndAreNeverUsedByTheTier) {
  auto t = HostTier::Create({.capacity_bytes = 2 * kBlock, .pin_for_cuda = false}, kBlock, nullptr,
                            /*staging_slots=*/3);
  ASSERT_TRUE(t.ok());
  HostTier& tier = **t;
  EXPECT_EQ(tier.capacity_blocks(), 2u);
  EXPECT_EQ(tier.total_slots(), 5u);
  for (uint32_t s = 2; s < 5; ++s) std::memset(tier.data(s), 0x5a, kBlock);  // writable
  for (uint8_t v = 1; v <= 6; ++v) {
    uint32_t slot;
    ASSERT_EQ(tier.Reserve(K(v), &slot), HostTier::ReserveResult::kReserved);
    EXPECT_LT(slot, 2u);
    tier.Commit(slot);
  }
  for (uint32_t s = 2; s < 5; ++s) EXPECT_EQ(tier.data(s)[0], std::byte{0x5a});
}

}  // namespace
}  // namespace strata
