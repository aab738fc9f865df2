// BlockOffloader: bounded queue and writer threads from G2 slots to a lower tier.
#include "manager/block_offloader.h"

#include <pthread.h>

namespace strata {

BlockOffloader::BlockOffloader(std::string name, WriteBatch write, uint64_t block_bytes,
                               uint32_t threads, uint32_t max_queued, uint32_t batch,
                               Release release)
    : write_(std::move(write)),
      block_bytes_(block_bytes),
      max_queued_(max_queued),
      batch_(batch ? batch : 1),
      release_(std::move(release)) {
  name.resize(std::min<size_t>(name.size(), 15));  // the kernel's limit for thread names
  for (uint32_t i = 0; i < threads; ++i) {
    threads_.emplace_back([this] { Run(); });
    pthread_setname_np(threads_.back().native_handle(), name.c_str());
  }
}

BlockOffloader::~BlockOffloader() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
}

bool BlockOffloader::TryPush(const BlockKey& key, uint32_t slot) {
  {
    std::lock_guard lock(mu_);
    if (stopping_ || queue_.size() >= max_queued_) {
      queue_full_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    queue_.push_back({key, slot});
  }
  cv_.notify_one();
  return true;
}

void BlockOffloader::Run() {
  std::vector<OffloadItem> items;
  std::vector<OffloadOutcome> outcomes;
  std::vector<uint32_t> slots;
  for (;;) {
    items.clear();
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything is written
      while (!queue_.empty() && items.size() < batch_) {
        items.push_back(queue_.front());
        queue_.pop_front();
      }
    }
    outcomes.assign(items.size(), OffloadOutcome::kFailed);
    write_(items, outcomes);
    // Free the slots before counting: whoever sees a block counted as offloaded also
    // sees its G2 lease (or write-back buffer) returned.
    slots.clear();
    for (const OffloadItem& it : items) slots.push_back(it.slot);
    release_(slots);
    for (OffloadOutcome o : outcomes) {
      switch (o) {
        case OffloadOutcome::kWritten:
          written_.fetch_add(1, std::memory_order_release);
          bytes_written_.fetch_add(block_bytes_, std::memory_order_release);
          break;
        case OffloadOutcome::kPresent:
          present_.fetch_add(1, std::memory_order_release);
          break;
        case OffloadOutcome::kNoSpace:
          no_space_.fetch_add(1, std::memory_order_release);
          break;
        case OffloadOutcome::kFailed:
          failed_.fetch_add(1, std::memory_order_release);
          break;
      }
    }
  }
}

OffloaderStats BlockOffloader::stats() const {
  OffloaderStats s;
  {
    std::lock_guard lock(mu_);
    s.queued = queue_.size();
  }
  s.written = written_.load(std::memory_order_acquire);
  s.present = present_.load(std::memory_order_acquire);
  s.no_space = no_space_.load(std::memory_order_acquire);
  s.failed = failed_.load(std::memory_order_acquire);
  s.queue_full = queue_full_.load(std::memory_order_relaxed);
  s.bytes_written = bytes_written_.load(std::memory_order_acquire);
  return s;
}

}  // namespace strata
