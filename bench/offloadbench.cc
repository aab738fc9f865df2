// strata-offloadbench: how many blocks the G2 -> G3 write-through drops when clients store
// prompts faster than the disk writes them (issue 13 item 5), against a real BlockManager
// with a real G3 on disk.
//
// Each of `clients` threads plays one client of `strata serve --preset tiny`: it sends
// `prompts` prompts one after another. One engine serves them all, one prompt at a time:
// it computes for `engine_ms` (prefill and decode, a shared lock), then Stores every full
// block into G2 — the engine's path, which never waits for the disk — and the client waits
// `think_ms` before its next prompt. When every offload has settled, the blocks dropped on their
// way to disk are counted per 1,000 blocks stored into G2, then the manager is restarted on the
// same directory and every prompt is matched again: a prompt is "on disk" when all its blocks are
// found in G3.
//
// `--sizing` selects the offload queue: `current` (the defaults: a queue sized from G2 and
// a backlog of keys behind it), `legacy` (the fixed 256-block queue that dropped at once,
// as before the fix) or `both` (legacy first, then current, same run).
//
// Only the public API (strata/block_manager.h) is used, as an engine would.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "strata/block_manager.h"

namespace {

using namespace strata;
using Clock = std::chrono::steady_clock;

struct Config {
  std::string dir = "/var/tmp/strata-offloadbench";
  std::string clients = "1,4,16";
  uint32_t prompts = 8;              // per client, one after another
  uint32_t blocks_per_prompt = 240;  // 960 tokens of the tiny preset (1,024-token context)
  double engine_ms = 10;             // engine time per prompt (serialized across clients)
  double think_ms = 0;               // client time between an answer and its next prompt
  double host_mb = 4;                // G2
  double disk_gb = 0.25;             // G3
  std::string sizing = "both";
  uint32_t repeat = 1;
};

// The tiny preset's KV layout: 2 layers x K/V x 2 heads x 16 dim fp32 x 4 tokens = 2 KiB.
KvLayout TinyLayout() {
  return KvLayout{.num_layers = 2,
                  .num_kv_heads = 2,
                  .head_dim = 16,
                  .dtype = DType::kFloat32,
                  .tokens_per_block = 4};
}

struct Device {
  Device(const KvLayout& layout, uint32_t blocks) {
    cache.view.layout = layout;
    cache.view.order = DeviceOrder::kBlockMajor;
    cache.view.num_blocks = blocks;
    std::mt19937_64 rng(7);
    for (uint32_t l = 0; l < layout.num_layers; ++l) {
      tensors.emplace_back(cache.view.layer_bytes());
      auto* p = reinterpret_cast<uint64_t*>(tensors.back().data());
      for (size_t i = 0; i < tensors.back().size() / 8; ++i) p[i] = rng();
      cache.view.layer_base.push_back(tensors.back().data());
    }
  }
  std::vector<std::vector<std::byte>> tensors;
  DeviceCache cache;
};

struct RunResult {
  uint64_t stored = 0, store_dropped = 0, written = 0, dropped = 0, deferred = 0;
  uint32_t prompts = 0, prompts_on_disk = 0;
  double store_p99_ms = 0, seconds = 0;
};

std::vector<TokenId> PromptTokens(uint32_t client, uint32_t p, uint32_t tokens, uint64_t run) {
  std::vector<TokenId> t(tokens + 1);  // one token past the last full block
  for (size_t i = 0; i < t.size(); ++i)
    t[i] = static_cast<TokenId>((run * 1000003 + client * 7919u + p * 104729u + i * 31u) % 256);
  // Distinct prompts: the first token tells them apart, so no two share a prefix.
  t[0] = static_cast<TokenId>(run * 100000 + client * 1000 + p);
  return t;
}

RunResult RunOne(const Config& cfg, bool legacy, uint32_t clients, uint64_t run) {
  const KvLayout layout = TinyLayout();
  BlockManagerOptions o;
  o.model_fingerprint = "strata-offloadbench";
  o.layout = layout;
  o.host.capacity_bytes = static_cast<uint64_t>(cfg.host_mb * double(1 << 20));
  o.host.pin_for_cuda = false;
  o.disk.directory = cfg.dir;
  o.disk.capacity_bytes = static_cast<uint64_t>(cfg.disk_gb * double(uint64_t{1} << 30));
  o.disk.reset_on_mismatch = true;
  if (legacy) {
    o.hierarchy.max_queued_disk_writes = 256;
    o.hierarchy.defer_disk_writes = false;
  }
  std::error_code ec;
  std::filesystem::remove_all(cfg.dir, ec);
  Device device(layout, clients * cfg.blocks_per_prompt);
  const uint32_t tokens = cfg.blocks_per_prompt * layout.tokens_per_block;

  RunResult res;
  res.prompts = clients * cfg.prompts;
  {
    auto m = BlockManager::Create(o);
    if (!m.ok()) {
      fmt::print(stderr, "{}\n", m.status().ToString());
      std::exit(1);
    }
    BlockManager& manager = **m;
    if (Status st = manager.RegisterDeviceCache(device.cache); !st.ok()) {
      fmt::print(stderr, "{}\n", st.ToString());
      std::exit(1);
    }
    std::vector<std::vector<double>> store_ms(clients);
    std::mutex engine;  // one engine computes one prompt at a time
    std::vector<std::thread> threads;
    const auto t0 = Clock::now();
    for (uint32_t c = 0; c < clients; ++c) {
      threads.emplace_back([&, c] {
        std::vector<uint32_t> dev(cfg.blocks_per_prompt);
        for (uint32_t i = 0; i < cfg.blocks_per_prompt; ++i) dev[i] = c * cfg.blocks_per_prompt + i;
        for (uint32_t p = 0; p < cfg.prompts; ++p) {
          const RequestContext ctx{fmt::format("c{}-p{}", c, p)};
          const std::vector<TokenId> prompt = PromptTokens(c, p, tokens, run);
          auto keys = manager.ComputeKeys(prompt, ctx);
          {
            std::lock_guard lock(engine);
            auto match = manager.Match(prompt, ctx);  // a miss: every prompt is new
            std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(cfg.engine_ms));
            const auto s0 = Clock::now();
            auto h = manager.Store(ctx, *keys, dev);
            if (h.ok()) (void)h->Wait(std::chrono::minutes(1));
            store_ms[c].push_back(
                std::chrono::duration<double, std::milli>(Clock::now() - s0).count());
            manager.Release(ctx.request_id);
          }
          std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(cfg.think_ms));
        }
      });
    }
    for (auto& t : threads) t.join();
    for (;;) {  // every offload settled: written, present or dropped
      const auto s = manager.stats();
      if (s.disk_offload_queued == 0 && s.host_leased_blocks == 0 &&
          s.disk_offload_blocks + s.disk_offload_present + s.disk_offload_dropped >=
              s.stored_blocks)
        break;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    res.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    const auto s = manager.stats();
    res.stored = s.stored_blocks;
    res.store_dropped = s.store_dropped_blocks;
    res.written = s.disk_offload_blocks;
    res.dropped = s.disk_offload_dropped;
    res.deferred = s.disk_offload_deferred;
    std::vector<double> all;
    for (auto& v : store_ms) all.insert(all.end(), v.begin(), v.end());
    std::sort(all.begin(), all.end());
    res.store_p99_ms = all.empty() ? 0 : all[std::min(all.size() - 1, all.size() * 99 / 100)];
  }
  // Restart: G2 is empty, so a prompt matches whole only if every block reached the disk.
  auto m = BlockManager::Create(o);
  if (!m.ok()) {
    fmt::print(stderr, "{}\n", m.status().ToString());
    std::exit(1);
  }
  for (uint32_t c = 0; c < clients; ++c) {
    for (uint32_t p = 0; p < cfg.prompts; ++p) {
      const RequestContext ctx{"check"};
      auto match = (*m)->Match(PromptTokens(c, p, tokens, run), ctx);
      if (match.ok() && match->num_matched_blocks() == cfg.blocks_per_prompt) ++res.prompts_on_disk;
      (*m)->Release("check");
    }
  }
  return res;
}

}  // namespace

int main(int argc, char** argv) {
  Config cfg;
  CLI::App app{"strata-offloadbench: G2 -> G3 offload drops per 1,000 blocks stored"};
  app.add_option("--dir", cfg.dir, "G3 directory (wiped)");
  app.add_option("--clients", cfg.clients, "comma-separated client counts");
  app.add_option("--prompts", cfg.prompts, "prompts per client, one after another");
  app.add_option("--blocks-per-prompt", cfg.blocks_per_prompt, "full blocks of each prompt");
  app.add_option("--engine-ms", cfg.engine_ms, "engine time per prompt, one prompt at a time");
  app.add_option("--think-ms", cfg.think_ms, "client time between an answer and its next prompt");
  app.add_option("--host-mb", cfg.host_mb, "G2 MiB");
  app.add_option("--disk-gb", cfg.disk_gb, "G3 GiB");
  app.add_option("--sizing", cfg.sizing, "current | legacy | both")
      ->check(CLI::IsMember({"current", "legacy", "both"}));
  app.add_option("--repeat", cfg.repeat, "runs of each configuration");
  bool verbose = false;
  app.add_flag("--verbose", verbose, "show the manager's log (drop warnings included)");
  CLI11_PARSE(app, argc, argv);
  if (!verbose) spdlog::set_level(spdlog::level::err);
  std::vector<uint32_t> counts;
  std::stringstream ss(cfg.clients);
  for (std::string item; std::getline(ss, item, ',');) counts.push_back(std::stoul(item));

  const KvLayout layout = TinyLayout();
  fmt::print(
      "layout {} ({} B); G2 {} MiB ({} blocks), G3 {} GiB in {}; {} prompts/client of {} "
      "blocks, engine {} ms a prompt, think {} ms\n",
      layout.ToString(), layout.block_bytes(), cfg.host_mb,
      static_cast<uint64_t>(cfg.host_mb * double(1 << 20)) / layout.block_bytes(), cfg.disk_gb,
      cfg.dir, cfg.prompts, cfg.blocks_per_prompt, cfg.engine_ms, cfg.think_ms);
  fmt::print("{:>7} {:>7} {:>8} {:>8} {:>8} {:>9} {:>8} {:>9} {:>11} {:>10} {:>7}\n", "sizing",
             "clients", "stored", "written", "dropped", "per_1000", "deferred", "g2_full",
             "on_disk", "store_p99", "secs");
  std::vector<bool> modes;
  if (cfg.sizing != "current") modes.push_back(true);
  if (cfg.sizing != "legacy") modes.push_back(false);
  uint64_t run = 0;
  for (uint32_t clients : counts) {
    for (bool legacy : modes) {
      for (uint32_t r = 0; r < cfg.repeat; ++r) {
        const RunResult res = RunOne(cfg, legacy, clients, ++run);
        fmt::print(
            "{:>7} {:>7} {:>8} {:>8} {:>8} {:>9.1f} {:>8} {:>9} {:>5}/{:<5} {:>8.2f}ms {:>7.2f}\n",
            legacy ? "legacy" : "current", clients, res.stored, res.written, res.dropped,
            res.stored ? 1000.0 * double(res.dropped) / double(res.stored) : 0.0, res.deferred,
            res.store_dropped, res.prompts_on_disk, res.prompts, res.store_p99_ms, res.seconds);
        std::fflush(stdout);
      }
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(cfg.dir, ec);
  return 0;
}
