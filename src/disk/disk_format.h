// The G3 disk tier's on-disk format: record headers, the meta file and the geometry that
// maps a record number to a file and offset. docs/disk_format.md is the written spec;
// this file is its only implementation, and the two change together.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "strata/block_key.h"
#include "strata/namespace_fingerprint.h"  // in every record header
#include "strata/status.h"

namespace strata::disk {

inline constexpr std::array<char, 8> kRecordMagic = {'S', 'T', 'R', 'A', 'T', 'A', 'G', '3'};
inline constexpr uint32_t kFormatVersion = 1;
// Every record starts with one header block; records, regions and files are multiples of it,
// which is what O_DIRECT needs on every device Strata targets.
inline constexpr uint64_t kHeaderBytes = 4096;
inline constexpr uint64_t kAlign = 4096;

inline constexpr uint64_t AlignUp(uint64_t v, uint64_t to) {
  return (v + to - 1) / to * to;
}

// Byte offsets of the header fields (little-endian, see docs/disk_format.md).
namespace hdr {
inline constexpr size_t kMagic = 0;             // 8 bytes "STRATAG3"
inline constexpr size_t kVersion = 8;           // u32 format version
inline constexpr size_t kHeaderSize = 12;       // u32 header bytes (4096)
inline constexpr size_t kChecksum = 16;         // u64 XXH3-64 of the header, this field zeroed
inline constexpr size_t kSequence = 24;         // u64 write sequence number
inline constexpr size_t kEpoch = 32;            // u64 region epoch
inline constexpr size_t kPayloadLength = 40;    // u64 payload bytes
inline constexpr size_t kPayloadChecksum = 48;  // u64 XXH3-64 of the payload
inline constexpr size_t kRecordBytes = 56;      // u64 record size of the tier
inline constexpr size_t kRecordIndex = 64;      // u32 this record's own number
inline constexpr size_t kFlags = 68;            // u32 reserved, 0
inline constexpr size_t kKey = 72;              // 32 bytes block key
inline constexpr size_t kNamespace = 104;       // 32 bytes namespace fingerprint
inline constexpr size_t kEnd = 136;             // bytes [136, 4096) are zero
}  // namespace hdr

struct RecordHeader {
  BlockKey key;
  NamespaceFingerprint ns;
  uint64_t sequence = 0;
  uint64_t epoch = 0;
  uint64_t payload_length = 0;
  uint64_t payload_checksum = 0;
  uint64_t record_bytes = 0;
  uint32_t record_index = 0;
};

// XXH3-64 (seed 0) of a payload.
uint64_t PayloadChecksum(const std::byte* data, size_t length);

// Writes `h` into `out` (kHeaderBytes bytes): every field, zero padding, header checksum.
void EncodeRecordHeader(const RecordHeader& h, std::byte* out);

enum class HeaderState : uint8_t {
  kValid,
  kEmpty,        // all-zero magic: never written (fresh preallocated space)
  kBadMagic,     // non-zero bytes that are not a record header
  kBadVersion,   // a header of a format version this build does not read
  kBadChecksum,  // torn or bit-flipped header
  kMisplaced,    // valid header whose record number or record size is not this slot's
};
std::string_view HeaderStateName(HeaderState state);

// Parses and checks a header read from record `record_index` of a tier whose records are
// `record_bytes` long. `*h` is filled only when the result is kValid.
HeaderState DecodeRecordHeader(const std::byte* in, uint32_t record_index, uint64_t record_bytes,
                               RecordHeader* h);

// Where records live. A record is the header plus the block rounded up to kAlign. Records
// append into regions (the unit of reclaim), regions tile segment files, segment files
// tile the capacity:
//   record r -> region g = r / records_per_region, slot s = r % records_per_region
//   region g -> file g / regions_per_file, at (g % regions_per_file) * region_bytes
//   record r -> that file, at region offset + s * record_bytes
struct DiskGeometry {
  uint64_t block_bytes = 0;
  uint64_t record_bytes = 0;        // kHeaderBytes + AlignUp(block_bytes, kAlign)
  uint32_t records_per_region = 0;  // >= 1
  uint64_t region_bytes = 0;        // records_per_region * record_bytes (the region stride)
  uint32_t regions_per_file = 0;    // >= 1
  uint32_t num_regions = 0;         // >= 1
  uint32_t num_files = 0;
  uint32_t num_records = 0;  // num_regions * records_per_region, < 2^31

  // The largest geometry that fits `capacity_bytes`: the requested region size is rounded
  // down to whole records (at least one), the file size down to whole regions (at least
  // one); the last file may hold fewer regions. InvalidArgument when not even one region fits.
  static Result<DiskGeometry> Compute(uint64_t block_bytes, uint64_t capacity_bytes,
                                      uint64_t file_bytes, uint64_t region_bytes);

  uint32_t region_of(uint32_t record) const { return record / records_per_region; }
  uint32_t slot_of(uint32_t record) const { return record % records_per_region; }
  uint32_t first_record(uint32_t region) const { return region * records_per_region; }
  uint32_t file_of_region(uint32_t region) const { return region / regions_per_file; }
  uint32_t file_of(uint32_t record) const { return file_of_region(region_of(record)); }
  uint64_t offset_of(uint32_t record) const {
    return uint64_t{region_of(record) % regions_per_file} * region_bytes +
           uint64_t{slot_of(record)} * record_bytes;
  }
  uint32_t regions_in_file(uint32_t file) const {
    const uint32_t first = file * regions_per_file;
    return std::min(regions_per_file, num_regions - first);
  }
  uint64_t file_size(uint32_t file) const { return uint64_t{regions_in_file(file)} * region_bytes; }
  uint64_t total_bytes() const { return uint64_t{num_regions} * region_bytes; }

  friend bool operator==(const DiskGeometry&, const DiskGeometry&) = default;
};

// The meta file (strata-g3.meta): what the files hold, so a tier is never opened with
// another layout or geometry. A small text file of key=value lines ending with a checksum.
struct DiskMeta {
  uint32_t format_version = kFormatVersion;
  std::string layout;  // KvLayout::Canonical()
  DiskGeometry geometry;
  uint64_t created_unix = 0;

  std::string Encode() const;
  // InvalidArgument-free: Corruption naming `path` and the bad line for any malformed text.
  static Result<DiskMeta> Decode(std::string_view text, std::string_view path);
  // "" when `other` describes the same format, layout and geometry; else what differs.
  std::string Difference(const DiskMeta& other) const;
};

}  // namespace strata::disk
