// What the daemon's multi-process tests and their client child share: the reference engine's
// tiny KV layout (what `strata daemon --preset tiny` serves), deterministic prompts, and an
// emulated device whose blocks hold bytes derived from (prompt seed, block).
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

#include "strata/block_manager.h"

namespace strata::daemon_test {

// `strata daemon --preset tiny`: 2 layers x K/V x 2 heads x 16 dim fp32, 4 tokens a block.
inline KvLayout TinyLayout() {
  return KvLayout{.num_layers = 2,
                  .num_kv_heads = 2,
                  .head_dim = 16,
                  .dtype = DType::kFloat32,
                  .tokens_per_block = 4};
}

inline constexpr uint32_t kPromptBlocks = 8;

// Prompts of different seeds (below 2^31) share no block: the first token is the seed.
inline std::vector<TokenId> Prompt(uint32_t seed) {
  std::vector<TokenId> t(kPromptBlocks * TinyLayout().tokens_per_block);
  t[0] = static_cast<TokenId>(seed);
  for (size_t i = 1; i < t.size(); ++i)
    t[i] = static_cast<TokenId>((uint64_t{seed} * 2654435761u + i * 7919) % 50000);
  return t;
}

// An engine's paged KV cache in host memory (block-major).
struct HostDevice {
  explicit HostDevice(uint32_t blocks) : memory(size_t{blocks} * TinyLayout().block_bytes()) {
    cache.view.layout = TinyLayout();
    cache.view.order = DeviceOrder::kBlockMajor;
    cache.view.num_blocks = blocks;
    const size_t layer = cache.view.layer_bytes();
    for (uint32_t l = 0; l < TinyLayout().num_layers; ++l)
      cache.view.layer_base.push_back(memory.data() + l * layer);
  }
  // Block `b` gets the bytes of block `i` of prompt `seed`.
  void Fill(uint32_t b, uint32_t seed, uint32_t i) {
    std::mt19937 rng(seed * 64 + i);
    for (uint32_t l = 0; l < TinyLayout().num_layers; ++l)
      for (uint32_t c = 0; c < TinyLayout().num_components(); ++c) {
        std::byte* p = cache.view.chunk(l, c, b);
        for (size_t k = 0; k < TinyLayout().chunk_bytes(); ++k)
          p[k] = static_cast<std::byte>(rng());
      }
  }
  // Whether block `b` holds block `i` of prompt `seed`.
  bool Holds(uint32_t b, uint32_t seed, uint32_t i) {
    std::mt19937 rng(seed * 64 + i);
    for (uint32_t l = 0; l < TinyLayout().num_layers; ++l)
      for (uint32_t c = 0; c < TinyLayout().num_components(); ++c) {
        const std::byte* p = cache.view.chunk(l, c, b);
        for (size_t k = 0; k < TinyLayout().chunk_bytes(); ++k)
          if (p[k] != static_cast<std::byte>(rng())) return false;
      }
    return true;
  }
  std::vector<std::byte> memory;
  DeviceCache cache;
};

}  // namespace strata::daemon_test
