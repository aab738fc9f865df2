// BlockManager with only G2: store, match, load end to end on host-emulated device
// memory; LRU under a small budget; leases; cancel; errors; dedup.
#include "strata/block_manager.h"

#include <cstring>
#include <random>

#include <gtest/gtest.h>

#include "manager/manager_test_util.h"

namespace strata {
namespace {

using namespace std::chrono_literals;
using manager_test::EmulatedDevice;

KvLayout SmallLayout() {
  return KvLayout{.num_layers = 3,
                  .num_kv_heads = 2,
                  .head_dim = 24,
                  .dtype = DType::kFloat16,
                  .tokens_per_block = 4};
}

// Options for a test manager of `layout` whose host tier holds `host_blocks` blocks.
BlockManagerOptions TestOptions(const KvLayout& layout, uint64_t host_blocks) {
  BlockManagerOptions o;
  o.model_fingerprint = "test-model";
  o.layout = layout;
  o.host.capacity_bytes = host_blocks * layout.block_bytes();
  o.host.pin_for_cuda = false;
  return o;
}

class BlockManagerTest : public ::testing::Test {
 protected:
  void SetUp() override { Make(64); }
  void Make(uint32_t host_blocks, uint32_t queue = 1024) {
    manager_.reset();
    BlockManagerOptions o = TestOptions(SmallLayout(), host_blocks);
    o.max_queued_ops = queue;
    auto m = BlockManager::Create(o);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    manager_ = std::move(m).value();
    device_ = std::make_unique<EmulatedDevice>(SmallLayout(), 32);
    ASSERT_TRUE(manager_->RegisterDeviceCache(device_->cache).ok());
  }

  static std::vector<TokenId> Prompt(size_t n, TokenId seed) {
    return manager_test::Prompt(n, seed);
  }

  // Stores the full blocks of `tokens` from device blocks first_dev.. and waits.
  void StorePrompt(const std::vector<TokenId>& tokens, uint32_t first_dev,
                   RequestContext ctx = {"w"}) {
    auto keys = manager_->ComputeKeys(tokens, ctx);
    ASSERT_TRUE(keys.ok());
    std::vector<uint32_t> dev;
    for (uint32_t i = 0; i < keys->size(); ++i) {
      dev.push_back(first_dev + i);
      device_->Fill(first_dev + i, first_dev + i);
    }
    auto h = manager_->Store(ctx, *keys, dev);
    ASSERT_TRUE(h.ok()) << h.status().ToString();
    ASSERT_TRUE(h->Wait(10s).ok());
    for (size_t i = 0; i < h->num_blocks(); ++i)
      ASSERT_TRUE(h->state(i) == BlockState::kDone || h->state(i) == BlockState::kSkipped)
          << BlockStateName(h->state(i)) << " " << h->error(i).ToString();
  }

  std::unique_ptr<BlockManager> manager_;
  std::unique_ptr<EmulatedDevice> device_;
};

TEST_F(BlockManagerTest, StoreMatchLoadRoundTripIsByteExact) {
  const auto prompt = Prompt(4 * 5 + 3, 1);  // 5 full blocks + 3 tokens
  StorePrompt(prompt, 0);

  RequestContext ctx{"r1"};
  auto match = manager_->Match(prompt, ctx);
  ASSERT_TRUE(match.ok()) << match.status().ToString();
  EXPECT_EQ(match->num_prompt_tokens, prompt.size());
  EXPECT_EQ(match->num_matched_tokens, 20u);
  ASSERT_EQ(match->num_matched_blocks(), 5u);
  EXPECT_EQ(match->keys.size(), 5u);
  for (Tier t : match->tiers) EXPECT_EQ(t, Tier::kHost);

  const std::vector<uint32_t> dst{20, 21, 22, 23, 24};
  auto load = manager_->Load(*match, dst);
  ASSERT_TRUE(load.ok()) << load.status().ToString();
  ASSERT_TRUE(load->Wait(10s).ok());
  EXPECT_EQ(load->usable_blocks(), 5u);
  EXPECT_EQ(load->usable_tokens(), 20u);
  for (uint32_t i = 0; i < 5; ++i)
    EXPECT_EQ(device_->Block(dst[i]), device_->Block(i)) << "block " << i;
  manager_->Release("r1");

  const auto st = manager_->stats();
  EXPECT_EQ(st.stored_blocks, 5u);
  EXPECT_EQ(st.loaded_blocks, 5u);
  EXPECT_EQ(st.loaded_bytes, 5 * SmallLayout().block_bytes());
  EXPECT_EQ(st.match_hit_blocks, 5u);
  EXPECT_EQ(st.host_leased_blocks, 0u);
  EXPECT_EQ(st.active_requests, 0u);
}

TEST_F(BlockManagerTest, MissesAndPartialPrefixes) {
  const auto prompt = Prompt(16, 2);
  auto miss = manager_->Match(prompt, {"r"});
  ASSERT_TRUE(miss.ok());
  EXPECT_EQ(miss->num_matched_tokens, 0u);
  EXPECT_EQ(miss->keys.size(), 4u);

  StorePrompt(std::vector<TokenId>(prompt.begin(), prompt.begin() + 8), 0);
  auto longer = prompt;
  longer.push_back(5);
  auto hit = manager_->Match(longer, {"r"});
  ASSERT_TRUE(hit.ok());
  EXPECT_EQ(hit->num_matched_tokens, 8u);  // a prefix: blocks 0 and 1

  auto diverged = prompt;
  diverged[1] = 49999;  // block 0 differs, so nothing after it can match either
  EXPECT_EQ(manager_->Match(diverged, {"r"})->num_matched_tokens, 0u);
  manager_->Release("r");
}

TEST_F(BlockManagerTest, CacheSaltIsolatesTenants) {
  const auto prompt = Prompt(16, 3);
  StorePrompt(prompt, 0, {"w", "tenant-a"});
  EXPECT_EQ(manager_->Match(prompt, {"a", "tenant-a"})->num_matched_tokens, 16u);
  EXPECT_EQ(manager_->Match(prompt, {"b", "tenant-b"})->num_matched_tokens, 0u);
  EXPECT_EQ(manager_->Match(prompt, {"c"})->num_matched_tokens, 0u);
  EXPECT_EQ(manager_->Match(prompt, {"d", "tenant-a", "lora-1"})->num_matched_tokens, 0u);
  for (auto id : {"a", "b", "c", "d"}) manager_->Release(id);
}

TEST_F(BlockManagerTest, LoadOfASuffixReleasesTheSkippedLeases) {
  const auto prompt = Prompt(16, 4);
  StorePrompt(prompt, 0);
  auto match = manager_->Match(prompt, {"r"});
  ASSERT_EQ(match->num_matched_blocks(), 4u);
  EXPECT_EQ(manager_->stats().host_leased_blocks, 4u);
  // The engine already holds blocks 0-1 on device; it loads only 2-3.
  auto load = manager_->Load(*match, std::vector<uint32_t>{10, 11}, /*first_block=*/2);
  ASSERT_TRUE(load.ok());
  ASSERT_TRUE(load->Wait(10s).ok());
  EXPECT_EQ(device_->Block(10), device_->Block(2));
  EXPECT_EQ(device_->Block(11), device_->Block(3));
  EXPECT_EQ(manager_->stats().host_leased_blocks, 0u);
  // Loading a block twice is refused with a reason.
  auto again = manager_->Load(*match, std::vector<uint32_t>{12}, 3);
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.status().message().find("already loaded"), std::string::npos);
  manager_->Release("r");
}

TEST_F(BlockManagerTest, EvictionUnderASmallBudgetIsLru) {
  Make(4);
  std::vector<std::vector<TokenId>> prompts;
  for (int i = 0; i < 5; ++i) prompts.push_back(Prompt(4, 100 + i));  // one block each
  for (int i = 0; i < 4; ++i) StorePrompt(prompts[i], i);
  // Touch prompt 0 so prompt 1 is now the least recently used.
  ASSERT_EQ(manager_->Match(prompts[0], {"t"})->num_matched_blocks(), 1u);
  manager_->Release("t");
  StorePrompt(prompts[4], 4);
  auto hits = [&](int i) {
    auto m = manager_->Match(prompts[i], {"probe"});
    manager_->Release("probe");
    return m->num_matched_blocks();
  };
  EXPECT_EQ(hits(1), 0u);
  // Probing refreshes, so check the survivors after the evicted one.
  EXPECT_EQ(hits(0), 1u);
  EXPECT_EQ(hits(2), 1u);
  EXPECT_EQ(hits(3), 1u);
  EXPECT_EQ(hits(4), 1u);
  EXPECT_EQ(manager_->stats().host_evictions, 1u);
}

TEST_F(BlockManagerTest, MatchedBlocksAreLeasedUntilReleased) {
  Make(2);
  const auto a = Prompt(8, 5);  // two blocks fill the tier
  StorePrompt(a, 0);
  auto match = manager_->Match(a, {"reader"});
  ASSERT_EQ(match->num_matched_blocks(), 2u);
  // A new store cannot evict leased blocks: it is dropped, not waited for.
  const auto b = Prompt(4, 6);
  auto keys = manager_->ComputeKeys(b, {"w2"});
  auto store = manager_->Store({"w2"}, *keys, std::vector<uint32_t>{5});
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE(store->Wait(1s).ok());
  EXPECT_EQ(store->state(0), BlockState::kDropped);
  EXPECT_EQ(store->error(0).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(manager_->stats().store_dropped_blocks, 1u);
  manager_->Release("reader");
  StorePrompt(b, 5);
  EXPECT_EQ(manager_->stats().host_evictions, 1u);
}

TEST_F(BlockManagerTest, RepeatedStoreIsSkippedAndMatchAgainReplacesLeases) {
  const auto prompt = Prompt(8, 7);
  StorePrompt(prompt, 0);
  auto keys = manager_->ComputeKeys(prompt, {"w"});
  auto again = manager_->Store({"w"}, *keys, std::vector<uint32_t>{0, 1});
  ASSERT_TRUE(again->Wait(1s).ok());
  EXPECT_EQ(again->state(0), BlockState::kSkipped);
  EXPECT_EQ(again->state(1), BlockState::kSkipped);
  EXPECT_EQ(manager_->stats().store_skipped_blocks, 2u);

  auto m1 = manager_->Match(prompt, {"r"});
  auto m2 = manager_->Match(prompt, {"r"});  // e.g. the scheduler retried
  EXPECT_EQ(manager_->stats().host_leased_blocks, 2u);
  // The first match is stale now only if the prefix changed; it has not, so loading works.
  auto load = manager_->Load(*m2, std::vector<uint32_t>{9, 10});
  ASSERT_TRUE(load.ok()) << load.status().ToString();
  ASSERT_TRUE(load->Wait(1s).ok());
  manager_->Release("r");
  EXPECT_EQ(manager_->stats().host_leased_blocks, 0u);
}

TEST_F(BlockManagerTest, CancelReleasesLeasesAndLoadAfterCancelFails) {
  const auto prompt = Prompt(8, 8);
  StorePrompt(prompt, 0);
  auto match = manager_->Match(prompt, {"r"});
  EXPECT_EQ(manager_->stats().host_leased_blocks, 2u);
  manager_->Cancel("r");
  EXPECT_EQ(manager_->stats().host_leased_blocks, 0u);
  auto load = manager_->Load(*match, std::vector<uint32_t>{3, 4});
  ASSERT_FALSE(load.ok());
  EXPECT_EQ(load.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(BlockManagerTest, FullQueueDropsStoresInsteadOfWaiting) {
  // One worker and one queue slot; each store copies 32 MiB, each Store() call takes
  // microseconds, so back-to-back stores overflow the queue and must be dropped at once.
  const KvLayout big{.num_layers = 4,
                     .num_kv_heads = 8,
                     .head_dim = 128,
                     .dtype = DType::kFloat32,
                     .tokens_per_block = 16};  // 512 KiB blocks
  BlockManagerOptions o = TestOptions(big, 256);
  o.worker_threads = 1;
  o.max_queued_ops = 1;
  auto m = BlockManager::Create(o);
  ASSERT_TRUE(m.ok());
  EmulatedDevice dev(big, 64);
  ASSERT_TRUE((*m)->RegisterDeviceCache(dev.cache).ok());
  std::vector<uint32_t> ids(64);
  for (uint32_t i = 0; i < 64; ++i) ids[i] = i;
  std::vector<std::vector<BlockKey>> keys;
  for (int round = 0; round < 8; ++round)
    keys.push_back(*(*m)->ComputeKeys(Prompt(16 * 64, 1000 + round), {"w"}));

  std::vector<StoreHandle> handles;
  for (const auto& k : keys) handles.push_back(*(*m)->Store({"w"}, k, ids));
  size_t dropped = 0;
  for (auto& h : handles) {
    for (size_t i = 0; i < h.num_blocks(); ++i) {
      if (h.state(i) != BlockState::kDropped) continue;
      ++dropped;
      EXPECT_NE(h.error(i).message().find("queue full"), std::string::npos)
          << h.error(i).ToString();
    }
  }
  EXPECT_GT(dropped, 0u);
  EXPECT_EQ((*m)->stats().store_dropped_blocks, dropped);
  for (auto& h : handles) ASSERT_TRUE(h.Wait(30s).ok());
}

TEST_F(BlockManagerTest, ArgumentErrorsNameTheProblem) {
  const auto prompt = Prompt(8, 10);
  auto keys = manager_->ComputeKeys(prompt, {"w"});
  auto bad = manager_->Store({"w"}, *keys, std::vector<uint32_t>{0});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("2 keys but 1 device blocks"), std::string::npos);
  auto range = manager_->Store({"w"}, *keys, std::vector<uint32_t>{0, 999});
  ASSERT_FALSE(range.ok());
  EXPECT_NE(range.status().message().find("device block 999"), std::string::npos);
  EXPECT_EQ(manager_->Match(prompt, {""}).status().code(), StatusCode::kInvalidArgument);

  StorePrompt(prompt, 0);
  auto match = manager_->Match(prompt, {"r"});
  auto too_many = manager_->Load(*match, std::vector<uint32_t>{1, 2, 3});
  ASSERT_FALSE(too_many.ok());
  EXPECT_NE(too_many.status().message().find("outside the 2 matched blocks"), std::string::npos);
  manager_->Release("r");

  EXPECT_EQ(manager_->RegisterDeviceCache(device_->cache).code(), StatusCode::kAlreadyExists);
  DeviceCache cuda = device_->cache;
  cuda.kind = DeviceMemoryKind::kCuda;  // host memory claimed to be CUDA memory
  BlockManagerOptions o = TestOptions(SmallLayout(), 64);
  auto fresh = BlockManager::Create(o);
  ASSERT_TRUE(fresh.ok());
  Status s = (*fresh)->RegisterDeviceCache(cuda);
  // Without a CUDA device the transfer engine refuses it; with one, the pointer check does.
  EXPECT_TRUE(s.code() == StatusCode::kNotSupported || s.code() == StatusCode::kInvalidArgument)
      << s.ToString();
}

TEST_F(BlockManagerTest, LayoutMismatchIsRefused) {
  BlockManagerOptions o = TestOptions(SmallLayout(), 64);
  auto m = BlockManager::Create(o);
  ASSERT_TRUE(m.ok());
  KvLayout other = SmallLayout();
  other.head_dim = 32;
  EmulatedDevice dev(other, 4);
  Status s = (*m)->RegisterDeviceCache(dev.cache);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("differs"), std::string::npos);
}

TEST_F(BlockManagerTest, InvalidOptionsAreRefused) {
  BlockManagerOptions o;
  o.layout = SmallLayout();
  EXPECT_NE(BlockManager::Create(o).status().message().find("model_fingerprint"),
            std::string::npos);
  o.model_fingerprint = "m";
  o.host.capacity_bytes = 10;  // less than one block
  EXPECT_NE(BlockManager::Create(o).status().message().find("smaller than one block"),
            std::string::npos);
}

TEST_F(BlockManagerTest, PinnedPrefixSurvivesPressure) {
  Make(3);
  const auto system_prompt = Prompt(4, 11);
  StorePrompt(system_prompt, 0);
  auto keys = manager_->ComputeKeys(system_prompt, {"w"});
  ASSERT_TRUE(manager_->Pin(*keys).ok());
  for (int i = 0; i < 6; ++i) StorePrompt(Prompt(4, 200 + i), 1 + i);
  EXPECT_EQ(manager_->Match(system_prompt, {"p"})->num_matched_blocks(), 1u);
  manager_->Release("p");
  EXPECT_TRUE(manager_->Unpin(*keys).ok());
}

}  // namespace
}  // namespace strata
