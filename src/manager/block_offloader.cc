// DiskOffloader: bounded queue and writer threads from G2 slots to G3.
#include "manager/disk_offloader.h"

#include <spdlog/spdlog.h>

namespace strata {

DiskOffloader::DiskOffloader(DiskTier* disk, HostTier* host, const NamespaceFingerprint& ns,
                             uint32_t threads, uint32_t max_queued, uint32_t batch, Release release)
    : disk_(disk),
      host_(host),
      ns_(ns),
      max_queued_(max_queued),
      batch_(batch ? batch : 1),
      release_(std::move(release)) {
  for (uint32_t i = 0; i < threads; ++i) threads_.emplace_back([this] { Run(); });
}

DiskOffloader::~DiskOffloader() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
}

bool DiskOffloader::TryPush(const BlockKey& key, uint32_t slot) {
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

void DiskOffloader::Run() {
  std::vector<Item> items;
  std::vector<DiskTier::BatchWrite> writes;
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
    writes.clear();
    for (const Item& it : items) writes.push_back({.key = it.key, .block = host_->data(it.slot)});
    disk_->WriteBatch(writes, ns_);
    // Free the slots before counting: whoever sees a block counted as offloaded also
    // sees its G2 lease (or write-back buffer) returned.
    slots.clear();
    for (const Item& it : items) slots.push_back(it.slot);
    release_(slots);
    for (size_t i = 0; i < items.size(); ++i) {
      const DiskTier::BatchWrite& w = writes[i];
      if (!w.status.ok()) {
        failed_.fetch_add(1, std::memory_order_release);
        spdlog::warn("strata: offload of block {} to the disk tier dropped: {}",
                     items[i].key.ToHex(), w.status.ToString());
        continue;
      }
      switch (w.outcome) {
        case DiskWriteOutcome::kWritten:
          written_.fetch_add(1, std::memory_order_release);
          bytes_written_.fetch_add(disk_->block_bytes(), std::memory_order_release);
          break;
        case DiskWriteOutcome::kPresent:
        case DiskWriteOutcome::kInFlight:
          present_.fetch_add(1, std::memory_order_release);
          break;
        case DiskWriteOutcome::kNoSpace:
          no_space_.fetch_add(1, std::memory_order_release);
          break;
      }
    }
  }
}

DiskOffloaderStats DiskOffloader::stats() const {
  DiskOffloaderStats s;
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
