// BlockIndex: linear probing with backward-shift deletion.
#include "tier/block_index.h"

#include <algorithm>
#include <bit>
#include <cassert>

namespace strata {

BlockIndex::BlockIndex(uint32_t capacity) : keys_(capacity) {
  const size_t table_size = std::bit_ceil(std::max<size_t>(2 * size_t{capacity}, 8));
  table_.assign(table_size, kNone);
  mask_ = table_size - 1;
}

uint32_t BlockIndex::Find(const BlockKey& key) const {
  for (size_t pos = Home(key);; pos = (pos + 1) & mask_) {
    const uint32_t slot = table_[pos];
    if (slot == kNone) return kNone;
    if (keys_[slot] == key) return slot;
  }
}

void BlockIndex::Insert(const BlockKey& key, uint32_t slot) {
  assert(slot < keys_.size());
  size_t pos = Home(key);
  while (table_[pos] != kNone) pos = (pos + 1) & mask_;
  table_[pos] = slot;
  keys_[slot] = key;
  ++size_;
}

void BlockIndex::Erase(uint32_t slot) {
  size_t pos = Home(keys_[slot]);
  while (table_[pos] != slot) {
    assert(table_[pos] != kNone);
    pos = (pos + 1) & mask_;
  }
  // Backward shift: pull later members of the probe run into the hole when the hole
  // lies on their path from their home position.
  size_t hole = pos;
  for (size_t next = (hole + 1) & mask_; table_[next] != kNone; next = (next + 1) & mask_) {
    const size_t home = Home(keys_[table_[next]]);
    const size_t dist_next = (next - home) & mask_;
    const size_t dist_hole = (hole - home) & mask_;
    if (dist_hole < dist_next) {
      table_[hole] = table_[next];
      hole = next;
    }
  }
  table_[hole] = kNone;
  --size_;
}

}  // namespace strata
