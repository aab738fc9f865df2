// LRU eviction over slot numbers, with a sentinel node at index `capacity`.
#include <vector>

#include "tier/eviction_policy.h"

namespace strata {
namespace {

class LruPolicy final : public EvictionPolicy {
 public:
  std::string_view name() const override { return "lru"; }

  void Reset(uint32_t capacity) override {
    sentinel_ = capacity;
    prev_.assign(size_t{capacity} + 1, kNone);
    next_.assign(size_t{capacity} + 1, kNone);
    prev_[sentinel_] = next_[sentinel_] = sentinel_;
    size_ = 0;
  }

  // Most recent at the front (after the sentinel), least recent at the back.
  void Add(uint32_t slot) override {
    LinkFront(slot);
    ++size_;
  }
  void Touch(uint32_t slot) override {
    Unlink(slot);
    LinkFront(slot);
  }
  void Remove(uint32_t slot) override {
    Unlink(slot);
    --size_;
  }
  uint32_t Victim() const override {
    const uint32_t last = prev_[sentinel_];
    return last == sentinel_ ? kNone : last;
  }
  uint32_t size() const override { return size_; }

 private:
  void LinkFront(uint32_t slot) {
    const uint32_t first = next_[sentinel_];
    next_[slot] = first;
    prev_[slot] = sentinel_;
    prev_[first] = slot;
    next_[sentinel_] = slot;
  }
  void Unlink(uint32_t slot) {
    next_[prev_[slot]] = next_[slot];
    prev_[next_[slot]] = prev_[slot];
    prev_[slot] = next_[slot] = kNone;
  }

  std::vector<uint32_t> prev_, next_;
  uint32_t sentinel_ = 0;
  uint32_t size_ = 0;
};

}  // namespace

std::unique_ptr<EvictionPolicy> MakeLruPolicy() {
  return std::make_unique<LruPolicy>();
}

}  // namespace strata
