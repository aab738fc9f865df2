// The BlockManager over G2 + a G4 shared store: blocks one manager (one "node") stores are
// published and reused by another; matches continue into G4 where the local tiers stop;
// a store that is down is a miss, never a wait; a block gone or corrupt at load time is a
// per-block error, never wrong KV. The store here is an in-memory RemoteStore speaking
// the real object format; the filesystem and Redis stores have their own tests.
#include <chrono>
#include <map>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "manager/manager_test_util.h"
#include "remote/object_format.h"
#include "strata/block_manager.h"
#include "strata/remote_store.h"

namespace strata {
namespace {

using namespace std::chrono_literals;
using manager_test::EmulatedDevice;
using manager_test::Prompt;

class MemoryStore : public RemoteStore {
 public:
  explicit MemoryStore(size_t block_bytes) : block_bytes_(block_bytes) {}

  std::string_view kind() const override { return "memory"; }
  std::string describe() const override { return "memory://test"; }
  bool available() const override { return up; }

  void PutBatch(std::span<Put> puts, const NamespaceFingerprint& ns) override {
    if (put_delay.count() > 0) std::this_thread::sleep_for(put_delay);
    std::lock_guard lock(mu_);
    for (Put& p : puts) {
      if (!up) {
        p.status = Status::Unavailable("memory store is down");
        ++stats_.put_errors;
        continue;
      }
      auto [it, inserted] = objects_.try_emplace(p.key);
      p.written = inserted;
      p.status = Status::Ok();
      if (!inserted) {
        ++stats_.puts_present;
        continue;
      }
      it->second.resize(remote::ObjectBytes(block_bytes_));
      std::memcpy(it->second.data() + remote::kObjectHeaderBytes, p.block.data(), block_bytes_);
      EXPECT_TRUE(remote::EncodeObjectHeader(p.key, ns, p.block, it->second.data()).ok());
      ++stats_.puts;
    }
  }
  void GetBatch(std::span<Get> gets, const NamespaceFingerprint& ns) override {
    std::lock_guard lock(mu_);
    ++get_batches;
    for (Get& g : gets) {
      if (!up) {
        g.status = Status::Unavailable("memory store is down");
        continue;
      }
      auto it = objects_.find(g.key);
      if (it == objects_.end()) {
        g.status = Status::NotFound("no object " + g.key.ToHex());
        ++stats_.get_misses;
        continue;
      }
      g.status = remote::VerifyObject(it->second, g.key, ns, block_bytes_);
      if (!g.status.ok()) {
        objects_.erase(it);
        ++stats_.get_corrupt;
        continue;
      }
      std::memcpy(g.out.data(), it->second.data() + remote::kObjectHeaderBytes, block_bytes_);
      ++stats_.gets;
    }
  }
  size_t MatchPrefix(std::span<const BlockKey> keys) override {
    std::lock_guard lock(mu_);
    if (!up) return 0;
    size_t n = 0;
    while (n < keys.size() && objects_.count(keys[n])) ++n;
    return n;
  }
  RemoteStoreStats stats() const override {
    std::lock_guard lock(mu_);
    RemoteStoreStats s = stats_;
    s.available = up;
    return s;
  }

  void Erase(const BlockKey& key) {
    std::lock_guard lock(mu_);
    objects_.erase(key);
  }
  void FlipByte(const BlockKey& key, size_t at) {
    std::lock_guard lock(mu_);
    objects_.at(key).at(at) ^= std::byte{1};
  }
  size_t size() const {
    std::lock_guard lock(mu_);
    return objects_.size();
  }

  std::atomic<bool> up{true};
  int get_batches = 0;
  std::chrono::milliseconds put_delay{0};  // set before the nodes publish

 private:
  const size_t block_bytes_;
  mutable std::mutex mu_;
  std::map<BlockKey, std::vector<std::byte>> objects_;
  RemoteStoreStats stats_;
};

KvLayout Layout() {
  return KvLayout{.num_layers = 2,
                  .num_kv_heads = 2,
                  .head_dim = 32,
                  .dtype = DType::kFloat16,
                  .tokens_per_block = 4};
}

// Two BlockManagers ("nodes" A and B), each with its own G2 and device, one shared store.
class SharedTierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::make_shared<MemoryStore>(layout_.block_bytes());
    for (int n = 0; n < 2; ++n) {
      devices_[n] = std::make_unique<EmulatedDevice>(layout_, 64);
      auto m = BlockManager::Create(Options());
      ASSERT_TRUE(m.ok()) << m.status().ToString();
      nodes_[n] = std::move(m).value();
      ASSERT_TRUE(nodes_[n]->RegisterDeviceCache(devices_[n]->cache).ok());
    }
  }

  BlockManagerOptions Options() const {
    BlockManagerOptions o;
    o.model_fingerprint = "shared-tier-test";
    o.layout = layout_;
    o.host.capacity_bytes = 16 * layout_.block_bytes();
    o.host.pin_for_cuda = false;
    o.host.prefault = false;
    o.hierarchy.staging_slots = 2;  // fewer than a prompt: staging runs in rounds
    o.shared.store = store_;
    return o;
  }
  size_t tpb() const { return layout_.tokens_per_block; }

  // Stores `tokens` on node `n` from device blocks 0.. filled from `seed`; waits until
  // the blocks are published.
  std::vector<BlockKey> StoreOn(int n, const std::vector<TokenId>& tokens, uint32_t seed,
                                const RequestContext& ctx = {"writer"}) {
    auto keys = nodes_[n]->ComputeKeys(tokens, ctx);
    EXPECT_TRUE(keys.ok());
    std::vector<uint32_t> dev;
    for (uint32_t i = 0; i < keys->size(); ++i) {
      dev.push_back(i);
      devices_[n]->Fill(i, seed * 100 + i);
      expected_[(*keys)[i]] = devices_[n]->Block(i);
    }
    const uint64_t before = Published(n);
    auto h = nodes_[n]->Store(ctx, *keys, dev);
    EXPECT_TRUE(h.ok() && h->Wait(10s).ok());
    WaitPublished(n, before + keys->size());
    return *keys;
  }
  uint64_t Published(int n) const {
    const BlockManagerStats s = nodes_[n]->stats();
    return s.shared_published_blocks + s.shared_publish_present + s.shared_publish_dropped;
  }
  void WaitPublished(int n, uint64_t target) {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (Published(n) < target || nodes_[n]->stats().host_leased_blocks > 0) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "publication stalled";
      std::this_thread::sleep_for(2ms);
    }
  }
  // Matches on node `n` and loads every matched block into device blocks 32..
  LoadHandle MatchAndLoad(int n, const std::vector<TokenId>& tokens, MatchResult* match,
                          const RequestContext& ctx = {"reader"}) {
    auto m = nodes_[n]->Match(tokens, ctx);
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    *match = *m;
    std::vector<uint32_t> dst;
    for (uint32_t i = 0; i < m->num_matched_blocks(); ++i) dst.push_back(32 + i);
    auto load = nodes_[n]->Load(*m, dst);
    EXPECT_TRUE(load.ok()) << load.status().ToString();
    EXPECT_TRUE(load->Wait(10s).ok());
    return *load;
  }
  void ExpectLoadedBytes(int n, const MatchResult& match, const LoadHandle& load) {
    for (uint32_t i = 0; i < load.usable_blocks(); ++i)
      EXPECT_EQ(devices_[n]->Block(32 + i), expected_.at(match.keys[i])) << "block " << i;
  }

  KvLayout layout_ = Layout();
  std::shared_ptr<MemoryStore> store_;
  std::unique_ptr<EmulatedDevice> devices_[2];
  std::unique_ptr<BlockManager> nodes_[2];
  std::map<BlockKey, std::vector<std::byte>> expected_;
};

TEST_F(SharedTierTest, BlocksOneNodeStoresAreLoadedByAnother) {
  const auto prompt = Prompt(6 * tpb() + 2, 1);
  StoreOn(0, prompt, 1);
  EXPECT_EQ(store_->size(), 6u);
  EXPECT_EQ(nodes_[0]->stats().shared_published_blocks, 6u);

  MatchResult match;
  LoadHandle load = MatchAndLoad(1, prompt, &match);
  ASSERT_EQ(match.num_matched_blocks(), 6u);
  for (Tier t : match.tiers) EXPECT_EQ(t, Tier::kShared);
  EXPECT_EQ(load.usable_blocks(), 6u);
  ExpectLoadedBytes(1, match, load);
  nodes_[1]->Release("reader");
  BlockManagerStats s = nodes_[1]->stats();
  EXPECT_EQ(s.match_hit_blocks_shared, 6u);
  EXPECT_EQ(s.loaded_blocks_from_shared, 6u);
  EXPECT_EQ(s.promoted_blocks, 6u);

  // Promoted: node B's next match finds the prefix in its own G2.
  auto again = nodes_[1]->Match(prompt, {"again"});
  ASSERT_TRUE(again.ok());
  ASSERT_EQ(again->num_matched_blocks(), 6u);
  for (Tier t : again->tiers) EXPECT_EQ(t, Tier::kHost);
  nodes_[1]->Release("again");
}

TEST_F(SharedTierTest, MatchContinuesIntoTheSharedTierWhereG2Stops) {
  const auto prompt = Prompt(6 * tpb(), 2);
  StoreOn(0, prompt, 2);
  // Node B holds the first two blocks itself (same tokens, same bytes).
  const std::vector<TokenId> head(prompt.begin(), prompt.begin() + 2 * tpb());
  StoreOn(1, head, 2);
  MatchResult match;
  LoadHandle load = MatchAndLoad(1, prompt, &match);
  ASSERT_EQ(match.num_matched_blocks(), 6u);
  EXPECT_EQ(match.tiers[0], Tier::kHost);
  EXPECT_EQ(match.tiers[1], Tier::kHost);
  for (size_t i = 2; i < 6; ++i) EXPECT_EQ(match.tiers[i], Tier::kShared) << i;
  EXPECT_EQ(load.usable_blocks(), 6u);
  ExpectLoadedBytes(1, match, load);
  nodes_[1]->Release("reader");
}

TEST_F(SharedTierTest, WithoutPromotionLoadsStageInRounds) {
  BlockManagerOptions o = Options();
  o.shared.promote_hits = false;
  nodes_[1].reset();
  auto m = BlockManager::Create(o);
  ASSERT_TRUE(m.ok());
  nodes_[1] = std::move(m).value();
  ASSERT_TRUE(nodes_[1]->RegisterDeviceCache(devices_[1]->cache).ok());
  const auto prompt = Prompt(5 * tpb(), 3);
  StoreOn(0, prompt, 3);
  MatchResult match;
  LoadHandle load = MatchAndLoad(1, prompt, &match);
  EXPECT_EQ(load.usable_blocks(), 5u);
  ExpectLoadedBytes(1, match, load);
  EXPECT_EQ(nodes_[1]->stats().promoted_blocks, 0u);
  EXPECT_EQ(store_->get_batches, 3);  // 2 staging slots: rounds of 2, 2, 1
  nodes_[1]->Release("reader");
}

TEST_F(SharedTierTest, SaltedRequestsNeverSeeEachOthersBlocks) {
  const auto prompt = Prompt(4 * tpb(), 4);
  StoreOn(0, prompt, 4, {"writer", "", "tenant-a"});
  auto other = nodes_[1]->Match(prompt, {"r", "", "tenant-b"});
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->num_matched_blocks(), 0u);
  auto same = nodes_[1]->Match(prompt, {"r2", "", "tenant-a"});
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->num_matched_blocks(), 4u);
  nodes_[1]->Release("r2");
}

TEST_F(SharedTierTest, ABlockGoneAtLoadTimeFailsThatBlockAndWhatFollows) {
  const auto prompt = Prompt(4 * tpb(), 5);
  const auto keys = StoreOn(0, prompt, 5);
  auto match = nodes_[1]->Match(prompt, {"reader"});
  ASSERT_TRUE(match.ok());
  ASSERT_EQ(match->num_matched_blocks(), 4u);
  store_->Erase(keys[2]);  // another node evicted it after the match
  std::vector<uint32_t> dst{32, 33, 34, 35};
  auto load = nodes_[1]->Load(*match, dst);
  ASSERT_TRUE(load.ok() && load->Wait(10s).ok());
  EXPECT_EQ(load->usable_blocks(), 2u);
  EXPECT_EQ(load->state(2), BlockState::kFailed);
  EXPECT_EQ(load->error(2).code(), StatusCode::kNotFound) << load->error(2).ToString();
  ExpectLoadedBytes(1, *match, *load);
  EXPECT_EQ(nodes_[1]->stats().shared_load_misses, 1u);
  nodes_[1]->Release("reader");
}

TEST_F(SharedTierTest, ACorruptObjectIsNeverLoaded) {
  const auto prompt = Prompt(3 * tpb(), 6);
  const auto keys = StoreOn(0, prompt, 6);
  store_->FlipByte(keys[1], remote::kObjectHeaderBytes + 17);
  MatchResult match;
  LoadHandle load = MatchAndLoad(1, prompt, &match);
  EXPECT_EQ(load.usable_blocks(), 1u);
  EXPECT_EQ(load.state(1), BlockState::kFailed);
  EXPECT_EQ(load.error(1).code(), StatusCode::kCorruption) << load.error(1).ToString();
  ExpectLoadedBytes(1, match, load);
  EXPECT_EQ(nodes_[1]->stats().shared_load_errors, 1u);
  EXPECT_EQ(nodes_[1]->stats().shared_corruptions, 1u);
  nodes_[1]->Release("reader");
  // Gone from the store: the next match stops before it.
  auto again = nodes_[1]->Match(prompt, {"again"});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->num_matched_blocks(), 1u);  // block 0 was promoted into G2
  nodes_[1]->Release("again");
}

TEST_F(SharedTierTest, AStoreThatIsDownIsAMissAndStoresStillComplete) {
  store_->up = false;
  const auto prompt = Prompt(3 * tpb(), 7);
  StoreOn(0, prompt, 7);  // completes at G2 speed; publication fails fast
  const BlockManagerStats a = nodes_[0]->stats();
  EXPECT_EQ(a.stored_blocks, 3u);
  EXPECT_EQ(a.shared_publish_failed, 3u);
  EXPECT_FALSE(a.shared_available);
  auto match = nodes_[1]->Match(prompt, {"reader"});
  ASSERT_TRUE(match.ok());
  EXPECT_EQ(match->num_matched_blocks(), 0u);
  // Back up: the next store publishes again.
  store_->up = true;
  StoreOn(0, Prompt(2 * tpb(), 8), 8);
  EXPECT_EQ(nodes_[0]->stats().shared_published_blocks, 2u);
}

// A store slower than the node stores: publications past the queue wait in the backlog by
// key and are all published once the writer catches up (G2 still holds them), none dropped.
TEST_F(SharedTierTest, ASlowStoreDefersPublicationsInsteadOfDroppingThem) {
  store_->put_delay = 20ms;
  BlockManagerOptions o = Options();
  o.host.capacity_bytes = 64 * layout_.block_bytes();
  o.shared.writer_threads = 1;
  o.shared.max_queued_writes = 2;
  nodes_[0].reset();
  auto m = BlockManager::Create(o);
  ASSERT_TRUE(m.ok());
  nodes_[0] = std::move(m).value();
  ASSERT_TRUE(nodes_[0]->RegisterDeviceCache(devices_[0]->cache).ok());
  const auto prompt = Prompt(24 * tpb(), 9);
  auto keys = nodes_[0]->ComputeKeys(prompt, {"w"});
  ASSERT_TRUE(keys.ok());
  std::vector<uint32_t> dev(keys->size());
  for (uint32_t i = 0; i < dev.size(); ++i) dev[i] = i;
  auto h = nodes_[0]->Store({"w"}, *keys, dev);
  ASSERT_TRUE(h.ok() && h->Wait(10s).ok());
  EXPECT_GT(nodes_[0]->stats().shared_publish_queued, 2u);  // the backlog holds the rest
  WaitPublished(0, 24);
  const BlockManagerStats s = nodes_[0]->stats();
  EXPECT_EQ(s.shared_published_blocks, 24u);
  EXPECT_EQ(s.shared_publish_dropped, 0u);
  EXPECT_EQ(s.shared_publish_queued, 0u);
  EXPECT_EQ(store_->size(), 24u);
}

TEST_F(SharedTierTest, SharedTierNeedsTheHostTier) {
  BlockManagerOptions o = Options();
  o.host.capacity_bytes = 0;
  EXPECT_EQ(BlockManager::Create(o).status().code(), StatusCode::kInvalidArgument);
  o = Options();
  o.shared.store.reset();
  o.shared.kind = SharedTierKind::kRedis;  // no endpoints
  EXPECT_EQ(BlockManager::Create(o).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace strata
