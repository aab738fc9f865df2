// The C API's ground floor: live-handle registry, per-thread last error, status names,
// version, struct initialisers.
#include <cstring>
#include <unordered_map>

#include <fmt/format.h>

#include "capi/capi_internal.h"
#include "strata/version.h"

namespace strata::capi {
namespace {

// Never destroyed: handles may be destroyed from atexit handlers or static destructors of
// the engine, after this translation unit's statics would be gone.
struct Registry {
  std::mutex mu;
  std::unordered_map<const void*, HandleKind> live;
};
Registry& TheRegistry() {
  static Registry* registry = new Registry;
  return *registry;
}

thread_local std::string last_error;

static_assert(static_cast<int>(StatusCode::kInternal) == STRATA_ERR_INTERNAL);
static_assert(static_cast<int>(StatusCode::kTimedOut) == STRATA_ERR_TIMED_OUT);
static_assert(static_cast<int>(BlockState::kCancelled) == STRATA_BLOCK_CANCELLED);
static_assert(static_cast<int>(BlockState::kDone) == STRATA_BLOCK_DONE);
static_assert(static_cast<int>(Tier::kShared) == STRATA_TIER_SHARED);

}  // namespace

std::string_view HandleKindName(HandleKind kind) {
  switch (kind) {
    case HandleKind::kManager:
      return "strata_manager";
    case HandleKind::kMatch:
      return "strata_match";
    case HandleKind::kLoad:
      return "strata_load";
    case HandleKind::kStore:
      return "strata_store";
  }
  return "handle";
}

void RegisterHandle(const void* handle, HandleKind kind) {
  Registry& r = TheRegistry();
  std::lock_guard lock(r.mu);
  r.live[handle] = kind;
}

bool UnregisterHandle(const void* handle, HandleKind kind) {
  Registry& r = TheRegistry();
  std::lock_guard lock(r.mu);
  auto it = r.live.find(handle);
  if (it == r.live.end() || it->second != kind) return false;
  r.live.erase(it);
  return true;
}

bool IsLiveHandle(const void* handle, HandleKind kind) {
  Registry& r = TheRegistry();
  std::lock_guard lock(r.mu);
  auto it = r.live.find(handle);
  return it != r.live.end() && it->second == kind;
}

strata_status CodeOf(StatusCode code) {
  return static_cast<strata_status>(code);
}

strata_status Fail(strata_status code, std::string_view function, std::string_view message) {
  try {
    last_error = fmt::format("{}: {}", function, message);
  } catch (...) {
    last_error.clear();  // out of memory: the code still tells what happened
  }
  return code;
}

strata_status Fail(const Status& status, std::string_view function) {
  return Fail(CodeOf(status.code()), function, status.message());
}

Status StructSize(uint32_t struct_size, size_t min_size, std::string_view what) {
  if (struct_size >= min_size) return Status::Ok();
  return Status::InvalidArgument(
      fmt::format("{}.struct_size is {}, expected at least {} (initialise it with {}_init or "
                  "set it to sizeof({}))",
                  what, struct_size, min_size, what, what));
}

const char* BlockErrors::Get(const TransferHandle& handle, size_t i, strata_status* code) {
  std::lock_guard lock(mu_);
  Entry& e = entries_[i];
  if (!e.filled) {
    if (handle.state(i) == BlockState::kPending) {
      *code = STRATA_OK;
      return "";
    }
    const Status s = handle.error(i);
    e.code = CodeOf(s.code());
    e.message = s.ok() ? std::string() : s.ToString();
    e.filled = true;
  }
  *code = e.code;
  return e.message.c_str();
}

}  // namespace strata::capi

using strata::capi::Guard;

extern "C" {

const char* strata_status_name(strata_status status) {
  switch (status) {
    case STRATA_OK:
      return "ok";
    case STRATA_ERR_INVALID_HANDLE:
      return "invalid_handle";
    case STRATA_ERR_BUFFER_TOO_SMALL:
      return "buffer_too_small";
    default:
      break;
  }
  if (status > STRATA_OK && status <= STRATA_ERR_INTERNAL) {
    // StatusCodeName returns views of string literals: NUL-terminated, static.
    return strata::StatusCodeName(static_cast<strata::StatusCode>(status)).data();
  }
  return "unknown";
}

const char* strata_last_error(void) {
  return strata::capi::last_error.c_str();
}

const char* strata_version(void) {
  return STRATA_VERSION_STRING;
}
uint32_t strata_version_number(void) {
  return STRATA_VERSION_NUMBER;
}

void strata_kv_layout_init(strata_kv_layout* layout) {
  if (layout == nullptr) return;
  std::memset(layout, 0, sizeof *layout);
  layout->struct_size = sizeof *layout;
}

void strata_device_cache_init(strata_device_cache* cache) {
  if (cache == nullptr) return;
  std::memset(cache, 0, sizeof *cache);
  cache->struct_size = sizeof *cache;
  cache->layout.struct_size = sizeof cache->layout;
}

void strata_request_init(strata_request* request) {
  if (request == nullptr) return;
  std::memset(request, 0, sizeof *request);
  request->struct_size = sizeof *request;
}

void strata_match_info_init(strata_match_info* info) {
  if (info == nullptr) return;
  std::memset(info, 0, sizeof *info);
  info->struct_size = sizeof *info;
}

void strata_stats_init(strata_stats* stats) {
  if (stats == nullptr) return;
  std::memset(stats, 0, sizeof *stats);
  stats->struct_size = sizeof *stats;
}

}  // extern "C"
