// C API: loads and stores — starting them, and the queries on their handles.
#include <chrono>
#include <span>

#include <fmt/format.h>

#include "capi/capi_internal.h"

namespace strata::capi {
namespace {

strata_status CheckBlocks(const uint32_t* device_blocks, size_t n, std::string_view fn) {
  if (device_blocks == nullptr && n > 0)
    return Fail(STRATA_ERR_INVALID_ARGUMENT, fn,
                fmt::format("device_blocks is NULL but num_blocks is {}", n));
  return STRATA_OK;
}

strata_status CheckRange(size_t first_block, size_t num_blocks, size_t available,
                         std::string_view what, std::string_view fn) {
  if (first_block > available || num_blocks > available - first_block)
    return Fail(STRATA_ERR_INVALID_ARGUMENT, fn,
                fmt::format("blocks [{}, {}) are past the {} {} blocks", first_block,
                            first_block + num_blocks, available, what));
  return STRATA_OK;
}

// The arguments every operation on a match checks: live handles of one manager, an out
// pointer, device block ids.
strata_status CheckMatchOp(const strata_manager* manager, const strata_match* match,
                           const uint32_t* device_blocks, size_t num_blocks, const void* out,
                           std::string_view fn) {
  if (strata_status s = CheckHandle(manager, fn, "manager")) return s;
  if (strata_status s = CheckHandle(match, fn, "match")) return s;
  if (out == nullptr) return Fail(STRATA_ERR_INVALID_ARGUMENT, fn, "out is NULL");
  if (match->owner != manager)
    return Fail(STRATA_ERR_INVALID_ARGUMENT, fn, "match was made by another manager");
  return CheckBlocks(device_blocks, num_blocks, fn);
}

strata_status StartStore(strata_manager* manager, const RequestContext& ctx,
                         std::span<const BlockKey> keys, const uint32_t* device_blocks,
                         std::string_view fn, strata_store** out) {
  auto h =
      manager->manager->Store(ctx, keys, std::span<const uint32_t>(device_blocks, keys.size()));
  if (!h.ok()) return Fail(h.status(), fn);
  *out = NewHandle<strata_store>(std::move(*h));
  return STRATA_OK;
}

// --- Queries shared by loads and stores (H is strata_load or strata_store).

template <class H>
strata_status NumBlocks(const H* h, size_t* out, std::string_view fn) {
  if (strata_status s = CheckHandle(h, fn, "handle")) return s;
  if (out == nullptr) return Fail(STRATA_ERR_INVALID_ARGUMENT, fn, "out is NULL");
  *out = h->handle.num_blocks();
  return STRATA_OK;
}

template <class H>
strata_status Done(const H* h, int* done, std::string_view fn) {
  if (strata_status s = CheckHandle(h, fn, "handle")) return s;
  if (done == nullptr) return Fail(STRATA_ERR_INVALID_ARGUMENT, fn, "done is NULL");
  *done = h->handle.done() ? 1 : 0;
  return STRATA_OK;
}

template <class H>
strata_status Wait(const H* h, int64_t timeout_ms, std::string_view fn) {
  if (strata_status s = CheckHandle(h, fn, "handle")) return s;
  // A negative timeout waits without limit: a century is long enough.
  const auto timeout = std::chrono::milliseconds(
      timeout_ms < 0 ? int64_t{100} * 365 * 24 * 3600 * 1000 : timeout_ms);
  Status s = h->handle.Wait(timeout);
  return s.ok() ? STRATA_OK : Fail(s, fn);
}

template <class H>
strata_status CheckBlock(const H* h, size_t block, std::string_view fn) {
  if (strata_status s = CheckHandle(h, fn, "handle")) return s;
  if (block >= h->handle.num_blocks())
    return Fail(STRATA_ERR_INVALID_ARGUMENT, fn,
                fmt::format("block {} out of range (the transfer has {} blocks)", block,
                            h->handle.num_blocks()));
  return STRATA_OK;
}

template <class H>
strata_status State(const H* h, size_t block, strata_block_state* out, std::string_view fn) {
  if (strata_status s = CheckBlock(h, block, fn)) return s;
  if (out == nullptr) return Fail(STRATA_ERR_INVALID_ARGUMENT, fn, "out is NULL");
  *out = static_cast<strata_block_state>(h->handle.state(block));
  return STRATA_OK;
}

template <class H>
strata_status BlockError(const H* h, size_t block, strata_status* code, const char** message,
                         std::string_view fn) {
  if (strata_status s = CheckBlock(h, block, fn)) return s;
  strata_status c = STRATA_OK;
  const char* m = h->errors.Get(h->handle, block, &c);
  if (code != nullptr) *code = c;
  if (message != nullptr) *message = m;
  return STRATA_OK;
}

template <class H>
strata_status CancelTransfer(const H* h, std::string_view fn) {
  if (strata_status s = CheckHandle(h, fn, "handle")) return s;
  h->handle.Cancel();
  return STRATA_OK;
}

}  // namespace
}  // namespace strata::capi

using namespace strata::capi;  // NOLINT: this file is the C API's implementation

extern "C" {

strata_status strata_manager_load(strata_manager* manager, const strata_match* match,
                                  size_t first_block, const uint32_t* device_blocks,
                                  size_t num_blocks, strata_load** out) {
  constexpr std::string_view fn = "strata_manager_load";
  return Guard(fn, [&] {
    if (strata_status s = CheckMatchOp(manager, match, device_blocks, num_blocks, out, fn))
      return s;
    auto h = manager->manager->Load(
        match->result, std::span<const uint32_t>(device_blocks, num_blocks), first_block);
    if (!h.ok()) return Fail(h.status(), fn);
    *out = NewHandle<strata_load>(std::move(*h));
    return STRATA_OK;
  });
}

strata_status strata_manager_store(strata_manager* manager, const strata_request* request,
                                   const int32_t* tokens, size_t num_tokens, size_t first_block,
                                   const uint32_t* device_blocks, size_t num_blocks,
                                   strata_store** out) {
  constexpr std::string_view fn = "strata_manager_store";
  return Guard(fn, [&] {
    if (strata_status s = CheckHandle(manager, fn, "manager")) return s;
    if (out == nullptr) return Fail(STRATA_ERR_INVALID_ARGUMENT, fn, "out is NULL");
    strata::RequestContext ctx;
    std::vector<strata::BlockKey> keys;
    if (strata_status s = KeysOf(manager, request, tokens, num_tokens, fn, &ctx, &keys)) return s;
    if (strata_status s = CheckBlocks(device_blocks, num_blocks, fn)) return s;
    if (strata_status s = CheckRange(first_block, num_blocks, keys.size(), "prompt's full", fn))
      return s;
    return StartStore(manager, ctx,
                      std::span<const strata::BlockKey>(keys).subspan(first_block, num_blocks),
                      device_blocks, fn, out);
  });
}

strata_status strata_manager_store_from_match(strata_manager* manager, const strata_match* match,
                                              size_t first_block, const uint32_t* device_blocks,
                                              size_t num_blocks, strata_store** out) {
  constexpr std::string_view fn = "strata_manager_store_from_match";
  return Guard(fn, [&] {
    if (strata_status s = CheckMatchOp(manager, match, device_blocks, num_blocks, out, fn))
      return s;
    const std::vector<strata::BlockKey>& keys = match->result.keys;
    if (strata_status s = CheckRange(first_block, num_blocks, keys.size(), "prompt's full", fn))
      return s;
    return StartStore(manager, match->context,
                      std::span<const strata::BlockKey>(keys).subspan(first_block, num_blocks),
                      device_blocks, fn, out);
  });
}

#define STRATA_TRANSFER_QUERIES(kind)                                                              \
  strata_status strata_##kind##_num_blocks(const strata_##kind* h, size_t* out) {                  \
    return Guard("strata_" #kind "_num_blocks",                                                    \
                 [&] { return NumBlocks(h, out, "strata_" #kind "_num_blocks"); });                \
  }                                                                                                \
  strata_status strata_##kind##_done(const strata_##kind* h, int* done) {                          \
    return Guard("strata_" #kind "_done", [&] { return Done(h, done, "strata_" #kind "_done"); }); \
  }                                                                                                \
  strata_status strata_##kind##_wait(const strata_##kind* h, int64_t timeout_ms) {                 \
    return Guard("strata_" #kind "_wait",                                                          \
                 [&] { return Wait(h, timeout_ms, "strata_" #kind "_wait"); });                    \
  }                                                                                                \
  strata_status strata_##kind##_block_state(const strata_##kind* h, size_t block,                  \
                                            strata_block_state* out) {                             \
    return Guard("strata_" #kind "_block_state",                                                   \
                 [&] { return State(h, block, out, "strata_" #kind "_block_state"); });            \
  }                                                                                                \
  strata_status strata_##kind##_block_error(const strata_##kind* h, size_t block,                  \
                                            strata_status* code, const char** message) {           \
    return Guard("strata_" #kind "_block_error", [&] {                                             \
      return BlockError(h, block, code, message, "strata_" #kind "_block_error");                  \
    });                                                                                            \
  }                                                                                                \
  strata_status strata_##kind##_cancel(const strata_##kind* h) {                                   \
    return Guard("strata_" #kind "_cancel",                                                        \
                 [&] { return CancelTransfer(h, "strata_" #kind "_cancel"); });                    \
  }                                                                                                \
  strata_status strata_##kind##_destroy(strata_##kind* h) {                                        \
    return Guard("strata_" #kind "_destroy",                                                       \
                 [&] { return DestroyHandle(h, "strata_" #kind "_destroy"); });                    \
  }

STRATA_TRANSFER_QUERIES(load)
STRATA_TRANSFER_QUERIES(store)
#undef STRATA_TRANSFER_QUERIES

strata_status strata_load_usable_blocks(const strata_load* load, size_t* out) {
  constexpr std::string_view fn = "strata_load_usable_blocks";
  return Guard(fn, [&] {
    if (strata_status s = CheckHandle(load, fn, "load")) return s;
    if (out == nullptr) return Fail(STRATA_ERR_INVALID_ARGUMENT, fn, "out is NULL");
    *out = load->handle.usable_blocks();
    return STRATA_OK;
  });
}

strata_status strata_load_usable_tokens(const strata_load* load, size_t* out) {
  constexpr std::string_view fn = "strata_load_usable_tokens";
  return Guard(fn, [&] {
    if (strata_status s = CheckHandle(load, fn, "load")) return s;
    if (out == nullptr) return Fail(STRATA_ERR_INVALID_ARGUMENT, fn, "out is NULL");
    *out = load->handle.usable_tokens();
    return STRATA_OK;
  });
}

}  // extern "C"
