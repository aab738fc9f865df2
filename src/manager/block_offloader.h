// BlockOffloader: copies blocks from G2 host slots down to a lower tier in the background —
// the G2 -> G3 half of every write mode (write-through and selective copies of committed
// blocks, write-back copies of evicted ones), and G2 -> G4 publication to a shared store.
//
// Callers hand over a slot of the host tier's buffer that they hold (a lease on a G2 block,
// or a write-back buffer slot); TryPush never blocks. When the bounded queue is full, a
// block that G2 can give back by key (`deferrable`, with a `reacquire` callback) waits in
// a backlog of keys instead — no slot held, so G2 may still evict it — and is queued again
// by a writer once the queue has room; other blocks, the oldest key of a full backlog, and
// backlog keys G2 evicted before a writer got to them are dropped (counted). Writer threads take up
// to a batch at a time (queued blocks first, then backlog keys), write them with one call of the
// tier's batch writer (their I/Os in flight together), then hand the slots back through the
// `release` callback.
//
// Thread-safe. The offloader calls nothing under its own lock.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "strata/block_key.h"

namespace strata {

struct OffloaderStats {
  uint64_t queued = 0;      // waiting for a writer now (not counting the backlog)
  uint64_t written = 0;     // acknowledged by the lower tier
  uint64_t present = 0;     // the lower tier already held (or was writing) the key
  uint64_t no_space = 0;    // the lower tier had no room: dropped
  uint64_t failed = 0;      // the write failed (e.g. ENOSPC, EIO, store unavailable): dropped
  uint64_t queue_full = 0;  // dropped: queue full without a backlog, or oldest of a full one
  uint64_t deferred = 0;    // TryPush found the queue full and put the key in the backlog
  uint64_t backlog = 0;     // keys in the backlog now
  uint64_t evicted = 0;     // backlog keys the upper tier no longer held: dropped
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
  // Takes a hold on the slot holding backlog key `key` again (a G2 lease), or says the
  // block is gone (nullopt). Null: no backlog.
  using Reacquire = std::function<std::optional<uint32_t>(const BlockKey& key)>;
  // `name` names the threads ("strata-g3-write"). At most `max_queued` blocks are queued
  // or being written (each holds its slot), and `max_backlog` keys wait in the backlog.
  BlockOffloader(std::string name, WriteBatch write, uint64_t block_bytes, uint32_t threads,
                 uint32_t max_queued, uint32_t batch, Release release,
                 Reacquire reacquire = nullptr, uint32_t max_backlog = 0);
  // Writes what is still queued and in the backlog (so a clean shutdown keeps write-back
  // blocks), then joins.
  ~BlockOffloader();
  BlockOffloader(const BlockOffloader&) = delete;
  BlockOffloader& operator=(const BlockOffloader&) = delete;

  enum class Push : uint8_t {
    kQueued,    // the hold on the slot now belongs to the offloader
    kDeferred,  // queue full: the key waits in the backlog; the hold is still the caller's
    kDeferredDroppingOldest,  // as kDeferred, but the backlog was full: its oldest key
                              // was dropped (counted) to make room
    kDropped,  // queue full, no backlog: dropped and counted; the hold is the caller's
  };
  // Queues a copy of host buffer slot `slot` (holding `key`, held by the caller).
  // `deferrable`: the slot is G2's copy of `key`, which Reacquire can find again.
  Push TryPush(const BlockKey& key, uint32_t slot, bool deferrable);

  OffloaderStats stats() const;

 private:
  void Run();
  // Writes one batch, hands its slots back and counts the outcomes.
  void WriteAndRelease(std::vector<OffloadItem>& items, std::vector<OffloadOutcome>& outcomes,
                       std::vector<uint32_t>& slots);

  const WriteBatch write_;
  const uint64_t block_bytes_;
  const uint32_t max_queued_;
  const uint32_t batch_;
  const Release release_;
  const Reacquire reacquire_;
  const uint32_t max_backlog_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<OffloadItem> queue_;  // GUARDED_BY(mu_)
  std::deque<BlockKey> backlog_;   // GUARDED_BY(mu_) keys waiting for room in the queue
  uint32_t in_flight_ = 0;         // GUARDED_BY(mu_) blocks writers took and still hold
  bool stopping_ = false;          // GUARDED_BY(mu_)
  std::atomic<uint64_t> written_{0}, present_{0}, no_space_{0}, failed_{0}, queue_full_{0},
      deferred_{0}, evicted_{0}, bytes_written_{0};
  std::vector<std::thread> threads_;
};

}  // namespace strata
