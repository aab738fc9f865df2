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
//   40     8    flags: bit 0 = authenticated (the tag below is set); other bits 0
//   48     32   block key
//   80     32   namespace fingerprint
//   112    16   authenticated: HMAC-SHA256 (truncated) of the header with this field
//               and the header checksum zeroed, then the payload (object_auth.h);
//               else 0
//   128    -    payload
//
// The header checksum is computed last, over the tag too. An authenticator passed to the
// verifiers makes the tag mandatory: an object without one, or with a wrong one, is
// Corruption (forged, or written by a node without the key).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "remote/object_auth.h"
#include "strata/block_key.h"
#include "strata/namespace_fingerprint.h"
#include "strata/status.h"

namespace strata::remote {

inline constexpr size_t kObjectHeaderBytes = 128;
inline constexpr uint32_t kObjectVersion = 1;

inline constexpr size_t ObjectBytes(size_t payload_bytes) {
  return kObjectHeaderBytes + payload_bytes;
}

// Writes the header for `payload` into `header` (kObjectHeaderBytes bytes), with a tag
// when `auth` is given. Internal only when the tag cannot be computed (OpenSSL failed).
Status EncodeObjectHeader(const BlockKey& key, const NamespaceFingerprint& ns,
                          std::span<const std::byte> payload, std::byte* header,
                          const ObjectAuthenticator* auth = nullptr);

// Checks that `object` (header + payload) is a version-1 object of `expected` key with
// fingerprint `ns` and exactly `payload_bytes` of payload whose checksum (and, with
// `auth`, tag) matches. OK, or Corruption naming the first mismatch.
Status VerifyObject(std::span<const std::byte> object, const BlockKey& expected,
                    const NamespaceFingerprint& ns, size_t payload_bytes,
                    const ObjectAuthenticator* auth = nullptr);

// Checks the header alone (magic, version, header checksum, flags, key, fingerprint,
// length; with `auth`, that it is authenticated); returns the payload checksum it records
// through `payload_checksum` when OK. Lets a reader verify the header before reading the
// payload into its final place, then VerifyObjectPayload.
Status VerifyObjectHeader(std::span<const std::byte> header, const BlockKey& expected,
                          const NamespaceFingerprint& ns, size_t payload_bytes,
                          uint64_t* payload_checksum, const ObjectAuthenticator* auth = nullptr);

// The payload's half of VerifyObject, after VerifyObjectHeader said OK: its checksum is
// `payload_checksum`, and with `auth` the header's tag covers header and payload.
Status VerifyObjectPayload(std::span<const std::byte> header, std::span<const std::byte> payload,
                           uint64_t payload_checksum, const ObjectAuthenticator* auth = nullptr);

}  // namespace strata::remote
