// The BlockManager over G2 + G3: write modes (write-through, selective, write-back),
// admission, cross-tier matching, promotion, warm restart, and the failure semantics of
// loads from disk (EIO, short reads, bit flips: per-block errors, never wrong KV) and of
// offloads (ENOSPC, a slow disk: dropped and counted, never waited for).
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "manager/manager_test_util.h"
#include "strata/block_manager.h"

namespace strata {
namespace {

using namespace std::chrono_literals;
using manager_test::EmulatedDevice;
using manager_test::Prompt;
namespace fs = std::filesystem;

// 2 layers x K/V x 2 heads x 64 dim fp16 x 8 tokens = 8 KiB blocks (zero-copy to disk).
KvLayout AlignedLayout() {
  return KvLayout{.num_layers = 2,
                  .num_kv_heads = 2,
                  .head_dim = 64,
                  .dtype = DType::kFloat16,
                  .tokens_per_block = 8};
}
// 3 layers x K/V x 2 heads x 24 dim fp16 x 4 tokens = 2304-byte blocks (staged to disk).
KvLayout OddLayout() {
  return KvLayout{.num_layers = 3,
                  .num_kv_heads = 2,
                  .head_dim = 24,
                  .dtype = DType::kFloat16,
                  .tokens_per_block = 4};
}

class HierarchyTest : public ::testing::TestWithParam<KvLayout> {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/strata-hierarchy-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    layout_ = GetParam();
    device_ = std::make_unique<EmulatedDevice>(layout_, 96);
  }
  void TearDown() override {
    manager_.reset();
    fs::remove_all(dir_);
  }

  size_t tpb() const { return layout_.tokens_per_block; }
  uint64_t record_bytes() const { return 4096 + (layout_.block_bytes() + 4095) / 4096 * 4096; }

  // G2 of `host_blocks`, G3 of `regions` regions of 4 records each.
  BlockManagerOptions Options(uint32_t host_blocks, uint32_t regions = 32) const {
    BlockManagerOptions o;
    o.model_fingerprint = "hierarchy-test-model";
    o.layout = layout_;
    o.host.capacity_bytes = uint64_t{host_blocks} * layout_.block_bytes();
    o.host.pin_for_cuda = false;
    o.disk.directory = dir_;
    o.disk.region_bytes = 4 * record_bytes();
    o.disk.min_regions = 1;
    o.disk.file_bytes = 8 * o.disk.region_bytes;
    o.disk.capacity_bytes = regions * o.disk.region_bytes;
    o.disk.io_depth = 4;
    o.hierarchy.staging_slots = 4;
    o.hierarchy.writeback_slots = 8;
    return o;
  }

  void Make(const BlockManagerOptions& o) {
    manager_.reset();
    auto m = BlockManager::Create(o);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    manager_ = std::move(m).value();
    ASSERT_TRUE(manager_->RegisterDeviceCache(device_->cache).ok());
  }

  // Stores the full blocks of `tokens` from device blocks first_dev.. (filled from
  // `seed`), waits, and remembers each key's bytes.
  std::vector<BlockKey> Store(const std::vector<TokenId>& tokens, uint32_t first_dev, uint32_t seed,
                              const RequestContext& ctx = {"writer"}) {
    auto keys = manager_->ComputeKeys(tokens, ctx);
    EXPECT_TRUE(keys.ok());
    std::vector<uint32_t> dev;
    for (uint32_t i = 0; i < keys->size(); ++i) {
      dev.push_back(first_dev + i);
      device_->Fill(first_dev + i, seed * 1000 + i);
      expected_[(*keys)[i]] = device_->Block(first_dev + i);
    }
    auto h = manager_->Store(ctx, *keys, dev);
    EXPECT_TRUE(h.ok()) << h.status().ToString();
    EXPECT_TRUE(h->Wait(10s).ok());
    for (size_t i = 0; i < h->num_blocks(); ++i)
      EXPECT_TRUE(h->state(i) == BlockState::kDone || h->state(i) == BlockState::kSkipped)
          << BlockStateName(h->state(i)) << " " << h->error(i).ToString();
    return *keys;
  }

  // Waits until the offloader has finished `n` blocks in all (written, present or dropped).
  void WaitOffloaded(uint64_t n) {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    for (;;) {
      const auto s = manager_->stats();
      if (s.disk_offload_blocks + s.disk_offload_present + s.disk_offload_dropped >= n &&
          s.disk_offload_queued == 0)
        return;
      ASSERT_LT(std::chrono::steady_clock::now(), deadline)
          << "offloaded " << s.disk_offload_blocks << " of " << n;
      std::this_thread::sleep_for(2ms);
    }
  }

  // Waits until no offload is queued or running (write-through holds G2 leases until then).
  void WaitOffloadIdle() {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    for (;;) {
      const auto s = manager_->stats();
      if (s.disk_offload_queued == 0 && s.host_leased_blocks == 0) return;
      ASSERT_LT(std::chrono::steady_clock::now(), deadline);
      std::this_thread::sleep_for(2ms);
    }
  }

  // Matches `tokens`, loads every matched block into device blocks first_dst.., waits.
  LoadHandle MatchAndLoad(const std::vector<TokenId>& tokens, const std::string& id,
                          uint32_t first_dst, MatchResult* match_out = nullptr) {
    auto match = manager_->Match(tokens, {id});
    EXPECT_TRUE(match.ok()) << match.status().ToString();
    std::vector<uint32_t> dst;
    for (uint32_t i = 0; i < match->num_matched_blocks(); ++i) dst.push_back(first_dst + i);
    auto load = manager_->Load(*match, dst);
    EXPECT_TRUE(load.ok()) << load.status().ToString();
    EXPECT_TRUE(load->Wait(10s).ok());
    if (match_out) *match_out = *match;
    return *load;
  }

  // The usable blocks of a finished load hold exactly the stored bytes.
  void ExpectLoadedBytes(const MatchResult& match, const LoadHandle& load, uint32_t first_dst) {
    for (uint32_t i = 0; i < load.usable_blocks(); ++i)
      EXPECT_EQ(device_->Block(first_dst + i), expected_.at(match.keys[i])) << "block " << i;
  }

  // Pushes every block of the tests' prompts out of G2 with filler prompts.
  void FlushHost(uint32_t host_blocks, uint32_t seed = 900) {
    for (uint32_t done = 0; done < host_blocks + 4; done += 4) {
      Store(Prompt(4 * tpb(), static_cast<TokenId>(seed + done)), 60, seed + done);
      WaitOffloadIdle();
    }
  }

  // Segment files of the tier and their bytes, for corrupting records by hand.
  std::vector<fs::path> SegmentFiles() const {
    std::vector<fs::path> out;
    for (const auto& e : fs::directory_iterator(dir_))
      if (e.path().extension() == ".seg") out.push_back(e.path());
    std::sort(out.begin(), out.end());
    return out;
  }
  // Flips one payload byte of the record holding `key`; false when it is not found.
  bool FlipPayloadBit(const BlockKey& key) {
    for (const fs::path& p : SegmentFiles()) {
      std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
      std::vector<char> bytes((std::istreambuf_iterator<char>(f)), {});
      const std::string needle(reinterpret_cast<const char*>(key.bytes.data()), key.bytes.size());
      const size_t at = std::string_view(bytes.data(), bytes.size()).find(needle);
      if (at == std::string::npos) continue;
      const size_t payload = at / 4096 * 4096 + 4096 + 100;
      f.seekp(static_cast<std::streamoff>(payload));
      const char flipped = static_cast<char>(bytes[payload] ^ 0x10);
      f.write(&flipped, 1);
      f.flush();
      return true;
    }
    return false;
  }

  std::string dir_;
  KvLayout layout_;
  std::unique_ptr<EmulatedDevice> device_;
  std::unique_ptr<BlockManager> manager_;
  std::map<BlockKey, std::vector<std::byte>> expected_;
};

TEST_P(HierarchyTest, WriteThroughThenLoadFromDiskAfterHostEviction) {
  Make(Options(8));
  const auto prompt = Prompt(4 * tpb() + 3, 1);
  Store(prompt, 0, 1);
  WaitOffloaded(4);
  EXPECT_EQ(manager_->stats().disk_offload_blocks, 4u);
  FlushHost(8);

  MatchResult match;
  LoadHandle load = MatchAndLoad(prompt, "r1", 20, &match);
  ASSERT_EQ(match.num_matched_blocks(), 4u);
  for (Tier t : match.tiers) EXPECT_EQ(t, Tier::kDisk);
  EXPECT_EQ(load.usable_blocks(), 4u);
  ExpectLoadedBytes(match, load, 20);
  manager_->Release("r1");

  auto st = manager_->stats();
  EXPECT_EQ(st.loaded_blocks_from_disk, 4u);
  EXPECT_EQ(st.promoted_blocks, 4u);
  EXPECT_EQ(st.disk_leased_blocks, 0u);
  EXPECT_EQ(st.host_leased_blocks, 0u);
  // Promoted: the next match finds every block in G2.
  auto again = manager_->Match(prompt, {"r2"});
  ASSERT_TRUE(again.ok());
  for (Tier t : again->tiers) EXPECT_EQ(t, Tier::kHost);
  manager_->Release("r2");
}

TEST_P(HierarchyTest, StagedLoadsWithoutPromotionLeaveHostUntouched) {
  BlockManagerOptions o = Options(8);
  o.hierarchy.promote_disk_hits = false;
  o.hierarchy.staging_slots = 2;  // fewer than the blocks: the load runs in rounds
  Make(o);
  const auto prompt = Prompt(6 * tpb(), 2);
  Store(prompt, 0, 2);
  WaitOffloaded(6);
  FlushHost(8);
  MatchResult match;
  LoadHandle load = MatchAndLoad(prompt, "r", 20, &match);
  ASSERT_EQ(match.num_matched_blocks(), 6u);
  EXPECT_EQ(load.usable_blocks(), 6u);
  ExpectLoadedBytes(match, load, 20);
  manager_->Release("r");
  EXPECT_EQ(manager_->stats().promoted_blocks, 0u);
  auto again = manager_->Match(prompt, {"r2"});
  for (Tier t : again->tiers) EXPECT_EQ(t, Tier::kDisk);
  manager_->Release("r2");
}

TEST_P(HierarchyTest, MatchIsOneContiguousPrefixAcrossTiers) {
  Make(Options(8));
  const auto prompt = Prompt(5 * tpb(), 3);
  const auto keys = Store(prompt, 0, 3);
  WaitOffloaded(5);
  FlushHost(8);
  // Blocks 0 and 2 come back into G2 (stored again from the same device bytes).
  const std::vector<BlockKey> some{keys[0], keys[2]};
  auto h = manager_->Store({"w"}, some, std::vector<uint32_t>{0, 2});
  ASSERT_TRUE(h.ok() && h->Wait(10s).ok());
  WaitOffloaded(5 + 8 + 4 + 2);

  MatchResult match;
  LoadHandle load = MatchAndLoad(prompt, "r", 20, &match);
  ASSERT_EQ(match.num_matched_blocks(), 5u);
  EXPECT_EQ(match.tiers,
            (std::vector<Tier>{Tier::kHost, Tier::kDisk, Tier::kHost, Tier::kDisk, Tier::kDisk}));
  EXPECT_EQ(load.usable_blocks(), 5u);
  ExpectLoadedBytes(match, load, 20);
  manager_->Release("r");
  const auto st = manager_->stats();
  EXPECT_GE(st.match_hit_blocks_host, 2u);
  EXPECT_GE(st.match_hit_blocks_disk, 3u);

  // A prompt that continues past what any tier holds matches only the held prefix.
  auto longer = Prompt(7 * tpb(), 3);
  auto m = manager_->Match(longer, {"r3"});
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->num_matched_blocks(), 5u);
  manager_->Release("r3");
}

TEST_P(HierarchyTest, WarmRestartFindsEveryAcknowledgedBlock) {
  Make(Options(8));
  const auto a = Prompt(4 * tpb(), 4), b = Prompt(3 * tpb(), 5);
  Store(a, 0, 4);
  Store(b, 10, 5);
  WaitOffloaded(7);
  manager_.reset();  // clean shutdown

  Make(Options(8));
  EXPECT_EQ(manager_->stats().disk_recovered_blocks, 7u);
  MatchResult match;
  LoadHandle load = MatchAndLoad(a, "r", 20, &match);
  ASSERT_EQ(match.num_matched_blocks(), 4u);
  for (Tier t : match.tiers) EXPECT_EQ(t, Tier::kDisk);
  EXPECT_EQ(load.usable_blocks(), 4u);
  ExpectLoadedBytes(match, load, 20);
  manager_->Release("r");
  load = MatchAndLoad(b, "r", 30, &match);
  EXPECT_EQ(load.usable_blocks(), 3u);
  ExpectLoadedBytes(match, load, 30);
  manager_->Release("r");
}

TEST_P(HierarchyTest, TenantsDoNotShareDiskBlocks) {
  Make(Options(8));
  const auto prompt = Prompt(3 * tpb(), 6);
  Store(prompt, 0, 6, {"w", "tenant-a"});
  WaitOffloaded(3);
  FlushHost(8);
  auto other = manager_->Match(prompt, {"r", "tenant-b"});
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->num_matched_blocks(), 0u);
  auto same = manager_->Match(prompt, {"r", "tenant-a"});
  EXPECT_EQ(same->num_matched_blocks(), 3u);
  manager_->Release("r");
}

TEST_P(HierarchyTest, SelectiveWritesToDiskOnlyAfterMinSightings) {
  BlockManagerOptions o = Options(8);
  o.hierarchy.host_to_disk = WriteMode::kSelective;
  o.hierarchy.min_sightings = 2;
  Make(o);
  const auto prompt = Prompt(3 * tpb(), 7);
  auto first = manager_->Match(prompt, {"r1"});  // sighting 1 (a miss)
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->num_matched_blocks(), 0u);
  Store(prompt, 0, 7);
  auto st = manager_->stats();
  EXPECT_EQ(st.disk_offload_blocks + st.disk_offload_queued, 0u);
  EXPECT_EQ(st.disk_admission_rejects, 3u);

  auto second = manager_->Match(prompt, {"r2"});  // sighting 2: copied down from G2
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->num_matched_blocks(), 3u);
  manager_->Release("r2");
  WaitOffloaded(3);
  EXPECT_EQ(manager_->stats().disk_offload_blocks, 3u);
  FlushHost(8);
  auto third = manager_->Match(prompt, {"r3"});
  EXPECT_EQ(third->num_matched_blocks(), 3u);
  for (Tier t : third->tiers) EXPECT_EQ(t, Tier::kDisk);
  manager_->Release("r3");
}

TEST_P(HierarchyTest, SelectiveHostAdmissionDropsBlocksSeenOnce) {
  BlockManagerOptions o = Options(8);
  o.hierarchy.device_to_host = WriteMode::kSelective;
  o.hierarchy.min_sightings = 2;
  Make(o);
  const auto prompt = Prompt(2 * tpb(), 8);
  auto keys = manager_->ComputeKeys(prompt, {"w"});
  ASSERT_TRUE(manager_->Match(prompt, {"r1"}).ok());
  auto h = manager_->Store({"w"}, *keys, std::vector<uint32_t>{0, 1});
  ASSERT_TRUE(h.ok() && h->Wait(10s).ok());
  EXPECT_EQ(h->state(0), BlockState::kDropped);
  EXPECT_NE(h->error(0).message().find("selective"), std::string::npos);
  EXPECT_EQ(manager_->stats().host_admission_rejects, 2u);
  ASSERT_TRUE(manager_->Match(prompt, {"r2"}).ok());  // seen twice now
  h = manager_->Store({"w"}, *keys, std::vector<uint32_t>{0, 1});
  ASSERT_TRUE(h.ok() && h->Wait(10s).ok());
  EXPECT_EQ(h->state(0), BlockState::kDone);
  EXPECT_EQ(h->state(1), BlockState::kDone);
}

TEST_P(HierarchyTest, WriteBackWritesOnlyEvictedBlocks) {
  BlockManagerOptions o = Options(8);
  o.hierarchy.host_to_disk = WriteMode::kWriteBack;
  Make(o);
  const auto a = Prompt(4 * tpb(), 9), b = Prompt(4 * tpb(), 10);
  Store(a, 0, 9);
  Store(b, 10, 10);
  auto st = manager_->stats();  // G2 is full, nothing evicted: nothing written
  EXPECT_EQ(st.disk_offload_blocks + st.disk_offload_queued + st.disk_writeback_blocks, 0u);

  const auto c = Prompt(4 * tpb(), 11);
  Store(c, 20, 11);  // evicts a (LRU): its blocks are written back
  WaitOffloaded(4);
  st = manager_->stats();
  EXPECT_EQ(st.disk_writeback_blocks, 4u);
  EXPECT_EQ(st.disk_offload_blocks, 4u);
  EXPECT_EQ(st.stored_blocks, 12u);  // c was stored despite G2 being full of dirty blocks
  // b was never evicted: it is in G2 only.
  auto mb = manager_->Match(b, {"rb"});
  for (Tier t : mb->tiers) EXPECT_EQ(t, Tier::kHost);
  manager_->Release("rb");

  // Loading a promotes it back into G2, evicting (and writing back) b in turn.
  MatchResult match;
  LoadHandle load = MatchAndLoad(a, "r", 40, &match);
  ASSERT_EQ(match.num_matched_blocks(), 4u);
  for (Tier t : match.tiers) EXPECT_EQ(t, Tier::kDisk);
  EXPECT_EQ(load.usable_blocks(), 4u);
  ExpectLoadedBytes(match, load, 40);
  manager_->Release("r");
  WaitOffloaded(8);
  EXPECT_EQ(manager_->stats().disk_writeback_blocks, 8u);
}

TEST_P(HierarchyTest, WriteBudgetRejectsWritesOverBudget) {
  BlockManagerOptions o = Options(16);
  // Budget for exactly two blocks; refills at one block a day.
  o.hierarchy.disk_write_bytes_per_sec = 1;
  o.hierarchy.disk_admission = std::make_shared<WriteBudgetAdmission>(1, 2 * layout_.block_bytes());
  Make(o);
  Store(Prompt(5 * tpb(), 12), 0, 12);
  WaitOffloaded(2);
  const auto st = manager_->stats();
  EXPECT_EQ(st.disk_offload_blocks, 2u);
  EXPECT_EQ(st.disk_admission_rejects, 3u);
}

TEST_P(HierarchyTest, CorruptBlockIsALoadErrorAndLeavesTheIndex) {
  Make(Options(8));
  const auto prompt = Prompt(5 * tpb(), 13);
  const auto keys = Store(prompt, 0, 13);
  WaitOffloaded(5);
  FlushHost(8);
  manager_.reset();  // flushes; the bit flip goes to the file under a closed tier
  ASSERT_TRUE(FlipPayloadBit(keys[2]));
  Make(Options(8));

  MatchResult match;
  LoadHandle load = MatchAndLoad(prompt, "r", 20, &match);
  ASSERT_EQ(match.num_matched_blocks(), 5u);
  EXPECT_EQ(load.state(0), BlockState::kDone);
  EXPECT_EQ(load.state(1), BlockState::kDone);
  EXPECT_EQ(load.state(2), BlockState::kFailed);
  EXPECT_EQ(load.error(2).code(), StatusCode::kCorruption) << load.error(2).ToString();
  EXPECT_NE(load.error(2).message().find("checksum"), std::string::npos);
  // Blocks after the failed one may have arrived, but are not usable.
  EXPECT_EQ(load.usable_blocks(), 2u);
  EXPECT_EQ(load.usable_tokens(), 2 * tpb());
  ExpectLoadedBytes(match, load, 20);
  manager_->Release("r");
  auto st = manager_->stats();
  EXPECT_EQ(st.disk_corruptions, 1u);
  EXPECT_EQ(st.load_failed_blocks, 1u);
  // The bad block left the index (and was never promoted): the prefix now ends before it.
  auto again = manager_->Match(prompt, {"r2"});
  EXPECT_EQ(again->num_matched_blocks(), 2u);
  manager_->Release("r2");
}

TEST_P(HierarchyTest, ReadErrorsAreLoadErrorsWithTheirReason) {
  auto faults = std::make_shared<FaultInjector>();
  BlockManagerOptions o = Options(8);
  o.disk.faults = faults;
  o.hierarchy.promote_disk_hits = GetParam().num_layers == 2;  // both load paths
  Make(o);
  const auto a = Prompt(4 * tpb(), 14), b = Prompt(4 * tpb(), 17);
  Store(a, 0, 14);
  Store(b, 4, 17);
  WaitOffloaded(8);
  FlushHost(8);

  // EIO on one I/O: that block fails with the errno, and no later block is usable.
  faults->FailNext(TransferOp::kRead, EIO, 1);
  MatchResult match;
  LoadHandle load = MatchAndLoad(a, "r", 20, &match);
  ASSERT_EQ(match.num_matched_blocks(), 4u);
  size_t failed = 0;
  for (size_t i = 0; i < 4; ++i) {
    if (load.state(i) != BlockState::kFailed) continue;
    ++failed;
    EXPECT_NE(load.error(i).ToString().find("EIO"), std::string::npos) << load.error(i).ToString();
  }
  EXPECT_EQ(failed, 1u);
  EXPECT_LT(load.usable_blocks(), 4u);
  ExpectLoadedBytes(match, load, 20);
  manager_->Release("r");

  // A short read (a record cut off) fails the same way.
  faults->ShortNext(TransferOp::kRead, 1024, 1);
  load = MatchAndLoad(b, "r", 30, &match);
  ASSERT_EQ(match.num_matched_blocks(), 4u);
  size_t short_failed = 0;
  for (size_t i = 0; i < 4; ++i)
    if (load.state(i) == BlockState::kFailed) ++short_failed;
  EXPECT_EQ(short_failed, 1u);
  EXPECT_LT(load.usable_blocks(), 4u);
  ExpectLoadedBytes(match, load, 30);
  manager_->Release("r");
  EXPECT_EQ(manager_->stats().disk_read_errors, 2u);
}

TEST_P(HierarchyTest, FullDiskDropsOffloadsAndCountsThem) {
  auto faults = std::make_shared<FaultInjector>();
  BlockManagerOptions o = Options(16);
  o.disk.faults = faults;
  Make(o);
  faults->FailNext(TransferOp::kWrite, ENOSPC, 1000);
  const auto prompt = Prompt(4 * tpb(), 15);
  Store(prompt, 0, 15);  // G2 stores succeed regardless
  WaitOffloaded(4);
  const auto st = manager_->stats();
  EXPECT_EQ(st.stored_blocks, 4u);
  EXPECT_EQ(st.disk_offload_blocks, 0u);
  EXPECT_EQ(st.disk_offload_failed, 4u);
  EXPECT_EQ(st.disk_offload_dropped, 4u);
  // The blocks are still in G2, and nothing half-written is on disk.
  auto m = manager_->Match(prompt, {"r"});
  for (Tier t : m->tiers) EXPECT_EQ(t, Tier::kHost);
  manager_->Release("r");
  EXPECT_EQ(manager_->stats().disk_used_blocks, 0u);
}

TEST_P(HierarchyTest, SlowDiskNeverHoldsBackStoresAndTheQueueIsBounded) {
  manager_test::CapturedLog log;
  auto faults = std::make_shared<FaultInjector>();
  BlockManagerOptions o = Options(64, 64);
  o.disk.faults = faults;
  o.hierarchy.disk_writer_threads = 1;
  o.hierarchy.max_queued_disk_writes = 4;
  o.hierarchy.defer_disk_writes = false;  // drop at once when the queue is full
  Make(o);
  faults->SetDelay(TransferOp::kWrite, 200ms);
  // 40 blocks stored while every disk write takes 200 ms: all reach G2 at once; the disk
  // queue holds at most 4 and the rest are dropped and counted.
  for (uint32_t p = 0; p < 10; ++p) Store(Prompt(4 * tpb(), 100 + p), 4 * p, 100 + p);
  auto st = manager_->stats();
  EXPECT_EQ(st.stored_blocks, 40u);
  EXPECT_LE(st.disk_offload_queued, 4u);
  EXPECT_GT(st.disk_offload_dropped, 0u);
  EXPECT_EQ(st.disk_offload_deferred, 0u);
  // Dozens of drops within a second: one warning line (the first drop), not one per block.
  const auto warnings = log.Lines("not written to the G3 disk tier");
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("offload queue full"), std::string::npos) << warnings[0];
  faults->Clear();
  WaitOffloaded(40);
  st = manager_->stats();
  EXPECT_EQ(st.disk_offload_blocks + st.disk_offload_dropped, 40u);
}

// With the backlog (the default), blocks that find the queue full wait by key, holding no
// G2 slot, and are written once the disk catches up; only those G2 evicted meanwhile are
// dropped. The queue (and the G2 slots it pins) stays bounded all along.
TEST_P(HierarchyTest, BacklogWritesEveryBlockG2StillHoldsOnceTheDiskCatchesUp) {
  auto faults = std::make_shared<FaultInjector>();
  BlockManagerOptions o = Options(16, 64);
  o.disk.faults = faults;
  o.hierarchy.disk_writer_threads = 1;
  o.hierarchy.max_queued_disk_writes = 4;
  Make(o);
  faults->SetDelay(TransferOp::kWrite, 200ms);
  std::vector<std::vector<TokenId>> prompts;
  for (uint32_t p = 0; p < 10; ++p) {
    prompts.push_back(Prompt(4 * tpb(), 300 + p));
    Store(prompts.back(), 4 * p, 300 + p);
  }
  auto st = manager_->stats();
  EXPECT_EQ(st.stored_blocks, 40u);
  EXPECT_EQ(st.store_dropped_blocks, 0u);  // G2 was never pinned full by the disk's backlog
  EXPECT_GT(st.disk_offload_deferred, 0u);
  faults->Clear();
  WaitOffloaded(40);
  st = manager_->stats();
  EXPECT_EQ(st.disk_offload_blocks + st.disk_offload_dropped, 40u);
  // G2 (16 blocks) kept the newest ones besides those it could not evict (queued or being
  // written, at most 8): every block it held reached the disk.
  EXPECT_GE(st.disk_offload_blocks, 16u);
  for (size_t p = 8; p < prompts.size(); ++p) {
    auto m = manager_->Match(prompts[p], {"check"});
    ASSERT_TRUE(m.ok());
    EXPECT_EQ(m->num_matched_blocks(), 4u) << p;
    manager_->Release("check");
  }
  // Every block G2 still holds is on disk: after a restart (G2 empty) they match from G3.
  Make(o);
  for (size_t p = 8; p < prompts.size(); ++p) {
    auto m = manager_->Match(prompts[p], {"check"});
    ASSERT_TRUE(m.ok());
    EXPECT_EQ(m->num_matched_blocks(), 4u) << p;
    manager_->Release("check");
  }
}

// Issue 13 item 5: prompts stored one after another while the disk falls behind for a
// moment (every write stalls 20 ms) used to overflow the fixed 256-block offload queue:
// answered prompts were not on disk. The queue is sized from G2 and overflows wait in the
// backlog, so a sequential workload loses nothing, and nothing waits for the disk.
TEST_P(HierarchyTest, SequentialPromptsLoseNoDiskOffloadWhenTheDiskFallsBehind) {
  auto faults = std::make_shared<FaultInjector>();
  BlockManagerOptions o = Options(1024, 160);  // G2 of 1024 blocks, G3 of 640
  o.disk.faults = faults;
  Make(o);
  faults->SetDelay(TransferOp::kWrite, 20ms);
  std::vector<std::vector<TokenId>> prompts;
  for (uint32_t p = 0; p < 6; ++p) {  // 6 prompts of 90 blocks, each stored once complete
    prompts.push_back(Prompt(90 * tpb() + 1, 400 + p));
    Store(prompts.back(), 0, 400 + p);
  }
  EXPECT_EQ(manager_->stats().stored_blocks, 540u);
  faults->Clear();
  WaitOffloaded(540);
  const auto st = manager_->stats();
  EXPECT_EQ(st.disk_offload_dropped, 0u);
  EXPECT_EQ(st.disk_offload_blocks, 540u);
  // Every answered prompt is on disk: after a restart each matches whole from G3.
  Make(o);
  for (size_t p = 0; p < prompts.size(); ++p) {
    MatchResult match;
    LoadHandle load = MatchAndLoad(prompts[p], "r", 0, &match);
    EXPECT_EQ(match.num_matched_blocks(), 90u) << p;
    EXPECT_EQ(load.usable_blocks(), 90u) << p;
    ExpectLoadedBytes(match, load, 0);
    manager_->Release("r");
  }
}

TEST_P(HierarchyTest, LeasedDiskBlocksSurviveReclaim) {
  Make(Options(4, /*regions=*/3));  // 12 disk records
  const auto prompt = Prompt(4 * tpb(), 16);
  Store(prompt, 0, 16);
  WaitOffloaded(4);
  FlushHost(4);
  auto match = manager_->Match(prompt, {"r"});  // leases the 4 records
  ASSERT_TRUE(match.ok());
  ASSERT_EQ(match->num_matched_blocks(), 4u);
  // Fill the disk several times over while the match holds its leases.
  for (uint32_t p = 0; p < 6; ++p) {
    Store(Prompt(4 * tpb(), 200 + p), 60, 200 + p);
    WaitOffloaded(4 + 8 + 4 * (p + 1));
  }
  EXPECT_GT(manager_->stats().disk_evictions, 0u);
  std::vector<uint32_t> dst{20, 21, 22, 23};
  auto load = manager_->Load(*match, dst);
  ASSERT_TRUE(load.ok() && load->Wait(10s).ok());
  EXPECT_EQ(load->usable_blocks(), 4u);
  ExpectLoadedBytes(*match, *load, 20);
  manager_->Release("r");
}

// Records what the BlockManager reports for each finished load and store.
struct RecordingObserver : BlockManagerObserver {
  void OnLoadDone(double seconds, size_t blocks, size_t from_disk, size_t failed) override {
    std::lock_guard lock(mu);
    loads.push_back({seconds, blocks, from_disk, failed});
  }
  void OnStoreDone(double seconds, size_t blocks) override {
    std::lock_guard lock(mu);
    stores.push_back({seconds, blocks, 0, 0});
  }
  struct Event {
    double seconds;
    size_t blocks, from_disk, failed;
  };
  std::mutex mu;
  std::vector<Event> loads, stores;
};

TEST_P(HierarchyTest, ObserverHearsEveryLoadAndStore) {
  auto observer = std::make_shared<RecordingObserver>();
  BlockManagerOptions o = Options(8);
  o.observer = observer;
  Make(o);
  const auto prompt = Prompt(3 * tpb(), 18);
  Store(prompt, 0, 18);
  WaitOffloaded(3);
  FlushHost(8);
  MatchResult match;
  LoadHandle load = MatchAndLoad(prompt, "r", 20, &match);
  manager_->Release("r");
  std::lock_guard lock(observer->mu);
  ASSERT_GE(observer->stores.size(), 1u);
  EXPECT_EQ(observer->stores[0].blocks, 3u);
  EXPECT_GE(observer->stores[0].seconds, 0.0);
  ASSERT_EQ(observer->loads.size(), 1u);
  EXPECT_EQ(observer->loads[0].blocks, 3u);
  EXPECT_EQ(observer->loads[0].from_disk, 3u);
  EXPECT_EQ(observer->loads[0].failed, 0u);
}

INSTANTIATE_TEST_SUITE_P(Layouts, HierarchyTest, ::testing::Values(AlignedLayout(), OddLayout()),
                         [](const auto& info) {
                           return info.param.num_layers == 2 ? std::string("Aligned8KiB")
                                                             : std::string("Odd2304B");
                         });

TEST(HierarchyOptionsTest, RejectsBadCombinations) {
  BlockManagerOptions o;
  o.model_fingerprint = "m";
  o.layout = AlignedLayout();
  o.host.capacity_bytes = 0;
  o.disk.capacity_bytes = 1 << 20;
  EXPECT_EQ(o.Validate().code(), StatusCode::kInvalidArgument);  // disk without host
  o.host.capacity_bytes = 1 << 20;
  EXPECT_TRUE(o.Validate().ok());
  o.hierarchy.device_to_host = WriteMode::kWriteBack;
  EXPECT_NE(o.Validate().message().find("eviction path"), std::string::npos);
  o.hierarchy.device_to_host = WriteMode::kWriteThrough;
  o.hierarchy.min_sightings = 0;
  EXPECT_FALSE(o.Validate().ok());
  EXPECT_EQ(ParseWriteMode("write_back").value(), WriteMode::kWriteBack);
  EXPECT_FALSE(ParseWriteMode("sometimes").ok());
}

}  // namespace
}  // namespace strata
