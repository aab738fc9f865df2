// ObjectAuthenticator over OpenSSL 3's EVP_MAC (object_auth.h).
#include "remote/object_auth.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <cstring>
#include <string>

#include <fmt/format.h>

namespace strata::remote {

// A keyed HMAC-SHA256 context; each Tag duplicates it, so callers never share one.
struct ObjectAuthenticator::State {
  EVP_MAC* mac = nullptr;
  EVP_MAC_CTX* keyed = nullptr;
  ~State() {
    EVP_MAC_CTX_free(keyed);
    EVP_MAC_free(mac);
  }
};

Result<std::unique_ptr<ObjectAuthenticator>> ObjectAuthenticator::Create(std::string_view key) {
  if (key.size() < kMinHmacKeyBytes)
    return Status::InvalidArgument(
        fmt::format("the shared tier's HMAC key has {} bytes; it needs at least {}", key.size(),
                    kMinHmacKeyBytes));
  auto state = std::make_unique<State>();
  state->mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (state->mac != nullptr) state->keyed = EVP_MAC_CTX_new(state->mac);
  char digest[] = "SHA256";
  const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                               OSSL_PARAM_END};
  if (state->keyed == nullptr ||
      EVP_MAC_init(state->keyed, reinterpret_cast<const unsigned char*>(key.data()), key.size(),
                   params) != 1)
    return Status::Internal("OpenSSL has no HMAC-SHA256");
  return std::unique_ptr<ObjectAuthenticator>(new ObjectAuthenticator(std::move(state)));
}

ObjectAuthenticator::ObjectAuthenticator(std::unique_ptr<State> state) : state_(std::move(state)) {}
ObjectAuthenticator::~ObjectAuthenticator() = default;

std::optional<ObjectTag> ObjectAuthenticator::Tag(std::span<const std::byte> header,
                                                  std::span<const std::byte> payload) const {
  unsigned char full[EVP_MAX_MD_SIZE];
  size_t n = 0;
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_dup(state_->keyed);
  const bool ok = ctx != nullptr &&
                  EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(header.data()),
                                 header.size()) == 1 &&
                  EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(payload.data()),
                                 payload.size()) == 1 &&
                  EVP_MAC_final(ctx, full, &n, sizeof(full)) == 1 && n >= kObjectTagBytes;
  EVP_MAC_CTX_free(ctx);
  if (!ok) return std::nullopt;
  ObjectTag tag;
  std::memcpy(tag.data(), full, kObjectTagBytes);
  return tag;
}

}  // namespace strata::remote
