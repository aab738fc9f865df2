// BlockIndex: insert/find/erase against a reference map, including probe-run deletions.
#include "tier/block_index.h"

#include <random>
#include <unordered_map>

#include <gtest/gtest.h>

namespace strata {
namespace {

BlockKey KeyOf(uint64_t v, uint64_t prefix) {
  BlockKey k;
  for (int i = 0; i < 8; ++i) k.bytes[i] = static_cast<uint8_t>(prefix >> (8 * i));
  for (int i = 0; i < 8; ++i) k.bytes[8 + i] = static_cast<uint8_t>(v >> (8 * i));
  return k;
}

TEST(BlockIndexTest, InsertFindErase) {
  BlockIndex index(4);
  BlockKey a = KeyOf(1, 11), b = KeyOf(2, 22);
  EXPECT_EQ(index.Find(a), BlockIndex::kNone);
  index.Insert(a, 0);
  index.Insert(b, 3);
  EXPECT_EQ(index.Find(a), 0u);
  EXPECT_EQ(index.Find(b), 3u);
  EXPECT_EQ(index.size(), 2u);
  index.Erase(0);
  EXPECT_EQ(index.Find(a), BlockIndex::kNone);
  EXPECT_EQ(index.Find(b), 3u);
  EXPECT_EQ(index.size(), 1u);
}

// Keys sharing their home bucket form one probe run; erasing from its middle must keep
// every later member findable (backward shift).
TEST(BlockIndexTest, EraseInsideACollisionRun) {
  BlockIndex index(16);
  for (uint32_t s = 0; s < 10; ++s) index.Insert(KeyOf(s, /*same home*/ 5), s);
  std::vector<bool> erased(10, false);
  for (uint32_t s : {0u, 4u, 9u, 1u}) {
    index.Erase(s);
    erased[s] = true;
    for (uint32_t t = 0; t < 10; ++t)
      EXPECT_EQ(index.Find(KeyOf(t, 5)), erased[t] ? BlockIndex::kNone : t)
          << "after erasing " << s;
  }
}

TEST(BlockIndexTest, RandomisedAgainstReferenceMap) {
  constexpr uint32_t kCap = 1000;
  BlockIndex index(kCap);
  std::unordered_map<BlockKey, uint32_t, BlockKeyHash> ref;
  std::vector<uint32_t> free_slots;
  for (uint32_t s = 0; s < kCap; ++s) free_slots.push_back(s);
  std::mt19937_64 rng(7);
  for (int step = 0; step < 200000; ++step) {
    if (!free_slots.empty() && (ref.empty() || rng() % 3 != 0)) {
      // A small prefix space forces long probe runs and wrap-around.
      BlockKey k = KeyOf(rng(), rng() % 64);
      if (ref.count(k)) continue;
      uint32_t slot = free_slots.back();
      free_slots.pop_back();
      index.Insert(k, slot);
      ref[k] = slot;
    } else {
      auto it = std::next(ref.begin(), static_cast<long>(rng() % ref.size()));
      index.Erase(it->second);
      free_slots.push_back(it->second);
      ref.erase(it);
    }
    if (step % 4999 == 0) {
      for (const auto& [k, s] : ref) ASSERT_EQ(index.Find(k), s);
      ASSERT_EQ(index.Find(KeyOf(rng(), 1u << 20)), BlockIndex::kNone);
    }
  }
  EXPECT_EQ(index.size(), ref.size());
}

TEST(BlockIndexTest, MemoryPerSlotStaysSmall) {
  for (uint32_t cap : {1000u, 1024u, 1025u, 100000u}) {
    BlockIndex index(cap);
    // 32-byte key + at most 16 bytes of table per slot.
    EXPECT_LE(index.MemoryBytes(), size_t{cap} * 48 + 64) << cap;
  }
}

}  // namespace
}  // namespace strata
