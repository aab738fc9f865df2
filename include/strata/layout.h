// KvLayout: the geometry of one KV block, and the two memory orders it lives in.
//
// A block is the KV of `tokens_per_block` consecutive tokens for every layer of one
// model shard. Per layer it has K and V (two "components") or, for MLA models, one
// latent. The smallest contiguous unit in every order is a *chunk*: one component of
// one layer of one block, `tokens_per_block x num_kv_heads x head_dim` elements.
//
//   Device order (layer-separate, as engines hold KV), one tensor per layer:
//     kBlockMajor: [num_blocks][components][chunk]   (FlashInfer-style)
//     kKvMajor:    [components][num_blocks][chunk]   (FlashAttention/vLLM-style)
//   Block-contiguous order (as lower tiers store a block): [layers][components][chunk]
//
// Gather copies one block's chunks from a device view into a contiguous buffer;
// scatter copies them back. Chunks are copied opaquely, so the element order inside a
// chunk (ChunkOrder) is recorded in the layout's fingerprint rather than transformed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "strata/export.h"
#include "strata/status.h"

namespace strata {

enum class DType : uint8_t { kFloat32, kFloat16, kBFloat16, kFloat8E4M3, kFloat8E5M2 };

// Bytes per element (4, 2, 2, 1, 1).
STRATA_EXPORT size_t DTypeSize(DType dtype);
// "fp32", "fp16", "bf16", "fp8_e4m3", "fp8_e5m2".
STRATA_EXPORT std::string_view DTypeName(DType dtype);
// Accepts the names above plus "float32", "float16", "bfloat16", "fp8" (= fp8_e4m3).
STRATA_EXPORT Result<DType> ParseDType(std::string_view name);

enum class KvFormat : uint8_t {
  kKeyValue,  // separate K and V per layer (MHA, GQA, MQA)
  kLatent,    // one compressed latent per layer (MLA)
};

enum class ChunkOrder : uint8_t {
  kTokenHeadDim,  // [tokens][heads][dim] ("NHD")
  kHeadTokenDim,  // [heads][tokens][dim] ("HND")
};

enum class DeviceOrder : uint8_t { kBlockMajor, kKvMajor };

struct STRATA_EXPORT KvLayout {
  uint32_t num_layers = 0;                             // >= 1
  KvFormat format = KvFormat::kKeyValue;               // default: separate K and V
  uint32_t num_kv_heads = 0;                           // >= 1 (1 for MLA)
  uint32_t head_dim = 0;                               // >= 1; any value, not only powers of two
  DType dtype = DType::kBFloat16;                      // default: bf16
  uint32_t tokens_per_block = 16;                      // default: 16 (vLLM's block size)
  ChunkOrder chunk_order = ChunkOrder::kTokenHeadDim;  // default: NHD

  // 2 for kKeyValue, 1 for kLatent.
  uint32_t num_components() const { return format == KvFormat::kKeyValue ? 2 : 1; }
  // Bytes of one (layer, component) of one block.
  size_t chunk_bytes() const {
    return size_t{tokens_per_block} * num_kv_heads * head_dim * DTypeSize(dtype);
  }
  // Bytes of one layer of one block (all components).
  size_t layer_block_bytes() const { return chunk_bytes() * num_components(); }
  // Bytes of one whole block in block-contiguous order.
  size_t block_bytes() const { return layer_block_bytes() * num_layers; }
  // KV bytes per token across all layers.
  size_t bytes_per_token() const { return block_bytes() / tokens_per_block; }

  // InvalidArgument naming the bad field, or OK.
  Status Validate() const;
  // Canonical, versioned text: equal layouts give equal strings, and the string is
  // what the block-key namespace and on-disk formats bind. Never change it silently.
  std::string Canonical() const;
  // Human-readable one-liner, e.g. "32 layers x K/V x 8 heads x 128 dim bf16, 16 tok/block".
  std::string ToString() const;

  friend bool operator==(const KvLayout&, const KvLayout&) = default;
};

// A layer-separate view of an engine's paged KV cache: `layer_base[l]` is the start
// of layer l's tensor, holding `num_blocks` blocks in `order`. Host-addressable memory
// only (real or host-emulated device memory); CUDA memory moves through the transfer
// engine's CUDA backend instead.
//
// Chunk (layer l, component c, block b) starts at
//   layer_base[l] + b * block_stride() + c * component_stride().
// With the strides left 0 they follow from `order` (a dense tensor); an engine whose
// tensor is padded or interleaved (e.g. several layers in one allocation) sets them.
struct STRATA_EXPORT LayerSeparateView {
  KvLayout layout;
  DeviceOrder order = DeviceOrder::kBlockMajor;
  uint32_t num_blocks = 0;
  std::vector<std::byte*> layer_base;  // size == layout.num_layers
  // Bytes from block b to block b + 1 of a layer. 0 (default): dense, i.e.
  // layer_block_bytes() in kBlockMajor, chunk_bytes() in kKvMajor.
  size_t block_stride_bytes = 0;
  // Bytes from component 0 to component 1 (K to V) of a block. 0 (default): dense, i.e.
  // chunk_bytes() in kBlockMajor, num_blocks * chunk_bytes() in kKvMajor. Unused for MLA.
  size_t component_stride_bytes = 0;

  // InvalidArgument when the layout is invalid, a pointer is missing, or explicit strides
  // would make two chunks of a layer overlap.
  Status Validate() const;
  size_t block_stride() const {
    if (block_stride_bytes != 0) return block_stride_bytes;
    return order == DeviceOrder::kBlockMajor ? layout.layer_block_bytes() : layout.chunk_bytes();
  }
  size_t component_stride() const {
    if (component_stride_bytes != 0) return component_stride_bytes;
    return order == DeviceOrder::kBlockMajor ? layout.chunk_bytes()
                                             : size_t{num_blocks} * layout.chunk_bytes();
  }
  // True when a block's components of one layer are adjacent (one copy moves them all).
  bool components_adjacent() const {
    return layout.num_components() == 1 || component_stride() == layout.chunk_bytes();
  }
  // Address of the chunk (layer, component, block). Preconditions: indices in range.
  std::byte* chunk(uint32_t layer, uint32_t component, uint32_t block) const {
    return layer_base[layer] + size_t{block} * block_stride() +
           size_t{component} * component_stride();
  }
  // Bytes of one layer's tensor: from layer_base[l] to the end of its last chunk.
  size_t layer_bytes() const {
    if (num_blocks == 0) return 0;
    return size_t{num_blocks - 1} * block_stride() +
           size_t{layout.num_components() - 1} * component_stride() + layout.chunk_bytes();
  }
};

// Offset of chunk (layer, component) inside a block-contiguous block.
inline size_t ContiguousChunkOffset(const KvLayout& layout, uint32_t layer, uint32_t component) {
  return (size_t{layer} * layout.num_components() + component) * layout.chunk_bytes();
}

// Copies block `block` of `src` into `dst` (block-contiguous, exactly block_bytes()).
STRATA_EXPORT Status GatherBlock(const LayerSeparateView& src, uint32_t block,
                                 std::span<std::byte> dst);
// Copies a block-contiguous `src` into block `block` of `dst`.
STRATA_EXPORT Status ScatterBlock(std::span<const std::byte> src, const LayerSeparateView& dst,
                                  uint32_t block);

}  // namespace strata
