// Microbenchmarks of the metadata hot paths: keying a prompt, matching a long prefix,
// and host-tier index store+evict. See docs/benchmarks.md for results.
#include <benchmark/benchmark.h>

#include <numeric>

#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#include "strata/block_manager.h"
#include "tier/host_tier.h"

namespace strata {
namespace {

constexpr size_t kPromptTokens = 128 * 1024;

KvLayout Llama8B() {
  return KvLayout{.num_layers = 32,
                  .num_kv_heads = 8,
                  .head_dim = 128,
                  .dtype = DType::kBFloat16,
                  .tokens_per_block = 16};
}

std::vector<TokenId> Prompt(size_t n) {
  std::vector<TokenId> t(n);
  for (size_t i = 0; i < n; ++i) t[i] = static_cast<TokenId>((i * 2654435761u) % 128256);
  return t;
}

// Keys for every block of a 128K-token prompt (8,192 blocks of 16 tokens).
void BM_KeyPrompt128K(benchmark::State& state) {
  const auto alg = static_cast<HashAlgorithm>(state.range(0));
  BlockKeyer keyer(
      KeyNamespace{.model_fingerprint = "bench", .layout = Llama8B(), .algorithm = alg});
  const auto tokens = Prompt(kPromptTokens);
  std::vector<BlockKey> keys;
  for (auto _ : state) {
    keyer.ComputeKeys(tokens, &keys);
    benchmark::DoNotOptimize(keys.data());
  }
  state.SetLabel(std::string(HashAlgorithmName(alg)));
  state.counters["blocks/s"] = benchmark::Counter(
      static_cast<double>(keys.size()) * state.iterations(), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_KeyPrompt128K)
    ->Arg(static_cast<int>(HashAlgorithm::kSha256))
    ->Arg(static_cast<int>(HashAlgorithm::kXxh3_128))
    ->Unit(benchmark::kMicrosecond);

// Baseline for BM_KeyPrompt128K: SHA-256 over one contiguous buffer holding as many
// 64-byte compression blocks as the key chain needs (8,192 keys x 2 blocks), with no
// per-key call overhead: the floor of SHA-256 keying on this CPU.
void BM_Sha256FloorFor8192Keys(benchmark::State& state) {
  std::vector<uint8_t> data(8192 * 128, 0x5a);
  uint8_t digest[32];
  for (auto _ : state) {
    SHA256_CTX ctx;
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, data.data(), data.size());
    SHA256_Final(digest, &ctx);
    benchmark::DoNotOptimize(digest);
  }
  state.SetBytesProcessed(static_cast<int64_t>(data.size()) * state.iterations());
}
BENCHMARK(BM_Sha256FloorFor8192Keys)->Unit(benchmark::kMicrosecond);

// BlockManager::Match of a 128K-token prompt whose 8,192 blocks are all in G2,
// including keying, index lookups and leasing, plus Release of the leases.
// A Llama-8B-sized tier would need 16 GiB; blocks of a 1-layer layout with the same
// tokens_per_block keep the benchmark's memory small, and matching never touches block data.
void BM_MatchPrefix8192(benchmark::State& state) {
  const auto alg = static_cast<HashAlgorithm>(state.range(0));
  KvLayout layout{.num_layers = 1,
                  .num_kv_heads = 1,
                  .head_dim = 8,
                  .dtype = DType::kBFloat16,
                  .tokens_per_block = 16};
  BlockManagerOptions o{.model_fingerprint = "bench", .layout = layout, .hash_algorithm = alg};
  o.host.capacity_bytes = 10000 * layout.block_bytes();
  o.host.pin_for_cuda = false;
  auto m = std::move(BlockManager::Create(o)).value();
  std::vector<std::vector<std::byte>> tensor(1,
                                             std::vector<std::byte>(8192 * layout.block_bytes()));
  DeviceCache dev{.view = {.layout = layout, .num_blocks = 8192, .layer_base = {tensor[0].data()}}};
  if (!m->RegisterDeviceCache(dev).ok()) return state.SkipWithError("register failed");
  const auto tokens = Prompt(kPromptTokens);
  auto keys = *m->ComputeKeys(tokens, {"w"});
  std::vector<uint32_t> ids(keys.size());
  std::iota(ids.begin(), ids.end(), 0);
  if (!m->Store({"w"}, keys, ids)->Wait(std::chrono::seconds(60)).ok())
    return state.SkipWithError("store");
  size_t matched = 0;
  for (auto _ : state) {
    auto r = m->Match(tokens, {"r"});
    matched = r->num_matched_blocks();
    m->Release("r");
  }
  if (matched != keys.size()) state.SkipWithError("not every block matched");
  state.SetLabel(std::string(HashAlgorithmName(alg)));
  state.counters["matched_blocks"] = static_cast<double>(matched);
}
BENCHMARK(BM_MatchPrefix8192)
    ->Arg(static_cast<int>(HashAlgorithm::kSha256))
    ->Arg(static_cast<int>(HashAlgorithm::kXxh3_128))
    ->Unit(benchmark::kMicrosecond);

// Index-only part of a match: 8,192 lookups + leases + unleases with precomputed keys.
void BM_HostTierMatchPrefixOnly(benchmark::State& state) {
  auto tier = std::move(HostTier::Create({.capacity_bytes = 10000 * 64, .pin_for_cuda = false}, 64))
                  .value();
  BlockKeyer keyer(KeyNamespace{.model_fingerprint = "bench", .layout = Llama8B()});
  const auto keys = keyer.ComputeKeys(Prompt(kPromptTokens));
  for (const auto& k : keys) {
    uint32_t slot;
    tier->Reserve(k, &slot);
    tier->Commit(slot);
  }
  std::vector<uint32_t> leases;
  leases.reserve(keys.size());
  for (auto _ : state) {
    leases.clear();
    benchmark::DoNotOptimize(tier->MatchPrefix(keys, &leases));
    tier->Unlease(leases);
  }
}
BENCHMARK(BM_HostTierMatchPrefixOnly)->Unit(benchmark::kMicrosecond);

// Host-tier store into a full tier: every op reserves a new key (evicting the LRU
// block) and commits it. Single thread; counts operations per second.
void BM_HostTierStoreEvict(benchmark::State& state) {
  const uint32_t capacity = static_cast<uint32_t>(state.range(0));
  auto tier = std::move(HostTier::Create(
                            {.capacity_bytes = uint64_t{capacity} * 64, .pin_for_cuda = false}, 64))
                  .value();
  BlockKeyer keyer(KeyNamespace{
      .model_fingerprint = "bench", .layout = Llama8B(), .algorithm = HashAlgorithm::kXxh3_128});
  // Pre-generate more keys than the tier holds so every op after warm-up evicts.
  const auto keys = keyer.ComputeKeys(Prompt(size_t{capacity} * 2 * 16));
  size_t next = 0;
  for (; next < capacity; ++next) {
    uint32_t slot;
    tier->Reserve(keys[next], &slot);
    tier->Commit(slot);
  }
  for (auto _ : state) {
    uint32_t slot;
    if (tier->Reserve(keys[next], &slot) == HostTier::ReserveResult::kReserved) tier->Commit(slot);
    if (++next == keys.size()) next = 0;
  }
  const auto st = tier->stats();
  state.counters["ops/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["index_B/block"] = static_cast<double>(st.index_bytes) / st.capacity_blocks;
  state.counters["evictions"] = static_cast<double>(st.evictions);
}
BENCHMARK(BM_HostTierStoreEvict)->Arg(1 << 16)->Arg(1 << 20)->Arg((1 << 20) + 1);

}  // namespace
}  // namespace strata

BENCHMARK_MAIN();
