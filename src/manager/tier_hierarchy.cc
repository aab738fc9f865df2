// TierHierarchy: G2/G3/G4 and the policies between them (see tier_hierarchy.h).
#include "manager/tier_hierarchy.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/slot_pool.h"
#include "disk/disk_tier.h"
#include "manager/block_mover.h"
#include "manager/drop_log.h"
#include "remote/open_store.h"
#include "strata/admission.h"
#include "strata/remote_store.h"
#include "tier/host_tier.h"

namespace strata {
namespace {

// Blocks a single disk writer batch holds at most.
constexpr uint32_t kOffloadBatch = 32;
// At most one warning line about dropped disk offloads per this period.
constexpr std::chrono::seconds kDropLogPeriod{10};

void Add(std::atomic<uint64_t>& c, uint64_t v) {
  c.fetch_add(v, std::memory_order_relaxed);
}
uint64_t Get(const std::atomic<uint64_t>& c) {
  return c.load(std::memory_order_relaxed);
}

}  // namespace

Result<std::unique_ptr<TierHierarchy>> TierHierarchy::Create(const BlockManagerOptions& options,
                                                             bool shared_memory) {
  const bool with_disk = options.disk.capacity_bytes > 0;
  const bool with_shared = options.shared.enabled();
  const HierarchyOptions& h = options.hierarchy;
  uint32_t extra_slots = with_disk || with_shared ? h.staging_slots : 0;
  if (with_disk && h.host_to_disk == WriteMode::kWriteBack) extra_slots += h.writeback_slots;
  std::unique_ptr<HostTier> host;
  if (options.host.capacity_bytes > 0) {
    auto tier = HostTier::Create(options.host, options.layout.block_bytes(), nullptr, extra_slots,
                                 shared_memory);
    if (!tier.ok()) return tier.status().WithContext("creating the G2 host tier");
    host = std::move(tier).value();
    if (!host->buffer().notes().empty())
      spdlog::info("strata: G2 host tier: {}", host->buffer().notes());
  }
  auto mover = BlockMover::Create(options.transfer, options.layout, host ? host->data(0) : nullptr,
                                  host ? host->total_slots() : 0);
  if (!mover.ok()) return mover.status().WithContext("creating the transfer engine");
  std::unique_ptr<TierHierarchy> tiers(
      new TierHierarchy(options, std::move(host), std::move(mover).value()));
  if (with_disk || with_shared) STRATA_RETURN_IF_ERROR(tiers->PrepareLowerTiers());
  if (with_disk) STRATA_RETURN_IF_ERROR(tiers->OpenDisk());
  if (with_shared) STRATA_RETURN_IF_ERROR(tiers->OpenShared());
  return tiers;
}

TierHierarchy::TierHierarchy(const BlockManagerOptions& options, std::unique_ptr<HostTier> host,
                             std::unique_ptr<BlockMover> mover)
    : options_(options),
      block_bytes_(options.layout.block_bytes()),
      host_(std::move(host)),
      mover_(std::move(mover)),
      sightings_(std::make_shared<FrequencyAdmission>(options.hierarchy.min_sightings,
                                                      options.hierarchy.sightings_counters,
                                                      options.hierarchy.sightings_decay_period)) {}

TierHierarchy::~TierHierarchy() {
  // No store or load runs any more (the caller's workers are gone), so no new offload: the
  // offloaders write what is queued (write-back blocks included) and hand their slots back.
  offloader_.reset();
  shared_offloader_.reset();
  drop_log_.reset();  // the drops not logged yet
}

uint32_t TierHierarchy::disk_records() const {
  return disk_ ? disk_->capacity_records() : 0;
}

HostSlots TierHierarchy::host_slots() const {
  if (!host_) return {};
  return {.base = host_->data(0), .slots = host_->total_slots()};
}

// What both lower tiers need: the namespace fingerprint every record and object carries
// (model, layout, shard and key algorithm — the root of the key chain of an unsalted
// namespace), and staging slots (extra host slots past G2's capacity) for loads that do
// not promote.
Status TierHierarchy::PrepareLowerTiers() {
  STRATA_ASSIGN_OR_RETURN(BlockKeyer root,
                          BlockKeyer::Create({.model_fingerprint = options_.model_fingerprint,
                                              .layout = options_.layout,
                                              .rank = options_.rank,
                                              .world_size = options_.world_size,
                                              .algorithm = options_.hash_algorithm}));
  std::memcpy(ns_.bytes.data(), root.root().bytes.data(), ns_.bytes.size());
  staging_ = std::make_unique<SlotPool>(host_->capacity_blocks(), options_.hierarchy.staging_slots);
  return Status::Ok();
}

// Opens G3 and wires it to G2: the offloader, the admission policy, write-back buffers.
Status TierHierarchy::OpenDisk() {
  const HierarchyOptions& h = options_.hierarchy;
  auto disk = DiskTier::Open(options_.disk, options_.layout, &mover_->engine());
  if (!disk.ok()) return disk.status().WithContext("opening the G3 disk tier");
  disk_ = std::move(disk).value();
  if (!disk_->notes().empty()) spdlog::info("strata: G3 disk tier: {}", disk_->notes());
  // G2's slots (staging slots included) move to and from disk without a copy.
  STRATA_RETURN_IF_ERROR(disk_->RegisterHostMemory(
      host_->data(0), size_t{host_->total_slots()} * block_bytes_, "G2 host tier slots"));
  if (h.disk_admission) {
    disk_admission_ = h.disk_admission;
  } else {
    std::vector<std::shared_ptr<AdmissionPolicy>> all;
    if (h.host_to_disk == WriteMode::kSelective) all.push_back(sightings_);
    all.push_back(std::make_shared<WriteBudgetAdmission>(h.disk_write_bytes_per_sec));
    disk_admission_ = std::make_shared<AllOfAdmission>(std::move(all));
  }
  // Write-back buffers: extra host slots past G2's capacity and its staging slots.
  if (h.host_to_disk == WriteMode::kWriteBack) {
    writeback_first_ = host_->capacity_blocks() + h.staging_slots;
    writeback_ = std::make_unique<SlotPool>(writeback_first_, h.writeback_slots);
  }
  // Queued blocks hold their G2 slots: by default at most half of G2 waits for the disk,
  // and blocks past that wait in the backlog by key, holding nothing.
  const uint32_t queue =
      h.max_queued_disk_writes != 0
          ? h.max_queued_disk_writes
          : std::max(h.disk_writer_threads * kOffloadBatch, host_->capacity_blocks() / 2);
  BlockOffloader::Reacquire reacquire;
  if (h.defer_disk_writes) {
    reacquire = [this](const BlockKey& key) -> std::optional<uint32_t> {
      const uint32_t slot = host_->Lease(key);
      if (slot != HostTier::kNoSlot) return slot;
      drop_log_->Note("evicted from G2 while waiting");
      return std::nullopt;
    };
  }
  drop_log_ = std::make_unique<DropLog>(
      "the G3 disk tier",
      "the engine was not held back (counted in disk_offload_dropped; a larger G2 or "
      "hierarchy.max_queued_disk_writes, or a faster disk, drops fewer)",
      kDropLogPeriod);
  offloader_ = std::make_unique<BlockOffloader>(
      "strata-g3-write",
      [this](std::span<const OffloadItem> items, std::span<OffloadOutcome> out) {
        WriteToDisk(items, out);
      },
      block_bytes_, h.disk_writer_threads, queue, kOffloadBatch,
      [this](std::span<const uint32_t> slots) { ReleaseOffloaded(slots); }, std::move(reacquire),
      host_->capacity_blocks());
  spdlog::info(
      "strata: G3 disk tier in {}: {} blocks, {}; G2 -> G3 {}, admission {}, offload queue {} "
      "blocks{}",
      options_.disk.directory, disk_->capacity_records(),
      disk_->direct_io() ? "O_DIRECT" : "buffered", WriteModeName(h.host_to_disk),
      disk_admission_->name(), queue, h.defer_disk_writes ? " + backlog" : "");
  return Status::Ok();
}

// Opens the G4 shared store (or takes the one given) and its publisher. A store that cannot
// be reached now is not an error: it says so, and the tier comes back by itself.
Status TierHierarchy::OpenShared() {
  const SharedTierOptions& o = options_.shared;
  if (o.store) {
    shared_ = o.store;
  } else {
    auto store = OpenRemoteStore(o, block_bytes_);
    if (!store.ok()) return store.status().WithContext("opening the G4 shared tier");
    shared_ = std::move(store).value();
  }
  // When the queue is full a block waits in a backlog by key (no G2 slot held) and is
  // published once the writers catch up, if G2 still holds it: a slow store sheds only
  // what G2 evicted meanwhile.
  shared_offloader_ = std::make_unique<BlockOffloader>(
      "strata-g4-write",
      [this](std::span<const OffloadItem> items, std::span<OffloadOutcome> out) {
        PublishShared(items, out);
      },
      block_bytes_, o.writer_threads, o.max_queued_writes, kOffloadBatch,
      [this](std::span<const uint32_t> slots) { host_->Unlease(slots); },
      [this](const BlockKey& key) -> std::optional<uint32_t> {
        const uint32_t slot = host_->Lease(key);
        if (slot == HostTier::kNoSlot) return std::nullopt;
        return slot;
      },
      host_->capacity_blocks());
  spdlog::info("strata: G4 shared tier {} ({}){}", shared_->describe(), shared_->kind(),
               shared_->available() ? "" : ": unavailable now, retried in the background");
  return Status::Ok();
}

Status TierHierarchy::RegisterDevice(const DeviceCache& cache) {
  return mover_->SetDevice(cache);
}

void TierHierarchy::Match(std::span<const BlockKey> keys, TierMatch* out) {
  out->held.clear();
  out->from_host = out->from_disk = out->from_shared = 0;
  if (CountsSightings()) {
    sightings_->Observe(keys);
    if (options_.hierarchy.disk_admission) options_.hierarchy.disk_admission->Observe(keys);
  }
  // One contiguous prefix across tiers: a run from G2, then a run from G3 where G2 stops,
  // then G2 again, ... each run under one lock of its tier.
  std::vector<Held>& held = out->held;
  std::vector<uint32_t> ids;
  size_t pos = 0;
  while (host_ && pos < keys.size()) {
    ids.clear();
    const size_t h = host_->MatchPrefix(keys.subspan(pos), &ids);
    for (uint32_t id : ids) held.push_back({.tier = Tier::kHost, .id = id});
    pos += h;
    out->from_host += h;
    if (!disk_ || pos == keys.size()) break;
    ids.clear();
    const size_t d = disk_->MatchPrefix(keys.subspan(pos), &ids);
    for (uint32_t id : ids) held.push_back({.tier = Tier::kDisk, .id = id});
    pos += d;
    out->from_disk += d;
    if (d == 0) break;
  }
  // Where the local tiers stop, the shared store may hold more of the prefix (computed by
  // another node). Existence only: no lease, so a load can still miss.
  if (shared_ && pos < keys.size() && shared_->available()) {
    out->from_shared = shared_->MatchPrefix(keys.subspan(pos));
    held.insert(held.end(), out->from_shared, Held{.tier = Tier::kShared});
    pos += out->from_shared;
  }
  const size_t matched = pos;
  // A disk run may cover blocks G2 also holds (e.g. stored again since): load those from
  // G2, the faster tier.
  if (out->from_disk > 0) {
    std::vector<BlockKey> disk_keys;
    std::vector<size_t> where;
    for (size_t i = 0; i < matched; ++i) {
      if (held[i].tier != Tier::kDisk) continue;
      disk_keys.push_back(keys[i]);
      where.push_back(i);
    }
    std::vector<uint32_t> slots(disk_keys.size());
    host_->LeaseEach(disk_keys, slots);
    std::vector<uint32_t> unlease;
    for (size_t k = 0; k < where.size(); ++k) {
      if (slots[k] == HostTier::kNoSlot) continue;
      unlease.push_back(held[where[k]].id);
      held[where[k]] = {.tier = Tier::kHost, .id = slots[k]};
    }
    if (!unlease.empty()) disk_->Unlease(unlease);
    out->from_host += unlease.size();
    out->from_disk -= unlease.size();
  }
  // Selective G2 -> G3: a block that just reached its sightings is copied down from the G2
  // slot this match found it in.
  if (offloader_ && options_.hierarchy.host_to_disk == WriteMode::kSelective) {
    for (size_t i = 0; i < matched; ++i)
      if (held[i].tier == Tier::kHost) MaybeOffload(keys[i]);
  }
}

void TierHierarchy::Release(std::span<const Held> held) {
  std::vector<uint32_t> host, disk;
  for (const Held& h : held) {
    if (h.tier == Tier::kHost) host.push_back(h.id);
    if (h.tier == Tier::kDisk) disk.push_back(h.id);
  }
  if (!host.empty()) host_->Unlease(host);
  if (!disk.empty()) disk_->Unlease(disk);
}

void TierHierarchy::Reserve(std::span<const BlockKey> keys, std::vector<StoreReservation>* out) {
  out->assign(keys.size(), StoreReservation{});
  const bool selective = options_.hierarchy.device_to_host == WriteMode::kSelective;
  for (size_t i = 0; i < keys.size(); ++i) {
    StoreReservation& r = (*out)[i];
    auto drop = [&](Status why) {
      r.state = BlockState::kDropped;
      r.why = std::move(why);
    };
    if (!host_) {
      drop(Status::ResourceExhausted("no tier is configured to store into"));
      continue;
    }
    if (selective && !sightings_->Admit(keys[i], block_bytes_)) {
      Add(counters_.host_admission_rejects, 1);
      drop(Status::ResourceExhausted(
          fmt::format("not admitted to the host tier: seen fewer than {} times (selective "
                      "write mode)",
                      options_.hierarchy.min_sightings)));
      continue;
    }
    switch (host_->Reserve(keys[i], &r.slot, &r.victim)) {
      case HostTier::ReserveResult::kReserved:
        break;
      case HostTier::ReserveResult::kPresent:
        // Already in G2; it may still owe the disk a copy (a selective block that just
        // reached its sightings, or one whose earlier offload was dropped).
        if (offloader_ && options_.hierarchy.host_to_disk != WriteMode::kWriteBack)
          MaybeOffload(keys[i]);
        [[fallthrough]];
      case HostTier::ReserveResult::kInFlight:
        r.state = BlockState::kSkipped;
        r.slot = kNoHostSlot;
        break;
      case HostTier::ReserveResult::kFull:
        r.slot = kNoHostSlot;
        drop(Status::ResourceExhausted(
            "host tier full: every block is leased, pinned or being written"));
        break;
    }
  }
}

void TierHierarchy::BeginStore(std::span<StoreReservation> reservations) {
  for (StoreReservation& r : reservations) {
    if (r.state == BlockState::kPending) SaveVictim(r.victim, r.slot);
    r.victim.reset();
  }
}

Status TierHierarchy::FinishStore(std::span<const BlockKey> keys,
                                  std::span<const StoreReservation> reservations,
                                  std::span<const uint8_t> ok) {
  // In chain order, committed together tail-first; the ones that go on to disk stay leased
  // until the offloader has copied them.
  std::vector<uint32_t> written, to_disk, aborted;
  std::vector<BlockKey> to_disk_keys, stored_keys;
  const bool through = offloader_ && options_.hierarchy.host_to_disk != WriteMode::kWriteBack;
  for (size_t i = 0; i < reservations.size(); ++i) {
    const StoreReservation& r = reservations[i];
    if (r.state != BlockState::kPending) continue;
    if (!ok[i]) {
      aborted.push_back(r.slot);
      continue;
    }
    stored_keys.push_back(keys[i]);
    if (through && disk_admission_->Admit(keys[i], block_bytes_)) {
      to_disk.push_back(r.slot);
      to_disk_keys.push_back(keys[i]);
    } else {
      if (through) Add(counters_.disk_admission_rejects, 1);
      written.push_back(r.slot);
    }
  }
  for (uint32_t slot : aborted) host_->Abort(slot);
  if (written.empty() && to_disk.empty()) return Status::Ok();
  host_->Commit(written);
  host_->Commit(to_disk, /*keep_leases=*/true);
  for (size_t i = 0; i < to_disk.size(); ++i) PushToDisk(to_disk_keys[i], to_disk[i]);
  // Write-through to G4: every block this node computed is published for the others.
  if (shared_offloader_) {
    for (const BlockKey& key : stored_keys) {
      const uint32_t slot = host_->Lease(key);
      if (slot == HostTier::kNoSlot) continue;  // evicted already
      if (shared_offloader_->TryPush(key, slot, /*deferrable=*/true) !=
          BlockOffloader::Push::kQueued)
        host_->Unlease(slot);  // waits in the backlog by key, or was dropped (counted)
    }
  }
  return Status::Ok();
}

void TierHierarchy::PrepareLoad(std::span<const BlockKey> keys, std::span<Held> held,
                                std::span<const size_t> pending, LoadRound* round) {
  *round = LoadRound{};
  std::vector<size_t> promote, stage;  // G3/G4 blocks read into a new G2 slot / a staging slot
  std::vector<uint32_t> promote_slots;
  auto cover = [&](size_t i, uint32_t src) {
    round->blocks.push_back(i);
    round->src.push_back(src);
    round->status.push_back(Status::Ok());
    return round->blocks.size() - 1;
  };
  std::vector<size_t> promote_at;  // round positions of `promote`
  for (size_t i : pending) {
    Held& h = held[i];
    if (h.tier == Tier::kHost) {
      cover(i, h.id);
      round->host_leases.push_back(h.id);
      h = Held{};
      continue;
    }
    const bool promote_hits =
        h.tier == Tier::kDisk ? options_.hierarchy.promote_disk_hits : options_.shared.promote_hits;
    if (promote_hits) {
      uint32_t slot = HostTier::kNoSlot;
      std::optional<BlockKey> victim;
      switch (host_->Reserve(keys[i], &slot, &victim)) {
        case HostTier::ReserveResult::kReserved:
          SaveVictim(victim, slot);
          promote.push_back(i);
          promote_slots.push_back(slot);
          promote_at.push_back(cover(i, slot));
          continue;
        case HostTier::ReserveResult::kPresent:
          // Another request brought it into G2 meanwhile: load from there.
          slot = host_->Lease(keys[i]);
          if (slot != HostTier::kNoSlot) {
            if (h.tier == Tier::kDisk) round->disk_leases.push_back(h.id);
            h = Held{};
            cover(i, slot);
            round->host_leases.push_back(slot);
            continue;
          }
          break;
        case HostTier::ReserveResult::kInFlight:
        case HostTier::ReserveResult::kFull:
          break;
      }
    }
    stage.push_back(i);
  }
  // G3/G4 -> new G2 slots, all reads in flight together; verified blocks become G2 blocks.
  if (!promote.empty()) {
    std::vector<Status> read;
    ReadLower(keys, held, promote, promote_slots, &read);
    std::vector<uint32_t> committed;
    for (size_t k = 0; k < promote.size(); ++k) {
      const size_t at = promote_at[k];
      if (read[k].ok()) {
        committed.push_back(promote_slots[k]);
        round->host_leases.push_back(promote_slots[k]);
      } else {
        host_->Abort(promote_slots[k]);
        round->src[at] = kNoHostSlot;
        round->status[at] = std::move(read[k]);
      }
    }
    host_->Commit(committed, /*keep_leases=*/true);
    Add(counters_.promoted_blocks, committed.size());
    for (size_t i : promote) {
      if (held[i].tier == Tier::kDisk) round->disk_leases.push_back(held[i].id);
      held[i] = Held{};
    }
  }
  // G3/G4 -> staging slots: as many as are free now (at least one when some are needed).
  // With blocks already covered, only take what is free without waiting.
  if (!stage.empty()) {
    std::vector<uint32_t> slots;
    if (round->blocks.empty()) {
      slots = staging_->AcquireUpTo(stage.size());
    } else {
      while (slots.size() < stage.size()) {
        const std::optional<uint32_t> s = staging_->TryAcquire();
        if (!s) break;
        slots.push_back(*s);
      }
    }
    const std::span<const size_t> now(stage.data(), slots.size());
    std::vector<Status> read;
    ReadLower(keys, held, now, slots, &read);
    for (size_t k = 0; k < now.size(); ++k) {
      const size_t i = now[k];
      const size_t at = cover(i, read[k].ok() ? slots[k] : kNoHostSlot);
      round->status[at] = std::move(read[k]);
      if (held[i].tier == Tier::kDisk) round->disk_leases.push_back(held[i].id);
      held[i] = Held{};
    }
    round->staging = std::move(slots);
  }
}

Status TierHierarchy::FinishLoad(LoadRound& round) {
  // Give the leases back before the caller reports, so a caller that saw the handle finish
  // also sees the blocks evictable again.
  if (!round.host_leases.empty()) host_->Unlease(round.host_leases);
  if (!round.disk_leases.empty()) disk_->Unlease(round.disk_leases);
  if (!round.staging.empty()) staging_->Release(round.staging);
  round.host_leases.clear();
  round.disk_leases.clear();
  round.staging.clear();
  return Status::Ok();
}

void TierHierarchy::Move(TransferOp op, uint16_t epoch, std::span<const uint32_t> device_blocks,
                         std::span<const uint32_t> host_slots, std::vector<Status>* per_block) {
  (void)epoch;  // one epoch: the tiers live as long as this object
  mover_->Move(op, device_blocks, host_slots, per_block);
}

Status TierHierarchy::Pin(std::span<const BlockKey> keys, bool pin) {
  if (!host_) return Status::NotFound("no host tier is configured");
  for (const BlockKey& k : keys) STRATA_RETURN_IF_ERROR(pin ? host_->Pin(k) : host_->Unpin(k));
  return Status::Ok();
}

Status TierHierarchy::Flush() {
  return disk_ ? disk_->Flush() : Status::Ok();
}

// Sightings are counted when some boundary writes selectively or a custom policy wants them.
bool TierHierarchy::CountsSightings() const {
  const HierarchyOptions& h = options_.hierarchy;
  return h.device_to_host == WriteMode::kSelective ||
         (disk_ && (h.host_to_disk == WriteMode::kSelective || h.disk_admission));
}

// Queues a G2 -> G3 copy of `key` if it is in G2, not yet on disk, and admitted.
void TierHierarchy::MaybeOffload(const BlockKey& key) {
  if (disk_->Contains(key)) return;
  if (!disk_admission_->Admit(key, block_bytes_)) {
    Add(counters_.disk_admission_rejects, 1);
    return;
  }
  const uint32_t slot = host_->Lease(key);
  if (slot == HostTier::kNoSlot) return;  // evicted meanwhile
  PushToDisk(key, slot);
}

// Hands G2 slot `slot` (leased, holding `key`) to the disk offloader; when it is not queued
// the lease is returned (the key may wait in the backlog, or is dropped).
void TierHierarchy::PushToDisk(const BlockKey& key, uint32_t slot) {
  const BlockOffloader::Push pushed = offloader_->TryPush(key, slot, /*deferrable=*/true);
  if (pushed == BlockOffloader::Push::kQueued) return;
  host_->Unlease(slot);
  if (pushed == BlockOffloader::Push::kDropped) drop_log_->Note("offload queue full");
  if (pushed == BlockOffloader::Push::kDeferredDroppingOldest)
    drop_log_->Note("offload queue and backlog full");
}

// Write-back: `victim` was just evicted from `slot` to make room, and its bytes are still
// there. If it is not on disk yet (and is admitted), copy it into a write-back buffer slot
// and queue that for the disk. Never waits: no free buffer or a full queue drops it.
void TierHierarchy::SaveVictim(const std::optional<BlockKey>& victim, uint32_t slot) {
  if (!victim || !offloader_ || options_.hierarchy.host_to_disk != WriteMode::kWriteBack) return;
  if (disk_->Contains(*victim)) return;  // clean: the disk has it already
  if (!disk_admission_->Admit(*victim, block_bytes_)) {
    Add(counters_.disk_admission_rejects, 1);
    return;
  }
  const std::optional<uint32_t> buffer = writeback_->TryAcquire();
  if (!buffer) {
    Add(counters_.disk_writeback_no_buffer, 1);
    drop_log_->Note("every write-back buffer busy");
    return;
  }
  std::memcpy(host_->data(*buffer), host_->data(slot), block_bytes_);
  if (offloader_->TryPush(*victim, *buffer, /*deferrable=*/false) !=
      BlockOffloader::Push::kQueued) {
    writeback_->Release({&*buffer, 1});
    drop_log_->Note("offload queue full");
    return;
  }
  Add(counters_.disk_writeback_blocks, 1);
}

// The offloader is done with these slots: G2 blocks it held a lease on, or write-back
// buffers. Queue order is each store's chain order, so the leases end as one chain.
void TierHierarchy::ReleaseOffloaded(std::span<const uint32_t> slots) {
  std::vector<uint32_t> leases, buffers;
  for (uint32_t s : slots) (s < writeback_first_ ? leases : buffers).push_back(s);
  if (!leases.empty()) host_->Unlease(leases);
  if (!buffers.empty()) writeback_->Release(buffers);
}

// Reads blocks which[k] (each held in G3 or G4) into host slot slots[k]: the G3 reads in
// one batch and the G4 gets in another, each all in flight. (*status)[k] is OK for a
// verified block, else why not.
void TierHierarchy::ReadLower(std::span<const BlockKey> keys, std::span<const Held> held,
                              std::span<const size_t> which, std::span<const uint32_t> slots,
                              std::vector<Status>* status) {
  std::vector<DiskTier::BatchRead> reads;
  std::vector<RemoteStore::Get> gets;
  std::vector<size_t> read_k, get_k;
  for (size_t k = 0; k < which.size(); ++k) {
    const size_t i = which[k];
    if (held[i].tier == Tier::kDisk) {
      reads.push_back({.record = held[i].id, .key = keys[i], .out = host_->data(slots[k])});
      read_k.push_back(k);
    } else {
      gets.push_back({.key = keys[i], .out = {host_->data(slots[k]), block_bytes_}});
      get_k.push_back(k);
    }
  }
  status->assign(which.size(), Status::Ok());
  if (!reads.empty()) {
    disk_->ReadBatch(reads, ns_);
    for (size_t r = 0; r < reads.size(); ++r) (*status)[read_k[r]] = std::move(reads[r].status);
  }
  if (!gets.empty()) {
    shared_->GetBatch(gets, ns_);
    for (size_t g = 0; g < gets.size(); ++g) {
      Status& st = gets[g].status;
      if (st.code() == StatusCode::kNotFound) {
        Add(counters_.shared_load_misses, 1);  // another node evicted it since the match
      } else if (!st.ok()) {
        Add(counters_.shared_load_errors, 1);
      }
      (*status)[get_k[g]] = std::move(st).WithContext("G4 shared tier");
    }
  }
}

// BlockOffloader writer of G3: one DiskTier::WriteBatch per batch.
void TierHierarchy::WriteToDisk(std::span<const OffloadItem> items, std::span<OffloadOutcome> out) {
  std::vector<DiskTier::BatchWrite> writes;
  writes.reserve(items.size());
  for (const OffloadItem& it : items)
    writes.push_back({.key = it.key, .block = host_->data(it.slot)});
  disk_->WriteBatch(writes, ns_);
  for (size_t i = 0; i < items.size(); ++i) {
    const DiskTier::BatchWrite& w = writes[i];
    if (!w.status.ok()) {
      drop_log_->Note("write errors", 1, w.status.ToString());
      out[i] = OffloadOutcome::kFailed;
      continue;
    }
    switch (w.outcome) {
      case DiskWriteOutcome::kWritten:
        out[i] = OffloadOutcome::kWritten;
        break;
      case DiskWriteOutcome::kPresent:
      case DiskWriteOutcome::kInFlight:
        out[i] = OffloadOutcome::kPresent;
        break;
      case DiskWriteOutcome::kNoSpace:
        drop_log_->Note("no reclaimable disk space (regions leased or being written)");
        out[i] = OffloadOutcome::kNoSpace;
        break;
    }
  }
}

// BlockOffloader writer of G4: one RemoteStore::PutBatch per batch. While the store is down
// the puts fail fast; only the first failure of a run of them is logged.
void TierHierarchy::PublishShared(std::span<const OffloadItem> items,
                                  std::span<OffloadOutcome> out) {
  std::vector<RemoteStore::Put> puts;
  puts.reserve(items.size());
  for (const OffloadItem& it : items)
    puts.push_back({.key = it.key, .block = {host_->data(it.slot), block_bytes_}});
  shared_->PutBatch(puts, ns_);
  for (size_t i = 0; i < items.size(); ++i) {
    if (puts[i].status.ok()) {
      out[i] = puts[i].written ? OffloadOutcome::kWritten : OffloadOutcome::kPresent;
      shared_put_failing_.store(false, std::memory_order_relaxed);
      continue;
    }
    out[i] = OffloadOutcome::kFailed;
    if (!shared_put_failing_.exchange(true, std::memory_order_relaxed))
      spdlog::warn(
          "strata: publishing block {} to the G4 shared tier failed: {} (further failures are "
          "counted, not logged, until one succeeds)",
          items[i].key.ToHex(), puts[i].status.ToString());
  }
}

void TierHierarchy::FillStats(BlockManagerStats* s) const {
  s->host_admission_rejects = Get(counters_.host_admission_rejects);
  s->promoted_blocks = Get(counters_.promoted_blocks);
  if (host_) {
    const HostTierStats h = host_->stats();
    s->host_capacity_blocks = h.capacity_blocks;
    s->host_used_blocks = h.used_blocks;
    s->host_leased_blocks = h.leased_blocks;
    s->host_pinned_blocks = h.pinned_blocks;
    s->host_evictions = h.evictions;
    s->host_index_bytes = h.index_bytes;
    s->host_prefaulted_bytes = host_->buffer().prefaulted_bytes();
  }
  s->disk_admission_rejects = Get(counters_.disk_admission_rejects);
  s->disk_writeback_blocks = Get(counters_.disk_writeback_blocks);
  if (offloader_) {
    const OffloaderStats o = offloader_->stats();
    s->disk_offload_queued = o.queued + o.backlog;
    s->disk_offload_deferred = o.deferred;
    s->disk_offload_blocks = o.written;
    s->disk_offload_bytes = o.bytes_written;
    s->disk_offload_present = o.present;
    s->disk_offload_failed = o.failed;
    s->disk_offload_dropped =
        o.queue_full + o.no_space + o.failed + o.evicted + Get(counters_.disk_writeback_no_buffer);
  }
  if (disk_) {
    const DiskTierStats d = disk_->stats();
    s->disk_capacity_blocks = d.capacity_records;
    s->disk_used_blocks = d.used_records;
    s->disk_leased_blocks = d.leased_records;
    s->disk_evictions = d.evictions;
    s->disk_read_errors = d.read_errors;
    s->disk_corruptions = d.corruptions;
    s->disk_invalidated_blocks = d.invalidated_records;
    s->disk_recovered_blocks = d.recovered_records;
    s->disk_index_bytes = d.index_bytes;
    s->disk_direct_io = d.direct_io;
  }
  s->shared_load_misses = Get(counters_.shared_load_misses);
  s->shared_load_errors = Get(counters_.shared_load_errors);
  if (shared_offloader_) {
    const OffloaderStats o = shared_offloader_->stats();
    s->shared_publish_queued = o.queued + o.backlog;
    s->shared_published_blocks = o.written;
    s->shared_published_bytes = o.bytes_written;
    s->shared_publish_present = o.present;
    s->shared_publish_failed = o.failed;
    s->shared_publish_dropped = o.queue_full + o.failed + o.evicted;
  }
  if (shared_) {
    const RemoteStoreStats r = shared_->stats();
    s->shared_enabled = true;
    s->shared_available = shared_->available();
    s->shared_corruptions = r.get_corrupt;
    s->shared_unavailable_events = r.unavailable_events;
    s->shared_evictions = r.evictions;
    s->shared_bytes_read = r.bytes_read;
  }
}

}  // namespace strata
