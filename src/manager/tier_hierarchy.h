// TierHierarchy: the tiers of one process — G2 host slots, the optional G3 disk and G4 shared
// store — and the policies between them: admission, write modes (write-through, selective,
// write-back), promotion of lower-tier hits, staging, and the background offloaders.
//
//   store   Reserve a G2 slot --(caller writes it)--> FinishStore: commit --(BlockOffloader,
//           per write mode)--> G3, and write-through --> G4
//   load    G2 slot as it is; G3 record --(DiskTier::ReadBatch, verified)--> G2 slot
//           (promoted, or a staging slot); G4 object likewise
//
// Write-back: a reservation that evicts a G2 block not yet on disk copies it into a
// write-back buffer slot first (BeginStore), and the offloader writes it from there.
//
// Control stays here: the tiers never call each other. It is the TierService of an
// in-process BlockManager and what a `strata daemon` serves to its clients.
//
// Thread-safe.
#pragma once

#include <atomic>
#include <memory>

#include "manager/block_offloader.h"
#include "manager/tier_service.h"
#include "strata/options.h"

namespace strata {

class HostTier;
class DiskTier;
class BlockMover;
class DropLog;
class SlotPool;
class FrequencyAdmission;

class TierHierarchy final : public TierService {
 public:
  // Creates G2 (options.host; none when its capacity is 0) and, as configured, G3 and G4.
  // `shared_memory`: G2's slots live in a memfd others may map (HostBuffer::fd()).
  static Result<std::unique_ptr<TierHierarchy>> Create(const BlockManagerOptions& options,
                                                       bool shared_memory = false);
  // Writes what the offloaders still hold, then stops them.
  ~TierHierarchy() override;

  // Null without a host tier.
  const HostTier* host() const { return host_.get(); }
  HostSlots host_slots() const;
  uint32_t disk_records() const;  // 0 without G3
  bool has_shared() const { return shared_ != nullptr; }

  Status RegisterDevice(const DeviceCache& cache) override;
  void Match(std::span<const BlockKey> keys, TierMatch* out) override;
  void Release(std::span<const Held> held) override;
  void Reserve(std::span<const BlockKey> keys, std::vector<StoreReservation>* out) override;
  void BeginStore(std::span<StoreReservation> reservations) override;
  Status FinishStore(std::span<const BlockKey> keys, std::span<const StoreReservation> reservations,
                     std::span<const uint8_t> ok) override;
  void PrepareLoad(std::span<const BlockKey> keys, std::span<Held> held,
                   std::span<const size_t> pending, LoadRound* round) override;
  Status FinishLoad(LoadRound& round) override;
  void Move(TransferOp op, uint16_t epoch, std::span<const uint32_t> device_blocks,
            std::span<const uint32_t> host_slots, std::vector<Status>* per_block) override;
  Status Pin(std::span<const BlockKey> keys, bool pin) override;
  Status Flush() override;
  void FillStats(BlockManagerStats* stats) const override;

 private:
  struct Counters {
    std::atomic<uint64_t> host_admission_rejects{0}, disk_admission_rejects{0},
        disk_writeback_blocks{0}, disk_writeback_no_buffer{0}, promoted_blocks{0},
        shared_load_misses{0}, shared_load_errors{0};
  };

  TierHierarchy(const BlockManagerOptions& options, std::unique_ptr<HostTier> host,
                std::unique_ptr<BlockMover> mover);
  Status PrepareLowerTiers();
  Status OpenDisk();
  Status OpenShared();

  bool CountsSightings() const;
  void MaybeOffload(const BlockKey& key);
  void PushToDisk(const BlockKey& key, uint32_t slot);
  void SaveVictim(const std::optional<BlockKey>& victim, uint32_t slot);
  void ReleaseOffloaded(std::span<const uint32_t> slots);
  void ReadLower(std::span<const BlockKey> keys, std::span<const Held> held,
                 std::span<const size_t> which, std::span<const uint32_t> slots,
                 std::vector<Status>* status);
  void WriteToDisk(std::span<const OffloadItem> items, std::span<OffloadOutcome> out);
  void PublishShared(std::span<const OffloadItem> items, std::span<OffloadOutcome> out);

  const BlockManagerOptions options_;
  const size_t block_bytes_;
  const std::unique_ptr<HostTier> host_;
  const std::unique_ptr<BlockMover> mover_;  // owns the transfer engine every tier shares

  // G3 and its wiring; all null without a disk tier. Set once by OpenDisk.
  std::unique_ptr<DiskTier> disk_;
  NamespaceFingerprint ns_;
  std::shared_ptr<FrequencyAdmission> sightings_;
  std::shared_ptr<AdmissionPolicy> disk_admission_;
  std::unique_ptr<SlotPool> staging_;      // host slots for lower-tier loads that do not promote
  std::unique_ptr<SlotPool> writeback_;    // host slots holding evicted blocks for disk
  uint32_t writeback_first_ = UINT32_MAX;  // first write-back slot number
  std::unique_ptr<DropLog> drop_log_;      // rate-limited warnings of dropped offloads
  std::unique_ptr<BlockOffloader> offloader_;

  // G4 and its publisher; null without a shared tier. Set once by OpenShared.
  std::shared_ptr<RemoteStore> shared_;
  std::unique_ptr<BlockOffloader> shared_offloader_;
  std::atomic<bool> shared_put_failing_{false};

  mutable Counters counters_;
};

}  // namespace strata
