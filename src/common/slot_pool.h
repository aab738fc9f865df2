// SlotPool: a fixed set of numbered slots (staging buffers, write-back buffers) that many
// threads borrow and return.
//
// AcquireUpTo waits only while no slot is free and then takes what it can, so a thread that
// holds some slots never waits for more: batches that each need many slots cannot deadlock.
//
// Thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

namespace strata {

class SlotPool {
 public:
  // Slots first .. first + count - 1, lowest handed out first.
  SlotPool(uint32_t first, uint32_t count) {
    free_.reserve(count);
    for (uint32_t s = first + count; s > first; --s) free_.push_back(s - 1);
  }

  // Between 1 and `n` slots (n >= 1), waiting while none is free.
  std::vector<uint32_t> AcquireUpTo(size_t n) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !free_.empty(); });
    std::vector<uint32_t> out;
    while (!free_.empty() && out.size() < n) {
      out.push_back(free_.back());
      free_.pop_back();
    }
    return out;
  }

  // A slot, or nullopt at once when none is free.
  std::optional<uint32_t> TryAcquire() {
    std::lock_guard lock(mu_);
    if (free_.empty()) return std::nullopt;
    const uint32_t s = free_.back();
    free_.pop_back();
    return s;
  }

  void Release(std::span<const uint32_t> slots) {
    {
      std::lock_guard lock(mu_);
      free_.insert(free_.end(), slots.begin(), slots.end());
    }
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<uint32_t> free_;  // GUARDED_BY(mu_)
};

}  // namespace strata
