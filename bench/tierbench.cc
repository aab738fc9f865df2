// strata-tierbench: blocks of a realistic layout through the BlockManager's G2 -> G3
// offload and back (G3 -> G2 -> device), with throughput and per-request latency, so they
// can stand beside fio O_DIRECT on the same directory (bench/run_tier_baselines.sh).
//
//   store    engine Store()s of every prompt's blocks into emulated device memory -> G2,
//            written through to G3 by the offloader; timed until the last block is on disk
//   restart  the manager is destroyed and created again on the same directory: the time to
//            being matchable (warm restart) is reported
//   load     prompts matched (all in G3) and loaded into device blocks, `concurrency`
//            requests in flight; per-request latency (Load call -> handle done) and
//            aggregate throughput; every loaded block is compared with what was stored
//
// Only the public API (strata/block_manager.h) is used, as an engine would.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "strata/block_manager.h"

namespace {

using namespace strata;
using Clock = std::chrono::steady_clock;

struct Config {
  std::string dir = "/var/tmp/strata-tierbench";
  double total_gib = 2.0;
  uint32_t blocks_per_request = 16;
  uint32_t concurrency = 2;
  uint32_t io_depth = 16;
  bool promote = true;
  bool huge_pages = true;
  bool verify = true;
  bool register_g2 = false;
  std::string backend = "auto";
  std::string json;
};

double Seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())));
  return v[i];
}

// The emulated device: one tensor per layer, block-major, filled with pseudo-random bytes.
struct Device {
  Device(const KvLayout& layout, uint32_t blocks) {
    cache.view.layout = layout;
    cache.view.order = DeviceOrder::kBlockMajor;
    cache.view.num_blocks = blocks;
    for (uint32_t l = 0; l < layout.num_layers; ++l) {
      tensors.emplace_back(cache.view.layer_bytes());
      cache.view.layer_base.push_back(tensors.back().data());
    }
  }
  void Fill(uint64_t seed) {
    std::mt19937_64 rng(seed);
    for (auto& t : tensors) {
      auto* p = reinterpret_cast<uint64_t*>(t.data());
      for (size_t i = 0; i < t.size() / 8; ++i) p[i] = rng();
    }
  }
  std::vector<std::vector<std::byte>> tensors;
  DeviceCache cache;
};

// A long-running server's G2 is warm: wait for the background prefault before timing (on
// this VM first touch costs seconds per GiB, which is start-up cost, not transfer cost).
void WaitPrefault(const BlockManager& manager, uint64_t bytes) {
  const auto t0 = Clock::now();
  while (manager.stats().host_prefaulted_bytes < bytes &&
         Clock::now() - t0 < std::chrono::minutes(2))
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  fmt::print("G2 prefaulted in {:.2f} s (not timed)\n", Seconds(Clock::now() - t0));
}

int Run(const Config& cfg) {
  KvLayout layout{.num_layers = 32,
                  .num_kv_heads = 8,
                  .head_dim = 128,
                  .dtype = DType::kBFloat16,
                  .tokens_per_block = 16};
  const uint64_t block = layout.block_bytes();
  const uint32_t bpr = cfg.blocks_per_request;
  const uint32_t requests =
      static_cast<uint32_t>(cfg.total_gib * double(uint64_t{1} << 30) / double(block) / bpr);
  const uint32_t blocks = requests * bpr;
  auto backend = ParseBackendKind(cfg.backend);
  if (!backend.ok()) {
    fmt::print(stderr, "{}\n", backend.status().ToString());
    return 2;
  }

  BlockManagerOptions o;
  o.model_fingerprint = "strata-tierbench";
  o.layout = layout;
  o.host.capacity_bytes = uint64_t{blocks + 64} * block;
  o.host.huge_pages = cfg.huge_pages;
  o.host.pin_for_cuda = false;
  o.disk.directory = cfg.dir;
  o.disk.capacity_bytes = uint64_t{blocks + blocks / 4 + 256} * (block + 4096);
  o.disk.io_depth = cfg.io_depth;
  o.disk.backend = *backend;
  o.disk.reset_on_mismatch = true;
  o.hierarchy.promote_disk_hits = cfg.promote;
  o.hierarchy.max_queued_disk_writes = blocks;  // the benchmark measures, never drops
  o.max_queued_ops = 4096;
  if (cfg.register_g2) o.transfer.uring_register_buffers_max_bytes = UINT64_MAX;

  std::error_code ec;
  std::filesystem::remove_all(cfg.dir, ec);
  fmt::print(
      "layout: {} ({} KiB blocks); {} requests x {} blocks = {:.2f} GiB; io_depth {}, "
      "{} loads in flight, promote {}, huge pages {}\n",
      layout.ToString(), block >> 10, requests, bpr,
      double(uint64_t{blocks} * block) / double(uint64_t{1} << 30), cfg.io_depth, cfg.concurrency,
      cfg.promote, cfg.huge_pages);

  Device device(layout, blocks);
  device.Fill(42);
  auto prompt = [&](uint32_t r) {
    std::vector<TokenId> t(size_t{bpr} * layout.tokens_per_block);
    for (size_t i = 0; i < t.size(); ++i)
      t[i] = static_cast<TokenId>((r * 7919u + i * 31u) % 32000);
    return t;
  };

  // ---- store: device -> G2 -> G3 -------------------------------------------------------
  double store_s = 0, g2_s = 0;
  {
    auto m = BlockManager::Create(o);
    if (!m.ok()) {
      fmt::print(stderr, "{}\n", m.status().ToString());
      return 1;
    }
    auto& manager = **m;
    if (Status st = manager.RegisterDeviceCache(device.cache); !st.ok()) {
      fmt::print(stderr, "{}\n", st.ToString());
      return 1;
    }
    fmt::print("G3: {} blocks, {}\n", manager.stats().disk_capacity_blocks,
               manager.stats().disk_direct_io ? "O_DIRECT" : "buffered");
    WaitPrefault(manager, o.host.capacity_bytes);
    std::vector<StoreHandle> handles;
    const auto t0 = Clock::now();
    for (uint32_t r = 0; r < requests; ++r) {
      RequestContext ctx{fmt::format("s{}", r)};
      auto keys = manager.ComputeKeys(prompt(r), ctx);
      std::vector<uint32_t> dev(bpr);
      for (uint32_t i = 0; i < bpr; ++i) dev[i] = r * bpr + i;
      auto h = manager.Store(ctx, *keys, dev);
      if (!h.ok()) {
        fmt::print(stderr, "{}\n", h.status().ToString());
        return 1;
      }
      handles.push_back(*h);
    }
    for (auto& h : handles) (void)h.Wait(std::chrono::minutes(5));
    g2_s = Seconds(Clock::now() - t0);
    for (;;) {
      const auto s = manager.stats();
      if (s.disk_offload_blocks + s.disk_offload_dropped + s.disk_offload_present >= blocks) break;
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    store_s = Seconds(Clock::now() - t0);
    const auto s = manager.stats();
    if (s.stored_blocks != blocks || s.disk_offload_blocks != blocks) {
      fmt::print(stderr, "stored {} of {} blocks, {} on disk, {} dropped\n", s.stored_blocks,
                 blocks, s.disk_offload_blocks, s.disk_offload_dropped);
      return 1;
    }
  }
  const double gb = double(uint64_t{blocks} * block) / 1e9;
  fmt::print("store   {:.3f} GB in {:.3f} s: {:.2f} GB/s device->G2->G3 ({:.2f} GB/s into G2)\n",
             gb, store_s, gb / store_s, gb / g2_s);

  // ---- restart ---------------------------------------------------------------------------
  const auto r0 = Clock::now();
  auto m = BlockManager::Create(o);
  if (!m.ok()) {
    fmt::print(stderr, "{}\n", m.status().ToString());
    return 1;
  }
  const double restart_s = Seconds(Clock::now() - r0);
  auto& manager = **m;
  (void)manager.RegisterDeviceCache(device.cache);
  WaitPrefault(manager, o.host.capacity_bytes);
  fmt::print("restart {:.3f} s to matchable ({} blocks recovered)\n", restart_s,
             manager.stats().disk_recovered_blocks);

  // Expected bytes: the device as stored, then overwritten by the loads below.
  std::vector<std::vector<std::byte>> expected;
  if (cfg.verify) expected = device.tensors;
  device.Fill(7);  // loads must overwrite every byte

  // ---- load: G3 -> (G2) -> device ----------------------------------------------------------
  struct InFlight {
    uint32_t r;
    LoadHandle handle;
    Clock::time_point start;
  };
  std::deque<InFlight> inflight;
  std::vector<double> lat_ms;
  uint64_t failed = 0;
  auto finish = [&](InFlight& f) {
    (void)f.handle.Wait(std::chrono::minutes(5));
    lat_ms.push_back(Seconds(Clock::now() - f.start) * 1e3);
    if (f.handle.usable_blocks() != bpr) ++failed;
    manager.Release(fmt::format("l{}", f.r));
  };
  const auto l0 = Clock::now();
  for (uint32_t r = 0; r < requests; ++r) {
    if (inflight.size() >= cfg.concurrency) {
      finish(inflight.front());
      inflight.pop_front();
    }
    RequestContext ctx{fmt::format("l{}", r)};
    const auto start = Clock::now();
    auto match = manager.Match(prompt(r), ctx);
    if (!match.ok() || match->num_matched_blocks() != bpr) {
      fmt::print(stderr, "request {}: matched {} of {} blocks\n", r,
                 match.ok() ? match->num_matched_blocks() : 0, bpr);
      return 1;
    }
    std::vector<uint32_t> dev(bpr);
    for (uint32_t i = 0; i < bpr; ++i) dev[i] = r * bpr + i;
    auto h = manager.Load(*match, dev);
    if (!h.ok()) {
      fmt::print(stderr, "{}\n", h.status().ToString());
      return 1;
    }
    inflight.push_back({r, *h, start});
  }
  while (!inflight.empty()) {
    finish(inflight.front());
    inflight.pop_front();
  }
  const double load_s = Seconds(Clock::now() - l0);
  const auto st = manager.stats();
  fmt::print(
      "load    {:.3f} GB in {:.3f} s: {:.2f} GB/s G3->device; per request of {} blocks "
      "({} MiB): p50 {:.2f} ms, p99 {:.2f} ms; {} blocks from disk, {} failed requests\n",
      gb, load_s, gb / load_s, bpr, (uint64_t{bpr} * block) >> 20, Percentile(lat_ms, 0.5),
      Percentile(lat_ms, 0.99), st.loaded_blocks_from_disk, failed);
  bool ok = failed == 0 && st.loaded_blocks_from_disk == blocks;
  if (cfg.verify) {
    for (size_t l = 0; l < expected.size(); ++l)
      if (expected[l] != device.tensors[l]) {
        fmt::print(stderr, "layer {}: loaded bytes differ from the stored ones\n", l);
        ok = false;
      }
    if (ok) fmt::print("verify  every loaded byte equals the stored byte\n");
  }
  if (!cfg.json.empty()) {
    std::FILE* f = std::fopen(cfg.json.c_str(), "w");
    if (f) {
      fmt::print(f,
                 "{{\"block_bytes\": {}, \"blocks\": {}, \"blocks_per_request\": {}, "
                 "\"io_depth\": {}, \"concurrency\": {}, \"store_gbps\": {:.4f}, "
                 "\"g2_gbps\": {:.4f}, \"restart_s\": {:.4f}, \"load_gbps\": {:.4f}, "
                 "\"load_p50_ms\": {:.3f}, \"load_p99_ms\": {:.3f}, \"ok\": {}}}\n",
                 block, blocks, bpr, cfg.io_depth, cfg.concurrency, gb / store_s, gb / g2_s,
                 restart_s, gb / load_s, Percentile(lat_ms, 0.5), Percentile(lat_ms, 0.99), ok);
      std::fclose(f);
    }
  }
  m->reset();
  std::filesystem::remove_all(cfg.dir, ec);
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Config cfg;
  CLI::App app{
      "strata-tierbench: G2 -> G3 offload and G3 -> device loads through the BlockManager"};
  app.add_option("--dir", cfg.dir, "disk tier directory (not tmpfs: O_DIRECT); wiped")
      ->capture_default_str();
  app.add_option("--total-gib", cfg.total_gib, "GiB of blocks to store and load")
      ->capture_default_str();
  app.add_option("--blocks-per-request", cfg.blocks_per_request, "blocks per Store/Load")
      ->capture_default_str();
  app.add_option("--concurrency", cfg.concurrency, "loads in flight")->capture_default_str();
  app.add_option("--io-depth", cfg.io_depth, "disk tier io_depth (records in flight)")
      ->capture_default_str();
  app.add_option("--backend", cfg.backend, "auto, posix or io_uring")->capture_default_str();
  app.add_flag("!--no-promote", cfg.promote, "stage G3 loads instead of promoting into G2");
  app.add_flag("!--no-huge-pages", cfg.huge_pages, "back G2 with 4 KiB pages");
  app.add_flag("!--no-verify", cfg.verify, "skip the byte comparison");
  app.add_flag("--register-g2", cfg.register_g2,
               "register all of G2 as io_uring fixed buffers (slow start-up)");
  app.add_option("--json", cfg.json, "write the results as JSON here");
  CLI11_PARSE(app, argc, argv);
  return Run(cfg);
}
