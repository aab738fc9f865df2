// C API: the manager — configuration, device cache, match, requests, stats and metrics.
#include <cstddef>
#include <cstring>
#include <span>

#include <fmt/format.h>

#include "capi/capi_internal.h"
#include "metrics/strata_metrics.h"
#include "strata/config.h"

using strata::capi::CheckHandle;
using strata::capi::Fail;
using strata::capi::Guard;

strata_manager::~strata_manager() {
  // The metrics stop reading the manager (waiting out a render in flight) before it goes.
  if (metrics) metrics->AttachBlockManager(nullptr);
  manager.reset();
}

namespace strata::capi {
namespace {

strata_status CreateManager(std::string_view fn, Result<StrataConfig> config,
                            strata_manager** out) {
  if (!config.ok()) return Fail(config.status(), fn);
  auto metrics = metrics::StrataMetrics::Create();
  if (!metrics.ok()) return Fail(metrics.status(), fn);
  BlockManagerOptions options = config->manager;
  options.observer = *metrics;
  auto manager = BlockManager::Create(options);
  if (!manager.ok()) return Fail(manager.status(), fn);
  strata_manager* m = NewHandle<strata_manager>();
  m->manager = std::move(*manager);
  m->metrics = std::move(*metrics);
  m->metrics->AttachBlockManager(m->manager.get());
  *out = m;
  return STRATA_OK;
}

EnvLookup EnvFor(uint32_t flags) {
  return (flags & STRATA_CONFIG_IGNORE_ENV) != 0 ? FixedEnv({}) : ProcessEnv();
}

strata_status CheckFlags(uint32_t flags, std::string_view fn) {
  if ((flags & ~uint32_t{STRATA_CONFIG_IGNORE_ENV}) != 0)
    return Fail(STRATA_ERR_INVALID_ARGUMENT, fn, fmt::format("unknown flags 0x{:x}", flags));
  return STRATA_OK;
}

// Reads the enum field `value` of a C struct: InvalidArgument when out of range.
template <class E>
Status ToEnum(uint32_t value, uint32_t max, std::string_view field, E* out) {
  if (value > max)
    return Status::InvalidArgument(
        fmt::format("{} is {}, not a known value (0..{})", field, value, max));
  *out = static_cast<E>(value);
  return Status::Ok();
}

Status ToLayout(const strata_kv_layout& in, KvLayout* out) {
  STRATA_RETURN_IF_ERROR(StructSize(in.struct_size, sizeof in, "strata_kv_layout"));
  KvLayout l;
  l.num_layers = in.num_layers;
  l.num_kv_heads = in.num_kv_heads;
  l.head_dim = in.head_dim;
  l.tokens_per_block = in.tokens_per_block;
  STRATA_RETURN_IF_ERROR(ToEnum(in.kv_format, STRATA_KV_LATENT, "layout.kv_format", &l.format));
  STRATA_RETURN_IF_ERROR(ToEnum(in.dtype, STRATA_DTYPE_FP8_E5M2, "layout.dtype", &l.dtype));
  STRATA_RETURN_IF_ERROR(
      ToEnum(in.chunk_order, STRATA_CHUNK_HND, "layout.chunk_order", &l.chunk_order));
  *out = l;
  return Status::Ok();
}

Status ToDeviceCache(const strata_device_cache& in, DeviceCache* out) {
  STRATA_RETURN_IF_ERROR(StructSize(in.struct_size, sizeof in, "strata_device_cache"));
  DeviceCache dc;
  STRATA_RETURN_IF_ERROR(ToEnum(in.memory_kind, STRATA_MEMORY_CUDA, "memory_kind", &dc.kind));
  LayerSeparateView& v = dc.view;
  STRATA_RETURN_IF_ERROR(ToLayout(in.layout, &v.layout));
  STRATA_RETURN_IF_ERROR(ToEnum(in.device_order, STRATA_ORDER_KV_MAJOR, "device_order", &v.order));
  if (in.num_layers != in.layout.num_layers)
    return Status::InvalidArgument(fmt::format("num_layers is {} but layout.num_layers is {}",
                                               in.num_layers, in.layout.num_layers));
  if (in.layer_base == nullptr && in.num_layers > 0)
    return Status::InvalidArgument("layer_base is NULL");
  v.num_blocks = in.num_blocks;
  for (uint32_t l = 0; l < in.num_layers; ++l)
    v.layer_base.push_back(static_cast<std::byte*>(in.layer_base[l]));
  v.block_stride_bytes = in.block_stride_bytes;
  v.component_stride_bytes = in.component_stride_bytes;
  *out = std::move(dc);
  return Status::Ok();
}

void FromLayout(const KvLayout& l, strata_kv_layout* out) {
  strata_kv_layout_init(out);
  out->num_layers = l.num_layers;
  out->kv_format = static_cast<uint32_t>(l.format);
  out->num_kv_heads = l.num_kv_heads;
  out->head_dim = l.head_dim;
  out->dtype = static_cast<uint32_t>(l.dtype);
  out->tokens_per_block = l.tokens_per_block;
  out->chunk_order = static_cast<uint32_t>(l.chunk_order);
}

strata_status CheckArray(const void* data, size_t n, std::string_view fn, std::string_view name) {
  if (data == nullptr && n > 0)
    return Fail(STRATA_ERR_INVALID_ARGUMENT, fn,
                fmt::format("{} is NULL but its count is {}", name, n));
  return STRATA_OK;
}

strata_status CheckOut(const void* out, std::string_view fn) {
  if (out == nullptr) return Fail(STRATA_ERR_INVALID_ARGUMENT, fn, "out is NULL");
  return STRATA_OK;
}

// Every field of BlockManagerStats (strata.h's struct has one of each; bools become 0/1).
void FillStats(const BlockManagerStats& in, strata_stats* out) {
#define STRATA_COPY(name) out->name = static_cast<uint64_t>(in.name);
  STRATA_BLOCK_MANAGER_STATS(STRATA_COPY)
#undef STRATA_COPY
}

}  // namespace

strata_status ToContext(const strata_request* in, std::string_view fn, RequestContext* out) {
  if (in == nullptr) return Fail(STRATA_ERR_INVALID_ARGUMENT, fn, "request is NULL");
  if (Status s = StructSize(in->struct_size, sizeof *in, "strata_request"); !s.ok())
    return Fail(s, fn);
  if (in->request_id == nullptr || in->request_id[0] == '\0')
    return Fail(STRATA_ERR_INVALID_ARGUMENT, fn, "request->request_id is NULL or empty");
  out->request_id = in->request_id;
  out->cache_salt = in->cache_salt != nullptr ? in->cache_salt : "";
  out->lora_id = in->lora_id != nullptr ? in->lora_id : "";
  return STRATA_OK;
}

strata_status KeysOf(const strata_manager* m, const strata_request* request, const int32_t* tokens,
                     size_t num_tokens, std::string_view fn, RequestContext* ctx,
                     std::vector<BlockKey>* keys) {
  if (strata_status s = ToContext(request, fn, ctx)) return s;
  if (strata_status s = CheckArray(tokens, num_tokens, fn, "tokens")) return s;
  auto k = m->manager->ComputeKeys(std::span<const TokenId>(tokens, num_tokens), *ctx);
  if (!k.ok()) return Fail(k.status(), fn);
  *keys = std::move(*k);
  return STRATA_OK;
}

}  // namespace strata::capi

using namespace strata::capi;  // NOLINT: this file is the C API's implementation

extern "C" {

strata_status strata_manager_create_from_toml(const char* toml, uint32_t flags,
                                              strata_manager** out) {
  constexpr std::string_view fn = "strata_manager_create_from_toml";
  return Guard(fn, [&] {
    if (strata_status s = CheckOut(out, fn)) return s;
    if (strata_status s = CheckFlags(flags, fn)) return s;
    return CreateManager(
        fn, strata::LoadConfigFromString(toml != nullptr ? toml : "", EnvFor(flags)), out);
  });
}

strata_status strata_manager_create_from_file(const char* path, uint32_t flags,
                                              strata_manager** out) {
  constexpr std::string_view fn = "strata_manager_create_from_file";
  return Guard(fn, [&] {
    if (strata_status s = CheckOut(out, fn)) return s;
    if (strata_status s = CheckFlags(flags, fn)) return s;
    return CreateManager(fn, strata::LoadConfig(path != nullptr ? path : "", EnvFor(flags)), out);
  });
}

strata_status strata_manager_destroy(strata_manager* manager) {
  return Guard("strata_manager_destroy",
               [&] { return DestroyHandle(manager, "strata_manager_destroy"); });
}

strata_status strata_manager_layout(const strata_manager* manager, strata_kv_layout* out) {
  constexpr std::string_view fn = "strata_manager_layout";
  return Guard(fn, [&] {
    if (strata_status s = CheckHandle(manager, fn, "manager")) return s;
    if (strata_status s = CheckOut(out, fn)) return s;
    FromLayout(manager->manager->options().layout, out);
    return STRATA_OK;
  });
}

uint64_t strata_kv_layout_block_bytes(const strata_kv_layout* layout) {
  strata::KvLayout l;
  if (layout == nullptr || !ToLayout(*layout, &l).ok() || !l.Validate().ok()) return 0;
  return l.block_bytes();
}

strata_status strata_manager_register_device_cache(strata_manager* manager,
                                                   const strata_device_cache* cache) {
  constexpr std::string_view fn = "strata_manager_register_device_cache";
  return Guard(fn, [&] {
    if (strata_status s = CheckHandle(manager, fn, "manager")) return s;
    if (cache == nullptr) return Fail(STRATA_ERR_INVALID_ARGUMENT, fn, "cache is NULL");
    strata::DeviceCache dc;
    if (strata::Status s = ToDeviceCache(*cache, &dc); !s.ok()) return Fail(s, fn);
    if (strata::Status s = manager->manager->RegisterDeviceCache(dc); !s.ok()) return Fail(s, fn);
    return STRATA_OK;
  });
}

strata_status strata_manager_match(strata_manager* manager, const strata_request* request,
                                   const int32_t* tokens, size_t num_tokens, strata_match** out) {
  constexpr std::string_view fn = "strata_manager_match";
  return Guard(fn, [&] {
    if (strata_status s = CheckHandle(manager, fn, "manager")) return s;
    if (strata_status s = CheckOut(out, fn)) return s;
    strata::RequestContext ctx;
    if (strata_status s = ToContext(request, fn, &ctx)) return s;
    if (strata_status s = CheckArray(tokens, num_tokens, fn, "tokens")) return s;
    auto r = manager->manager->Match(std::span<const strata::TokenId>(tokens, num_tokens), ctx);
    if (!r.ok()) return Fail(r.status(), fn);
    strata_match* m = NewHandle<strata_match>();
    m->owner = manager;
    m->context = std::move(ctx);
    m->result = std::move(*r);
    *out = m;
    return STRATA_OK;
  });
}

strata_status strata_match_get_info(const strata_match* match, strata_match_info* info) {
  constexpr std::string_view fn = "strata_match_get_info";
  return Guard(fn, [&] {
    if (strata_status s = CheckHandle(match, fn, "match")) return s;
    if (info == nullptr) return Fail(STRATA_ERR_INVALID_ARGUMENT, fn, "info is NULL");
    if (strata::Status s = StructSize(info->struct_size, sizeof *info, "strata_match_info");
        !s.ok())
      return Fail(s, fn);
    const strata::MatchResult& r = match->result;
    info->num_prompt_tokens = r.num_prompt_tokens;
    info->num_prompt_blocks = r.keys.size();
    info->num_matched_tokens = r.num_matched_tokens;
    info->num_matched_blocks = r.num_matched_blocks();
    return STRATA_OK;
  });
}

strata_status strata_match_tiers(const strata_match* match, uint8_t* tiers, size_t capacity) {
  constexpr std::string_view fn = "strata_match_tiers";
  return Guard(fn, [&] {
    if (strata_status s = CheckHandle(match, fn, "match")) return s;
    const std::vector<strata::Tier>& t = match->result.tiers;
    if (capacity < t.size())
      return Fail(STRATA_ERR_BUFFER_TOO_SMALL, fn,
                  fmt::format("{} matched blocks, room for {}", t.size(), capacity));
    if (strata_status s = CheckArray(tiers, t.size(), fn, "tiers")) return s;
    for (size_t i = 0; i < t.size(); ++i) tiers[i] = static_cast<uint8_t>(t[i]);
    return STRATA_OK;
  });
}

strata_status strata_match_destroy(strata_match* match) {
  return Guard("strata_match_destroy",
               [&] { return DestroyHandle(match, "strata_match_destroy"); });
}

strata_status strata_manager_release(strata_manager* manager, const char* request_id) {
  constexpr std::string_view fn = "strata_manager_release";
  return Guard(fn, [&] {
    if (strata_status s = CheckHandle(manager, fn, "manager")) return s;
    if (request_id == nullptr) return Fail(STRATA_ERR_INVALID_ARGUMENT, fn, "request_id is NULL");
    manager->manager->Release(request_id);
    return STRATA_OK;
  });
}

strata_status strata_manager_cancel(strata_manager* manager, const char* request_id) {
  constexpr std::string_view fn = "strata_manager_cancel";
  return Guard(fn, [&] {
    if (strata_status s = CheckHandle(manager, fn, "manager")) return s;
    if (request_id == nullptr) return Fail(STRATA_ERR_INVALID_ARGUMENT, fn, "request_id is NULL");
    manager->manager->Cancel(request_id);
    return STRATA_OK;
  });
}

namespace {
strata_status PinOrUnpin(strata_manager* manager, const strata_request* request,
                         const int32_t* tokens, size_t num_tokens, bool pin) {
  const std::string_view fn = pin ? "strata_manager_pin" : "strata_manager_unpin";
  return Guard(fn, [&] {
    if (strata_status s = CheckHandle(manager, fn, "manager")) return s;
    strata::RequestContext ctx;
    std::vector<strata::BlockKey> keys;
    if (strata_status s = KeysOf(manager, request, tokens, num_tokens, fn, &ctx, &keys)) return s;
    strata::Status s = pin ? manager->manager->Pin(keys) : manager->manager->Unpin(keys);
    return s.ok() ? STRATA_OK : Fail(s, fn);
  });
}
}  // namespace

strata_status strata_manager_pin(strata_manager* manager, const strata_request* request,
                                 const int32_t* tokens, size_t num_tokens) {
  return PinOrUnpin(manager, request, tokens, num_tokens, true);
}

strata_status strata_manager_unpin(strata_manager* manager, const strata_request* request,
                                   const int32_t* tokens, size_t num_tokens) {
  return PinOrUnpin(manager, request, tokens, num_tokens, false);
}

strata_status strata_manager_flush_disk(strata_manager* manager) {
  constexpr std::string_view fn = "strata_manager_flush_disk";
  return Guard(fn, [&] {
    if (strata_status s = CheckHandle(manager, fn, "manager")) return s;
    strata::Status s = manager->manager->FlushDisk();
    return s.ok() ? STRATA_OK : Fail(s, fn);
  });
}

strata_status strata_manager_stats(const strata_manager* manager, strata_stats* stats) {
  constexpr std::string_view fn = "strata_manager_stats";
  return Guard(fn, [&] {
    if (strata_status s = CheckHandle(manager, fn, "manager")) return s;
    if (stats == nullptr) return Fail(STRATA_ERR_INVALID_ARGUMENT, fn, "stats is NULL");
    // Version 1 of the struct is every field up to shared_bytes_read; later versions only
    // append, and an older caller's smaller struct gets the fields it knows.
    if (strata::Status s = StructSize(stats->struct_size, sizeof *stats, "strata_stats"); !s.ok())
      return Fail(s, fn);
    strata_stats out;
    strata_stats_init(&out);
    FillStats(manager->manager->stats(), &out);
    // A newer caller's larger struct keeps its struct_size and the fields this library
    // does not know of.
    constexpr size_t kHeader = offsetof(strata_stats, match_calls);
    std::memcpy(reinterpret_cast<char*>(stats) + kHeader,
                reinterpret_cast<const char*>(&out) + kHeader, sizeof out - kHeader);
    return STRATA_OK;
  });
}

strata_status strata_manager_metrics_text(const strata_manager* manager, char* buf, size_t capacity,
                                          size_t* length) {
  constexpr std::string_view fn = "strata_manager_metrics_text";
  return Guard(fn, [&] {
    if (strata_status s = CheckHandle(manager, fn, "manager")) return s;
    if (length == nullptr) return Fail(STRATA_ERR_INVALID_ARGUMENT, fn, "length is NULL");
    if (strata_status s = CheckArray(buf, capacity, fn, "buf")) return s;
    const std::string text = manager->metrics->Render();
    *length = text.size();
    if (capacity <= text.size())
      return Fail(STRATA_ERR_BUFFER_TOO_SMALL, fn,
                  fmt::format("the text is {} bytes plus a NUL, the buffer holds {}", text.size(),
                              capacity));
    std::memcpy(buf, text.data(), text.size());
    buf[text.size()] = '\0';
    return STRATA_OK;
  });
}

}  // extern "C"
