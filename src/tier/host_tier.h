// HostTier (G2): host RAM carved into fixed-size block slots, with an index, an
// eviction policy, leases and pins.
//
// A slot moves through: free -> writing (Reserve) -> ready (Commit) -> free (evicted).
// A writing slot is indexed, so a concurrent store of the same key is deduplicated,
// but it is never matched or evicted. A ready slot with leases or a pin is never
// evicted or overwritten: the eviction policy only ever sees ready, unleased,
// unpinned slots.
//
// Write-back: Reserve says which block it evicted to free the slot. The evicted block's
// bytes stay in the slot until the reserver writes it, so the reserver can copy them out
// first (to a write-back buffer bound for disk) without holding the tier's lock.
//
// Staging slots: Create can add slots past the capacity that the tier never uses; the
// owner hands them out itself (e.g. to stage loads from a lower tier) and they share the
// tier's buffer, so one memory registration covers both.
//
// Thread-safe. Index operations take one mutex for a few hundred nanoseconds; block
// data is copied outside it, protected by the slot's state (writing) or a lease.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "memory/host_memory.h"
#include "strata/block_key.h"
#include "strata/options.h"
#include "tier/block_index.h"
#include "tier/eviction_policy.h"

namespace strata {

struct HostTierStats {
  uint64_t capacity_blocks = 0;
  uint64_t block_bytes = 0;
  uint64_t used_blocks = 0;    // writing + ready
  uint64_t leased_blocks = 0;  // ready blocks with at least one lease
  uint64_t pinned_blocks = 0;
  uint64_t evictions = 0;
  uint64_t inserts = 0;        // successful Commit()s
  uint64_t rejected_full = 0;  // Reserve() found nothing evictable
  uint64_t index_bytes = 0;    // index + policy + slot state memory
};

class HostTier {
 public:
  static constexpr uint32_t kNoSlot = UINT32_MAX;

  enum class ReserveResult {
    kReserved,  // *slot is yours to write; Commit() or Abort() it
    kPresent,   // already stored and ready; its recency was refreshed
    kInFlight,  // another store of this key is writing it now
    kFull,      // every slot is leased, pinned or being written
  };

  // `policy` defaults to LRU. `staging_slots` are allocated after the tier's own slots
  // (numbers capacity_blocks() .. total_slots() - 1). `shared_memory`: the slots live in a
  // memfd other processes may map (buffer().fd()). Fails when the capacity holds no block.
  static Result<std::unique_ptr<HostTier>> Create(const HostTierOptions& options,
                                                  size_t block_bytes,
                                                  std::unique_ptr<EvictionPolicy> policy = nullptr,
                                                  uint32_t staging_slots = 0,
                                                  bool shared_memory = false);

  uint32_t capacity_blocks() const { return capacity_; }
  uint32_t total_slots() const { return capacity_ + staging_slots_; }
  size_t block_bytes() const { return block_bytes_; }
  const HostBuffer& buffer() const { return *buffer_; }

  // True when `key` is stored and ready.
  bool Contains(const BlockKey& key) const;

  // Length of the run of leading `keys` that are ready here. With `leases` non-null,
  // each of those blocks is leased and its slot appended to `leases` (release each
  // with Unlease); otherwise nothing is held. Matched blocks count as used (recency).
  size_t MatchPrefix(std::span<const BlockKey> keys, std::vector<uint32_t>* leases);

  // Leases `key` if it is ready: returns its slot, or kNoSlot.
  uint32_t Lease(const BlockKey& key);
  // Lease(keys[i]) into slots[i] for each key, under one lock.
  void LeaseEach(std::span<const BlockKey> keys, std::span<uint32_t> slots);
  // Ends one lease of `slot`; its last lease makes it evictable again (most recent).
  void Unlease(uint32_t slot);
  // Ends one lease of each slot of a prefix chain (block order) under one lock. The
  // chain re-enters the eviction order tail first, so its tail is evicted before its
  // head: a prefix without its head is worthless, a head without its tail is not.
  void Unlease(std::span<const uint32_t> chain);

  // Claims a slot for `key`, evicting the policy's victim when no slot is free. With
  // `evicted` non-null and kReserved returned, *evicted is set to the evicted block's key,
  // or nullopt when the slot was free; that block's bytes are still in the slot.
  ReserveResult Reserve(const BlockKey& key, uint32_t* slot,
                        std::optional<BlockKey>* evicted = nullptr);
  // The reserved slot's data is written: the block becomes matchable and evictable.
  void Commit(uint32_t slot);
  // Commits the slots of a prefix chain (block order) under one lock, tail first into
  // the eviction order (see Unlease(span)). With `keep_leases` each slot stays leased to
  // the caller (e.g. while it is copied further down), who must Unlease it.
  void Commit(std::span<const uint32_t> chain, bool keep_leases = false);
  // Gives up a reservation: the key leaves the index, the slot is free.
  void Abort(uint32_t slot);

  // Pins keep a ready block from eviction until Unpin. NotFound when absent.
  Status Pin(const BlockKey& key);
  Status Unpin(const BlockKey& key);

  // Slot memory: block_bytes() bytes. Valid while the caller holds the reservation or a lease.
  std::byte* data(uint32_t slot) const { return buffer_->data() + size_t{slot} * block_bytes_; }
  std::span<std::byte> block(uint32_t slot) const { return {data(slot), block_bytes_}; }

  HostTierStats stats() const;

 private:
  enum class SlotState : uint8_t { kFree, kWriting, kReady };
  // 4 bytes a slot: per-block metadata stays within the 64-byte budget.
  struct Slot {
    static constexpr uint32_t kMaxLeases = (1u << 29) - 1;
    uint32_t leases : 29 = 0;
    uint32_t state_bits : 2 = 0;
    uint32_t pinned : 1 = 0;
    SlotState state() const { return static_cast<SlotState>(state_bits); }
    void set_state(SlotState s) { state_bits = static_cast<uint32_t>(s); }
  };
  static_assert(sizeof(Slot) == 4);

  HostTier(uint32_t capacity, uint32_t staging_slots, size_t block_bytes,
           std::unique_ptr<HostBuffer> buffer, std::unique_ptr<EvictionPolicy> policy);
  bool Evictable(const Slot& s) const {
    return s.state() == SlotState::kReady && s.leases == 0 && !s.pinned;
  }
  void FreeSlot(uint32_t slot);                       // REQUIRES(mu_)
  void UnleaseLocked(uint32_t slot);                  // REQUIRES(mu_)
  void CommitLocked(uint32_t slot, bool keep_lease);  // REQUIRES(mu_)
  uint32_t LeaseLocked(const BlockKey& key);          // REQUIRES(mu_)

  const uint32_t capacity_;
  const uint32_t staging_slots_;
  const size_t block_bytes_;
  const std::unique_ptr<HostBuffer> buffer_;

  mutable std::mutex mu_;
  BlockIndex index_;                        // GUARDED_BY(mu_)
  std::unique_ptr<EvictionPolicy> policy_;  // GUARDED_BY(mu_)
  std::vector<Slot> slots_;                 // GUARDED_BY(mu_)
  std::vector<uint32_t> free_;              // GUARDED_BY(mu_) free slot stack
  uint64_t used_ = 0, leased_ = 0, pinned_ = 0, evictions_ = 0, inserts_ = 0, rejected_full_ = 0;
};

}  // namespace strata
