// DiskTier: round trips, dedup, FIFO region reclaim, leases, warm restart, corruption and
// fault handling, directory locking, concurrency.
#include "disk/disk_tier.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <filesystem>
#include <random>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "disk/disk_files.h"
#include "disk/disk_test_util.h"
#include "memory/host_memory.h"

namespace strata {
namespace {

using disk_test::FillBlock;
using disk_test::TestKey;

constexpr uint64_t kRecord = uint64_t{68} << 10;  // 64 KiB block + 4 KiB header

class DiskTierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::path(::testing::TempDir()) /
           (std::string("strata_disk_") + info->name() + "_" + std::to_string(getpid()));
    std::filesystem::remove_all(dir_);
    auto engine = TransferEngine::Create({});
    ASSERT_TRUE(engine.ok()) << engine.status().ToString();
    engine_ = std::move(engine).value();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // `regions` regions of `per_region` records, two regions a file.
  DiskTierOptions Options(uint32_t regions, uint32_t per_region) const {
    DiskTierOptions o;
    o.directory = dir_.string();
    o.region_bytes = per_region * kRecord;
    o.min_regions = 1;  // exactly this geometry
    o.capacity_bytes = regions * o.region_bytes;
    o.file_bytes = 2 * o.region_bytes;
    o.io_depth = 4;
    return o;
  }

  std::unique_ptr<DiskTier> OpenTier(const DiskTierOptions& o,
                                     const KvLayout& layout = disk_test::SmallLayout()) {
    auto t = DiskTier::Open(o, layout, engine_.get());
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return t.ok() ? std::move(t).value() : nullptr;
  }

  DiskWriteOutcome Put(DiskTier& tier, const BlockKey& key) {
    std::vector<std::byte> block(tier.block_bytes());
    FillBlock(key, block.data(), block.size());
    auto r = tier.Write(key, ns_, block.data());
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : DiskWriteOutcome::kNoSpace;
  }

  // Leases, reads and compares `key`; returns the Read status (OK only for exact bytes).
  Status Get(DiskTier& tier, const BlockKey& key) {
    const uint32_t rec = tier.Lease(key);
    if (rec == DiskTier::kNoRecord) return Status::NotFound("not leased");
    std::vector<std::byte> out(tier.block_bytes()), want(tier.block_bytes());
    Status st = tier.Read(rec, key, ns_, out.data());
    tier.Unlease(rec);
    FillBlock(key, want.data(), want.size());
    if (st.ok() && out != want) return Status::Internal("Read returned OK with wrong bytes");
    return st;
  }

  void FlipByte(const DiskTier::Location& loc, uint64_t at) {
    const int fd = open(loc.path.c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    std::byte b;
    ASSERT_EQ(pread(fd, &b, 1, static_cast<off_t>(loc.offset + at)), 1);
    b ^= std::byte{0x01};
    ASSERT_EQ(pwrite(fd, &b, 1, static_cast<off_t>(loc.offset + at)), 1);
    close(fd);
  }

  std::filesystem::path dir_;
  std::unique_ptr<TransferEngine> engine_;
  NamespaceFingerprint ns_ = disk_test::TestNamespace();
};

TEST_F(DiskTierTest, RoundTripAndDedup) {
  auto tier = OpenTier(Options(4, 4));
  ASSERT_TRUE(tier);
  EXPECT_EQ(tier->capacity_records(), 16u);
  for (uint64_t i = 0; i < 10; ++i)
    EXPECT_EQ(Put(*tier, TestKey(1, i)), DiskWriteOutcome::kWritten);
  EXPECT_EQ(Put(*tier, TestKey(1, 3)), DiskWriteOutcome::kPresent);
  for (uint64_t i = 0; i < 10; ++i) {
    EXPECT_TRUE(tier->Contains(TestKey(1, i)));
    EXPECT_TRUE(Get(*tier, TestKey(1, i)).ok()) << i;
  }
  EXPECT_FALSE(tier->Contains(TestKey(2, 0)));
  EXPECT_EQ(tier->Lease(TestKey(2, 0)), DiskTier::kNoRecord);

  const DiskTierStats st = tier->stats();
  EXPECT_EQ(st.writes, 10u);
  EXPECT_EQ(st.write_present, 1u);
  EXPECT_EQ(st.reads, 10u);
  EXPECT_EQ(st.used_records, 10u);
  EXPECT_EQ(st.leased_records, 0u);
  EXPECT_EQ(st.bytes_written, 10 * kRecord);
  EXPECT_EQ(tier->Keys().size(), 10u);
}

TEST_F(DiskTierTest, EveryFileBackendStoresAndRecovers) {
  const std::vector<BackendKind> available = engine_->backends();
  for (BackendKind b : {BackendKind::kPosix, BackendKind::kIoUring}) {
    if (std::find(available.begin(), available.end(), b) == available.end()) {
      std::printf("[ skip ] backend %s unavailable: %s\n", std::string(BackendKindName(b)).c_str(),
                  engine_->backend_notes().c_str());
      continue;
    }
    SCOPED_TRACE(BackendKindName(b));
    std::filesystem::remove_all(dir_);
    DiskTierOptions o = Options(4, 4);
    o.backend = b;
    const uint64_t stream = 100 + static_cast<uint64_t>(b);
    {
      auto tier = OpenTier(o);
      ASSERT_TRUE(tier);
      for (uint64_t i = 0; i < 6; ++i)
        EXPECT_EQ(Put(*tier, TestKey(stream, i)), DiskWriteOutcome::kWritten);
    }
    auto tier = OpenTier(o);
    ASSERT_TRUE(tier);
    EXPECT_EQ(tier->stats().recovered_records, 6u);
    for (uint64_t i = 0; i < 6; ++i) EXPECT_TRUE(Get(*tier, TestKey(stream, i)).ok()) << i;
  }
}

TEST_F(DiskTierTest, MatchPrefixLeasesTheLeadingRun) {
  auto tier = OpenTier(Options(4, 4));
  ASSERT_TRUE(tier);
  std::vector<BlockKey> chain;
  for (uint64_t i = 0; i < 6; ++i) chain.push_back(TestKey(3, i));
  for (uint64_t i : {0, 1, 2, 4, 5}) Put(*tier, chain[i]);
  EXPECT_EQ(tier->MatchPrefix(chain, nullptr), 3u);
  std::vector<uint32_t> leases;
  EXPECT_EQ(tier->MatchPrefix(chain, &leases), 3u);
  ASSERT_EQ(leases.size(), 3u);
  EXPECT_EQ(tier->stats().leased_records, 3u);
  std::vector<std::byte> out(tier->block_bytes()), want(tier->block_bytes());
  for (size_t i = 0; i < 3; ++i) {
    ASSERT_TRUE(tier->Read(leases[i], chain[i], ns_, out.data()).ok());
    FillBlock(chain[i], want.data(), want.size());
    EXPECT_EQ(out, want);
  }
  // A record read under the wrong key is refused without harming the block.
  EXPECT_EQ(tier->Read(leases[0], chain[1], ns_, out.data()).code(), StatusCode::kInvalidArgument);
  tier->Unlease(leases);
  EXPECT_EQ(tier->stats().leased_records, 0u);
  EXPECT_EQ(tier->Read(leases[0], chain[0], ns_, out.data()).code(),
            StatusCode::kInvalidArgument);  // not leased any more
  EXPECT_TRUE(tier->Contains(chain[0]));
}

TEST_F(DiskTierTest, ReclaimsWholeRegionsOldestFirst) {
  std::vector<BlockKey> evicted;
  DiskTierOptions o = Options(4, 2);
  o.on_remove = [&](const BlockKey& k, DiskRemoval why) {
    EXPECT_EQ(why, DiskRemoval::kEvicted);
    evicted.push_back(k);
  };
  auto tier = OpenTier(o);
  ASSERT_TRUE(tier);
  for (uint64_t i = 0; i < 8; ++i) Put(*tier, TestKey(1, i));  // fills all 4 regions
  EXPECT_EQ(tier->stats().free_regions, 0u);
  EXPECT_TRUE(evicted.empty());
  Put(*tier, TestKey(1, 8));  // reclaims region 0: keys 0 and 1
  EXPECT_EQ(evicted, (std::vector<BlockKey>{TestKey(1, 0), TestKey(1, 1)}));
  EXPECT_FALSE(tier->Contains(TestKey(1, 0)));
  EXPECT_FALSE(tier->Contains(TestKey(1, 1)));
  Put(*tier, TestKey(1, 9));   // second slot of the reopened region
  Put(*tier, TestKey(1, 10));  // reclaims region 1: keys 2 and 3
  EXPECT_EQ(evicted.size(), 4u);
  EXPECT_EQ(evicted[2], TestKey(1, 2));
  EXPECT_EQ(evicted[3], TestKey(1, 3));
  for (uint64_t i = 4; i <= 10; ++i) EXPECT_TRUE(Get(*tier, TestKey(1, i)).ok()) << i;
  const DiskTierStats st = tier->stats();
  EXPECT_EQ(st.evictions, 4u);
  EXPECT_EQ(st.regions_reclaimed, 2u);
  EXPECT_EQ(st.used_records, 7u);
}

TEST_F(DiskTierTest, LeasedRecordsAreNeverReclaimed) {
  auto tier = OpenTier(Options(3, 2));
  ASSERT_TRUE(tier);
  for (uint64_t i = 0; i < 6; ++i) Put(*tier, TestKey(1, i));
  const uint32_t held = tier->Lease(TestKey(1, 0));  // pins region 0
  ASSERT_NE(held, DiskTier::kNoRecord);
  Put(*tier, TestKey(1, 6));  // region 0 is pinned: region 1 goes (keys 2, 3)
  EXPECT_TRUE(tier->Contains(TestKey(1, 0)));
  EXPECT_TRUE(tier->Contains(TestKey(1, 1)));
  EXPECT_FALSE(tier->Contains(TestKey(1, 2)));
  // Pin every region: nothing can be reclaimed, the write is dropped, not waited for.
  const uint32_t h2 = tier->Lease(TestKey(1, 4));
  const uint32_t h3 = tier->Lease(TestKey(1, 6));
  Put(*tier, TestKey(1, 7));  // fills region 1's second slot
  EXPECT_EQ(Put(*tier, TestKey(1, 8)), DiskWriteOutcome::kNoSpace);
  EXPECT_EQ(tier->stats().write_no_space, 1u);
  EXPECT_FALSE(tier->Contains(TestKey(1, 8)));
  std::vector<std::byte> out(tier->block_bytes()), want(tier->block_bytes());
  ASSERT_TRUE(tier->Read(held, TestKey(1, 0), ns_, out.data()).ok());
  FillBlock(TestKey(1, 0), want.data(), want.size());
  EXPECT_EQ(out, want);
  tier->Unlease(held);
  EXPECT_EQ(Put(*tier, TestKey(1, 8)), DiskWriteOutcome::kWritten);  // region 0 reclaimed now
  EXPECT_FALSE(tier->Contains(TestKey(1, 0)));
  tier->Unlease(h2);
  tier->Unlease(h3);
}

// Issue 13 item 6: with the three oldest regions of four pinned by leases, the old reclaim
// took the only unpinned region left, the one just filled, and evicted the blocks written
// last. The newest region is never reclaimed while there is another: the write is dropped
// until a lease ends, and then the oldest region goes.
TEST_F(DiskTierTest, ReclaimNeverTakesTheRegionJustWrittenWhileOlderOnesArePinned) {
  std::vector<BlockKey> evicted;
  DiskTierOptions o = Options(4, 2);
  o.on_remove = [&](const BlockKey& k, DiskRemoval) { evicted.push_back(k); };
  auto tier = OpenTier(o);
  ASSERT_TRUE(tier);
  for (uint64_t i = 0; i < 8; ++i) Put(*tier, TestKey(1, i));  // regions 0..3, oldest first
  std::vector<uint32_t> held;
  for (uint64_t i : {0, 2, 4}) held.push_back(tier->Lease(TestKey(1, i)));  // pin regions 0..2
  EXPECT_EQ(Put(*tier, TestKey(1, 8)), DiskWriteOutcome::kNoSpace);
  EXPECT_TRUE(evicted.empty());
  EXPECT_TRUE(tier->Contains(TestKey(1, 6)));  // the blocks just written are still there
  EXPECT_TRUE(tier->Contains(TestKey(1, 7)));
  tier->Unlease(held[1]);  // region 1 is reclaimable now, and older than region 3
  EXPECT_EQ(Put(*tier, TestKey(1, 8)), DiskWriteOutcome::kWritten);
  EXPECT_EQ(evicted, (std::vector<BlockKey>{TestKey(1, 2), TestKey(1, 3)}));
  for (uint64_t i : {0, 1, 4, 5, 6, 7, 8}) EXPECT_TRUE(Get(*tier, TestKey(1, i)).ok()) << i;
  tier->Unlease(held[0]);
  tier->Unlease(held[2]);
  // A tier of one region can only reuse that region.
  std::filesystem::remove_all(dir_);
  tier.reset();
  tier = OpenTier(Options(1, 2));
  ASSERT_TRUE(tier);
  for (uint64_t i = 0; i < 3; ++i) EXPECT_EQ(Put(*tier, TestKey(2, i)), DiskWriteOutcome::kWritten);
  EXPECT_TRUE(tier->Contains(TestKey(2, 2)));
}

// Issue 13 item 6: a small tier with the default region size used to get a handful of
// 64 MiB regions (0.25 GiB: 4), so a few leases pinned most of it; it now gets at least
// min_regions regions, and a tier smaller than one region_bytes opens at all.
TEST_F(DiskTierTest, SmallTiersAreSplitIntoAtLeastMinRegionsRegions) {
  DiskTierOptions o;
  o.directory = dir_.string();
  o.capacity_bytes = uint64_t{256} << 20;  // 0.25 GiB, default 64 MiB regions and 1 GiB files
  o.io_depth = 4;
  {
    auto tier = OpenTier(o);
    ASSERT_TRUE(tier);
    const disk::DiskGeometry& g = tier->geometry();
    EXPECT_EQ(g.num_regions, 32u);
    EXPECT_EQ(g.records_per_region, (uint64_t{8} << 20) / kRecord);  // 8 MiB regions
    EXPECT_EQ(Put(*tier, TestKey(1, 0)), DiskWriteOutcome::kWritten);
  }
  std::filesystem::remove_all(dir_);
  o.capacity_bytes = 40 * kRecord;  // far below one 64 MiB region: 40 regions of one record
  auto tier = OpenTier(o);
  ASSERT_TRUE(tier);
  EXPECT_EQ(tier->geometry().num_regions, 40u);
  EXPECT_EQ(tier->geometry().records_per_region, 1u);
  // From 2 GiB up, regions are whole 64 MiB (sparse preallocated files: nothing is written).
  tier.reset();
  std::filesystem::remove_all(dir_);
  o.capacity_bytes = uint64_t{2} << 30;
  KvLayout big = disk_test::SmallLayout();
  big.num_layers = 128;  // 2 MiB blocks keep the header count small
  auto large = DiskTier::Open(o, big, engine_.get());
  ASSERT_TRUE(large.ok()) << large.status().ToString();
  EXPECT_EQ((*large)->geometry().records_per_region, 31u);  // 64 MiB / (2 MiB + 4 KiB)
  EXPECT_EQ((*large)->geometry().num_regions, 32u);
}

// A tier created with regions of exactly region_bytes (as before min_regions existed)
// reopens with the default options without being refused or wiped.
TEST_F(DiskTierTest, ExistingTierKeepsItsGeometryWhenMinRegionsWouldSplitItFiner) {
  DiskTierOptions o = Options(4, 4);  // min_regions = 1
  {
    auto tier = OpenTier(o);
    ASSERT_TRUE(tier);
    for (uint64_t i = 0; i < 10; ++i) Put(*tier, TestKey(1, i));
  }
  o.min_regions = 32;
  auto tier = OpenTier(o);
  ASSERT_TRUE(tier);
  EXPECT_EQ(tier->geometry().num_regions, 4u);
  EXPECT_TRUE(tier->notes().empty()) << tier->notes();
  EXPECT_EQ(tier->stats().recovered_records, 10u);
  for (uint64_t i = 0; i < 10; ++i) EXPECT_TRUE(Get(*tier, TestKey(1, i)).ok()) << i;
  // A new directory with the same options gets the finer geometry.
  tier.reset();
  std::filesystem::remove_all(dir_);
  tier = OpenTier(o);
  ASSERT_TRUE(tier);
  EXPECT_EQ(tier->geometry().num_regions, 16u);
}

// Issue 13 item 6: the oldest region's records are all corrupt (bit-flipped payloads, valid
// headers). Over three restarts, each corrupt block fails its load once and never comes
// back; the engine's recomputed copies are stored again and found after every later
// restart, and every other block is reused each time.
TEST_F(DiskTierTest, CorruptOldestRegionLeavesTheIndexForGoodOverRestarts) {
  const DiskTierOptions o = Options(4, 3);
  std::vector<BlockKey> keys;
  for (uint64_t i = 0; i < 12; ++i) keys.push_back(TestKey(1, i));
  {
    auto tier = OpenTier(o);
    ASSERT_TRUE(tier);
    for (const BlockKey& k : keys) Put(*tier, k);  // regions 0..3, three records each
    for (size_t i = 0; i < 3; ++i) {
      const uint32_t r = tier->Lease(keys[i]);
      ASSERT_EQ(tier->geometry().region_of(r), 0u);
      FlipByte(tier->Locate(r), disk::kHeaderBytes + 100 + i);
      tier->Unlease(r);
    }
  }
  for (int restart = 1; restart <= 3; ++restart) {
    SCOPED_TRACE(restart);
    auto tier = OpenTier(o);
    ASSERT_TRUE(tier);
    std::vector<BlockKey> failed;
    for (const BlockKey& k : keys) {
      const Status st = Get(*tier, k);
      if (!st.ok()) {
        EXPECT_EQ(st.code(), StatusCode::kCorruption) << st.ToString();
        failed.push_back(k);
      }
    }
    // Only the first generation sees the corrupt blocks; every other block is reused.
    EXPECT_EQ(failed.size(), restart == 1 ? 3u : 0u);
    EXPECT_EQ(tier->stats().corruptions, restart == 1 ? 3u : 0u);
    for (const BlockKey& k : failed) {  // recomputed and stored again
      EXPECT_FALSE(tier->Contains(k));
      EXPECT_EQ(Put(*tier, k), DiskWriteOutcome::kWritten);
    }
    EXPECT_EQ(tier->Keys().size(), keys.size());
  }
}

TEST_F(DiskTierTest, WarmRestartFindsEveryBlockWithIdenticalBytes) {
  const DiskTierOptions o = Options(6, 3);
  std::set<BlockKey> stored;
  {
    auto tier = OpenTier(o);
    ASSERT_TRUE(tier);
    for (uint64_t i = 0; i < 25; ++i) Put(*tier, TestKey(1, i));  // 18 records: reclaims
    for (const BlockKey& k : tier->Keys()) stored.insert(k);
    EXPECT_EQ(stored.size(), 16u);  // 9 of 25 evicted with their regions, 2 slots free
  }
  {
    auto tier = OpenTier(o);
    ASSERT_TRUE(tier);
    const DiskTierStats st = tier->stats();
    EXPECT_EQ(st.recovered_records, stored.size());
    EXPECT_EQ(st.recovery_invalid_headers, 0u);
    EXPECT_LT(st.recovery_seconds, 2.0);
    std::set<BlockKey> found;
    for (const BlockKey& k : tier->Keys()) found.insert(k);
    EXPECT_EQ(found, stored);
    for (const BlockKey& k : stored) EXPECT_TRUE(Get(*tier, k).ok());
    // The FIFO order and the open region survive: the next writes fill the open region's
    // free slots, then reclaim the oldest region (keys 9..11), not a newer one.
    Put(*tier, TestKey(2, 0));
    Put(*tier, TestKey(2, 1));
    EXPECT_TRUE(tier->Contains(TestKey(1, 9)));
    Put(*tier, TestKey(2, 2));
    EXPECT_FALSE(tier->Contains(TestKey(1, 9)));
    EXPECT_FALSE(tier->Contains(TestKey(1, 11)));
    EXPECT_TRUE(tier->Contains(TestKey(1, 12)));
  }
  {
    // A third generation: sequence numbers and epochs continued, nothing stale came back.
    auto tier = OpenTier(o);
    ASSERT_TRUE(tier);
    EXPECT_FALSE(tier->Contains(TestKey(1, 9)));
    EXPECT_TRUE(Get(*tier, TestKey(2, 2)).ok());
    EXPECT_TRUE(Get(*tier, TestKey(1, 24)).ok());
    EXPECT_EQ(tier->stats().recovered_records, 16u);
  }
}

TEST_F(DiskTierTest, BitFlipsAreDetectedOnLoadAndTheBlockLeavesTheIndex) {
  std::vector<std::pair<BlockKey, DiskRemoval>> removed;
  DiskTierOptions o = Options(4, 4);
  o.on_remove = [&](const BlockKey& k, DiskRemoval why) { removed.push_back({k, why}); };
  const BlockKey payload_key = TestKey(1, 0), header_key = TestKey(1, 1), ok_key = TestKey(1, 2);
  {
    auto tier = OpenTier(o);
    ASSERT_TRUE(tier);
    for (const BlockKey& k : {payload_key, header_key, ok_key}) Put(*tier, k);
    const uint32_t pr = tier->Lease(payload_key), hr = tier->Lease(header_key);
    FlipByte(tier->Locate(pr), disk::kHeaderBytes + 12345);
    FlipByte(tier->Locate(hr), disk::hdr::kSequence);
    tier->Unlease(pr);
    tier->Unlease(hr);

    const Status p = Get(*tier, payload_key);
    EXPECT_EQ(p.code(), StatusCode::kCorruption) << p.ToString();
    EXPECT_NE(p.message().find("payload checksum"), std::string::npos) << p.ToString();
    EXPECT_NE(p.message().find("strata-g3-0.seg"), std::string::npos) << p.ToString();
    const Status h = Get(*tier, header_key);
    EXPECT_EQ(h.code(), StatusCode::kCorruption) << h.ToString();
    EXPECT_NE(h.message().find("header"), std::string::npos) << h.ToString();
    EXPECT_FALSE(tier->Contains(payload_key));
    EXPECT_FALSE(tier->Contains(header_key));
    EXPECT_EQ(tier->Lease(payload_key), DiskTier::kNoRecord);  // a miss from now on
    EXPECT_TRUE(Get(*tier, ok_key).ok());
    EXPECT_EQ(tier->stats().corruptions, 2u);
    EXPECT_EQ(tier->stats().invalidated_records, 2u);
    ASSERT_EQ(removed.size(), 2u);
    EXPECT_EQ(removed[0].second, DiskRemoval::kLoadFailed);
    // The freed keys can be stored again.
    EXPECT_EQ(Put(*tier, header_key), DiskWriteOutcome::kWritten);
    EXPECT_TRUE(Get(*tier, header_key).ok());
  }
  // The failed loads zeroed both records' headers on disk: after a restart neither comes
  // back (the payload flip would otherwise be indexed and fail again after every restart),
  // and the rewritten copy of header_key loads.
  auto tier = OpenTier(o);
  ASSERT_TRUE(tier);
  EXPECT_EQ(tier->stats().recovery_invalid_headers, 0u);
  EXPECT_EQ(tier->stats().recovered_records, 2u);  // ok_key and header_key's new copy
  EXPECT_TRUE(Get(*tier, header_key).ok());
  EXPECT_TRUE(Get(*tier, ok_key).ok());
  EXPECT_FALSE(tier->Contains(payload_key));
  EXPECT_EQ(Get(*tier, payload_key).code(), StatusCode::kNotFound);
  EXPECT_EQ(tier->stats().corruptions, 0u);
}

TEST_F(DiskTierTest, WrongNamespaceFingerprintIsCorruption) {
  auto tier = OpenTier(Options(4, 4));
  ASSERT_TRUE(tier);
  Put(*tier, TestKey(1, 0));
  const uint32_t rec = tier->Lease(TestKey(1, 0));
  std::vector<std::byte> out(tier->block_bytes());
  const Status st = tier->Read(rec, TestKey(1, 0), disk_test::TestNamespace(0x11), out.data());
  EXPECT_EQ(st.code(), StatusCode::kCorruption);
  EXPECT_NE(st.message().find("namespace fingerprint"), std::string::npos) << st.ToString();
  // The lease holder cannot read it again either, and its Unlease frees the record.
  EXPECT_EQ(tier->Read(rec, TestKey(1, 0), ns_, out.data()).code(), StatusCode::kNotFound);
  EXPECT_EQ(tier->stats().used_records, 1u);
  tier->Unlease(rec);
  EXPECT_EQ(tier->stats().used_records, 0u);
}

TEST_F(DiskTierTest, TornWriteIsNeverAcknowledgedNorServed) {
  DiskTierOptions o = Options(4, 4);
  o.faults = std::make_shared<FaultInjector>();
  const BlockKey torn = TestKey(1, 0);
  {
    auto tier = OpenTier(o);
    ASSERT_TRUE(tier);
    // Only the header block reaches the file: a valid header over a missing payload.
    o.faults->ShortNext(TransferOp::kWrite, disk::kHeaderBytes);
    std::vector<std::byte> block(tier->block_bytes());
    FillBlock(torn, block.data(), block.size());
    auto r = tier->Write(torn, ns_, block.data());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kIoError);
    EXPECT_NE(r.status().message().find("short write"), std::string::npos) << r.status().ToString();
    EXPECT_FALSE(tier->Contains(torn));
    EXPECT_EQ(tier->Lease(torn), DiskTier::kNoRecord);
    EXPECT_EQ(tier->stats().write_errors, 1u);
    EXPECT_EQ(tier->stats().used_records, 0u);
    EXPECT_EQ(Put(*tier, TestKey(1, 1)), DiskWriteOutcome::kWritten);
  }
  // Recovery indexes the torn record (its header is intact); the load catches it.
  auto tier = OpenTier(o);
  ASSERT_TRUE(tier);
  const Status st = Get(*tier, torn);
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kCorruption) << st.ToString();
  EXPECT_FALSE(tier->Contains(torn));
  EXPECT_TRUE(Get(*tier, TestKey(1, 1)).ok());
}

TEST_F(DiskTierTest, EnospcIsAnErrorAndIndexesNothing) {
  DiskTierOptions o = Options(4, 4);
  o.faults = std::make_shared<FaultInjector>();
  auto tier = OpenTier(o);
  ASSERT_TRUE(tier);
  o.faults->FailNext(TransferOp::kWrite, ENOSPC);
  std::vector<std::byte> block(tier->block_bytes());
  FillBlock(TestKey(1, 0), block.data(), block.size());
  auto r = tier->Write(TestKey(1, 0), ns_, block.data());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kIoError);
  EXPECT_EQ(r.status().sys_errno(), ENOSPC);
  EXPECT_NE(r.status().message().find("strata-g3-0.seg"), std::string::npos)
      << r.status().ToString();
  EXPECT_FALSE(tier->Contains(TestKey(1, 0)));
  EXPECT_EQ(tier->stats().used_records, 0u);
  // The next store of the same key succeeds.
  EXPECT_EQ(Put(*tier, TestKey(1, 0)), DiskWriteOutcome::kWritten);
  EXPECT_TRUE(Get(*tier, TestKey(1, 0)).ok());
}

TEST_F(DiskTierTest, ReadIoErrorIsALoadErrorAndTheBlockLeaves) {
  DiskTierOptions o = Options(4, 4);
  o.faults = std::make_shared<FaultInjector>();
  auto tier = OpenTier(o);
  ASSERT_TRUE(tier);
  Put(*tier, TestKey(1, 0));
  o.faults->FailNext(TransferOp::kRead, EIO);
  const Status st = Get(*tier, TestKey(1, 0));
  EXPECT_EQ(st.code(), StatusCode::kIoError) << st.ToString();
  EXPECT_EQ(st.sys_errno(), EIO);
  EXPECT_FALSE(tier->Contains(TestKey(1, 0)));
  EXPECT_EQ(tier->stats().read_errors, 1u);
  // A short read is an error too.
  Put(*tier, TestKey(1, 1));
  o.faults->ShortNext(TransferOp::kRead, disk::kHeaderBytes);
  EXPECT_EQ(Get(*tier, TestKey(1, 1)).code(), StatusCode::kIoError);
  EXPECT_FALSE(tier->Contains(TestKey(1, 1)));
}

TEST_F(DiskTierTest, LayoutMismatchIsRefusedUnlessResetIsAsked) {
  DiskTierOptions o = Options(4, 4);
  {
    auto tier = OpenTier(o);
    ASSERT_TRUE(tier);
    Put(*tier, TestKey(1, 0));
  }
  KvLayout other = disk_test::SmallLayout();
  other.dtype = DType::kBFloat16;  // same size, different meaning
  auto refused = DiskTier::Open(o, other, engine_.get());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  const std::string& msg = refused.status().message();
  EXPECT_NE(msg.find(dir_.string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("dtype=bf16"), std::string::npos) << msg;
  EXPECT_NE(msg.find("reset_on_mismatch"), std::string::npos) << msg;
  // A different capacity is a different geometry: refused the same way.
  DiskTierOptions bigger = Options(8, 4);
  EXPECT_EQ(DiskTier::Open(bigger, disk_test::SmallLayout(), engine_.get()).status().code(),
            StatusCode::kInvalidArgument);
  // The refused opens left the tier intact.
  {
    auto tier = OpenTier(o);
    ASSERT_TRUE(tier);
    EXPECT_TRUE(Get(*tier, TestKey(1, 0)).ok());
  }
  o.reset_on_mismatch = true;
  auto reset = OpenTier(o, other);
  ASSERT_TRUE(reset);
  EXPECT_EQ(reset->stats().used_records, 0u);
  EXPECT_NE(reset->notes().find("wiping"), std::string::npos) << reset->notes();
}

TEST_F(DiskTierTest, DamagedMetaFileIsRefused) {
  DiskTierOptions o = Options(4, 4);
  OpenTier(o).reset();
  {
    const int fd = open((dir_ / "strata-g3.meta").c_str(), O_WRONLY | O_TRUNC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, "garbage\n", 8), 8);
    close(fd);
  }
  auto refused = DiskTier::Open(o, disk_test::SmallLayout(), engine_.get());
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("strata-g3.meta"), std::string::npos)
      << refused.status().ToString();
}

mode_t ModeOf(const std::filesystem::path& p) {
  struct stat st {};
  EXPECT_EQ(stat(p.c_str(), &st), 0) << p;
  return st.st_mode & 07777;
}

TEST_F(DiskTierTest, FilesArePrivateEvenUnderUmaskZero) {
  const mode_t old_umask = umask(0);
  auto tier = OpenTier(Options(2, 2));
  umask(old_umask);
  ASSERT_TRUE(tier);
  EXPECT_EQ(ModeOf(dir_), 0700u);
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir_)) {
    EXPECT_EQ(ModeOf(e.path()), 0600u) << e.path();
    ++files;
  }
  EXPECT_GE(files, 3u);  // lock, meta, a segment
}

TEST_F(DiskTierTest, DirectoryWritableByOthersIsRefusedAndOldFilesAreMadePrivate) {
  { ASSERT_TRUE(OpenTier(Options(2, 2))); }
  const auto segment = dir_ / disk::DiskFiles::SegmentName(0);
  ASSERT_EQ(chmod(segment.c_str(), 0644), 0);  // as an older version created it
  for (mode_t mode : {0777, 0770, 01777}) {
    ASSERT_EQ(chmod(dir_.c_str(), mode), 0);
    auto t = DiskTier::Open(Options(2, 2), disk_test::SmallLayout(), engine_.get());
    ASSERT_FALSE(t.ok()) << std::oct << mode;
    EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(t.status().message().find("writable by"), std::string::npos) << t.status().ToString();
  }
  ASSERT_EQ(chmod(dir_.c_str(), 0755), 0);  // others may read and enter, not write: fine
  auto tier = OpenTier(Options(2, 2));
  ASSERT_TRUE(tier);
  EXPECT_EQ(ModeOf(segment), 0600u);
  EXPECT_NE(tier->notes().find("made private"), std::string::npos) << tier->notes();
}

TEST_F(DiskTierTest, SecondInstanceInTheSameDirectoryIsRefused) {
  auto first = OpenTier(Options(4, 4));
  ASSERT_TRUE(first);
  auto second = DiskTier::Open(Options(4, 4), disk_test::SmallLayout(), engine_.get());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(second.status().message().find(dir_.string()), std::string::npos);
  EXPECT_NE(second.status().message().find("pid " + std::to_string(getpid())), std::string::npos)
      << second.status().ToString();
  first.reset();  // released on close
  EXPECT_TRUE(OpenTier(Options(4, 4)));
}

TEST_F(DiskTierTest, BadOptionsAndTooSmallDisksGiveClearErrors) {
  DiskTierOptions o = Options(4, 4);
  o.capacity_bytes = kRecord - 1;
  auto tiny = DiskTier::Open(o, disk_test::SmallLayout(), engine_.get());
  ASSERT_FALSE(tiny.ok());
  EXPECT_NE(tiny.status().message().find("holds no region"), std::string::npos);
  o = Options(4, 4);
  o.capacity_bytes = uint64_t{1} << 50;  // a petabyte: more than this filesystem has
  o.region_bytes = uint64_t{1} << 30;
  o.file_bytes = uint64_t{1} << 40;
  KvLayout big = disk_test::SmallLayout();
  big.num_layers = 512;  // 8 MiB blocks keep the record count reasonable
  auto huge = DiskTier::Open(o, big, engine_.get());
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.status().sys_errno(), ENOSPC) << huge.status().ToString();
  EXPECT_NE(huge.status().message().find("capacity_bytes"), std::string::npos);
  o = Options(4, 4);
  o.backend = BackendKind::kMemcpy;
  EXPECT_EQ(DiskTier::Open(o, disk_test::SmallLayout(), engine_.get()).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(DiskTierTest, ZeroCopyFromRegisteredMemoryAndBufferedMode) {
  for (bool direct : {true, false}) {
    SCOPED_TRACE(direct ? "O_DIRECT" : "buffered");
    DiskTierOptions o = Options(4, 4);
    o.use_direct_io = direct;
    const size_t bb = disk_test::SmallLayout().block_bytes();
    auto slots = HostBuffer::Allocate(4 * bb, {});  // must outlive the tier
    ASSERT_TRUE(slots.ok());
    auto tier = OpenTier(o);
    ASSERT_TRUE(tier);
    if (!direct) {
      EXPECT_FALSE(tier->direct_io());
    }
    ASSERT_TRUE(tier->RegisterHostMemory((*slots)->data(), 4 * bb, "test slots").ok());
    const BlockKey k = TestKey(direct ? 7 : 8, 0);
    FillBlock(k, (*slots)->data(), bb);
    ASSERT_EQ(*tier->Write(k, ns_, (*slots)->data()), DiskWriteOutcome::kWritten);
    const uint32_t rec = tier->Lease(k);
    ASSERT_TRUE(tier->Read(rec, k, ns_, (*slots)->data() + 2 * bb).ok());
    tier->Unlease(rec);
    EXPECT_EQ(std::memcmp((*slots)->data(), (*slots)->data() + 2 * bb, bb), 0);
    EXPECT_EQ(tier->stats().zero_copy_ios, 2u);
    // Unregistered memory is staged, and reads the same bytes.
    EXPECT_TRUE(Get(*tier, k).ok());
    EXPECT_EQ(tier->stats().zero_copy_ios, 2u);
  }
}

TEST_F(DiskTierTest, UnalignedBlockSizesArePadded) {
  KvLayout odd;
  odd.num_layers = 3;
  odd.num_kv_heads = 1;
  odd.head_dim = 10;
  odd.dtype = DType::kFloat32;
  odd.tokens_per_block = 16;  // 3840-byte blocks, 8 KiB records
  DiskTierOptions o;
  o.directory = dir_.string();
  o.capacity_bytes = 1 << 20;
  o.region_bytes = 64 << 10;
  o.io_depth = 2;
  for (int round = 0; round < 2; ++round) {
    auto tier = OpenTier(o, odd);
    ASSERT_TRUE(tier);
    EXPECT_EQ(tier->geometry().record_bytes, 8192u);
    if (round == 0)
      for (uint64_t i = 0; i < 50; ++i) Put(*tier, TestKey(4, i));
    for (uint64_t i = 0; i < 50; ++i) EXPECT_TRUE(Get(*tier, TestKey(4, i)).ok()) << i;
  }
}

TEST_F(DiskTierTest, IndexMemoryStaysWithin64BytesPerRecord) {
  DiskTierOptions o = Options(64, 15);
  auto tier = OpenTier(o);
  ASSERT_TRUE(tier);
  const DiskTierStats st = tier->stats();
  EXPECT_EQ(st.capacity_records, 960u);
  EXPECT_LE(st.index_bytes_per_record, 64.0) << st.index_bytes;
  RecordProperty("index_bytes_per_record", std::to_string(st.index_bytes_per_record));
}

// Many threads store, match, load and release blocks of a small tier that reclaims
// constantly: every load that succeeds returns exactly the stored bytes, dedup holds,
// and the lease/pin accounting returns to zero.
TEST_F(DiskTierTest, ConcurrentWritersAndReadersNeverSeeWrongBytes) {
  DiskTierOptions o = Options(6, 3);
  o.io_depth = 3;  // fewer staging buffers than threads: callers wait for one
  auto tier = OpenTier(o);
  ASSERT_TRUE(tier);
  constexpr int kThreads = 4;
  constexpr uint64_t kKeys = 40;
  std::atomic<uint64_t> written{0}, loaded{0}, bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      std::vector<std::byte> block(tier->block_bytes()), want(tier->block_bytes());
      for (int op = 0; op < 150; ++op) {
        const BlockKey k = TestKey(9, rng() % kKeys);
        if (rng() % 2 == 0) {
          FillBlock(k, block.data(), block.size());
          auto r = tier->Write(k, ns_, block.data());
          if (!r.ok()) {
            ++bad;
          } else if (*r == DiskWriteOutcome::kWritten) {
            ++written;
          }
        } else {
          const uint32_t rec = tier->Lease(k);
          if (rec == DiskTier::kNoRecord) continue;
          if (tier->Read(rec, k, ns_, block.data()).ok()) {
            FillBlock(k, want.data(), want.size());
            if (block != want) ++bad;
            ++loaded;
          } else {
            ++bad;
          }
          tier->Unlease(rec);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0u);
  const DiskTierStats st = tier->stats();
  EXPECT_EQ(st.writes, written.load());
  EXPECT_EQ(st.reads, loaded.load());
  EXPECT_GT(st.evictions, 0u);
  EXPECT_EQ(st.leased_records, 0u);
  EXPECT_EQ(st.used_records, tier->Keys().size());
  // Each key is stored at most once at a time.
  std::set<BlockKey> unique;
  for (const BlockKey& k : tier->Keys()) EXPECT_TRUE(unique.insert(k).second);
}

}  // namespace
}  // namespace strata
