// BlockIndex: a compact open-addressing map from BlockKey to a tier's slot number.
//
// Tiers of fixed-size blocks (host RAM slots, disk region slots) number their slots
// 0..capacity-1, so the index stores each key once, in a per-slot array, and the hash
// table holds only 4-byte slot numbers (linear probing, load factor <= 1/2,
// backward-shift deletion: no tombstones, no rehash ever). Memory per slot is
// 32 (key) + 8..16 (table) bytes.
//
// Not thread-safe: the owning tier serialises access.
#pragma once

#include <cstdint>
#include <vector>

#include "strata/block_key.h"

namespace strata {

class BlockIndex {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;

  // Room for `capacity` keys (slots 0..capacity-1). capacity < 2^31.
  explicit BlockIndex(uint32_t capacity);

  // The slot holding `key`, or kNone.
  uint32_t Find(const BlockKey& key) const;
  // Maps `key` to `slot`. Preconditions: key absent; slot < capacity and unmapped.
  void Insert(const BlockKey& key, uint32_t slot);
  // Unmaps `slot`. Precondition: slot is mapped.
  void Erase(uint32_t slot);

  const BlockKey& key(uint32_t slot) const { return keys_[slot]; }
  uint32_t capacity() const { return static_cast<uint32_t>(keys_.size()); }
  uint32_t size() const { return size_; }
  // Heap bytes held by the index.
  size_t MemoryBytes() const {
    return keys_.capacity() * sizeof(BlockKey) + table_.capacity() * sizeof(uint32_t);
  }

 private:
  size_t Home(const BlockKey& key) const { return static_cast<size_t>(key.Prefix64()) & mask_; }

  std::vector<BlockKey> keys_;   // key of each mapped slot
  std::vector<uint32_t> table_;  // kNone or a slot number
  size_t mask_ = 0;
  uint32_t size_ = 0;
};

}  // namespace strata
