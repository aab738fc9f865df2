// ObjectAuthenticator: the optional HMAC-SHA256 of G4 objects (object_format.h).
//
// XXH3 checksums catch corruption, not forgery: anyone who can write to a shared tier can
// write a block with a valid checksum. With a key from configuration ([shared] hmac_key /
// hmac_key_file / STRATA_SHARED_HMAC_KEY), every object carries a 128-bit tag (HMAC-SHA256
// truncated to 16 bytes, RFC 2104 section 5) over its header and payload; a node holding
// the key serves only objects whose tag verifies, so a writer without the key cannot make
// it load anything. Every node sharing the tier must hold the same key.
//
// Thread-safe: each call works on its own copy of the keyed state.
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "strata/status.h"

namespace strata::remote {

inline constexpr size_t kObjectTagBytes = 16;
inline constexpr size_t kMinHmacKeyBytes = 16;

using ObjectTag = std::array<std::byte, kObjectTagBytes>;

class ObjectAuthenticator {
 public:
  // InvalidArgument when the key is shorter than kMinHmacKeyBytes; Internal when OpenSSL
  // has no HMAC-SHA256.
  static Result<std::unique_ptr<ObjectAuthenticator>> Create(std::string_view key);
  ~ObjectAuthenticator();
  ObjectAuthenticator(const ObjectAuthenticator&) = delete;
  ObjectAuthenticator& operator=(const ObjectAuthenticator&) = delete;

  // The tag of `header` (its tag and checksum fields already zeroed by the caller) followed
  // by `payload`; nullopt when OpenSSL fails (out of memory): no tag, nothing verifies.
  std::optional<ObjectTag> Tag(std::span<const std::byte> header,
                               std::span<const std::byte> payload) const;

 private:
  struct State;
  explicit ObjectAuthenticator(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace strata::remote
