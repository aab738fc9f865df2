// BlockOffloader: copies blocks from G2 host slots down to a lower tier in the background —
// the G2 -> G3 half of every write mode (write-through and selective copies of committed
// blocks, write-back copies of evicted ones), and G2 -> G4 publication to a shared store.
//
// Callers hand over a slot of the host tier's buffer that they hold (a lease on a G2 block,
// or a write-back buffer slot); TryPush never blocks: when the bounded queue is full it
// returns false and the slot stays the caller's (a drop, counted). Writer threads take up to
// a batch of queued blocks at a time, write them with one call of the tier's batch writer
// (their I/Os in flight together), then hand the slots back through the `release` callback.
//
// Thread-safe. The offloader calls nothing under its own lock.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "strata/block_key.h"

namespace strata {

struct OffloaderStats {
  uint64_t queued = 0;      // waiting for a writer now
  uint64_t written = 0;     // acknowledged by the lower tier
  uint64_t present = 0;     // the lower tier already held (or was writing) the key
  uint64_t no_space = 0;    // the lower tier had no room: dropped
  uint64_t failed = 0;      // the write failed (e.g. ENOSPC, EIO, store unavailable): dropped
  uint64_t queue_full = 0;  // TryPush found the queue full: dropped by the caller
  uint64_t bytes_written = 0;
};

enum class OffloadOutcome : uint8_t { kWritten, kPresent, kNoSpace, kFailed };

struct OffloadItem {
  BlockKey key;
  uint32_t slot;  // host buffer slot holding the block's bytes
};

class BlockOffloader {
 public:
  // Writes `items` to the lower tier, all in flight together, and sets each outcome (a
  // writer logs its own failures with their reasons).
  using WriteBatch =
      std::function<void(std::span<const OffloadItem> items, std::span<OffloadOutcome> outcomes)>;
  // Ends the caller's hold on slots the offloader is done with (in queue order).
  using Release = std::function<void(std::span<const uint32_t> slots)>;
  // `name` names the threads ("strata-g3-write").
  BlockOffloader(std::string name, WriteBatch write, uint64_t block_bytes, uint32_t threads,
                 uint32_t max_queued, uint32_t batch, Release release);
  // Writes what is still queued (so a clean shutdown keeps write-back blocks), then joins.
  ~BlockOffloader();
  BlockOffloader(const BlockOffloader&) = delete;
  BlockOffloader& operator=(const BlockOffloader&) = delete;

  // Queues a copy of host buffer slot `slot` (holding `key`, held by the caller).
  // On true the hold now belongs to the offloader; on false (queue full) it is the caller's.
  bool TryPush(const BlockKey& key, uint32_t slot);

  OffloaderStats stats() const;

 private:
  void Run();

  const WriteBatch write_;
  const uint64_t block_bytes_;
  const uint32_t max_queued_;
  const uint32_t batch_;
  const Release release_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<OffloadItem> queue_;  // GUARDED_BY(mu_)
  bool stopping_ = false;          // GUARDED_BY(mu_)
  std::atomic<uint64_t> written_{0}, present_{0}, no_space_{0}, failed_{0}, queue_full_{0},
      bytes_written_{0};
  std::vector<std::thread> threads_;
};

}  // namespace strata
