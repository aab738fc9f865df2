// libFuzzer harness: G4 object headers and objects (VerifyObjectHeader, VerifyObject;
// the format table is in src/remote/object_format.h).
//
// Input: one control byte, then the object (header + payload). The expected key and
// namespace fingerprint are the ones the header holds, so the fuzzer need not guess them.
// Control bit 0 recomputes the header checksum, bit 1 expects the payload length the
// object actually has rather than the one its header records: mutations then get past
// those checks. Bit 2 verifies with an HMAC key (kFuzzHmacKey), as a tier with
// [shared] hmac_key does.
#include <xxhash.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "remote/object_format.h"

using strata::remote::kObjectHeaderBytes;

namespace {
// Field offsets, from the table in object_format.h.
constexpr size_t kChecksumAt = 16, kLengthAt = 24, kKeyAt = 48, kNamespaceAt = 80;
// The key of the seeds with a tag (make_corpus.py).
constexpr std::string_view kFuzzHmacKey = "strata-fuzz-hmac-key-0123456789";
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::unique_ptr<strata::remote::ObjectAuthenticator> authenticator =
      std::move(strata::remote::ObjectAuthenticator::Create(kFuzzHmacKey).value());
  if (size == 0) return 0;
  const uint8_t control = data[0];
  const strata::remote::ObjectAuthenticator* auth = (control & 4) ? authenticator.get() : nullptr;
  std::vector<std::byte> object(reinterpret_cast<const std::byte*>(data + 1),
                                reinterpret_cast<const std::byte*>(data + size));
  strata::BlockKey key;
  strata::NamespaceFingerprint ns;
  uint64_t recorded_length = 0;
  if (object.size() >= kObjectHeaderBytes) {
    std::memcpy(key.bytes.data(), object.data() + kKeyAt, key.bytes.size());
    std::memcpy(ns.bytes.data(), object.data() + kNamespaceAt, ns.bytes.size());
    std::memcpy(&recorded_length, object.data() + kLengthAt, 8);
    if (control & 1) {
      std::memset(object.data() + kChecksumAt, 0, 8);
      const uint64_t sum = XXH3_64bits(object.data(), kObjectHeaderBytes);
      std::memcpy(object.data() + kChecksumAt, &sum, 8);
    }
  }
  const size_t payload_bytes = (control & 2) && object.size() >= kObjectHeaderBytes
                                   ? object.size() - kObjectHeaderBytes
                                   : static_cast<size_t>(recorded_length);

  uint64_t payload_checksum = 0;
  const strata::Status header =
      strata::remote::VerifyObjectHeader(object, key, ns, payload_bytes, &payload_checksum);
  const strata::Status whole = strata::remote::VerifyObject(object, key, ns, payload_bytes);
  for (const strata::Status* s : {&header, &whole})
    if (!s->ok() && (s->code() != strata::StatusCode::kCorruption || s->message().empty()))
      std::abort();
  if (!header.ok() && whole.ok()) std::abort();  // the object check includes the header's
  if (!whole.ok()) return 0;
  // A verified object is exactly header + payload and re-encodes to a header that verifies.
  if (object.size() != strata::remote::ObjectBytes(payload_bytes)) std::abort();
  const std::span<const std::byte> payload(object.data() + kObjectHeaderBytes, payload_bytes);
  std::vector<std::byte> again(object.size());
  if (!strata::remote::EncodeObjectHeader(key, ns, payload, again.data(), auth).ok()) std::abort();
  std::memcpy(again.data() + kObjectHeaderBytes, payload.data(), payload.size());
  if (!strata::remote::VerifyObject(again, key, ns, payload_bytes, auth).ok()) std::abort();
  return 0;
}
