#include "remote/object_format.h"

#include <vector>

#include <gtest/gtest.h>

namespace strata::remote {
namespace {

struct Fixture {
  BlockKey key;
  NamespaceFingerprint ns;
  std::vector<std::byte> object;
  Fixture(size_t payload) : object(ObjectBytes(payload)) {
    for (size_t i = 0; i < 32; ++i) {
      key.bytes[i] = static_cast<uint8_t>(i * 7 + 1);
      ns.bytes[i] = static_cast<uint8_t>(i * 3 + 5);
    }
    for (size_t i = 0; i < payload; ++i)
      object[kObjectHeaderBytes + i] = static_cast<std::byte>(i * 31 % 251);
    EncodeObjectHeader(key, ns, std::span(object).subspan(kObjectHeaderBytes), object.data());
  }
};

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
