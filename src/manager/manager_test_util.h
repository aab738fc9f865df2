// Test helpers shared by the BlockManager tests: an engine's paged KV cache in
// host-emulated device memory, and deterministic prompts.
#pragma once

#include <cstddef>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "strata/block_manager.h"

namespace strata::manager_test {

// An engine's paged KV cache in host-emulated device memory.
struct EmulatedDevice {
  EmulatedDevice(const KvLayout& layout, uint32_t blocks,
                 DeviceOrder order = DeviceOrder::kKvMajor) {
    cache.view.layout = layout;
    cache.view.order = order;
    cache.view.num_blocks = blocks;
    for (uint32_t l = 0; l < layout.num_layers; ++l) {
      tensors.emplace_back(cache.view.layer_bytes());
      cache.view.layer_base.push_back(tensors.back().data());
    }
  }
  // Fills device block b with bytes derived from `seed`.
  void Fill(uint32_t b, uint32_t seed) {
    std::mt19937 rng(seed);
    for (uint32_t l = 0; l < cache.view.layout.num_layers; ++l)
      for (uint32_t c = 0; c < cache.view.layout.num_components(); ++c) {
        std::byte* p = cache.view.chunk(l, c, b);
        for (size_t i = 0; i < cache.view.layout.chunk_bytes(); ++i)
          p[i] = static_cast<std::byte>(rng());
      }
  }
  std::vector<std::byte> Block(uint32_t b) const {
    std::vector<std::byte> out(cache.view.layout.block_bytes());
    EXPECT_TRUE(GatherBlock(cache.view, b, out).ok());
    return out;
  }
  std::vector<std::vector<std::byte>> tensors;
  DeviceCache cache;
};

// `n` tokens derived from `seed`: equal seeds give equal prompts.
inline std::vector<TokenId> Prompt(size_t n, TokenId seed) {
  std::vector<TokenId> t(n);
  for (size_t i = 0; i < n; ++i) t[i] = static_cast<TokenId>((seed * 1000003 + i * 7919) % 50000);
  return t;
}

// Captures what spdlog's default logger writes while it lives (message text only).
class CapturedLog {
 public:
  CapturedLog() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
    sink->set_pattern("%v");
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("captured", sink));
  }
  ~CapturedLog() { spdlog::set_default_logger(previous_); }
  CapturedLog(const CapturedLog&) = delete;
  CapturedLog& operator=(const CapturedLog&) = delete;

  // Every line logged so far, or only those containing `needle`.
  std::vector<std::string> Lines(std::string_view needle = {}) const {
    std::vector<std::string> lines;
    std::istringstream in(out_.str());
    for (std::string l; std::getline(in, l);)
      if (l.find(needle) != std::string::npos) lines.push_back(l);
    return lines;
  }

 private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::logger> previous_;
};

}  // namespace strata::manager_test
