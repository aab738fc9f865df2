#include "remote/object_format.h"

#include <openssl/crypto.h>
#include <xxhash.h>

#include <array>
#include <cstring>
#include <optional>
#include <string>

#include <fmt/format.h>

namespace strata::remote {
namespace {

constexpr std::array<char, 8> kMagic = {'S', 'T', 'R', 'A', 'T', 'A', 'G', '4'};
constexpr size_t kMagicAt = 0, kVersionAt = 8, kHeaderSizeAt = 12, kChecksumAt = 16, kLengthAt = 24,
                 kPayloadChecksumAt = 32, kFlagsAt = 40, kKeyAt = 48, kNamespaceAt = 80,
                 kTagAt = 112;
constexpr uint64_t kFlagAuthenticated = 1;

template <typename T>
void Put(std::byte* at, T v) {
  std::memcpy(at, &v, sizeof(v));  // little-endian hosts only, as the disk format
}
template <typename T>
T Get(const std::byte* at) {
  T v;
  std::memcpy(&v, at, sizeof(v));
  return v;
}

uint64_t HeaderChecksum(const std::byte* h) {
  std::array<std::byte, kObjectHeaderBytes> copy;
  std::memcpy(copy.data(), h, kObjectHeaderBytes);
  std::memset(copy.data() + kChecksumAt, 0, 8);
  return XXH3_64bits(copy.data(), copy.size());
}

// The tag of a header (checksum and tag fields zeroed) and its payload.
std::optional<ObjectTag> TagOf(const std::byte* h, std::span<const std::byte> payload,
                               const ObjectAuthenticator& auth) {
  std::array<std::byte, kObjectHeaderBytes> copy;
  std::memcpy(copy.data(), h, kObjectHeaderBytes);
  std::memset(copy.data() + kChecksumAt, 0, 8);
  std::memset(copy.data() + kTagAt, 0, kObjectTagBytes);
  return auth.Tag(copy, payload);
}

}  // namespace

Status EncodeObjectHeader(const BlockKey& key, const NamespaceFingerprint& ns,
                          std::span<const std::byte> payload, std::byte* header,
                          const ObjectAuthenticator* auth) {
  std::memset(header, 0, kObjectHeaderBytes);
  std::memcpy(header + kMagicAt, kMagic.data(), kMagic.size());
  Put<uint32_t>(header + kVersionAt, kObjectVersion);
  Put<uint32_t>(header + kHeaderSizeAt, kObjectHeaderBytes);
  Put<uint64_t>(header + kLengthAt, payload.size());
  Put<uint64_t>(header + kPayloadChecksumAt, XXH3_64bits(payload.data(), payload.size()));
  std::memcpy(header + kKeyAt, key.bytes.data(), key.bytes.size());
  std::memcpy(header + kNamespaceAt, ns.bytes.data(), ns.bytes.size());
  if (auth != nullptr) {
    Put<uint64_t>(header + kFlagsAt, kFlagAuthenticated);
    const std::optional<ObjectTag> tag = TagOf(header, payload, *auth);
    if (!tag) return Status::Internal("cannot compute the object's HMAC (OpenSSL failed)");
    std::memcpy(header + kTagAt, tag->data(), tag->size());
  }
  Put<uint64_t>(header + kChecksumAt, HeaderChecksum(header));
  return Status::Ok();
}

Status VerifyObjectHeader(std::span<const std::byte> header, const BlockKey& expected,
                          const NamespaceFingerprint& ns, size_t payload_bytes,
                          uint64_t* payload_checksum, const ObjectAuthenticator* auth) {
  if (header.size() < kObjectHeaderBytes)
    return Status::Corruption(fmt::format("object of {} bytes is shorter than its {}-byte header",
                                          header.size(), kObjectHeaderBytes));
  const std::byte* h = header.data();
  if (std::memcmp(h + kMagicAt, kMagic.data(), kMagic.size()) != 0)
    return Status::Corruption("object has no STRATAG4 magic");
  if (Get<uint32_t>(h + kVersionAt) != kObjectVersion ||
      Get<uint32_t>(h + kHeaderSizeAt) != kObjectHeaderBytes)
    return Status::Corruption(fmt::format("object format version {} (header {} bytes) is not {}",
                                          Get<uint32_t>(h + kVersionAt),
                                          Get<uint32_t>(h + kHeaderSizeAt), kObjectVersion));
  if (Get<uint64_t>(h + kChecksumAt) != HeaderChecksum(h))
    return Status::Corruption("object header checksum mismatch");
  const uint64_t flags = Get<uint64_t>(h + kFlagsAt);
  if ((flags & ~kFlagAuthenticated) != 0)
    return Status::Corruption(fmt::format("object has unknown flags {:#x}", flags));
  if (auth != nullptr && (flags & kFlagAuthenticated) == 0)
    return Status::Corruption(
        "object carries no HMAC tag and this tier requires one (forged, or written by a node "
        "without the key)");
  BlockKey key;
  std::memcpy(key.bytes.data(), h + kKeyAt, key.bytes.size());
  if (!(key == expected))
    return Status::Corruption(
        fmt::format("object holds key {}, expected {}", key.ToHex(), expected.ToHex()));
  NamespaceFingerprint fp;
  std::memcpy(fp.bytes.data(), h + kNamespaceAt, fp.bytes.size());
  if (!(fp == ns))
    return Status::Corruption(
        fmt::format("object has namespace fingerprint {}, expected {}", fp.ToHex(), ns.ToHex()));
  if (Get<uint64_t>(h + kLengthAt) != payload_bytes)
    return Status::Corruption(fmt::format("object payload is {} bytes, expected {}",
                                          Get<uint64_t>(h + kLengthAt), payload_bytes));
  if (payload_checksum) *payload_checksum = Get<uint64_t>(h + kPayloadChecksumAt);
  return Status::Ok();
}

Status VerifyObjectPayload(std::span<const std::byte> header, std::span<const std::byte> payload,
                           uint64_t payload_checksum, const ObjectAuthenticator* auth) {
  if (XXH3_64bits(payload.data(), payload.size()) != payload_checksum)
    return Status::Corruption("object payload checksum mismatch");
  if (auth == nullptr) return Status::Ok();
  const std::optional<ObjectTag> tag = TagOf(header.data(), payload, *auth);
  if (!tag) return Status::Internal("cannot compute the object's HMAC (OpenSSL failed)");
  if (CRYPTO_memcmp(tag->data(), header.data() + kTagAt, kObjectTagBytes) != 0)
    return Status::Corruption("object HMAC mismatch (forged, or written with another key)");
  return Status::Ok();
}

Status VerifyObject(std::span<const std::byte> object, const BlockKey& expected,
                    const NamespaceFingerprint& ns, size_t payload_bytes,
                    const ObjectAuthenticator* auth) {
  uint64_t checksum = 0;
  if (Status s = VerifyObjectHeader(object, expected, ns, payload_bytes, &checksum, auth); !s.ok())
    return s;
  if (object.size() != ObjectBytes(payload_bytes))
    return Status::Corruption(
        fmt::format("object is {} bytes, expected {}", object.size(), ObjectBytes(payload_bytes)));
  return VerifyObjectPayload(object.first(kObjectHeaderBytes),
                             object.subspan(kObjectHeaderBytes, payload_bytes), checksum, auth);
}

}  // namespace strata::remote
