// Deterministic keys, fingerprints and block contents shared by the disk tier tests and the
// crash-test child, so a parent process can check what a killed child wrote.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "disk/disk_format.h"
#include "disk/disk_tier.h"
#include "strata/block_key.h"
#include "strata/layout.h"

namespace strata::disk_test {

inline uint64_t SplitMix64(uint64_t* state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// The key of block `index` of `stream`: uniform bytes, as real (hashed) keys are.
inline BlockKey TestKey(uint64_t stream, uint64_t index) {
  uint64_t s = stream * 0x100000001b3ull ^ (index + 0x51ed270b27a4d1c3ull);
  BlockKey k;
  for (int w = 0; w < 4; ++w) {
    const uint64_t v = SplitMix64(&s);
    std::memcpy(k.bytes.data() + 8 * w, &v, 8);
  }
  return k;
}

// Block contents derived from the key alone.
inline void FillBlock(const BlockKey& key, std::byte* out, size_t bytes) {
  uint64_t s = key.Prefix64();
  size_t i = 0;
  for (; i + 8 <= bytes; i += 8) {
    const uint64_t v = SplitMix64(&s);
    std::memcpy(out + i, &v, 8);
  }
  for (; i < bytes; ++i) out[i] = static_cast<std::byte>(SplitMix64(&s));
}

inline NamespaceFingerprint TestNamespace(uint8_t v = 0x5a) {
  NamespaceFingerprint ns;
  for (size_t i = 0; i < ns.bytes.size(); ++i) ns.bytes[i] = static_cast<uint8_t>(v + i);
  return ns;
}

// 4 layers x K/V x 2 heads x 128 dim fp16 x 16 tokens = 64 KiB blocks.
inline KvLayout SmallLayout() {
  KvLayout l;
  l.num_layers = 4;
  l.num_kv_heads = 2;
  l.head_dim = 128;
  l.dtype = DType::kFloat16;
  l.tokens_per_block = 16;
  return l;
}

// The crash test's tier: 64 KiB blocks (68 KiB records), 7 records a region, 25 regions
// in 4 files — small enough that a child killed after a few hundred milliseconds of writing
// has reclaimed regions many times over.
inline DiskTierOptions CrashTierOptions(const std::string& dir) {
  DiskTierOptions o;
  o.directory = dir;
  o.capacity_bytes = 25 * 7 * (uint64_t{68} << 10);
  o.region_bytes = 7 * (uint64_t{68} << 10);
  o.min_regions = 1;
  o.file_bytes = 8 * 7 * (uint64_t{68} << 10);
  o.io_depth = 8;
  return o;
}

}  // namespace strata::disk_test
