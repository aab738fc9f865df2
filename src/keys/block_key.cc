// Block key chaining over SHA-256 (OpenSSL) or XXH3-128 (libxxhash).
#include "strata/block_key.h"

#include <bit>
#include <cstring>
#include <memory>

#include <fmt/format.h>
#define OPENSSL_SUPPRESS_DEPRECATED  // SHA256_Init/Update/Final: see Sha256()
#include <openssl/sha.h>
#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack: no allocation per key
#include <xxhash.h>

namespace strata {
namespace {

constexpr std::string_view kNamespaceTag = "strata.ns.v1";
constexpr size_t kXxhKeyBytes = 16;

// SHA-256 goes through OpenSSL's SHA256_* functions. They are deprecated in OpenSSL 3
// in favour of EVP, but EVP's provider dispatch costs ~30 ns a call: a quarter of a
// key's time, and a 128K-token prompt needs 8,192 chained keys (docs/benchmarks.md).
// Both run the same SHA-NI/AVX2 assembly; the golden vectors pin the output.
BlockKey HashPair(HashAlgorithm algorithm, std::span<const uint8_t> a, std::span<const uint8_t> b) {
  BlockKey key;
  // Small messages (every realistic block) are hashed in one call from a contiguous
  // stack copy: XXH3's streaming API costs several times its one-shot API at this size.
  constexpr size_t kInline = 1024;
  alignas(64) uint8_t buf[kInline];
  const bool inline_msg = a.size() + b.size() <= kInline;
  if (inline_msg) {
    std::memcpy(buf, a.data(), a.size());
    if (!b.empty()) std::memcpy(buf + a.size(), b.data(), b.size());
  }
  if (algorithm == HashAlgorithm::kSha256) {
    SHA256_CTX ctx;
    SHA256_Init(&ctx);
    if (inline_msg) {
      SHA256_Update(&ctx, buf, a.size() + b.size());
    } else {
      SHA256_Update(&ctx, a.data(), a.size());
      SHA256_Update(&ctx, b.data(), b.size());
    }
    SHA256_Final(key.bytes.data(), &ctx);
    return key;
  }
  XXH128_hash_t h;
  if (inline_msg) {
    h = XXH3_128bits(buf, a.size() + b.size());
  } else {
    XXH3_state_t state;
    XXH3_128bits_reset(&state);
    XXH3_128bits_update(&state, a.data(), a.size());
    XXH3_128bits_update(&state, b.data(), b.size());
    h = XXH3_128bits_digest(&state);
  }
  XXH128_canonical_t canonical;
  XXH128_canonicalFromHash(&canonical, h);
  std::memcpy(key.bytes.data(), canonical.digest, kXxhKeyBytes);
  return key;
}

void PutU32(std::string* s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutField(std::string* s, std::string_view v) {
  PutU32(s, static_cast<uint32_t>(v.size()));
  s->append(v);
}

std::span<const uint8_t> AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace

std::string_view HashAlgorithmName(HashAlgorithm algorithm) {
  return algorithm == HashAlgorithm::kSha256 ? "sha256" : "xxh3_128";
}

Result<HashAlgorithm> ParseHashAlgorithm(std::string_view name) {
  if (name == "sha256" || name == "sha-256") return HashAlgorithm::kSha256;
  if (name == "xxh3_128" || name == "xxh3" || name == "xxh3-128") return HashAlgorithm::kXxh3_128;
  return Status::InvalidArgument(
      fmt::format("unknown hash algorithm '{}' (expected sha256 or xxh3_128)", name));
}

std::string HexEncode(std::span<const uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s(2 * bytes.size(), '0');
  for (size_t i = 0; i < bytes.size(); ++i) {
    s[2 * i] = kDigits[bytes[i] >> 4];
    s[2 * i + 1] = kDigits[bytes[i] & 0xf];
  }
  return s;
}

std::string BlockKey::ToHex() const {
  return HexEncode(bytes);
}

Result<BlockKey> BlockKey::FromHex(std::string_view hex) {
  if (hex.size() != 64)
    return Status::InvalidArgument(
        fmt::format("block key hex must be 64 digits, got {}", hex.size()));
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  BlockKey key;
  for (size_t i = 0; i < 32; ++i) {
    int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return Status::InvalidArgument(
          fmt::format("block key hex has a non-hex digit near offset {}", 2 * i));
    key.bytes[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return key;
}

Status KeyNamespace::Validate() const {
  if (model_fingerprint.empty())
    return Status::InvalidArgument("KeyNamespace.model_fingerprint must not be empty");
  if (world_size == 0) return Status::InvalidArgument("KeyNamespace.world_size must be >= 1");
  if (rank >= world_size)
    return Status::InvalidArgument(
        fmt::format("KeyNamespace.rank {} must be below world_size {}", rank, world_size));
  if (algorithm != HashAlgorithm::kSha256 && algorithm != HashAlgorithm::kXxh3_128)
    return Status::InvalidArgument("KeyNamespace.algorithm is not a known hash algorithm");
  return layout.Validate().WithContext("KeyNamespace.layout");
}

BlockKeyer::BlockKeyer(const KeyNamespace& ns)
    : tokens_per_block_(ns.layout.tokens_per_block), algorithm_(ns.algorithm) {
  std::string buf;
  buf.append(kNamespaceTag);
  PutField(&buf, HashAlgorithmName(ns.algorithm));
  PutField(&buf, ns.model_fingerprint);
  PutField(&buf, ns.layout.Canonical());
  PutU32(&buf, ns.rank);
  PutU32(&buf, ns.world_size);
  PutField(&buf, ns.lora_id);
  PutField(&buf, ns.cache_salt);
  root_ = HashPair(algorithm_, AsBytes(buf), {});
}

Result<BlockKeyer> BlockKeyer::Create(const KeyNamespace& ns) {
  STRATA_RETURN_IF_ERROR(ns.Validate());
  return BlockKeyer(ns);
}

BlockKey BlockKeyer::Next(const BlockKey& parent, std::span<const TokenId> block_tokens) const {
  const size_t parent_bytes = algorithm_ == HashAlgorithm::kSha256 ? 32 : kXxhKeyBytes;
  // Tokens are hashed as little-endian u32; x86 and ARM Linux are little-endian, and
  // a static_assert keeps a big-endian port from silently producing other keys.
  static_assert(std::endian::native == std::endian::little, "block keys assume little-endian");
  return HashPair(
      algorithm_, {parent.bytes.data(), parent_bytes},
      {reinterpret_cast<const uint8_t*>(block_tokens.data()), block_tokens.size_bytes()});
}

void BlockKeyer::ComputeKeys(std::span<const TokenId> tokens, std::vector<BlockKey>* out) const {
  out->clear();
  const size_t n = tokens.size() / tokens_per_block_;
  out->reserve(n);
  const BlockKey* parent = &root_;
  for (size_t i = 0; i < n; ++i) {
    out->push_back(Next(*parent, tokens.subspan(i * tokens_per_block_, tokens_per_block_)));
    parent = &out->back();
  }
}

std::vector<BlockKey> BlockKeyer::ComputeKeys(std::span<const TokenId> tokens) const {
  std::vector<BlockKey> keys;
  ComputeKeys(tokens, &keys);
  return keys;
}

}  // namespace strata
