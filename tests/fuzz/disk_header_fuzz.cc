// libFuzzer harness: G3 record headers (DecodeRecordHeader, docs/disk_format.md).
//
// Input: one control byte, then the header bytes (zero-padded or cut to 4096). Control
// bit 0 recomputes the header checksum and bit 1 takes the slot's record number and
// record size from the header itself, so mutations get past those checks and reach the
// rest of the decoder; without them the input is checked as it is.
#include <xxhash.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "disk/disk_format.h"

namespace hdr = strata::disk::hdr;
using strata::disk::HeaderState;
using strata::disk::kHeaderBytes;
using strata::disk::RecordHeader;

namespace {

template <typename T>
T Load(const std::byte* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// The spec's header checksum, written independently of disk_format.cc: XXH3-64 of the
// 4096 bytes with the checksum field zeroed.
void FixChecksum(std::byte* h) {
  std::memset(h + hdr::kChecksum, 0, 8);
  const uint64_t sum = XXH3_64bits(h, kHeaderBytes);
  std::memcpy(h + hdr::kChecksum, &sum, 8);
}

bool SameFields(const RecordHeader& a, const RecordHeader& b) {
  return a.key == b.key && a.ns == b.ns && a.sequence == b.sequence && a.epoch == b.epoch &&
         a.payload_length == b.payload_length && a.payload_checksum == b.payload_checksum &&
         a.record_bytes == b.record_bytes && a.record_index == b.record_index;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t control = data[0];
  std::vector<std::byte> header(kHeaderBytes);
  std::memcpy(header.data(), data + 1, std::min<size_t>(size - 1, kHeaderBytes));
  if (control & 1) FixChecksum(header.data());
  uint32_t record_index = 7;
  uint64_t record_bytes = kHeaderBytes + 2 * strata::disk::kAlign;
  if (control & 2) {
    record_index = Load<uint32_t>(header.data() + hdr::kRecordIndex);
    record_bytes = Load<uint64_t>(header.data() + hdr::kRecordBytes);
  }

  RecordHeader h;
  const HeaderState state =
      strata::disk::DecodeRecordHeader(header.data(), record_index, record_bytes, &h);
  if (strata::disk::HeaderStateName(state) == "?") std::abort();
  if (state != HeaderState::kValid) return 0;
  // A valid header belongs to the slot it was checked against, and encodes back to a
  // header that decodes to the same fields.
  if (h.record_index != record_index || h.record_bytes != record_bytes) std::abort();
  std::vector<std::byte> again(kHeaderBytes);
  strata::disk::EncodeRecordHeader(h, again.data());
  RecordHeader h2;
  if (strata::disk::DecodeRecordHeader(again.data(), record_index, record_bytes, &h2) !=
          HeaderState::kValid ||
      !SameFields(h, h2))
    std::abort();
  return 0;
}
