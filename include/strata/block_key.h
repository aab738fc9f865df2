// Block keys: chained, salted hashes that name a block of KV identically on every
// process and machine.
//
//   root   = H("strata.ns.v1" ‖ namespace fields)          (see docs/block_keys.md)
//   key(0) = H(root ‖ tokens of block 0)
//   key(i) = H(key(i-1) ‖ tokens of block i)
//
// so a key names a block *and its whole prefix*. The namespace binds the model
// fingerprint, the KV layout, the tensor-parallel rank and world size, the LoRA
// adapter and the request's cache_salt: blocks of different tenants, models or shards
// can never share a key. H is SHA-256 by default (collision-resistant); XXH3-128 is a
// faster, non-cryptographic option. No per-process seed exists anywhere.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "strata/export.h"
#include "strata/layout.h"
#include "strata/status.h"

namespace strata {

using TokenId = int32_t;

// Lower-case hex of `bytes` (two digits a byte).
STRATA_EXPORT std::string HexEncode(std::span<const uint8_t> bytes);

enum class HashAlgorithm : uint8_t {
  kSha256,   // default; 32-byte keys
  kXxh3_128  // 16 significant bytes, the other 16 are zero
};
STRATA_EXPORT std::string_view HashAlgorithmName(HashAlgorithm algorithm);  // "sha256", "xxh3_128"
STRATA_EXPORT Result<HashAlgorithm> ParseHashAlgorithm(std::string_view name);

struct STRATA_EXPORT BlockKey {
  std::array<uint8_t, 32> bytes{};

  std::string ToHex() const;
  static Result<BlockKey> FromHex(std::string_view hex);
  // The first 8 bytes as an integer: keys are uniform hash output, so this is a good hash.
  uint64_t Prefix64() const {
    uint64_t v;
    std::memcpy(&v, bytes.data(), 8);  // little-endian hosts only (see block_key.cc)
    return v;
  }
  // Word-wise compare: index probes compare keys on the hot path.
  friend bool operator==(const BlockKey& a, const BlockKey& b) {
    uint64_t x[4], y[4];
    std::memcpy(x, a.bytes.data(), 32);
    std::memcpy(y, b.bytes.data(), 32);
    return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3])) == 0;
  }
  friend auto operator<=>(const BlockKey&, const BlockKey&) = default;
};

struct BlockKeyHash {
  size_t operator()(const BlockKey& k) const noexcept { return static_cast<size_t>(k.Prefix64()); }
};

// Everything a key is salted with. Two requests can share blocks only when every
// field is equal.
struct STRATA_EXPORT KeyNamespace {
  std::string model_fingerprint;  // model name, revision and weights digest; must be non-empty
  KvLayout layout;                // geometry of the blocks
  uint32_t rank = 0;              // tensor-parallel rank of this shard; default 0
  uint32_t world_size = 1;        // tensor-parallel world size; default 1
  std::string lora_id;            // LoRA adapter, empty for the base model
  std::string cache_salt;         // per-request tenant salt, empty for none
  HashAlgorithm algorithm = HashAlgorithm::kSha256;

  Status Validate() const;
};

// Computes keys for one namespace. Immutable after construction; thread-safe.
class STRATA_EXPORT BlockKeyer {
 public:
  // Precondition: ns.Validate().ok() (Create checks it).
  explicit BlockKeyer(const KeyNamespace& ns);
  static Result<BlockKeyer> Create(const KeyNamespace& ns);

  const BlockKey& root() const { return root_; }
  uint32_t tokens_per_block() const { return tokens_per_block_; }
  HashAlgorithm algorithm() const { return algorithm_; }

  // The key of the block holding `block_tokens` (exactly tokens_per_block of them)
  // whose predecessor's key is `parent` (root() for block 0).
  BlockKey Next(const BlockKey& parent, std::span<const TokenId> block_tokens) const;

  // Keys of every full block of `tokens`, appended to `out` (which is cleared first).
  // A partial trailing block gets no key.
  void ComputeKeys(std::span<const TokenId> tokens, std::vector<BlockKey>* out) const;
  std::vector<BlockKey> ComputeKeys(std::span<const TokenId> tokens) const;

 private:
  BlockKey root_;
  uint32_t tokens_per_block_;
  HashAlgorithm algorithm_;
};

}  // namespace strata

template <>
struct std::hash<strata::BlockKey> : strata::BlockKeyHash {};
