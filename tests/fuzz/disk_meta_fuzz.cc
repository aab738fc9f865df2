// libFuzzer harness: the G3 meta file (DiskMeta::Decode, docs/disk_format.md).
//
// Input: the file's text. A seed's checksum line is right; a mutation almost never keeps
// it right, so when the text has a checksum line the harness also decodes a copy whose
// checksum is recomputed, and the line parser behind the checksum gets fuzzed too.
#include <xxhash.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "disk/disk_format.h"

using strata::disk::DiskGeometry;
using strata::disk::DiskMeta;

namespace {

// The meta file's geometry rules (docs/disk_format.md) in arithmetic that cannot wrap.
bool Consistent(const DiskGeometry& g) {
  using U128 = unsigned __int128;
  return g.records_per_region > 0 && g.regions_per_file > 0 && g.num_regions > 0 &&
         g.block_bytes > 0 &&
         U128{g.record_bytes} >= U128{strata::disk::kHeaderBytes} + g.block_bytes &&
         U128{g.region_bytes} == U128{g.records_per_region} * g.record_bytes &&
         U128{g.num_records} == U128{g.num_regions} * g.records_per_region &&
         U128{g.num_files} == (U128{g.num_regions} + g.regions_per_file - 1) / g.regions_per_file;
}

void Check(std::string_view text) {
  strata::Result<DiskMeta> meta = DiskMeta::Decode(text, "fuzz.meta");
  if (!meta.ok()) {
    if (meta.status().code() != strata::StatusCode::kCorruption) std::abort();
    return;
  }
  if (!Consistent(meta->geometry)) std::abort();
  // A decoded meta file encodes to one that decodes to the same tier.
  strata::Result<DiskMeta> again = DiskMeta::Decode(meta->Encode(), "fuzz.meta");
  if (!again.ok() || !again->Difference(*meta).empty() || !(again->geometry == meta->geometry) ||
      again->created_unix != meta->created_unix)
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  Check(text);
  const size_t cs = text.rfind("checksum=");
  if (cs == std::string_view::npos || (cs > 0 && text[cs - 1] != '\n')) return 0;
  std::string fixed(text.substr(0, cs));
  fixed += fmt::format("checksum={:016x}\n", XXH3_64bits(fixed.data(), fixed.size()));
  Check(fixed);
  return 0;
}
