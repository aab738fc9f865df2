// BlockMover: moves whole KV blocks between the engine's device cache (G1) and host
// tier slots (G2) through the transfer engine.
//
// A block in device order is split into pieces: one per layer when the device cache is
// block-major (K and V of a layer are adjacent), one per (layer, K/V) when it is
// KV-major. The host slot holds the same pieces in block-contiguous order. Both sides
// are registered once and described by one descriptor list each, so moving n blocks is
// one request of n x pieces descriptor pairs picked by index.
//
// Thread-safe after SetDevice: Move may be called from many threads at once.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "strata/block_manager.h"
#include "strata/transfer.h"

namespace strata {

class BlockMover {
 public:
  // Registers the host tier's slot memory (`slots` x `layout.block_bytes()` bytes).
  static Result<std::unique_ptr<BlockMover>> Create(const TransferEngineOptions& options,
                                                    const KvLayout& layout, std::byte* host_slots,
                                                    uint32_t num_slots);

  // Registers the engine's device cache; once only.
  Status SetDevice(const DeviceCache& cache);

  // kRead: host slots -> device blocks (a load). kWrite: device blocks -> host slots (a
  // store). Blocks whose pieces all arrived are OK in (*per_block)[i]; otherwise it holds
  // the first failed piece's reason. Blocks until the transfer is complete.
  void Move(TransferOp op, std::span<const uint32_t> device_blocks,
            std::span<const uint32_t> host_slots, std::vector<Status>* per_block);

  TransferEngine& engine() { return *engine_; }

 private:
  BlockMover() = default;

  std::unique_ptr<TransferEngine> engine_;
  KvLayout layout_;
  std::byte* host_base_ = nullptr;
  uint32_t num_slots_ = 0;
  RegionId host_region_ = 0;
  uint32_t pieces_ = 0;  // descriptors per block
  DescListId device_list_ = 0, host_list_ = 0;
};

}  // namespace strata
