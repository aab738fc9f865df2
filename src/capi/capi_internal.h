// Shared pieces of the C API (strata/strata.h): the handle structs, the registry of live
// handles, the per-thread last error and the exception barrier every entry point runs in.
// The C API is a thin layer: every operation is a call on strata::BlockManager.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "strata/block_manager.h"
#include "strata/status.h"
#include "strata/strata.h"

namespace strata::metrics {
class StrataMetrics;
}

struct strata_manager {
  std::unique_ptr<strata::BlockManager> manager;
  std::shared_ptr<strata::metrics::StrataMetrics> metrics;
  ~strata_manager();
};

struct strata_match {
  const strata_manager* owner = nullptr;
  strata::RequestContext context;
  strata::MatchResult result;
};

namespace strata::capi {

// Per-block error messages of a load or store, kept so that the const char* handed out
// stays valid until the handle is destroyed. A block's entry is filled once its state is
// final (and never changes after).
class BlockErrors {
 public:
  explicit BlockErrors(size_t n) : entries_(n) {}
  // Block i's error code and message (a final state's error), or OK and "" while pending.
  const char* Get(const TransferHandle& handle, size_t i, strata_status* code);

 private:
  struct Entry {
    bool filled = false;
    strata_status code = STRATA_OK;
    std::string message;
  };
  std::mutex mu_;
  std::vector<Entry> entries_;
};

}  // namespace strata::capi

struct strata_load {
  strata::LoadHandle handle;
  mutable strata::capi::BlockErrors errors;  // a cache of messages, filled by queries
  explicit strata_load(strata::LoadHandle h) : handle(std::move(h)), errors(handle.num_blocks()) {}
};

struct strata_store {
  strata::StoreHandle handle;
  mutable strata::capi::BlockErrors errors;  // a cache of messages, filled by queries
  explicit strata_store(strata::StoreHandle h)
      : handle(std::move(h)), errors(handle.num_blocks()) {}
};

namespace strata::capi {

enum class HandleKind : uint8_t { kManager, kMatch, kLoad, kStore };
std::string_view HandleKindName(HandleKind kind);  // "strata_manager", ...

template <class T>
constexpr HandleKind KindOf();
template <>
constexpr HandleKind KindOf<strata_manager>() {
  return HandleKind::kManager;
}
template <>
constexpr HandleKind KindOf<strata_match>() {
  return HandleKind::kMatch;
}
template <>
constexpr HandleKind KindOf<strata_load>() {
  return HandleKind::kLoad;
}
template <>
constexpr HandleKind KindOf<strata_store>() {
  return HandleKind::kStore;
}

// The process-wide set of live handles: a pointer is checked against it before it is
// dereferenced, so NULL, destroyed and mistyped handles are reported instead of crashing.
void RegisterHandle(const void* handle, HandleKind kind);
// False when `handle` was not live with this kind (nothing is removed then).
bool UnregisterHandle(const void* handle, HandleKind kind);
bool IsLiveHandle(const void* handle, HandleKind kind);

// Records the error for strata_last_error() and returns its code.
strata_status Fail(strata_status code, std::string_view function, std::string_view message);
strata_status Fail(const Status& status, std::string_view function);
strata_status CodeOf(StatusCode code);

// INVALID_HANDLE (recorded) unless `handle` is a live handle of type T.
template <class T>
strata_status CheckHandle(const T* handle, std::string_view function, std::string_view param) {
  if (handle == nullptr)
    return Fail(STRATA_ERR_INVALID_HANDLE, function, std::string(param) + " is NULL");
  if (!IsLiveHandle(handle, KindOf<T>()))
    return Fail(STRATA_ERR_INVALID_HANDLE, function,
                std::string(param) + " is not a live " + std::string(HandleKindName(KindOf<T>())) +
                    " (destroyed, never created, or a handle of another type)");
  return STRATA_OK;
}

// Creates a handle owned by the caller: registered, written to *out.
template <class T, class... Args>
T* NewHandle(Args&&... args) {
  auto h = std::make_unique<T>(std::forward<Args>(args)...);
  RegisterHandle(h.get(), KindOf<T>());
  return h.release();
}

// Unregisters and frees a handle; NULL is fine, anything else not live is INVALID_HANDLE.
template <class T>
strata_status DestroyHandle(T* handle, std::string_view function) {
  if (handle == nullptr) return STRATA_OK;
  if (!UnregisterHandle(handle, KindOf<T>())) return CheckHandle(handle, function, "handle");
  delete handle;
  return STRATA_OK;
}

// Runs `body` (returning strata_status) and turns any exception into an error: nothing
// thrown inside Strata may cross into C.
template <class F>
strata_status Guard(std::string_view function, F&& body) noexcept {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return Fail(STRATA_ERR_RESOURCE_EXHAUSTED, function, "out of memory");
  } catch (const std::exception& e) {
    return Fail(STRATA_ERR_INTERNAL, function, std::string("unexpected exception: ") + e.what());
  } catch (...) {
    return Fail(STRATA_ERR_INTERNAL, function, "unexpected exception");
  }
}

// Reads a strata_request (INVALID_ARGUMENT, recorded, when malformed).
strata_status ToContext(const strata_request* in, std::string_view fn, RequestContext* out);
// The keys of the prompt's full blocks in the request's namespace.
strata_status KeysOf(const strata_manager* m, const strata_request* request, const int32_t* tokens,
                     size_t num_tokens, std::string_view fn, RequestContext* ctx,
                     std::vector<BlockKey>* keys);

// InvalidArgument unless a caller's struct `what` is at least `min_size` bytes.
Status StructSize(uint32_t struct_size, size_t min_size, std::string_view what);

}  // namespace strata::capi
