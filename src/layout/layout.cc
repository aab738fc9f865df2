// KvLayout validation, naming, and gather/scatter between device and block-contiguous order.
#include "strata/layout.h"

#include <cstring>

#include <fmt/format.h>

namespace strata {

size_t DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return 4;
    case DType::kFloat16:
    case DType::kBFloat16:
      return 2;
    case DType::kFloat8E4M3:
    case DType::kFloat8E5M2:
      return 1;
  }
  return 0;
}

std::string_view DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return "fp32";
    case DType::kFloat16:
      return "fp16";
    case DType::kBFloat16:
      return "bf16";
    case DType::kFloat8E4M3:
      return "fp8_e4m3";
    case DType::kFloat8E5M2:
      return "fp8_e5m2";
  }
  return "?";
}

Result<DType> ParseDType(std::string_view name) {
  if (name == "fp32" || name == "float32") return DType::kFloat32;
  if (name == "fp16" || name == "float16" || name == "half") return DType::kFloat16;
  if (name == "bf16" || name == "bfloat16") return DType::kBFloat16;
  if (name == "fp8" || name == "fp8_e4m3") return DType::kFloat8E4M3;
  if (name == "fp8_e5m2") return DType::kFloat8E5M2;
  return Status::InvalidArgument(
      fmt::format("unknown dtype '{}' (expected fp32, fp16, bf16, fp8_e4m3 or fp8_e5m2)", name));
}

Status KvLayout::Validate() const {
  auto positive = [](const char* field, uint32_t v) {
    return v == 0 ? Status::InvalidArgument(fmt::format("KvLayout.{} must be >= 1, got 0", field))
                  : Status::Ok();
  };
  STRATA_RETURN_IF_ERROR(positive("num_layers", num_layers));
  STRATA_RETURN_IF_ERROR(positive("num_kv_heads", num_kv_heads));
  STRATA_RETURN_IF_ERROR(positive("head_dim", head_dim));
  STRATA_RETURN_IF_ERROR(positive("tokens_per_block", tokens_per_block));
  if (DTypeSize(dtype) == 0) return Status::InvalidArgument("KvLayout.dtype is not a known dtype");
  if (format != KvFormat::kKeyValue && format != KvFormat::kLatent)
    return Status::InvalidArgument("KvLayout.format is not a known format");
  if (chunk_order != ChunkOrder::kTokenHeadDim && chunk_order != ChunkOrder::kHeadTokenDim)
    return Status::InvalidArgument("KvLayout.chunk_order is not a known order");
  // Keep every size well inside 64 bits and a block under 4 GiB (offsets in formats are u32-safe).
  const unsigned __int128 bytes = static_cast<unsigned __int128>(tokens_per_block) * num_kv_heads *
                                  head_dim * DTypeSize(dtype) * num_components() * num_layers;
  if (bytes >= (static_cast<unsigned __int128>(1) << 32))
    return Status::InvalidArgument(
        fmt::format("KvLayout block of {} would be 4 GiB or more", ToString()));
  return Status::Ok();
}

std::string KvLayout::Canonical() const {
  return fmt::format(
      "strata.layout.v1;layers={};format={};kv_heads={};head_dim={};dtype={};"
      "tokens_per_block={};chunk_order={}",
      num_layers, format == KvFormat::kKeyValue ? "kv" : "latent", num_kv_heads, head_dim,
      DTypeName(dtype), tokens_per_block, chunk_order == ChunkOrder::kTokenHeadDim ? "nhd" : "hnd");
}

std::string KvLayout::ToString() const {
  return fmt::format("{} layers x {} x {} heads x {} dim {}, {} tok/block ({} B/block)", num_layers,
                     format == KvFormat::kKeyValue ? "K/V" : "latent", num_kv_heads, head_dim,
                     DTypeName(dtype), tokens_per_block, block_bytes());
}

Status LayerSeparateView::Validate() const {
  STRATA_RETURN_IF_ERROR(layout.Validate());
  if (num_blocks == 0) return Status::InvalidArgument("LayerSeparateView.num_blocks must be >= 1");
  if (layer_base.size() != layout.num_layers)
    return Status::InvalidArgument(
        fmt::format("LayerSeparateView has {} layer pointers for {} layers", layer_base.size(),
                    layout.num_layers));
  for (size_t l = 0; l < layer_base.size(); ++l) {
    if (layer_base[l] == nullptr)
      return Status::InvalidArgument(fmt::format("LayerSeparateView.layer_base[{}] is null", l));
  }
  if (order != DeviceOrder::kBlockMajor && order != DeviceOrder::kKvMajor)
    return Status::InvalidArgument("LayerSeparateView.order is not a known order");
  // The chunks of a layer form a grid of num_blocks x components cells; they are disjoint
  // when the inner stride covers a chunk and the outer stride covers the inner run.
  const size_t cb = layout.chunk_bytes();
  const size_t bs = block_stride(), cs = component_stride();
  const size_t nc = layout.num_components();
  // (One component, as in MLA: only the block stride matters.)
  const bool blocks_outer = nc == 1 || (bs >= cs * nc && cs >= cb);
  const bool components_outer = nc > 1 && cs >= bs * num_blocks;
  if (bs < cb || (!blocks_outer && !components_outer))
    return Status::InvalidArgument(fmt::format(
        "LayerSeparateView strides make chunks overlap: block stride {} bytes, component "
        "stride {} bytes, {} blocks of {} components, chunks of {} bytes",
        bs, cs, num_blocks, nc, cb));
  return Status::Ok();
}

namespace {
Status CheckBlockArgs(const LayerSeparateView& view, uint32_t block, size_t buffer_bytes,
                      const char* op) {
  if (block >= view.num_blocks)
    return Status::InvalidArgument(fmt::format("{}: block {} out of range (view holds {} blocks)",
                                               op, block, view.num_blocks));
  if (buffer_bytes != view.layout.block_bytes())
    return Status::InvalidArgument(fmt::format("{}: buffer is {} bytes, a block is {}", op,
                                               buffer_bytes, view.layout.block_bytes()));
  return Status::Ok();
}
}  // namespace

Status GatherBlock(const LayerSeparateView& src, uint32_t block, std::span<std::byte> dst) {
  STRATA_RETURN_IF_ERROR(CheckBlockArgs(src, block, dst.size(), "GatherBlock"));
  const KvLayout& layout = src.layout;
  const size_t cb = layout.chunk_bytes();
  std::byte* out = dst.data();
  for (uint32_t l = 0; l < layout.num_layers; ++l) {
    if (src.components_adjacent()) {
      // Both components of a block are adjacent (dense block-major order): one copy per layer.
      std::memcpy(out, src.chunk(l, 0, block), layout.layer_block_bytes());
      out += layout.layer_block_bytes();
    } else {
      for (uint32_t c = 0; c < layout.num_components(); ++c, out += cb)
        std::memcpy(out, src.chunk(l, c, block), cb);
    }
  }
  return Status::Ok();
}

Status ScatterBlock(std::span<const std::byte> src, const LayerSeparateView& dst, uint32_t block) {
  STRATA_RETURN_IF_ERROR(CheckBlockArgs(dst, block, src.size(), "ScatterBlock"));
  const KvLayout& layout = dst.layout;
  const size_t cb = layout.chunk_bytes();
  const std::byte* in = src.data();
  for (uint32_t l = 0; l < layout.num_layers; ++l) {
    if (dst.components_adjacent()) {
      std::memcpy(dst.chunk(l, 0, block), in, layout.layer_block_bytes());
      in += layout.layer_block_bytes();
    } else {
      for (uint32_t c = 0; c < layout.num_components(); ++c, in += cb)
        std::memcpy(dst.chunk(l, c, block), in, cb);
    }
  }
  return Status::Ok();
}

}  // namespace strata
