// TierService: what the BlockManager's pipelines need from everything below the device —
// G2 host slots, G3, G4 and the policies between them — in host-slot terms, plus the copies
// between those slots and the engine's device cache.
//
// Two implementations, one BlockManager above them:
//   TierHierarchy  the tiers live in this process (src/manager/tier_hierarchy.h);
//   daemon::RemoteTiers  a `strata daemon` owns them; its G2 is shared memory mapped into
//                  this process, so the copies are still direct, and the bookkeeping
//                  (match, leases, reservations, commits) crosses a Unix socket.
//
// Every lease, reservation and staging slot a TierService hands out carries the epoch it
// was handed out in. RemoteTiers starts a new epoch whenever it reconnects to a daemon;
// what an older epoch handed out is gone with that daemon, so using it fails (per block)
// instead of touching a slot that now belongs to something else.
//
// Thread-safe: every method may be called from many threads at once.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "strata/block_key.h"
#include "strata/block_manager.h"
#include "strata/status.h"
#include "strata/transfer.h"
#include "strata/types.h"

namespace strata {

inline constexpr uint32_t kNoHostSlot = UINT32_MAX;

// What a request holds for one matched block: a lease on a G2 slot or a G3 record, or
// (G4) nothing but the knowledge that the shared store had it.
struct Held {
  Tier tier = Tier::kDevice;  // kDevice: nothing held (released or handed to a load)
  uint16_t epoch = 0;         // of the TierService that handed it out
  uint32_t id = 0;            // host slot or disk record
};

// Match: the leading blocks of a prompt some tier holds, leased.
struct TierMatch {
  std::vector<Held> held;  // one per matched block, in prompt order
  size_t from_host = 0, from_disk = 0, from_shared = 0;
};

// Store: what Reserve decided for one key.
struct StoreReservation {
  // kPending: `slot` is reserved for the block (write it, then FinishStore); kSkipped: the
  // key is present or being written; kDropped: not stored, `why` says why.
  BlockState state = BlockState::kPending;
  uint32_t slot = kNoHostSlot;
  uint16_t epoch = 0;
  Status why;
  // The block Reserve evicted from `slot` (its bytes still there until BeginStore); only a
  // TierHierarchy sets it, a daemon saves its victims before it answers.
  std::optional<BlockKey> victim;
};

// Load: one round of a load. PrepareLoad puts some of the pending blocks into host slots
// (the ones already in G2 as they are; G3 and G4 blocks read, verified, into new G2 slots
// or staging slots), the caller copies them to the device, and FinishLoad gives back what
// the round held. Blocks left out (no staging slot free) come in a later round.
struct LoadRound {
  uint16_t epoch = 0;
  uint64_t id = 0;             // a daemon's name for the round (RemoteTiers); 0 otherwise
  std::vector<size_t> blocks;  // job indices this round covers
  std::vector<uint32_t> src;   // per covered block: its host slot, or kNoHostSlot (status says why)
  std::vector<Status> status;  // per covered block
  // Given back by FinishLoad.
  std::vector<uint32_t> host_leases;  // chain order
  std::vector<uint32_t> disk_leases;
  std::vector<uint32_t> staging;
};

// Where the host slots are in this process: the memory the device copies use.
struct HostSlots {
  std::byte* base = nullptr;
  uint32_t slots = 0;  // including staging and write-back slots
};

class TierService {
 public:
  virtual ~TierService() = default;

  // The device cache the copies use. Once; InvalidArgument when its layout differs from
  // the configured one, NotSupported without the backend its memory needs.
  virtual Status RegisterDevice(const DeviceCache& cache) = 0;

  // Leases the longest prefix of `keys` the tiers hold (G2 runs, G3 runs where G2 stops,
  // then G4 where both stop). Counts the sightings a selective write mode needs.
  virtual void Match(std::span<const BlockKey> keys, TierMatch* out) = 0;
  // Ends the leases in `held` (entries already kDevice are skipped).
  virtual void Release(std::span<const Held> held) = 0;

  // Reserves a G2 slot for each key, or says why not; at once, so a second store of a key
  // in flight is skipped.
  virtual void Reserve(std::span<const BlockKey> keys, std::vector<StoreReservation>* out) = 0;
  // Before the reserved slots are written: saves the blocks their reservation evicted
  // (write-back). Clears each victim.
  virtual void BeginStore(std::span<StoreReservation> reservations) = 0;
  // The reserved slots of keys[i] (state kPending) were written when ok[i]: commits those
  // in chain order and queues them for the lower tiers; gives up the others. Not OK: the
  // reservations were lost before the commit (a daemon gone), so none of them was stored.
  virtual Status FinishStore(std::span<const BlockKey> keys,
                             std::span<const StoreReservation> reservations,
                             std::span<const uint8_t> ok) = 0;

  // One round of a load of blocks `pending` (indices into keys/held): see LoadRound. The
  // covered blocks' entries of `held` are consumed (kDevice). Covers at least one pending
  // block unless `pending` is empty.
  virtual void PrepareLoad(std::span<const BlockKey> keys, std::span<Held> held,
                           std::span<const size_t> pending, LoadRound* round) = 0;
  // Gives back what the round held. Not OK: the tiers could not confirm that the round's
  // slots stayed held until now (a daemon gone), so what was copied from them is not used.
  virtual Status FinishLoad(LoadRound& round) = 0;

  // kRead: host slots -> device blocks; kWrite: device blocks -> host slots, of the epoch
  // the slots were handed out in. (*per_block)[i]: OK, or why block i did not move.
  virtual void Move(TransferOp op, uint16_t epoch, std::span<const uint32_t> device_blocks,
                    std::span<const uint32_t> host_slots, std::vector<Status>* per_block) = 0;

  virtual Status Pin(std::span<const BlockKey> keys, bool pin) = 0;
  virtual Status Flush() = 0;
  // Fills the tier fields of *stats (G2, G3, G4, offload, promotion, admission).
  virtual void FillStats(BlockManagerStats* stats) const = 0;
};

}  // namespace strata
