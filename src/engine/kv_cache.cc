// Paged KV cache tensors and block free list.
#include "engine/kv_cache.h"

#include <fmt/format.h>

namespace strata::engine {

Result<std::unique_ptr<PagedKvCache>> PagedKvCache::Create(const KvLayout& layout,
                                                           uint32_t num_blocks) {
  STRATA_RETURN_IF_ERROR(layout.Validate());
  if (layout.dtype != DType::kFloat32 || layout.format != KvFormat::kKeyValue ||
      layout.chunk_order != ChunkOrder::kTokenHeadDim)
    return Status::InvalidArgument(fmt::format(
        "PagedKvCache: needs an fp32 K/V layout with NHD chunks, got [{}]", layout.ToString()));
  if (num_blocks == 0) return Status::InvalidArgument("PagedKvCache: num_blocks must be >= 1");
  std::unique_ptr<PagedKvCache> kv(new PagedKvCache());
  kv->cache_.kind = DeviceMemoryKind::kHostEmulated;
  kv->cache_.view.layout = layout;
  kv->cache_.view.order = DeviceOrder::kBlockMajor;
  kv->cache_.view.num_blocks = num_blocks;
  const size_t floats = kv->cache_.view.layer_bytes() / sizeof(float);
  for (uint32_t l = 0; l < layout.num_layers; ++l) {
    // Left uninitialised: untouched pages cost nothing, and a block is read only after
    // it was computed or loaded.
    kv->tensors_.push_back(std::make_unique_for_overwrite<float[]>(floats));
    kv->cache_.view.layer_base.push_back(reinterpret_cast<std::byte*>(kv->tensors_.back().get()));
  }
  STRATA_RETURN_IF_ERROR(kv->cache_.view.Validate());
  kv->free_.reserve(num_blocks);
  for (uint32_t b = num_blocks; b > 0; --b) kv->free_.push_back(b - 1);
  return kv;
}

Result<std::vector<uint32_t>> PagedKvCache::Allocate(uint32_t n) {
  if (n > free_.size())
    return Status::ResourceExhausted(
        fmt::format("KV cache: {} blocks wanted, {} of {} free", n, free_.size(), num_blocks()));
  std::vector<uint32_t> blocks(free_.rbegin(), free_.rbegin() + n);
  free_.resize(free_.size() - n);
  return blocks;
}

void PagedKvCache::Free(std::span<const uint32_t> blocks) {
  for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) free_.push_back(*it);
}

}  // namespace strata::engine
