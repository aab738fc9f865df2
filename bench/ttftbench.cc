// strata-ttftbench: time to first token of the reference engine on a long prompt, with and
// without Strata, beside the physical bound and OpenBLAS's own GEMM peak
// (bench/run_ttft_baselines.sh runs it after fio on the same directory).
//
//   gemm       OpenBLAS sgemm alone at the model's GEMM shapes (M = the prefill chunk) and
//              one square shape, 1 thread (what the engine gives each GEMM call) and 2
//   recompute  an engine without Strata serves prefix + suffix: TTFT, prefill GFLOP/s
//              (EngineStats forward_flops / forward_seconds)
//   store      an engine with a BlockManager (G2 + G3 on --dir) serves the prefix alone;
//              the bench waits until every block is on disk, then destroys both
//   g3         warm restart: a new BlockManager and engine on the same directory (G2
//              empty) serve prefix + suffix; the prefix comes from G3. Repeated --reps
//              times, each after a fresh restart
//   g2         the same engine serves the prompt again (prefix now in G2), for reference
//   load-only  the BlockManager alone: restart, Match + Load of the prefix from G3 into
//              resident emulated device memory (no engine), to separate the G3 load from
//              the engine's admission path
//
// After each restart the bench waits for G2's background prefault and faults in the
// engine's emulated device KV cache (--touch-device), untimed: a serving process has both
// resident by the time requests arrive (device memory always is on a GPU).
//
// The physical bound of the G3 TTFT is KV bytes of the prefix / the fio O_DIRECT read
// bandwidth (--fio-read-gbps, measured by the script in the same session) + the measured
// compute of the uncached suffix (the engine's forward time during that request).
// Only the Engine's public API (Submit, stats) and the BlockManager's are used.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <cblas.h>
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "engine/engine.h"
#include "engine/model_loader.h"
#include "strata/block_manager.h"

namespace {

using namespace strata;
using namespace strata::engine;
using Clock = std::chrono::steady_clock;

struct Config {
  std::string preset = "demo";
  std::string model;  // a GGUF file or HF directory instead of the preset
  uint32_t prefix_tokens = 16384;
  uint32_t suffix_tokens = 32;
  uint32_t chunk = 512;  // EngineOptions prefill_chunk_tokens and max_step_tokens
  uint32_t reps = 3;
  std::string dir = "/var/tmp/strata-ttftbench";
  double g2_gib = 1.0;
  double g3_gib = 2.0;
  double fio_read_gbps = 0;  // 0: no bound reported
  std::string fio_note;
  bool skip_recompute = false;
  bool skip_gemm = false;
  bool recompute_only = false;
  bool wait_prefault = true;
  bool touch_device = true;
  double gemm_seconds = 0.5;
  uint32_t decode_tokens = 0;  // > 0: also time decoding this many tokens (Strata off)
  std::string json;
};

double Seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// ---- OpenBLAS GEMM peak -------------------------------------------------------------

struct GemmPoint {
  std::string name;
  uint32_t m, k, n, threads;
  double gflops;
};

// y[m x n] = x[m x k] * w[n x k]^T, as the engine calls it, repeated for `seconds`.
double TimeGemm(uint32_t m, uint32_t k, uint32_t n, double seconds) {
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> dist(-1, 1);
  std::vector<float> x(size_t{m} * k), w(size_t{n} * k), y(size_t{m} * n);
  for (float& v : x) v = dist(rng);
  for (float& v : w) v = dist(rng);
  auto call = [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n),
                static_cast<int>(k), 1.0f, x.data(), static_cast<int>(k), w.data(),
                static_cast<int>(k), 0.0f, y.data(), static_cast<int>(n));
  };
  call();  // warm-up: buffers, threads
  uint64_t calls = 0;
  const auto start = Clock::now();
  double elapsed = 0;
  do {
    call();
    ++calls;
    elapsed = Seconds(Clock::now() - start);
  } while (elapsed < seconds);
  return 2.0 * m * k * n * static_cast<double>(calls) / elapsed / 1e9;
}

std::vector<GemmPoint> MeasureGemm(const ModelConfig& c, uint32_t chunk, double seconds) {
  const uint32_t q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim;
  struct Shape {
    std::string name;
    uint32_t m, k, n;
  };
  const std::vector<Shape> shapes = {{"qkv", chunk, c.hidden, q + 2 * kv},
                                     {"o", chunk, q, c.hidden},
                                     {"gate_up", chunk, c.hidden, 2 * c.ffn},
                                     {"down", chunk, c.ffn, c.hidden},
                                     {"square 1536", 1536, 1536, 1536}};
  std::vector<GemmPoint> out;
  for (uint32_t threads : {1u, 2u}) {
    openblas_set_num_threads(static_cast<int>(threads));
    for (const Shape& s : shapes)
      out.push_back({s.name, s.m, s.k, s.n, threads, TimeGemm(s.m, s.k, s.n, seconds)});
  }
  openblas_set_num_threads(1);  // what the engine runs with (it pins this itself too)
  return out;
}

// ---- Engine requests ----------------------------------------------------------------

struct RequestResult {
  double ttft = 0;  // Submit -> first token event
  uint32_t cached_tokens = 0;
  bool ok = false;
  std::string error;
};

RequestResult Serve(Engine& engine, const std::string& id, const std::vector<TokenId>& prompt) {
  std::mutex mu;
  std::condition_variable cv;
  RequestResult r;
  bool first = false, finished = false;
  Clock::time_point first_at;
  GenerationRequest req;
  req.request_id = id;
  req.prompt = prompt;
  req.sampling.max_tokens = 1;
  const auto start = Clock::now();
  const Status s = engine.Submit(std::move(req), [&](const TokenEvent& e) {
    const auto now = Clock::now();
    std::lock_guard lock(mu);
    if (e.has_token && !first) {
      first = true;
      first_at = now;
      r.cached_tokens = e.cached_tokens;
    }
    if (e.finished) {
      finished = true;
      r.ok = e.error.ok() && first;
      if (!e.error.ok()) r.error = e.error.ToString();
      cv.notify_all();
    }
  });
  if (!s.ok()) {
    r.error = s.ToString();
    return r;
  }
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return finished; });
  if (first) r.ttft = Seconds(first_at - start);
  return r;
}

// Decoding alone: one request with a short prompt generating `tokens` tokens; the seconds per
// token between the first token's event and the last's (every step reads all weights once).
Result<double> DecodeSecondsPerToken(Engine& engine, uint32_t tokens) {
  std::mutex mu;
  std::condition_variable cv;
  uint32_t seen = 0;
  bool finished = false;
  Status error;
  Clock::time_point first_at, last_at;
  GenerationRequest req;
  req.request_id = "decode";
  req.prompt.assign(16, 1);
  req.sampling.max_tokens = tokens;
  const Status s = engine.Submit(std::move(req), [&](const TokenEvent& e) {
    const auto now = Clock::now();
    std::lock_guard lock(mu);
    if (e.has_token && ++seen == 1) first_at = now;
    if (e.has_token) last_at = now;
    if (e.finished) {
      finished = true;
      error = e.error;
      cv.notify_all();
    }
  });
  STRATA_RETURN_IF_ERROR(s);
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return finished; });
  STRATA_RETURN_IF_ERROR(error);
  if (seen < 2)
    return Status::Internal("decode: fewer than 2 tokens (an end-of-generation token?)");
  return Seconds(last_at - first_at) / (seen - 1);
}

volatile float bandwidth_sink = 0;

// Read bandwidth of this machine as the engine's threads see it: 2 threads summing halves of
// a 1 GiB buffer (resident), best of 5. GB/s.
double ReadBandwidthGBps() {
  const size_t n = (size_t{1} << 30) / sizeof(float);
  std::vector<float> buf(n, 1.0f);
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    float sums[2] = {0, 0};
    const auto t0 = Clock::now();
    std::thread t([&] {
      float acc = 0;
      for (size_t i = n / 2; i < n; ++i) acc += buf[i];
      sums[1] = acc;
    });
    float acc = 0;
    for (size_t i = 0; i < n / 2; ++i) acc += buf[i];
    sums[0] = acc;
    t.join();
    const double secs = Seconds(Clock::now() - t0);
    bandwidth_sink = sums[0] + sums[1];  // the reads must happen
    best = std::max(best, double(n * sizeof(float)) / secs / 1e9);
  }
  return best;
}

struct PassStats {
  double ttft = 0, forward_seconds = 0, forward_flops = 0;
  uint32_t cached_tokens = 0, computed_tokens = 0;
  double gflops() const { return forward_seconds > 0 ? forward_flops / forward_seconds / 1e9 : 0; }
};

// Serves `prompt` on `engine` and reports its TTFT and the engine's forward time and
// FLOPs during it (the engine serves nothing else meanwhile).
Result<PassStats> Pass(Engine& engine, const std::string& id, const std::vector<TokenId>& prompt) {
  const EngineStats before = engine.stats();
  const RequestResult r = Serve(engine, id, prompt);
  if (!r.ok) return Status::Internal(fmt::format("request {} failed: {}", id, r.error));
  const EngineStats after = engine.stats();
  PassStats p;
  p.ttft = r.ttft;
  p.cached_tokens = r.cached_tokens;
  p.computed_tokens = static_cast<uint32_t>(after.prefill_tokens - before.prefill_tokens);
  p.forward_seconds = after.forward_seconds - before.forward_seconds;
  p.forward_flops = after.forward_flops - before.forward_flops;
  return p;
}

// The checkpoint of --model; empty for the synthetic preset.
LoadedModel g_loaded;

EngineOptions MakeEngineOptions(const ModelConfig& model, const Config& cfg, BlockManager* bm) {
  EngineOptions o;
  o.model = model;
  o.weights = g_loaded.model;
  o.tokenizer = g_loaded.tokenizer;
  o.block_manager = bm;
  o.prefill_chunk_tokens = cfg.chunk;
  o.max_step_tokens = cfg.chunk;
  o.max_running_requests = 1;
  o.store_generated_blocks = false;
  return o;
}

BlockManagerOptions MakeManagerOptions(const ModelConfig& model, const Config& cfg,
                                       const std::string& dir) {
  BlockManagerOptions o;
  o.model_fingerprint = model.Fingerprint();
  o.layout = model.kv_layout();
  o.host.capacity_bytes = static_cast<uint64_t>(cfg.g2_gib * double(uint64_t{1} << 30));
  o.disk.directory = dir;
  o.disk.capacity_bytes = static_cast<uint64_t>(cfg.g3_gib * double(uint64_t{1} << 30));
  o.disk.reset_on_mismatch = true;
  // The whole prefix is stored at once: let every block wait for a disk writer rather
  // than be dropped (the default queue of 256 is sized for steady serving).
  o.hierarchy.max_queued_disk_writes =
      std::max<uint32_t>(o.hierarchy.max_queued_disk_writes,
                         2 * (cfg.prefix_tokens + cfg.suffix_tokens) / model.tokens_per_block);
  return o;
}

// A server that restarted has had time to fault its G2 in before requests arrive; on
// this VM first touch costs seconds per GiB. Returns the seconds waited.
double WaitPrefault(const BlockManager& bm, uint64_t bytes) {
  const auto t0 = Clock::now();
  while (bm.stats().host_prefaulted_bytes < bytes && Clock::now() - t0 < std::chrono::minutes(1))
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  return Seconds(Clock::now() - t0);
}

// The engine's KV cache is "device" memory emulated in host RAM, allocated without being
// touched; on a GPU it is resident. Fault it in (untimed) so that loads into it measure
// the transfer, not the VM's first-touch cost (seconds per GiB here). The engine is idle.
void TouchDevice(const Engine& engine) {
  const PagedKvCache& kv = engine.kv_cache();
  const KvLayout& l = kv.layout();
  for (uint32_t layer = 0; layer < l.num_layers; ++layer)
    for (uint32_t c = 0; c < 2; ++c)
      for (uint32_t b = 0; b < kv.num_blocks(); ++b)
        std::memset(kv.chunk(layer, c, b), 0, l.chunk_bytes());
}

// Emulated device memory for a BlockManager-only load (resident: written once).
struct Device {
  Device(const KvLayout& layout, uint32_t blocks) {
    cache.view.layout = layout;
    cache.view.order = DeviceOrder::kBlockMajor;
    cache.view.num_blocks = blocks;
    for (uint32_t l = 0; l < layout.num_layers; ++l) {
      tensors.emplace_back(cache.view.layer_bytes(), std::byte{1});
      cache.view.layer_base.push_back(tensors.back().data());
    }
  }
  std::vector<std::vector<std::byte>> tensors;
  DeviceCache cache;
};

int Run(const Config& cfg) {
  auto preset = ModelConfig::Preset(cfg.preset);
  if (!cfg.model.empty()) {
    const auto t0 = Clock::now();
    auto loaded = LoadModel(cfg.model, {.max_context_tokens = std::max<uint32_t>(
                                            8192, cfg.prefix_tokens + cfg.suffix_tokens + 1)});
    if (!loaded.ok()) {
      fmt::print(stderr, "{}\n", loaded.status().ToString());
      return 2;
    }
    g_loaded = std::move(loaded).value();
    preset = g_loaded.config;
    fmt::print("loaded {} ({} {}, {} MiB of weights as stored) in {:.1f} s\n", cfg.model,
               g_loaded.format, g_loaded.tensor_type, g_loaded.tensor_bytes >> 20,
               Seconds(Clock::now() - t0));
  }
  if (!preset.ok()) {
    fmt::print(stderr, "{}\n", preset.status().ToString());
    return 2;
  }
  const ModelConfig model = *preset;
  if (cfg.prefix_tokens % model.tokens_per_block != 0 || cfg.suffix_tokens == 0 ||
      cfg.prefix_tokens + cfg.suffix_tokens + 1 > model.max_context_tokens) {
    fmt::print(stderr,
               "--prefix-tokens must be a multiple of {} and prefix + suffix + 1 <= {}; "
               "--suffix-tokens >= 1\n",
               model.tokens_per_block, model.max_context_tokens);
    return 2;
  }
  const std::string tier_dir = cfg.dir + "/tier";
  std::error_code ec;
  std::filesystem::remove_all(tier_dir, ec);  // the bench's own subdirectory only

  // A random byte prompt: the prefix (stored, then reused) and a suffix never seen before.
  // Every request gets its own suffix, so that the cached part is exactly the stored
  // prefix (a request also stores the full blocks of its suffix).
  std::mt19937 rng(42);
  std::vector<TokenId> prefix(cfg.prefix_tokens);
  for (TokenId& t : prefix) t = static_cast<TokenId>(rng() % 256);
  auto with_suffix = [&](uint32_t seed) {
    std::mt19937 r(seed);
    std::vector<TokenId> p = prefix;
    for (uint32_t i = 0; i < cfg.suffix_tokens; ++i) p.push_back(static_cast<TokenId>(r() % 256));
    return p;
  };
  const size_t prompt_tokens = size_t{cfg.prefix_tokens} + cfg.suffix_tokens;
  const uint64_t kv_bytes =
      uint64_t{cfg.prefix_tokens} / model.tokens_per_block * model.kv_layout().block_bytes();
  const std::string loadavg = [] {
    std::ifstream f("/proc/loadavg");
    std::string s;
    std::getline(f, s);
    return s;
  }();
  fmt::print(
      "# strata-ttftbench: preset {} ({:.1f} M params), prefix {} + suffix {} tokens, "
      "chunk {}, KV of prefix {:.1f} MiB, dir {}, load {}\n",
      model.name, double(model.num_parameters()) / 1e6, cfg.prefix_tokens, cfg.suffix_tokens,
      cfg.chunk, double(kv_bytes) / (1 << 20), cfg.dir, loadavg);

  // 1. GEMM peak (before any engine: OpenBLAS's thread count is process-wide).
  const auto gemm =
      cfg.skip_gemm ? std::vector<GemmPoint>{} : MeasureGemm(model, cfg.chunk, cfg.gemm_seconds);
  double peak1 = 0, peak2 = 0;
  for (const GemmPoint& g : gemm)
    (g.threads == 1 ? peak1 : peak2) = std::max(g.threads == 1 ? peak1 : peak2, g.gflops);
  fmt::print(
      "\n## OpenBLAS sgemm (x * w^T, row-major), GFLOP/s\n\n| shape | M x K x N | 1 thread | 2 "
      "threads |\n|---|---|---|---|\n");
  for (size_t i = 0; i < gemm.size() / 2; ++i) {
    const GemmPoint &a = gemm[i], &b = gemm[i + gemm.size() / 2];
    fmt::print("| {} | {} x {} x {} | {:.1f} | {:.1f} |\n", a.name, a.m, a.k, a.n, a.gflops,
               b.gflops);
  }
  std::fflush(stdout);

  // 2. Recompute (Strata off).
  PassStats recompute;
  if (!cfg.skip_recompute) {
    auto engine = Engine::Create(MakeEngineOptions(model, cfg, nullptr));
    if (!engine.ok()) {
      fmt::print(stderr, "engine: {}\n", engine.status().ToString());
      return 1;
    }
    if (cfg.touch_device) TouchDevice(**engine);
    auto p = Pass(**engine, "recompute", with_suffix(1000));
    if (!p.ok()) {
      fmt::print(stderr, "{}\n", p.status().ToString());
      return 1;
    }
    recompute = *p;
    fmt::print("\nrecompute: TTFT {:.3f} s, forward {:.3f} s, {:.1f} GFLOP/s\n", recompute.ttft,
               recompute.forward_seconds, recompute.gflops());
    if (cfg.decode_tokens > 1) {
      auto per_token = DecodeSecondsPerToken(**engine, cfg.decode_tokens);
      if (!per_token.ok()) {
        fmt::print(stderr, "{}\n", per_token.status().ToString());
        return 1;
      }
      const double gbps = ReadBandwidthGBps();
      const double weight_bytes = double(model.num_parameters()) * sizeof(float);
      fmt::print(
          "\ndecode: {:.1f} tokens/s ({:.2f} ms/token over {} tokens); bound: {:.0f} MiB of fp32 "
          "weights / {:.1f} GB/s read bandwidth (2 threads, same run) = {:.1f} tokens/s\n",
          1.0 / *per_token, *per_token * 1e3, cfg.decode_tokens, weight_bytes / (1 << 20), gbps,
          gbps * 1e9 / weight_bytes);
    }
    std::fflush(stdout);
    if (cfg.recompute_only) return 0;
  }

  // 3. Store the prefix through G2 into G3.
  PassStats store;
  double offload_wait = 0;
  {
    auto bm = BlockManager::Create(MakeManagerOptions(model, cfg, tier_dir));
    if (!bm.ok()) {
      fmt::print(stderr, "block manager: {}\n", bm.status().ToString());
      return 1;
    }
    auto engine = Engine::Create(MakeEngineOptions(model, cfg, bm->get()));
    if (!engine.ok()) {
      fmt::print(stderr, "engine: {}\n", engine.status().ToString());
      return 1;
    }
    if (cfg.touch_device) TouchDevice(**engine);
    auto p = Pass(**engine, "store", prefix);
    if (!p.ok()) {
      fmt::print(stderr, "{}\n", p.status().ToString());
      return 1;
    }
    store = *p;
    const auto wait_start = Clock::now();
    if (!(*engine)->WaitForStores(std::chrono::minutes(5)).ok()) {
      fmt::print(stderr, "stores did not finish\n");
      return 1;
    }
    const uint64_t blocks = cfg.prefix_tokens / model.tokens_per_block;
    for (;;) {
      const BlockManagerStats s = (*bm)->stats();
      if (s.disk_offload_blocks + s.disk_offload_present >= blocks) break;
      if (s.disk_offload_dropped > 0 || Seconds(Clock::now() - wait_start) > 300) {
        fmt::print(stderr, "offload to G3 incomplete: {} of {} blocks written, {} dropped\n",
                   s.disk_offload_blocks, blocks, s.disk_offload_dropped);
        return 1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    offload_wait = Seconds(Clock::now() - wait_start);
    fmt::print("\nstore: TTFT {:.3f} s ({:.1f} GFLOP/s); all {} blocks on disk {:.3f} s after\n",
               store.ttft, store.gflops(), blocks, offload_wait);
    std::fflush(stdout);
  }  // engine, then manager destroyed

  // 4. Warm restarts: prefix from G3; then once more from G2 on the last engine.
  std::vector<PassStats> g3;
  std::vector<double> restart_seconds, prefault_seconds;
  const uint64_t g2_bytes = MakeManagerOptions(model, cfg, tier_dir).host.capacity_bytes;
  std::vector<uint64_t> disk_blocks;
  PassStats g2;
  for (uint32_t rep = 0; rep < cfg.reps; ++rep) {
    const auto t0 = Clock::now();
    auto bm = BlockManager::Create(MakeManagerOptions(model, cfg, tier_dir));
    if (!bm.ok()) {
      fmt::print(stderr, "block manager: {}\n", bm.status().ToString());
      return 1;
    }
    auto engine = Engine::Create(MakeEngineOptions(model, cfg, bm->get()));
    if (!engine.ok()) {
      fmt::print(stderr, "engine: {}\n", engine.status().ToString());
      return 1;
    }
    restart_seconds.push_back(Seconds(Clock::now() - t0));
    if (cfg.touch_device) TouchDevice(**engine);
    prefault_seconds.push_back(cfg.wait_prefault ? WaitPrefault(**bm, g2_bytes) : 0);
    auto p = Pass(**engine, fmt::format("g3-{}", rep), with_suffix(rep + 1));
    if (!p.ok()) {
      fmt::print(stderr, "{}\n", p.status().ToString());
      return 1;
    }
    disk_blocks.push_back((*bm)->stats().loaded_blocks_from_disk);
    g3.push_back(*p);
    fmt::print(
        "g3 rep {}: restart {:.3f} s (+ {:.3f} s G2 prefault, untimed), TTFT {:.3f} s, "
        "cached {} tokens ({} blocks from disk), suffix forward {:.4f} s\n",
        rep, restart_seconds.back(), prefault_seconds.back(), p->ttft, p->cached_tokens,
        disk_blocks.back(), p->forward_seconds);
    std::fflush(stdout);
    if (rep + 1 == cfg.reps) {
      auto q = Pass(**engine, "g2", with_suffix(2000));
      if (!q.ok()) {
        fmt::print(stderr, "{}\n", q.status().ToString());
        return 1;
      }
      g2 = *q;
    }
  }

  // 5. The BlockManager alone: restart, Match and Load the prefix from G3 into resident
  //    emulated device memory, timed from Match to the handle being done.
  std::vector<double> load_only;
  {
    const uint32_t blocks = cfg.prefix_tokens / model.tokens_per_block;
    Device device(model.kv_layout(), blocks);
    std::vector<uint32_t> dev(blocks);
    for (uint32_t b = 0; b < blocks; ++b) dev[b] = b;
    for (uint32_t rep = 0; rep < cfg.reps; ++rep) {
      auto bm = BlockManager::Create(MakeManagerOptions(model, cfg, tier_dir));
      if (!bm.ok() || !(*bm)->RegisterDeviceCache(device.cache).ok()) {
        fmt::print(stderr, "block manager for the load-only pass failed\n");
        return 1;
      }
      if (cfg.wait_prefault) WaitPrefault(**bm, g2_bytes);
      const RequestContext ctx{fmt::format("load-{}", rep), "", ""};
      const auto t0 = Clock::now();
      auto match = (*bm)->Match(prefix, ctx);
      if (!match.ok() || match->num_matched_blocks() != blocks) {
        fmt::print(stderr, "load-only: matched {} of {} blocks\n",
                   match.ok() ? match->num_matched_blocks() : 0, blocks);
        return 1;
      }
      auto load = (*bm)->Load(*match, dev);
      if (!load.ok() || !load->Wait(std::chrono::minutes(2)).ok() ||
          load->usable_blocks() != blocks) {
        fmt::print(stderr, "load-only: load failed\n");
        return 1;
      }
      load_only.push_back(Seconds(Clock::now() - t0));
      (*bm)->Release(ctx.request_id);
      fmt::print("load-only rep {}: {:.3f} s ({:.2f} GB/s of KV)\n", rep, load_only.back(),
                 double(kv_bytes) / load_only.back() / 1e9);
    }
  }
  std::sort(load_only.begin(), load_only.end());
  const double load_only_median = load_only[load_only.size() / 2];

  // 6. The table.
  std::vector<double> ttfts;
  for (const PassStats& p : g3) ttfts.push_back(p.ttft);
  std::vector<double> sorted = ttfts;
  std::sort(sorted.begin(), sorted.end());
  const double g3_median = sorted[sorted.size() / 2];
  const PassStats& g3_mid =
      g3[size_t(std::find(ttfts.begin(), ttfts.end(), g3_median) - ttfts.begin())];
  const double disk_seconds =
      cfg.fio_read_gbps > 0 ? double(kv_bytes) / (cfg.fio_read_gbps * 1e9) : 0;
  const double bound = disk_seconds + g3_mid.forward_seconds;
  const double kv_gbps_g3 = double(kv_bytes) / (g3_median - g3_mid.forward_seconds) / 1e9;

  fmt::print("\n## TTFT, {} preset, prompt {} tokens ({} cached + {} new)\n\n", model.name,
             prompt_tokens, cfg.prefix_tokens, cfg.suffix_tokens);
  fmt::print("| measurement | value | target |\n|---|---|---|\n");
  if (!cfg.skip_recompute)
    fmt::print("| (a) recompute TTFT, Strata off | {:.3f} s | — |\n", recompute.ttft);
  fmt::print("| (b) TTFT, prefix in G3, warm restart (median of {}: {:.3f}) | {:.3f} s | — |\n",
             g3.size(), fmt::join(ttfts, ", "), g3_median);
  fmt::print("|     of which suffix compute (engine forward) | {:.4f} s | — |\n",
             g3_mid.forward_seconds);
  fmt::print(
      "|     of which restart-to-first-token minus compute: KV at {:.2f} GB/s | {:.3f} s | — |\n",
      kv_gbps_g3, g3_median - g3_mid.forward_seconds);
  fmt::print(
      "| BlockManager alone: Match + Load of the prefix from G3 (median of {}) | {:.3f} s "
      "({:.2f} GB/s) | — |\n",
      load_only.size(), load_only_median, double(kv_bytes) / load_only_median / 1e9);
  fmt::print("| TTFT, prefix in G2 (same process, after the G3 load) | {:.3f} s | — |\n", g2.ttft);
  if (cfg.fio_read_gbps > 0) {
    fmt::print(
        "| (c) physical bound: {:.1f} MiB / {:.2f} GB/s fio + suffix compute | {:.3f} s | — |\n",
        double(kv_bytes) / (1 << 20), cfg.fio_read_gbps, bound);
    fmt::print("|     TTFT_G3 / bound | {:.2f} | <= 1.5 |\n", g3_median / bound);
  }
  if (!cfg.skip_recompute)
    fmt::print("|     recompute / TTFT_G3 | {:.1f} | >= 20 |\n", recompute.ttft / g3_median);
  if (!cfg.skip_recompute)
    fmt::print("| (d) prefill GFLOP/s (recompute: {:.0f} GFLOP in {:.2f} s) | {:.1f} | — |\n",
               recompute.forward_flops / 1e9, recompute.forward_seconds, recompute.gflops());
  fmt::print("|     OpenBLAS sgemm peak, 1 thread / 2 threads | {:.1f} / {:.1f} | — |\n", peak1,
             peak2);
  if (!cfg.skip_recompute)
    fmt::print("|     peak (1 thread) / prefill | {:.2f} | <= 2 |\n", peak1 / recompute.gflops());
  if (!cfg.fio_note.empty()) fmt::print("\nfio: {}\n", cfg.fio_note);

  if (!cfg.json.empty()) {
    std::string j = "{\n";
    j += fmt::format(
        "  \"preset\": \"{}\", \"prefix_tokens\": {}, \"suffix_tokens\": {}, "
        "\"chunk\": {}, \"kv_bytes\": {},\n",
        model.name, cfg.prefix_tokens, cfg.suffix_tokens, cfg.chunk, kv_bytes);
    j += "  \"gemm\": [";
    for (size_t i = 0; i < gemm.size(); ++i)
      j += fmt::format(
          "{}{{\"shape\": \"{}\", \"m\": {}, \"k\": {}, \"n\": {}, \"threads\": {}, "
          "\"gflops\": {:.2f}}}",
          i ? ", " : "", gemm[i].name, gemm[i].m, gemm[i].k, gemm[i].n, gemm[i].threads,
          gemm[i].gflops);
    j += "],\n";
    j += fmt::format("  \"gemm_peak_1t\": {:.2f}, \"gemm_peak_2t\": {:.2f},\n", peak1, peak2);
    j += fmt::format(
        "  \"recompute_ttft_s\": {:.4f}, \"recompute_forward_s\": {:.4f}, "
        "\"recompute_gflop\": {:.1f}, \"prefill_gflops\": {:.2f},\n",
        recompute.ttft, recompute.forward_seconds, recompute.forward_flops / 1e9,
        recompute.gflops());
    j += fmt::format("  \"store_ttft_s\": {:.4f}, \"offload_wait_s\": {:.4f},\n", store.ttft,
                     offload_wait);
    j += fmt::format(
        "  \"g3_ttft_s\": [{:.4f}], \"g3_ttft_median_s\": {:.4f}, "
        "\"g3_suffix_forward_s\": {:.5f}, \"restart_s\": [{:.4f}],\n",
        fmt::join(ttfts, ", "), g3_median, g3_mid.forward_seconds,
        fmt::join(restart_seconds, ", "));
    j += fmt::format("  \"load_only_s\": [{:.4f}], \"prefault_wait_s\": [{:.3f}],\n",
                     fmt::join(load_only, ", "), fmt::join(prefault_seconds, ", "));
    j += fmt::format(
        "  \"g2_ttft_s\": {:.4f}, \"fio_read_gbps\": {:.3f}, \"bound_s\": {:.4f}, "
        "\"g3_over_bound\": {:.3f}, \"recompute_over_g3\": {:.2f}\n}}\n",
        g2.ttft, cfg.fio_read_gbps, bound, bound > 0 ? g3_median / bound : 0,
        g3_median > 0 ? recompute.ttft / g3_median : 0);
    std::ofstream(cfg.json) << j;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Config cfg;
  CLI::App app{"strata-ttftbench: reference-engine TTFT with the prefix in G3 vs recompute"};
  app.add_option("--preset", cfg.preset, "model preset (tiny, demo)");
  app.add_option("--model", cfg.model,
                 "a GGUF file or Hugging Face model directory instead of the preset");
  app.add_option("--prefix-tokens", cfg.prefix_tokens,
                 "cached prefix tokens (a multiple of the block size)");
  app.add_option("--suffix-tokens", cfg.suffix_tokens, "new tokens after the prefix");
  app.add_option("--chunk", cfg.chunk, "engine prefill chunk and step token budget");
  app.add_option("--reps", cfg.reps, "warm restarts timed (median reported)");
  app.add_option("--dir", cfg.dir, "directory for G3 (the bench uses DIR/tier)");
  app.add_option("--g2-gib", cfg.g2_gib, "G2 host tier GiB");
  app.add_option("--g3-gib", cfg.g3_gib, "G3 disk tier GiB");
  app.add_option("--fio-read-gbps", cfg.fio_read_gbps,
                 "fio O_DIRECT read bandwidth on --dir, GB/s (10^9 B/s), for the bound");
  app.add_option("--fio-note", cfg.fio_note, "how the fio number was measured (printed)");
  app.add_flag("--skip-recompute", cfg.skip_recompute, "do not run the recompute baseline");
  app.add_flag("--skip-gemm", cfg.skip_gemm, "do not measure OpenBLAS sgemm");
  app.add_option("--wait-prefault", cfg.wait_prefault,
                 "after a restart, wait for G2's background prefault before the request");
  app.add_option("--touch-device", cfg.touch_device,
                 "fault the engine's emulated device KV cache in before timing (device memory "
                 "is resident on a GPU)");
  app.add_flag("--recompute-only", cfg.recompute_only, "stop after the recompute (profiling)");
  app.add_option("--decode-tokens", cfg.decode_tokens,
                 "also time decoding this many tokens after the recompute (0: no)");
  app.add_option("--gemm-seconds", cfg.gemm_seconds, "seconds per sgemm point");
  app.add_option("--json", cfg.json, "also write the results as JSON to this file");
  CLI11_PARSE(app, argc, argv);
  return Run(cfg);
}
