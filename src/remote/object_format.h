// The object a G4 store keeps per block: a fixed 128-byte header, then the payload.
// The same bytes go to a shared-filesystem file or a Redis value; this table is the
// spec (docs/tiers.md, "G4", describes the tier) and this file its only implementation.
//
//   offset size field
//   0      8    magic "STRATAG4"
//   8      4    format version (1)
//   12     4    header bytes (128)
//   16     8    XXH3-64 of the header with this field zeroed
//   24     8    payload length
//   32     8    XXH3-64 of the payload
//   40     8    reserved, 0
//   48     32   block key
//   80     32   namespace fingerprint
//   112    16   reserved, 0
//   128    -    payload
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "strata/block_key.h"
#include "strata/namespace_fingerprint.h"
#include "strata/status.h"

namespace strata::remote {

inline constexpr size_t kObjectHeaderBytes = 128;
inline constexpr uint32_t kObjectVersion = 1;

inline constexpr size_t ObjectBytes(size_t payload_bytes) {
  return kObjectHeaderBytes + payload_bytes;
}

// Writes the header for `payload` into `header` (kObjectHeaderBytes bytes).
void EncodeObjectHeader(const BlockKey& key, const NamespaceFingerprint& ns,
                        std::span<const std::byte> payload, std::byte* header);

// Checks that `object` (header + payload) is a version-1 object of `expected` key with
// fingerprint `ns` and exactly `payload_bytes` of payload whose checksum matches.
// OK, or Corruption naming the first mismatch.
Status VerifyObject(std::span<const std::byte> object, const BlockKey& expected,
                    const NamespaceFingerprint& ns, size_t payload_bytes);

// Checks the header alone (magic, version, header checksum, key, fingerprint, length);
// returns the payload checksum it records through `payload_checksum` when OK. Lets a
// reader verify the header before reading the payload into its final place.
Status VerifyObjectHeader(std::span<const std::byte> header, const BlockKey& expected,
                          const NamespaceFingerprint& ns, size_t payload_bytes,
                          uint64_t* payload_checksum);

}  // namespace strata::remote
