// EvictionPolicy: decides which evictable slot of a tier leaves first when it is full.
//
// The tier tells the policy which slots are evictable (Add/Remove) and when one is
// used (Touch); a slot that is leased, pinned or being written is never in the policy,
// so Victim() is O(1) for LRU and never has to skip anything. Admission ("may this
// block enter at all?") is a separate policy.
//
// Not thread-safe: the owning tier serialises access.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

namespace strata {

class EvictionPolicy {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;
  virtual ~EvictionPolicy() = default;

  virtual std::string_view name() const = 0;
  // Prepares for slots 0..capacity-1, none evictable.
  virtual void Reset(uint32_t capacity) = 0;
  // `slot` became evictable (just written, or its last lease ended). Precondition: not tracked.
  virtual void Add(uint32_t slot) = 0;
  // `slot` was used (a hit or a repeated store). Precondition: tracked.
  virtual void Touch(uint32_t slot) = 0;
  // `slot` stops being evictable. Precondition: tracked.
  virtual void Remove(uint32_t slot) = 0;
  // The slot to evict next, or kNone when nothing is evictable. Does not remove it.
  virtual uint32_t Victim() const = 0;
  // Number of tracked slots.
  virtual uint32_t size() const = 0;
};

// Least-recently-used: an intrusive doubly linked list over slot numbers (8 bytes a slot).
std::unique_ptr<EvictionPolicy> MakeLruPolicy();

}  // namespace strata
