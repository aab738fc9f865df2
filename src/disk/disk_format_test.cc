// The G3 on-disk format: geometry, record header encoding and checks, the meta file.
#include "disk/disk_format.h"

#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "disk/disk_test_util.h"

namespace strata::disk {
namespace {

TEST(DiskGeometryTest, RecordsTileRegionsAndRegionsTileFiles) {
  // 64 KiB blocks: 68 KiB records; a 1 MiB region holds 15 of them.
  auto g = DiskGeometry::Compute(64 << 10, 10 << 20, 3 << 20, 1 << 20);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(g->record_bytes, 68u << 10);
  EXPECT_EQ(g->records_per_region, 15u);
  EXPECT_EQ(g->region_bytes, 15u * (68 << 10));
  EXPECT_EQ(g->num_regions, (10u << 20) / (15 * (68 << 10)));  // 10
  EXPECT_EQ(g->regions_per_file, 3u);                          // 3 MiB / 1020 KiB
  EXPECT_EQ(g->num_files, 4u);                                 // 3 + 3 + 3 + 1
  EXPECT_EQ(g->num_records, 150u);
  EXPECT_EQ(g->file_size(3), g->region_bytes);
  // Record 15 * 4 + 2: region 4 = file 1, region 1 of that file, slot 2.
  const uint32_t r = 15 * 4 + 2;
  EXPECT_EQ(g->region_of(r), 4u);
  EXPECT_EQ(g->file_of(r), 1u);
  EXPECT_EQ(g->offset_of(r), g->region_bytes + 2 * g->record_bytes);
  // Every record lies inside its file and is 4 KiB aligned.
  for (uint32_t rec = 0; rec < g->num_records; ++rec) {
    EXPECT_EQ(g->offset_of(rec) % kAlign, 0u);
    EXPECT_LE(g->offset_of(rec) + g->record_bytes, g->file_size(g->file_of(rec)));
  }
}

TEST(DiskGeometryTest, UnalignedBlocksArePaddedAndTinyCapacityIsRefused) {
  auto g = DiskGeometry::Compute(5000, 1 << 20, 1 << 20, 64 << 10);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->record_bytes, 4096u + 8192u);
  EXPECT_EQ(g->records_per_region, 5u);  // 64 KiB / 12 KiB
  // A region larger than requested when one record does not fit in it.
  auto big = DiskGeometry::Compute(1 << 20, 8 << 20, 8 << 20, 64 << 10);
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(big->records_per_region, 1u);
  auto none = DiskGeometry::Compute(1 << 20, 1 << 20, 1 << 20, 1 << 20);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(none.status().message().find("holds no region"), std::string::npos);
}

RecordHeader SampleHeader() {
  RecordHeader h;
  h.key = disk_test::TestKey(1, 2);
  h.ns = disk_test::TestNamespace();
  h.sequence = 77;
  h.epoch = 5;
  h.payload_length = 65536;
  h.payload_checksum = 0x1234567890abcdefull;
  h.record_bytes = 69632;
  h.record_index = 9;
  return h;
}

TEST(RecordHeaderTest, RoundTripsEveryFieldAtItsDocumentedOffset) {
  std::vector<std::byte> buf(kHeaderBytes);
  const RecordHeader h = SampleHeader();
  EncodeRecordHeader(h, buf.data());
  EXPECT_EQ(std::memcmp(buf.data(), "STRATAG3", 8), 0);
  uint64_t seq;
  std::memcpy(&seq, buf.data() + hdr::kSequence, 8);
  EXPECT_EQ(seq, 77u);
  EXPECT_EQ(std::memcmp(buf.data() + hdr::kKey, h.key.bytes.data(), 32), 0);
  for (size_t i = hdr::kEnd; i < kHeaderBytes; ++i) ASSERT_EQ(buf[i], std::byte{0}) << i;

  RecordHeader out;
  ASSERT_EQ(DecodeRecordHeader(buf.data(), 9, 69632, &out), HeaderState::kValid);
  EXPECT_EQ(out.key, h.key);
  EXPECT_EQ(out.ns, h.ns);
  EXPECT_EQ(out.sequence, 77u);
  EXPECT_EQ(out.epoch, 5u);
  EXPECT_EQ(out.payload_length, 65536u);
  EXPECT_EQ(out.payload_checksum, h.payload_checksum);
}

TEST(RecordHeaderTest, DetectsEmptyFlippedForeignAndMisplacedHeaders) {
  std::vector<std::byte> buf(kHeaderBytes);
  RecordHeader out;
  EXPECT_EQ(DecodeRecordHeader(buf.data(), 9, 69632, &out), HeaderState::kEmpty);
  EncodeRecordHeader(SampleHeader(), buf.data());
  // Every single-bit flip anywhere in the 4 KiB header is caught.
  for (size_t byte : {size_t{3}, size_t{9}, size_t{20}, size_t{30}, size_t{80}, size_t{110},
                      size_t{500}, size_t{4095}}) {
    buf[byte] ^= std::byte{0x10};
    EXPECT_NE(DecodeRecordHeader(buf.data(), 9, 69632, &out), HeaderState::kValid) << byte;
    buf[byte] ^= std::byte{0x10};
  }
  EXPECT_EQ(DecodeRecordHeader(buf.data(), 9, 69632, &out), HeaderState::kValid);
  EXPECT_EQ(DecodeRecordHeader(buf.data(), 10, 69632, &out), HeaderState::kMisplaced);
  EXPECT_EQ(DecodeRecordHeader(buf.data(), 9, 73728, &out), HeaderState::kMisplaced);
  buf[0] = std::byte{'X'};
  EXPECT_EQ(DecodeRecordHeader(buf.data(), 9, 69632, &out), HeaderState::kBadMagic);
}

DiskMeta SampleMeta() {
  DiskMeta m;
  m.layout = disk_test::SmallLayout().Canonical();
  m.geometry = *DiskGeometry::Compute(64 << 10, 10 << 20, 3 << 20, 1 << 20);
  m.created_unix = 1700000000;
  return m;
}

TEST(DiskMetaTest, RoundTripsAndRejectsDamage) {
  const DiskMeta m = SampleMeta();
  const std::string text = m.Encode();
  auto back = DiskMeta::Decode(text, "/x/strata-g3.meta");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->layout, m.layout);
  EXPECT_EQ(back->geometry, m.geometry);
  EXPECT_EQ(back->created_unix, m.created_unix);
  EXPECT_EQ(back->Difference(m), "");

  std::string damaged = text;
  damaged[damaged.find("block_bytes=") + 12] = '9';
  auto bad = DiskMeta::Decode(damaged, "/x/strata-g3.meta");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kCorruption);
  EXPECT_NE(bad.status().message().find("/x/strata-g3.meta"), std::string::npos);
  EXPECT_FALSE(DiskMeta::Decode(text.substr(0, text.size() / 2), "m").ok());
  EXPECT_FALSE(DiskMeta::Decode("", "m").ok());
}

// Found with disk_meta_fuzz's consistency check: geometries that add up only after wrapping
// around were accepted.
TEST(DiskMetaTest, RejectsGeometryThatAddsUpOnlyModulo2To32Or2To64) {
  const DiskGeometry one{.block_bytes = 4096,
                         .record_bytes = 8192,
                         .records_per_region = 1,
                         .region_bytes = 8192,
                         .regions_per_file = 1,
                         .num_regions = 1,
                         .num_files = 1,
                         .num_records = 1};
  DiskGeometry files_wrap = one;  // ceil((2^32 - 1) / 2) files, computed in 32 bits: 0
  files_wrap.num_regions = files_wrap.num_records = UINT32_MAX;
  files_wrap.regions_per_file = 2;
  files_wrap.num_files = 0;
  DiskGeometry region_wrap = one;  // 2 records of 2^63 bytes: a region of 0
  region_wrap.record_bytes = uint64_t{1} << 63;
  region_wrap.records_per_region = 2;
  region_wrap.region_bytes = 0;
  region_wrap.num_records = 2;
  DiskGeometry record_wrap = one;  // a 4096-byte header plus a 2^64 - 4096-byte block: 0
  record_wrap.block_bytes = UINT64_MAX - 4095;
  record_wrap.record_bytes = record_wrap.region_bytes = 0;
  auto decode = [](const DiskGeometry& g) {
    DiskMeta m = SampleMeta();
    m.geometry = g;
    return DiskMeta::Decode(m.Encode(), "m");
  };
  ASSERT_TRUE(decode(one).ok()) << decode(one).status().ToString();
  for (const DiskGeometry& g : {files_wrap, region_wrap, record_wrap}) {
    const Result<DiskMeta> back = decode(g);
    ASSERT_FALSE(back.ok()) << g.num_regions << " " << g.record_bytes << " " << g.block_bytes;
    EXPECT_EQ(back.status().code(), StatusCode::kCorruption);
    EXPECT_NE(back.status().message().find("inconsistent geometry"), std::string::npos);
  }
}

TEST(DiskMetaTest, DifferenceNamesTheLayoutAndGeometry) {
  const DiskMeta a = SampleMeta();
  DiskMeta b = a;
  KvLayout other = disk_test::SmallLayout();
  other.num_layers = 8;
  b.layout = other.Canonical();
  b.geometry = *DiskGeometry::Compute(other.block_bytes(), 10 << 20, 3 << 20, 1 << 20);
  const std::string diff = a.Difference(b);
  EXPECT_NE(diff.find("layout"), std::string::npos) << diff;
  EXPECT_NE(diff.find("block/record bytes"), std::string::npos) << diff;
}

}  // namespace
}  // namespace strata::disk
