// HostTier: slot lifecycle, leases, pins and eviction for the G2 host tier.
#include "tier/host_tier.h"

#include <cassert>

#include <fmt/format.h>

namespace strata {

Result<std::unique_ptr<HostTier>> HostTier::Create(const HostTierOptions& options,
                                                   size_t block_bytes,
                                                   std::unique_ptr<EvictionPolicy> policy,
                                                   uint32_t staging_slots, bool shared_memory) {
  STRATA_RETURN_IF_ERROR(options.Validate());
  if (block_bytes == 0) return Status::InvalidArgument("HostTier: block_bytes must be > 0");
  const uint64_t blocks = options.capacity_bytes / block_bytes;
  if (blocks == 0)
    return Status::InvalidArgument(
        fmt::format("host tier capacity {} bytes holds no block of {} bytes",
                    options.capacity_bytes, block_bytes));
  if (blocks >= (uint64_t{1} << 31))
    return Status::InvalidArgument(
        fmt::format("host tier of {} blocks exceeds 2^31 blocks", blocks));
  auto buffer = HostBuffer::Allocate((blocks + staging_slots) * block_bytes,
                                     {.huge_pages = options.huge_pages,
                                      .pin_for_cuda = options.pin_for_cuda,
                                      .prefault = options.prefault,
                                      .shared = shared_memory});
  if (!buffer.ok()) return buffer.status();
  if (!policy) policy = MakeLruPolicy();
  return std::unique_ptr<HostTier>(new HostTier(static_cast<uint32_t>(blocks), staging_slots,
                                                block_bytes, std::move(buffer).value(),
                                                std::move(policy)));
}

HostTier::HostTier(uint32_t capacity, uint32_t staging_slots, size_t block_bytes,
                   std::unique_ptr<HostBuffer> buffer, std::unique_ptr<EvictionPolicy> policy)
    : capacity_(capacity),
      staging_slots_(staging_slots),
      block_bytes_(block_bytes),
      buffer_(std::move(buffer)),
      index_(capacity),
      policy_(std::move(policy)),
      slots_(capacity) {
  policy_->Reset(capacity);
  free_.reserve(capacity);
  // Hand out low slot numbers first so a lightly used tier touches few pages.
  for (uint32_t s = capacity; s > 0; --s) free_.push_back(s - 1);
}

bool HostTier::Contains(const BlockKey& key) const {
  std::lock_guard lock(mu_);
  const uint32_t slot = index_.Find(key);
  return slot != BlockIndex::kNone && slots_[slot].state() == SlotState::kReady;
}

uint32_t HostTier::LeaseLocked(const BlockKey& key) {
  const uint32_t slot = index_.Find(key);
  if (slot == BlockIndex::kNone) return kNoSlot;
  Slot& s = slots_[slot];
  if (s.state() != SlotState::kReady || s.leases == Slot::kMaxLeases) return kNoSlot;
  if (Evictable(s)) policy_->Remove(slot);
  if (s.leases++ == 0) ++leased_;
  return slot;
}

size_t HostTier::MatchPrefix(std::span<const BlockKey> keys, std::vector<uint32_t>* leases) {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (; n < keys.size(); ++n) {
    if (leases != nullptr) {
      const uint32_t slot = LeaseLocked(keys[n]);
      if (slot == kNoSlot) break;
      leases->push_back(slot);
    } else {
      const uint32_t slot = index_.Find(keys[n]);
      if (slot == BlockIndex::kNone || slots_[slot].state() != SlotState::kReady) break;
      if (Evictable(slots_[slot])) policy_->Touch(slot);
    }
  }
  return n;
}

uint32_t HostTier::Lease(const BlockKey& key) {
  std::lock_guard lock(mu_);
  return LeaseLocked(key);
}

void HostTier::LeaseEach(std::span<const BlockKey> keys, std::span<uint32_t> slots) {
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < keys.size(); ++i) slots[i] = LeaseLocked(keys[i]);
}

void HostTier::Unlease(uint32_t slot) {
  std::lock_guard lock(mu_);
  UnleaseLocked(slot);
}

void HostTier::Unlease(std::span<const uint32_t> chain) {
  std::lock_guard lock(mu_);
  for (size_t i = chain.size(); i > 0; --i) UnleaseLocked(chain[i - 1]);
}

void HostTier::UnleaseLocked(uint32_t slot) {
  Slot& s = slots_[slot];
  assert(s.state() == SlotState::kReady && s.leases > 0);
  if (--s.leases == 0) {
    --leased_;
    if (!s.pinned) policy_->Add(slot);
  }
}

HostTier::ReserveResult HostTier::Reserve(const BlockKey& key, uint32_t* slot_out,
                                          std::optional<BlockKey>* evicted) {
  std::lock_guard lock(mu_);
  const uint32_t existing = index_.Find(key);
  if (existing != BlockIndex::kNone) {
    if (slots_[existing].state() == SlotState::kWriting) return ReserveResult::kInFlight;
    if (Evictable(slots_[existing])) policy_->Touch(existing);
    return ReserveResult::kPresent;
  }
  uint32_t slot;
  if (evicted) evicted->reset();
  if (!free_.empty()) {
    slot = free_.back();
    free_.pop_back();
  } else {
    slot = policy_->Victim();
    if (slot == EvictionPolicy::kNone) {
      ++rejected_full_;
      return ReserveResult::kFull;
    }
    policy_->Remove(slot);
    if (evicted) *evicted = index_.key(slot);
    index_.Erase(slot);
    ++evictions_;
    --used_;
  }
  slots_[slot] = Slot{};
  slots_[slot].set_state(SlotState::kWriting);
  index_.Insert(key, slot);
  ++used_;
  *slot_out = slot;
  return ReserveResult::kReserved;
}

void HostTier::Commit(uint32_t slot) {
  std::lock_guard lock(mu_);
  CommitLocked(slot, /*keep_lease=*/false);
}

void HostTier::Commit(std::span<const uint32_t> chain, bool keep_leases) {
  std::lock_guard lock(mu_);
  for (size_t i = chain.size(); i > 0; --i) CommitLocked(chain[i - 1], keep_leases);
}

void HostTier::CommitLocked(uint32_t slot, bool keep_lease) {
  Slot& s = slots_[slot];
  assert(s.state() == SlotState::kWriting);
  s.set_state(SlotState::kReady);
  ++inserts_;
  if (keep_lease) {  // leased, so not evictable until the caller's Unlease
    s.leases = 1;
    ++leased_;
  } else {
    policy_->Add(slot);
  }
}

void HostTier::Abort(uint32_t slot) {
  std::lock_guard lock(mu_);
  assert(slots_[slot].state() == SlotState::kWriting);
  index_.Erase(slot);
  FreeSlot(slot);
}

void HostTier::FreeSlot(uint32_t slot) {
  slots_[slot] = Slot{};
  free_.push_back(slot);
  --used_;
}

Status HostTier::Pin(const BlockKey& key) {
  std::lock_guard lock(mu_);
  const uint32_t slot = index_.Find(key);
  if (slot == BlockIndex::kNone || slots_[slot].state() != SlotState::kReady)
    return Status::NotFound(fmt::format("pin: block {} is not in the host tier", key.ToHex()));
  Slot& s = slots_[slot];
  if (s.pinned) return Status::Ok();
  if (Evictable(s)) policy_->Remove(slot);
  s.pinned = 1;
  ++pinned_;
  return Status::Ok();
}

Status HostTier::Unpin(const BlockKey& key) {
  std::lock_guard lock(mu_);
  const uint32_t slot = index_.Find(key);
  if (slot == BlockIndex::kNone || slots_[slot].state() != SlotState::kReady ||
      !slots_[slot].pinned)
    return Status::NotFound(
        fmt::format("unpin: block {} is not pinned in the host tier", key.ToHex()));
  Slot& s = slots_[slot];
  s.pinned = 0;
  --pinned_;
  if (s.leases == 0) policy_->Add(slot);
  return Status::Ok();
}

HostTierStats HostTier::stats() const {
  std::lock_guard lock(mu_);
  HostTierStats st;
  st.capacity_blocks = capacity_;
  st.block_bytes = block_bytes_;
  st.used_blocks = used_;
  st.leased_blocks = leased_;
  st.pinned_blocks = pinned_;
  st.evictions = evictions_;
  st.inserts = inserts_;
  st.rejected_full = rejected_full_;
  // LRU holds two u32 links per slot plus a sentinel; the free stack one u32 per slot.
  st.index_bytes = index_.MemoryBytes() + slots_.capacity() * sizeof(Slot) +
                   (size_t{capacity_} + 1) * 2 * sizeof(uint32_t) +
                   free_.capacity() * sizeof(uint32_t);
  return st;
}

}  // namespace strata
