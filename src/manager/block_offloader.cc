// BlockOffloader: bounded queue and writer threads from G2 slots to a lower tier.
#include "manager/block_offloader.h"

#include <pthread.h>

namespace strata {

BlockOffloader::BlockOffloader(std::string name, WriteBatch write, uint64_t block_bytes,
                               uint32_t threads, uint32_t max_queued, uint32_t batch,
                               Release release, Reacquire reacquire, uint32_t max_backlog)
    : write_(std::move(write)),
      block_bytes_(block_bytes),
      max_queued_(max_queued),
      batch_(batch ? batch : 1),
      release_(std::move(release)),
      reacquire_(std::move(reacquire)),
      max_backlog_(reacquire_ ? max_backlog : 0) {
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

BlockOffloader::Push BlockOffloader::TryPush(const BlockKey& key, uint32_t slot, bool deferrable) {
  Push result = Push::kDropped;
  {
    std::lock_guard lock(mu_);
    if (stopping_) {
      // Dropped: nothing is accepted once the writers are finishing.
    } else if (queue_.size() + in_flight_ < max_queued_) {
      queue_.push_back({key, slot});
      result = Push::kQueued;
    } else if (deferrable && max_backlog_ > 0) {
      // A full backlog gives up its oldest key: the newest blocks are the ones G2 keeps
      // longest (LRU), so they are the ones still there when the writers catch up.
      result = Push::kDeferred;
      if (backlog_.size() >= max_backlog_) {
        backlog_.pop_front();
        result = Push::kDeferredDroppingOldest;
      }
      backlog_.push_back(key);
    }
  }
  if (result != Push::kQueued) {
    (result == Push::kDropped ? queue_full_ : deferred_).fetch_add(1, std::memory_order_relaxed);
    if (result == Push::kDeferredDroppingOldest)
      queue_full_.fetch_add(1, std::memory_order_relaxed);
  }
  if (result != Push::kDropped) cv_.notify_one();
  return result;
}

void BlockOffloader::Run() {
  std::vector<OffloadItem> items;
  std::vector<OffloadOutcome> outcomes;
  std::vector<uint32_t> slots;
  std::vector<BlockKey> revive;
  for (;;) {
    items.clear();
    revive.clear();
    {
      std::unique_lock lock(mu_);
      // Backlog keys are taken once the queue is drained (queued blocks already hold their
      // slots), and only while fewer than max_queued_ blocks are being written: a revived
      // key takes a G2 lease, and the offloader never holds more than max_queued_ of them.
      cv_.wait(lock, [&] {
        return !queue_.empty() || (!backlog_.empty() && in_flight_ < max_queued_) ||
               (stopping_ && backlog_.empty());
      });
      if (queue_.empty() && backlog_.empty()) return;  // stopping, and everything is written
      while (!queue_.empty() && items.size() < batch_) {
        items.push_back(queue_.front());
        queue_.pop_front();
      }
      in_flight_ += static_cast<uint32_t>(items.size());
      while (queue_.empty() && !backlog_.empty() && items.size() + revive.size() < batch_ &&
             in_flight_ < max_queued_) {
        revive.push_back(backlog_.front());
        backlog_.pop_front();
        ++in_flight_;
      }
    }
    const size_t taken = items.size() + revive.size();
    for (const BlockKey& key : revive) {
      if (const std::optional<uint32_t> slot = reacquire_(key)) {
        items.push_back({key, *slot});
      } else {
        evicted_.fetch_add(1, std::memory_order_release);
      }
    }
    if (!items.empty()) WriteAndRelease(items, outcomes, slots);
    {
      std::lock_guard lock(mu_);
      in_flight_ -= static_cast<uint32_t>(taken);
    }
    cv_.notify_all();  // room for the backlog, or the last writes of a shutdown
  }
}

void BlockOffloader::WriteAndRelease(std::vector<OffloadItem>& items,
                                     std::vector<OffloadOutcome>& outcomes,
                                     std::vector<uint32_t>& slots) {
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

OffloaderStats BlockOffloader::stats() const {
  OffloaderStats s;
  {
    std::lock_guard lock(mu_);
    s.queued = queue_.size();
    s.backlog = backlog_.size();
  }
  s.deferred = deferred_.load(std::memory_order_relaxed);
  s.evicted = evicted_.load(std::memory_order_acquire);
  s.written = written_.load(std::memory_order_acquire);
  s.present = present_.load(std::memory_order_acquire);
  s.no_space = no_space_.load(std::memory_order_acquire);
  s.failed = failed_.load(std::memory_order_acquire);
  s.queue_full = queue_full_.load(std::memory_order_relaxed);
  s.bytes_written = bytes_written_.load(std::memory_order_acquire);
  return s;
}

}  // namespace strata
