// Test helpers of the metrics tests: a real BlockManager (G2, optionally G3 in a temp
// dir) driven through store, match and load so that its counters move, and a reader of
// sample values in exposition text.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "manager/manager_test_util.h"
#include "strata/block_manager.h"

namespace strata::metrics::test {

// 2 layers x K/V x 2 heads x 64 dim fp16 x 8 tokens = 8 KiB blocks.
inline KvLayout TestLayout() {
  return KvLayout{.num_layers = 2,
                  .num_kv_heads = 2,
                  .head_dim = 64,
                  .dtype = DType::kFloat16,
                  .tokens_per_block = 8};
}

// A temp directory removed at destruction.
struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/strata-metrics-XXXXXX";
    path = mkdtemp(tmpl) ? tmpl : "";
  }
  ~TempDir() {
    std::error_code ec;
    if (!path.empty()) std::filesystem::remove_all(path, ec);
  }
  std::string path;
};

// A BlockManager of `host_blocks` G2 blocks, and a G3 tier under `disk_dir` unless empty.
inline Result<std::unique_ptr<BlockManager>> MakeManager(
    uint32_t host_blocks, const std::string& disk_dir,
    std::shared_ptr<BlockManagerObserver> observer = nullptr) {
  const KvLayout layout = TestLayout();
  BlockManagerOptions o;
  o.model_fingerprint = "metrics-test-model";
  o.layout = layout;
  o.host.capacity_bytes = uint64_t{host_blocks} * layout.block_bytes();
  o.host.pin_for_cuda = false;
  o.host.huge_pages = false;
  if (!disk_dir.empty()) {
    const uint64_t record = 4096 + (layout.block_bytes() + 4095) / 4096 * 4096;
    o.disk.directory = disk_dir;
    o.disk.region_bytes = 4 * record;
    o.disk.file_bytes = 8 * o.disk.region_bytes;
    o.disk.capacity_bytes = 16 * o.disk.region_bytes;
    o.disk.io_depth = 4;
    o.hierarchy.staging_slots = 4;
  }
  o.observer = std::move(observer);
  return BlockManager::Create(o);
}

// Stores an 8-block prompt (waiting for the disk offloads, if any), then matches it and
// loads every matched block. With a G2 of 4 blocks and a G3, the first blocks come from
// disk and the last from host. Returns the tokens matched.
inline size_t Exercise(BlockManager& m, manager_test::EmulatedDevice& device) {
  using namespace std::chrono_literals;
  const auto prompt = manager_test::Prompt(8 * 8 + 3, 7);
  const RequestContext writer{"writer"};
  auto keys = m.ComputeKeys(prompt, writer);
  EXPECT_TRUE(keys.ok());
  if (!keys.ok()) return 0;
  // Two stores of 4 blocks, each waited for until it is on disk too: a G2 of 4 blocks
  // cannot take 8 at once while its slots are still being written to G3.
  for (uint32_t first = 0; first < keys->size(); first += 4) {
    const uint32_t n = std::min<uint32_t>(4, keys->size() - first);
    std::vector<uint32_t> dev;
    for (uint32_t i = first; i < first + n; ++i) {
      dev.push_back(i);
      device.Fill(i, i + 1);
    }
    auto store = m.Store(writer, std::span(*keys).subspan(first, n), dev);
    EXPECT_TRUE(store.ok());
    if (!store.ok()) return 0;
    EXPECT_TRUE(store->Wait(10s).ok());
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    for (;;) {
      const auto s = m.stats();
      if (s.disk_capacity_blocks == 0 ||
          (s.disk_offload_blocks + s.disk_offload_present + s.disk_offload_dropped >= first + n &&
           s.disk_offload_queued == 0))
        break;
      if (std::chrono::steady_clock::now() > deadline) {
        ADD_FAILURE() << "disk offload did not finish";
        break;
      }
      std::this_thread::sleep_for(2ms);
    }
  }
  const RequestContext reader{"reader"};
  auto match = m.Match(prompt, reader);
  EXPECT_TRUE(match.ok());
  if (!match.ok()) return 0;
  std::vector<uint32_t> into;
  for (uint32_t i = 0; i < match->num_matched_blocks(); ++i) into.push_back(16 + i);
  auto load = m.Load(*match, into);
  EXPECT_TRUE(load.ok());
  if (load.ok()) {
    EXPECT_TRUE(load->Wait(10s).ok());
  }
  m.Release("reader");
  return match->num_matched_tokens;
}

// The value of the sample `series` (name with its labels exactly as rendered, e.g.
// `strata_bytes_total{path="host_to_disk"}`), or nullopt.
inline std::optional<double> Sample(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
        line[series.size()] == ' ')
      return std::stod(line.substr(series.size() + 1));
  }
  return std::nullopt;
}

}  // namespace strata::metrics::test
