// BlockMover: descriptor lists over device blocks and host slots, one request per move.
#include "manager/block_mover.h"

#include <fmt/format.h>

namespace strata {

Result<std::unique_ptr<BlockMover>> BlockMover::Create(const TransferEngineOptions& options,
                                                       const KvLayout& layout,
                                                       std::byte* host_slots, uint32_t num_slots) {
  std::unique_ptr<BlockMover> m(new BlockMover());
  STRATA_ASSIGN_OR_RETURN(m->engine_, TransferEngine::Create(options));
  m->layout_ = layout;
  m->host_base_ = host_slots;
  m->num_slots_ = num_slots;
  if (host_slots != nullptr) {
    STRATA_ASSIGN_OR_RETURN(
        m->host_region_,
        m->engine_->RegisterMemory({.type = MemoryType::kHost,
                                    .addr = host_slots,
                                    .length = size_t{num_slots} * layout.block_bytes(),
                                    .name = "G2 host tier slots"}));
  }
  return m;
}

Status BlockMover::SetDevice(const DeviceCache& cache) {
  const LayerSeparateView& v = cache.view;
  const bool adjacent = v.components_adjacent();  // one piece per layer
  const uint32_t comps = layout_.num_components();
  const uint64_t piece = adjacent ? layout_.layer_block_bytes() : layout_.chunk_bytes();
  pieces_ = adjacent ? layout_.num_layers : layout_.num_layers * comps;

  std::vector<RegionId> layers;
  for (uint32_t l = 0; l < layout_.num_layers; ++l) {
    STRATA_ASSIGN_OR_RETURN(
        RegionId r,
        engine_->RegisterMemory({.type = MemoryType::kDevice,
                                 .addr = v.layer_base[l],
                                 .length = v.layer_bytes(),
                                 .host_emulated = cache.kind == DeviceMemoryKind::kHostEmulated,
                                 .name = fmt::format("G1 device cache layer {}", l)}));
    layers.push_back(r);
  }
  // Device descriptor of (block b, piece p) at index b * pieces + p.
  std::vector<Descriptor> dev;
  dev.reserve(size_t{v.num_blocks} * pieces_);
  for (uint32_t b = 0; b < v.num_blocks; ++b) {
    for (uint32_t l = 0; l < layout_.num_layers; ++l) {
      for (uint32_t c = 0; c < (adjacent ? 1 : comps); ++c) {
        const uint64_t offset = static_cast<uint64_t>(v.chunk(l, c, b) - v.layer_base[l]);
        dev.push_back({layers[l], offset, piece});
      }
    }
  }
  STRATA_ASSIGN_OR_RETURN(device_list_, engine_->PrepareDescList(dev));
  if (host_base_ == nullptr) return Status::Ok();
  // Host descriptor of (slot s, piece p) at index s * pieces + p; pieces follow the
  // block-contiguous order [layer][component], so a block-major piece spans both components.
  std::vector<Descriptor> host;
  host.reserve(size_t{num_slots_} * pieces_);
  for (uint32_t s = 0; s < num_slots_; ++s) {
    for (uint32_t p = 0; p < pieces_; ++p)
      host.push_back(
          {host_region_, uint64_t{s} * layout_.block_bytes() + uint64_t{p} * piece, piece});
  }
  STRATA_ASSIGN_OR_RETURN(host_list_, engine_->PrepareDescList(host));
  return Status::Ok();
}

void BlockMover::Move(TransferOp op, std::span<const uint32_t> device_blocks,
                      std::span<const uint32_t> host_slots, std::vector<Status>* per_block) {
  const size_t n = device_blocks.size();
  per_block->assign(n, Status::Ok());
  std::vector<uint32_t> dev_idx, host_idx;
  dev_idx.reserve(n * pieces_);
  host_idx.reserve(n * pieces_);
  for (size_t i = 0; i < n; ++i) {
    for (uint32_t p = 0; p < pieces_; ++p) {
      dev_idx.push_back(device_blocks[i] * pieces_ + p);
      host_idx.push_back(host_slots[i] * pieces_ + p);
    }
  }
  auto fail_all = [&](const Status& why) {
    for (auto& s : *per_block) s = why;
  };
  auto request = engine_->CreateRequest(op, device_list_, dev_idx, host_list_, host_idx);
  if (!request.ok()) return fail_all(request.status());
  if (Status st = engine_->Post(**request); !st.ok()) return fail_all(st);
  // Copies of host-addressable memory cannot hang; a minute means something is badly
  // wrong. (The request's destructor still waits for it before freeing anything.)
  (void)(*request)->Wait(std::chrono::minutes(1));
  if (!(*request)->done())
    return fail_all(Status::TimedOut("block transfer still running after a minute"));
  for (size_t i = 0; i < n; ++i) {
    for (uint32_t p = 0; p < pieces_; ++p) {
      if ((*request)->state(i * pieces_ + p) != DescriptorState::kDone) {
        (*per_block)[i] = (*request)->error(i * pieces_ + p);
        break;
      }
    }
  }
}

}  // namespace strata
