#include "remote/object_format.h"

#include <xxhash.h>

#include <cstring>
#include <vector>

#include <gtest/gtest.h>

namespace strata::remote {
namespace {

struct Fixture {
  BlockKey key;
  NamespaceFingerprint ns;
  std::vector<std::byte> object;
  explicit Fixture(size_t payload, const ObjectAuthenticator* auth = nullptr)
      : object(ObjectBytes(payload)) {
    for (size_t i = 0; i < 32; ++i) {
      key.bytes[i] = static_cast<uint8_t>(i * 7 + 1);
      ns.bytes[i] = static_cast<uint8_t>(i * 3 + 5);
    }
    for (size_t i = 0; i < payload; ++i)
      object[kObjectHeaderBytes + i] = static_cast<std::byte>(i * 31 % 251);
    EXPECT_TRUE(EncodeObjectHeader(key, ns, std::span(object).subspan(kObjectHeaderBytes),
                                   object.data(), auth)
                    .ok());
  }
};

std::unique_ptr<ObjectAuthenticator> Auth(std::string_view key) {
  auto a = ObjectAuthenticator::Create(key);
  EXPECT_TRUE(a.ok()) << a.status().ToString();
  return a.ok() ? std::move(a).value() : nullptr;
}

// An attacker with write access but no key: takes a valid object, changes the payload,
// and fixes every checksum it can compute.
void Forge(std::vector<std::byte>& object) {
  object[kObjectHeaderBytes + 7] ^= std::byte{0x5a};
  const uint64_t payload =
      XXH3_64bits(object.data() + kObjectHeaderBytes, object.size() - kObjectHeaderBytes);
  std::memcpy(object.data() + 32, &payload, 8);
  std::vector<std::byte> h(object.begin(), object.begin() + kObjectHeaderBytes);
  std::memset(h.data() + 16, 0, 8);
  const uint64_t header = XXH3_64bits(h.data(), h.size());
  std::memcpy(object.data() + 16, &header, 8);
}

TEST(ObjectFormatTest, HmacAuthenticatesHeaderAndPayload) {
  auto key = Auth("0123456789abcdef0123456789abcdef");
  auto other = Auth("fedcba9876543210fedcba9876543210");
  ASSERT_TRUE(key && other);
  Fixture signed_obj(4096, key.get());
  EXPECT_TRUE(VerifyObject(signed_obj.object, signed_obj.key, signed_obj.ns, 4096, key.get()).ok());
  // A reader without the key still checks XXH3 (and can use the block).
  EXPECT_TRUE(VerifyObject(signed_obj.object, signed_obj.key, signed_obj.ns, 4096).ok());

  Status s = VerifyObject(signed_obj.object, signed_obj.key, signed_obj.ns, 4096, other.get());
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_NE(s.message().find("HMAC mismatch"), std::string::npos) << s.ToString();

  Fixture plain(4096);
  s = VerifyObject(plain.object, plain.key, plain.ns, 4096, key.get());
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_NE(s.message().find("no HMAC tag"), std::string::npos) << s.ToString();

  // Forgery: checksums fixed up, so XXH3 alone accepts it; the key does not.
  Forge(signed_obj.object);
  EXPECT_TRUE(VerifyObject(signed_obj.object, signed_obj.key, signed_obj.ns, 4096).ok());
  s = VerifyObject(signed_obj.object, signed_obj.key, signed_obj.ns, 4096, key.get());
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_NE(s.message().find("HMAC mismatch"), std::string::npos) << s.ToString();
  // So is clearing the flag to pass as an unauthenticated object.
  Fixture stripped(512, key.get());
  stripped.object[40] = std::byte{0};
  Forge(stripped.object);
  s = VerifyObject(stripped.object, stripped.key, stripped.ns, 512, key.get());
  EXPECT_NE(s.message().find("no HMAC tag"), std::string::npos) << s.ToString();
}

TEST(ObjectFormatTest, ShortHmacKeysAndUnknownFlagsAreRefused) {
  auto short_key = ObjectAuthenticator::Create("too short");
  ASSERT_FALSE(short_key.ok());
  EXPECT_EQ(short_key.status().code(), StatusCode::kInvalidArgument);
  Fixture f(256);
  f.object[40] = std::byte{2};
  Forge(f.object);
  const Status s = VerifyObject(f.object, f.key, f.ns, 256);
  EXPECT_NE(s.message().find("unknown flags"), std::string::npos) << s.ToString();
}

TEST(ObjectFormatTest, RoundTripVerifies) {
  Fixture f(4096);
  EXPECT_TRUE(VerifyObject(f.object, f.key, f.ns, 4096).ok());
  uint64_t checksum = 0;
  EXPECT_TRUE(VerifyObjectHeader(std::span(f.object).first(kObjectHeaderBytes), f.key, f.ns, 4096,
                                 &checksum)
                  .ok());
  EXPECT_NE(checksum, 0u);
}

TEST(ObjectFormatTest, EveryMismatchIsCorruptionWithItsReason) {
  Fixture f(1000);
  BlockKey other_key = f.key;
  other_key.bytes[0] ^= 1;
  NamespaceFingerprint other_ns = f.ns;
  other_ns.bytes[31] ^= 1;
  const struct {
    Status status;
    const char* reason;
  } cases[] = {
      {VerifyObject(f.object, other_key, f.ns, 1000), "key"},
      {VerifyObject(f.object, f.key, other_ns, 1000), "fingerprint"},
      {VerifyObject(f.object, f.key, f.ns, 999), "payload is"},
      {VerifyObject(std::span(f.object).first(f.object.size() - 1), f.key, f.ns, 1000),
       "bytes, expected"},
      {VerifyObject(std::span(f.object).first(100), f.key, f.ns, 1000), "shorter"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(c.status.code(), StatusCode::kCorruption) << c.status.ToString();
    EXPECT_NE(c.status.message().find(c.reason), std::string::npos) << c.status.ToString();
  }
}

TEST(ObjectFormatTest, AnyFlippedBitIsDetected) {
  Fixture f(512);
  for (size_t byte = 0; byte < f.object.size(); byte += 7) {
    auto copy = f.object;
    copy[byte] ^= std::byte{0x10};
    EXPECT_EQ(VerifyObject(copy, f.key, f.ns, 512).code(), StatusCode::kCorruption)
        << "flip at byte " << byte;
  }
}

}  // namespace
}  // namespace strata::remote
