// BlockManager: the engine-facing surface of Strata.
//
// An engine (the reference engine, a vLLM KV connector, any C++ engine) calls it from
// its scheduler and model runner:
//
//   RegisterDeviceCache(...)    once: where the engine's paged KV cache (G1) lives
//   Match(tokens, ctx)          how much of this prompt is cached, and where
//   Load(match, device blocks)  bring the matched blocks into these device blocks (async)
//   Store(ctx, keys, blocks)    these device blocks are complete, keep them (async)
//   Release / Cancel            the request finished / was aborted
//
// Loads and stores never block the engine: they are queued (bounded) and run on
// worker threads; the engine polls or waits on the returned handle. A load reports a
// state per block, and only the leading run of kDone blocks may be used: a block that
// failed, and every block after it, must be recomputed.
//
// Thread-safe: every method may be called from any thread at any time.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "strata/block_key.h"
#include "strata/export.h"
#include "strata/layout.h"
#include "strata/options.h"
#include "strata/status.h"
#include "strata/types.h"

namespace strata {

struct MatchResult {
  std::string request_id;
  size_t num_prompt_tokens = 0;
  // Tokens covered by the matched blocks: a multiple of tokens_per_block, the longest
  // prefix of the prompt held by some tier.
  size_t num_matched_tokens = 0;
  // Keys of every full block of the prompt (matched or not), for Store().
  std::vector<BlockKey> keys;
  // Tier of each matched block.
  std::vector<Tier> tiers;

  size_t num_matched_blocks() const { return tiers.size(); }
};

namespace internal {
struct TransferState;
}

// A handle on an asynchronous load or store of a list of blocks. Copies share state.
class STRATA_EXPORT TransferHandle {
 public:
  TransferHandle() = default;

  size_t num_blocks() const;
  // True when every block reached a final state.
  bool done() const;
  // Waits until done() or `timeout` passes: OK, or TimedOut.
  Status Wait(std::chrono::milliseconds timeout) const;
  BlockState state(size_t i) const;
  // Why block i failed, was dropped or cancelled; OK otherwise.
  Status error(size_t i) const;
  // Requests cancellation of the blocks that have not started.
  void Cancel() const;

 protected:
  explicit TransferHandle(std::shared_ptr<internal::TransferState> state)
      : state_(std::move(state)) {}
  std::shared_ptr<internal::TransferState> state_;
  friend class BlockManager;
};

class STRATA_EXPORT LoadHandle : public TransferHandle {
 public:
  LoadHandle() = default;
  // Number of leading blocks in kDone: the only loaded blocks the engine may use. A
  // failed block makes it and every later block unusable (later blocks' KV depends on it).
  size_t usable_blocks() const;
  size_t usable_tokens() const;

 private:
  using TransferHandle::TransferHandle;
  friend class BlockManager;
};

class StoreHandle : public TransferHandle {
 public:
  StoreHandle() = default;
  // After done(), the engine may overwrite the device blocks it passed to Store().
 private:
  using TransferHandle::TransferHandle;
  friend class BlockManager;
};

struct BlockManagerStats {
  uint64_t match_calls = 0;
  uint64_t match_prompt_blocks = 0;      // full blocks in matched prompts
  uint64_t match_hit_blocks = 0;         // of those, blocks found (any tier)
  uint64_t match_hit_blocks_host = 0;    // ... found in G2
  uint64_t match_hit_blocks_disk = 0;    // ... found in G3 (and not in G2)
  uint64_t match_hit_blocks_shared = 0;  // ... found in G4 (where G2 and G3 stopped)
  uint64_t matched_tokens = 0;
  uint64_t load_calls = 0;
  uint64_t loaded_blocks = 0;              // into device blocks, from any tier
  uint64_t loaded_blocks_from_disk = 0;    // of those, read from G3 (onboard disk -> device)
  uint64_t loaded_blocks_from_shared = 0;  // of those, read from G4
  uint64_t promoted_blocks = 0;            // G3 hits copied into G2 on the way
  uint64_t load_failed_blocks = 0;
  uint64_t load_cancelled_blocks = 0;
  uint64_t loaded_bytes = 0;
  uint64_t store_calls = 0;
  uint64_t stored_blocks = 0;
  uint64_t store_skipped_blocks = 0;
  uint64_t store_dropped_blocks = 0;
  uint64_t store_failed_blocks = 0;
  uint64_t store_cancelled_blocks = 0;
  uint64_t stored_bytes = 0;
  uint64_t host_admission_rejects = 0;  // Store blocks the G1 -> G2 write mode refused
  uint64_t active_requests = 0;         // requests holding leases
  uint64_t queued_ops = 0;
  // G2 host tier.
  uint64_t host_capacity_blocks = 0;
  uint64_t host_used_blocks = 0;
  uint64_t host_leased_blocks = 0;
  uint64_t host_pinned_blocks = 0;
  uint64_t host_evictions = 0;
  uint64_t host_index_bytes = 0;
  uint64_t host_prefaulted_bytes = 0;  // of the slots' memory (HostTierOptions::prefault)
  // G2 -> G3 offload (write-through, selective, write-back).
  uint64_t disk_admission_rejects = 0;  // blocks the G2 -> G3 admission policy refused
  uint64_t disk_offload_queued = 0;     // waiting for a disk writer now (queue and backlog)
  uint64_t disk_offload_deferred = 0;   // found the queue full and waited in the backlog
  uint64_t disk_offload_blocks = 0;     // written to G3 (offload host -> disk)
  uint64_t disk_offload_bytes = 0;
  uint64_t disk_offload_present = 0;   // already on disk; nothing written
  uint64_t disk_offload_dropped = 0;   // queue and backlog or write-back buffer full, no
                                       // disk space, evicted from G2 while in the backlog,
                                       // or a write error (logged: at most a line per 10 s)
  uint64_t disk_offload_failed = 0;    // of the dropped: write errors (ENOSPC, EIO, ...)
  uint64_t disk_writeback_blocks = 0;  // G2 evictions copied out for write-back
  // G3 disk tier (all zero without one).
  uint64_t disk_capacity_blocks = 0;
  uint64_t disk_used_blocks = 0;
  uint64_t disk_leased_blocks = 0;
  uint64_t disk_evictions = 0;
  uint64_t disk_read_errors = 0;  // I/O errors on load (the block left the index)
  uint64_t disk_corruptions = 0;  // checksum/key/fingerprint mismatches on load (left the index)
  uint64_t disk_invalidated_blocks = 0;  // of those, zeroed on disk too (never recovered again)
  uint64_t disk_recovered_blocks = 0;    // found at start-up (warm restart)
  uint64_t disk_index_bytes = 0;
  bool disk_direct_io = false;
  // G4 shared tier (all zero without one).
  bool shared_enabled = false;
  bool shared_available = false;         // the store answers now
  uint64_t shared_publish_queued = 0;    // blocks waiting to be published now (queue and backlog)
  uint64_t shared_published_blocks = 0;  // written to the store by this node
  uint64_t shared_published_bytes = 0;
  uint64_t shared_publish_present = 0;     // already in the store (another node published it)
  uint64_t shared_publish_failed = 0;      // put errors (store down, timeout, I/O)
  uint64_t shared_publish_dropped = 0;     // failed, queue and backlog full, or evicted
                                           // from G2 while waiting in the backlog
  uint64_t shared_load_misses = 0;         // matched, then gone at load (evicted by a node)
  uint64_t shared_load_errors = 0;         // corrupt, unavailable, timed out, I/O
  uint64_t shared_corruptions = 0;         // objects that failed verification (removed)
  uint64_t shared_unavailable_events = 0;  // times the store was marked down
  uint64_t shared_evictions = 0;           // objects this node evicted to keep its budget
  uint64_t shared_bytes_read = 0;
};

// Every field of BlockManagerStats in declaration order, as X(name): for code that visits
// them all (the C API's copy, the daemon protocol's stats message).
// clang-format off
#define STRATA_BLOCK_MANAGER_STATS(X) \
  X(match_calls) \
  X(match_prompt_blocks) \
  X(match_hit_blocks) \
  X(match_hit_blocks_host) \
  X(match_hit_blocks_disk) \
  X(match_hit_blocks_shared) \
  X(matched_tokens) \
  X(load_calls) \
  X(loaded_blocks) \
  X(loaded_blocks_from_disk) \
  X(loaded_blocks_from_shared) \
  X(promoted_blocks) \
  X(load_failed_blocks) \
  X(load_cancelled_blocks) \
  X(loaded_bytes) \
  X(store_calls) \
  X(stored_blocks) \
  X(store_skipped_blocks) \
  X(store_dropped_blocks) \
  X(store_failed_blocks) \
  X(store_cancelled_blocks) \
  X(stored_bytes) \
  X(host_admission_rejects) \
  X(active_requests) \
  X(queued_ops) \
  X(host_capacity_blocks) \
  X(host_used_blocks) \
  X(host_leased_blocks) \
  X(host_pinned_blocks) \
  X(host_evictions) \
  X(host_index_bytes) \
  X(host_prefaulted_bytes) \
  X(disk_admission_rejects) \
  X(disk_offload_queued) \
  X(disk_offload_deferred) \
  X(disk_offload_blocks) \
  X(disk_offload_bytes) \
  X(disk_offload_present) \
  X(disk_offload_dropped) \
  X(disk_offload_failed) \
  X(disk_writeback_blocks) \
  X(disk_capacity_blocks) \
  X(disk_used_blocks) \
  X(disk_leased_blocks) \
  X(disk_evictions) \
  X(disk_read_errors) \
  X(disk_corruptions) \
  X(disk_invalidated_blocks) \
  X(disk_recovered_blocks) \
  X(disk_index_bytes) \
  X(disk_direct_io) \
  X(shared_enabled) \
  X(shared_available) \
  X(shared_publish_queued) \
  X(shared_published_blocks) \
  X(shared_published_bytes) \
  X(shared_publish_present) \
  X(shared_publish_failed) \
  X(shared_publish_dropped) \
  X(shared_load_misses) \
  X(shared_load_errors) \
  X(shared_corruptions) \
  X(shared_unavailable_events) \
  X(shared_evictions) \
  X(shared_bytes_read)
// clang-format on

class STRATA_EXPORT BlockManager {
 public:
  static Result<std::unique_ptr<BlockManager>> Create(const BlockManagerOptions& options);
  // Cancels queued loads and stores, waits for running ones, releases every lease.
  ~BlockManager();
  BlockManager(const BlockManager&) = delete;
  BlockManager& operator=(const BlockManager&) = delete;

  const BlockManagerOptions& options() const;

  // Tells Strata where the engine's device KV cache is. Must precede Load/Store.
  // InvalidArgument when its layout differs from options().layout; NotSupported for
  // kCuda when the transfer engine has no CUDA backend (no toolkit or no device).
  Status RegisterDeviceCache(const DeviceCache& cache);

  // Keys of every full block of `tokens` in the namespace of `ctx`.
  Result<std::vector<BlockKey>> ComputeKeys(std::span<const TokenId> tokens,
                                            const RequestContext& ctx) const;

  // The longest cached prefix of `tokens`. The matched blocks are leased to
  // ctx.request_id (they cannot be evicted) until they are loaded, the request is
  // Released or Cancelled, or Match is called again for the same request. A miss is
  // an OK result with num_matched_tokens == 0.
  Result<MatchResult> Match(std::span<const TokenId> tokens, const RequestContext& ctx);

  // Loads matched blocks [first_block, first_block + device_blocks.size()) of `match`
  // into the given device blocks. `match` must be the request's latest Match result.
  // Blocks before first_block (ones the engine already holds) have their leases released.
  Result<LoadHandle> Load(const MatchResult& match, std::span<const uint32_t> device_blocks,
                          size_t first_block = 0);

  // Stores device_blocks[i] under keys[i]. The engine must not modify those device
  // blocks until the handle is done(). Present keys are kSkipped (and refreshed).
  Result<StoreHandle> Store(const RequestContext& ctx, std::span<const BlockKey> keys,
                            std::span<const uint32_t> device_blocks);

  // The request finished: releases its leases. Its queued loads still run. Every
  // request that matched blocks must be Released or Cancelled (stats().active_requests
  // counts the ones holding state).
  void Release(std::string_view request_id);
  // The request was aborted: cancels its loads that have not run, releases its leases.
  // Its stores go on (their KV is valid and reusable); StoreHandle::Cancel stops one.
  void Cancel(std::string_view request_id);

  // Writes G3's segment files through to stable storage (fdatasync). Blocks the caller;
  // OK without a disk tier.
  Status FlushDisk();

  // Pins keep blocks in the host tier regardless of eviction (e.g. a system prompt).
  Status Pin(std::span<const BlockKey> keys);
  Status Unpin(std::span<const BlockKey> keys);

  BlockManagerStats stats() const;

 private:
  class Impl;
  explicit BlockManager(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace strata
