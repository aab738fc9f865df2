// An engine loop in C++ over the installed Strata (find_package(Strata) -> Strata::strata),
// through the public C++ API (strata/block_manager.h) — the same BlockManager the C API wraps.
//
// The "engine" keeps a KV-major paged cache in host memory ([K|V][block][chunk] per layer,
// the vLLM/FlashAttention order). Request 1 prefills a prompt and stores its full blocks;
// request 2 sends the same prompt with a longer tail, matches the cached prefix, loads it
// into other device blocks and checks every byte against what prefill computed.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include <strata/block_manager.h>
#include <strata/config.h>
#include <strata/version.h>

namespace {

constexpr uint32_t kBlocks = 64;

constexpr const char* kConfig = R"(
[model]
fingerprint = "example-cpp-engine"
[layout]
num_layers = 3
num_kv_heads = 4
head_dim = 16
dtype = "fp16"
tokens_per_block = 8
[host]
capacity_gb = 0.01
huge_pages = false
prefault = false
[disk]
capacity_gb = 0
)";

// Stand-in for attention: the KV of (layer, component, prompt block), a function of the
// tokens up to the end of that block.
void ComputeKv(std::byte* out, size_t bytes, const std::vector<strata::TokenId>& tokens,
               size_t block, size_t tokens_per_block, uint32_t layer, uint32_t component) {
  uint32_t h = 2166136261u ^ (layer * 31 + component);
  for (size_t i = 0; i < (block + 1) * tokens_per_block; ++i)
    h = (h ^ static_cast<uint32_t>(tokens[i])) * 16777619u;
  for (size_t i = 0; i < bytes; ++i) {
    h = h * 1103515245u + 12345u;
    out[i] = static_cast<std::byte>(h >> 16);
  }
}

int Fail(const char* what, const strata::Status& s) {
  std::fprintf(stderr, "%s: %s\n", what, s.ToString().c_str());
  return 1;
}

}  // namespace

int main() {
  std::printf("Strata C++ example, headers %s\n", STRATA_VERSION_STRING);
  auto config = strata::LoadConfigFromString(kConfig, strata::FixedEnv({}));
  if (!config.ok()) return Fail("config", config.status());
  auto created = strata::BlockManager::Create(config->manager);
  if (!created.ok()) return Fail("create", created.status());
  std::unique_ptr<strata::BlockManager> manager = std::move(*created);
  const strata::KvLayout& layout = manager->options().layout;

  // The device cache, KV-major: one tensor per layer.
  strata::DeviceCache cache;
  cache.kind = strata::DeviceMemoryKind::kHostEmulated;
  cache.view.layout = layout;
  cache.view.order = strata::DeviceOrder::kKvMajor;
  cache.view.num_blocks = kBlocks;
  std::vector<std::vector<std::byte>> tensors(layout.num_layers);
  for (auto& t : tensors) {
    t.resize(layout.layer_block_bytes() * kBlocks);
    cache.view.layer_base.push_back(t.data());
  }
  if (auto s = manager->RegisterDeviceCache(cache); !s.ok()) return Fail("register", s);

  std::vector<strata::TokenId> prompt;
  for (int i = 0; i < 50; ++i) prompt.push_back(500 + 3 * i);  // 6 full blocks of 8
  const size_t tpb = layout.tokens_per_block;
  const size_t full = prompt.size() / tpb;
  const size_t chunk = layout.chunk_bytes();

  // Request 1: prefill into device blocks 3..8, store them under the prompt's keys.
  strata::RequestContext r1;
  r1.request_id = "request-1";
  auto keys = manager->ComputeKeys(prompt, r1);
  if (!keys.ok()) return Fail("keys", keys.status());
  std::vector<uint32_t> prefill;
  for (size_t b = 0; b < full; ++b) {
    prefill.push_back(static_cast<uint32_t>(3 + b));
    for (uint32_t l = 0; l < layout.num_layers; ++l)
      for (uint32_t c = 0; c < layout.num_components(); ++c)
        ComputeKv(cache.view.chunk(l, c, prefill.back()), chunk, prompt, b, tpb, l, c);
  }
  auto store = manager->Store(r1, *keys, prefill);
  if (!store.ok()) return Fail("store", store.status());
  if (auto s = store->Wait(std::chrono::seconds(10)); !s.ok()) return Fail("store wait", s);
  manager->Release(r1.request_id);

  // Request 2: the prompt plus a new question; reuse the cached prefix in blocks 30...
  std::vector<strata::TokenId> prompt2 = prompt;
  for (int i = 0; i < 20; ++i) prompt2.push_back(9000 + i);
  strata::RequestContext r2;
  r2.request_id = "request-2";
  auto match = manager->Match(prompt2, r2);
  if (!match.ok()) return Fail("match", match.status());
  std::printf("request-2: %zu of %zu tokens cached\n", match->num_matched_tokens, prompt2.size());
  std::vector<uint32_t> reuse;
  for (size_t b = 0; b < match->num_matched_blocks(); ++b)
    reuse.push_back(static_cast<uint32_t>(30 + b));
  auto load = manager->Load(*match, reuse);
  if (!load.ok()) return Fail("load", load.status());
  if (auto s = load->Wait(std::chrono::seconds(10)); !s.ok()) return Fail("load wait", s);
  const size_t usable = load->usable_blocks();
  manager->Release(r2.request_id);

  size_t mismatches = 0;
  std::vector<std::byte> expect(chunk);
  for (size_t b = 0; b < usable; ++b)
    for (uint32_t l = 0; l < layout.num_layers; ++l)
      for (uint32_t c = 0; c < layout.num_components(); ++c) {
        ComputeKv(expect.data(), chunk, prompt2, b, tpb, l, c);
        if (std::memcmp(expect.data(), cache.view.chunk(l, c, reuse[b]), chunk) != 0) ++mismatches;
      }
  const strata::BlockManagerStats stats = manager->stats();
  std::printf("loaded %zu blocks (stored %llu, loaded %llu); %zu chunks differ\n", usable,
              static_cast<unsigned long long>(stats.stored_blocks),
              static_cast<unsigned long long>(stats.loaded_blocks), mismatches);
  manager.reset();
  if (usable != full || mismatches != 0) {
    std::fprintf(stderr, "FAIL: expected %zu identical blocks\n", full);
    return 1;
  }
  std::printf("OK: the reused prefix is byte-identical\n");
  return 0;
}
