// Many threads storing, matching, loading and releasing at once on one BlockManager
// with a host tier small enough to evict constantly. Every loaded block must hold
// exactly the bytes its key was stored with. Run under TSAN in CI.
#include <atomic>
#include <cstring>
#include <thread>

#include <gtest/gtest.h>

#include "strata/block_manager.h"

namespace strata {
namespace {

using namespace std::chrono_literals;

constexpr uint32_t kThreads = 6;
constexpr uint32_t kDevicePerThread = 8;

KvLayout Layout() {
  return KvLayout{.num_layers = 2,
                  .num_kv_heads = 2,
                  .head_dim = 16,
                  .dtype = DType::kFloat32,
                  .tokens_per_block = 4};
}

// Block content is a pure function of the prompt family and block index, so any
// thread can verify any load.
uint8_t ByteFor(uint32_t family, uint32_t block, size_t i) {
  return static_cast<uint8_t>(family * 131 + block * 31 + i * 7);
}

TEST(BlockManagerConcurrencyTest, ConcurrentStoreMatchLoadKeepsBytesExact) {
  const KvLayout layout = Layout();
  BlockManagerOptions o;
  o.model_fingerprint = "concurrency";
  o.layout = layout;
  o.host.capacity_bytes = 24 * layout.block_bytes();  // far smaller than the working set
  o.host.pin_for_cuda = false;
  o.worker_threads = 3;
  o.max_queued_ops = 64;
  auto created = BlockManager::Create(o);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  BlockManager& m = **created;

  // Block-major device cache; each thread owns a disjoint range of device blocks.
  std::vector<std::vector<std::byte>> tensors;
  DeviceCache dev;
  dev.view.layout = layout;
  dev.view.order = DeviceOrder::kBlockMajor;
  dev.view.num_blocks = kThreads * kDevicePerThread;
  for (uint32_t l = 0; l < layout.num_layers; ++l) {
    tensors.emplace_back(dev.view.layer_bytes());
    dev.view.layer_base.push_back(tensors.back().data());
  }
  ASSERT_TRUE(m.RegisterDeviceCache(dev).ok());

  std::atomic<uint64_t> verified{0}, hits{0}, failures{0};
  auto worker = [&](uint32_t t) {
    std::vector<std::byte> buf(layout.block_bytes());
    const uint32_t base = t * kDevicePerThread;
    for (uint32_t iter = 0; iter < 300; ++iter) {
      const uint32_t family = (iter * 7 + t) % 10;  // 10 prompt families shared by all threads
      const uint32_t nblocks = 1 + (iter + t) % 4;
      std::vector<TokenId> tokens(nblocks * layout.tokens_per_block);
      for (size_t i = 0; i < tokens.size(); ++i)
        tokens[i] = static_cast<TokenId>(family * 1000 + i);
      const std::string id = "t" + std::to_string(t) + "-" + std::to_string(iter);
      RequestContext ctx{id};

      auto match = m.Match(tokens, ctx);
      ASSERT_TRUE(match.ok()) << match.status().ToString();
      const size_t matched = match->num_matched_blocks();
      if (matched > 0) {
        std::vector<uint32_t> dst(matched);
        for (uint32_t b = 0; b < matched; ++b) dst[b] = base + b;
        auto load = m.Load(*match, dst);
        ASSERT_TRUE(load.ok()) << load.status().ToString();
        ASSERT_TRUE(load->Wait(30s).ok());
        for (uint32_t b = 0; b < load->usable_blocks(); ++b) {
          ASSERT_TRUE(GatherBlock(dev.view, dst[b], buf).ok());
          for (size_t i = 0; i < buf.size(); ++i)
            ASSERT_EQ(buf[i], std::byte{ByteFor(family, b, i)})
                << "family " << family << " block " << b;
          verified++;
        }
        hits += matched;
      }
      // "Compute" the rest and store every block.
      std::vector<uint32_t> src(nblocks);
      for (uint32_t b = 0; b < nblocks; ++b) {
        src[b] = base + b;
        for (size_t i = 0; i < buf.size(); ++i) buf[i] = std::byte{ByteFor(family, b, i)};
        ASSERT_TRUE(ScatterBlock(buf, dev.view, src[b]).ok());
      }
      auto store = m.Store(ctx, match->keys, src);
      ASSERT_TRUE(store.ok()) << store.status().ToString();
      ASSERT_TRUE(store->Wait(30s).ok());  // device blocks are reused next iteration
      for (size_t i = 0; i < store->num_blocks(); ++i)
        if (store->state(i) == BlockState::kFailed) failures++;
      if (iter % 3 == 0)
        m.Cancel(id);
      else
        m.Release(id);
    }
  };
  std::vector<std::thread> threads;
  for (uint32_t t = 0; t < kThreads; ++t) threads.emplace_back(worker, t);
  for (auto& th : threads) th.join();

  const auto st = m.stats();
  EXPECT_EQ(failures.load(), 0u);
  EXPECT_GT(verified.load(), 0u);
  EXPECT_EQ(st.loaded_blocks + st.load_failed_blocks + st.load_cancelled_blocks, hits.load());
  EXPECT_GT(st.host_evictions, 0u);
  EXPECT_EQ(st.host_leased_blocks, 0u);  // every lease was returned
  EXPECT_EQ(st.active_requests, 0u);
}

}  // namespace
}  // namespace strata
