// PagedKvCache: the reference engine's "device" KV cache (host-emulated) in fixed-size
// blocks, one fp32 tensor per layer in DeviceOrder::kBlockMajor:
//   layer l: [num_blocks][K, V][tokens_per_block][num_kv_heads][head_dim]
// It is exposed as a strata::DeviceCache so a BlockManager can load into and store from
// it directly, and it owns the free list of blocks that requests take block tables from.
//
// Not thread-safe: the engine's scheduler thread owns it (the BlockManager's workers
// touch only blocks handed to Load/Store, which the engine leaves alone until done).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "strata/layout.h"
#include "strata/status.h"
#include "strata/types.h"  // DeviceCache

namespace strata::engine {

class PagedKvCache {
 public:
  // InvalidArgument unless `layout` is fp32 K/V with NHD chunks and num_blocks >= 1.
  static Result<std::unique_ptr<PagedKvCache>> Create(const KvLayout& layout, uint32_t num_blocks);

  const KvLayout& layout() const { return cache_.view.layout; }
  uint32_t num_blocks() const { return cache_.view.num_blocks; }
  // What BlockManager::RegisterDeviceCache takes (kind kHostEmulated).
  const DeviceCache& device_cache() const { return cache_; }

  // Start of (layer, component 0 = K / 1 = V, block): [tokens_per_block][kv_heads][head_dim].
  float* chunk(uint32_t layer, uint32_t component, uint32_t block) const {
    return reinterpret_cast<float*>(cache_.view.chunk(layer, component, block));
  }

  // Takes n blocks from the free list, all or none: ResourceExhausted when fewer are free.
  Result<std::vector<uint32_t>> Allocate(uint32_t n);
  // Returns blocks to the free list.
  void Free(std::span<const uint32_t> blocks);
  uint32_t num_free_blocks() const { return static_cast<uint32_t>(free_.size()); }

 private:
  PagedKvCache() = default;
  std::vector<std::unique_ptr<float[]>> tensors_;
  DeviceCache cache_;
  std::vector<uint32_t> free_;  // a stack: recently freed blocks are reused first
};

}  // namespace strata::engine
