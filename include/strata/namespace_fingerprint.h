// NamespaceFingerprint: 32 bytes naming what a stored block's bytes mean, carried by every
// record of the disk tier (G3) and every object of a shared store (G4, strata/remote_store.h).
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "strata/block_key.h"

namespace strata {

// The BlockManager computes it once, as the root of the block-key chain of its unsalted
// namespace (model fingerprint, layout, tensor-parallel rank and world size, hash algorithm;
// docs/block_keys.md), and hands it to every tier call. A tier or store never computes one:
// it stores the fingerprint with each block and refuses to return a block whose stored
// fingerprint differs from the one asked for (Corruption), so a block written for one
// model, layout or shard is never served to another that shares the directory or server.
struct NamespaceFingerprint {
  std::array<uint8_t, 32> bytes{};

  // Lower-case hex, 64 digits (for messages).
  std::string ToHex() const { return HexEncode(bytes); }
  friend bool operator==(const NamespaceFingerprint&, const NamespaceFingerprint&) = default;
};

}  // namespace strata
