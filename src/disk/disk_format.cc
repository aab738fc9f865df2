// Encoding and checking of G3 record headers and the meta file (docs/disk_format.md).
#include "disk/disk_format.h"

#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack
#include <xxhash.h>

#include <bit>
#include <charconv>
#include <cstring>
#include <utility>
#include <vector>

#include <fmt/format.h>

namespace strata {

static_assert(std::endian::native == std::endian::little,
              "the G3 format is little-endian and is encoded with plain copies");

namespace disk {
namespace {

template <typename T>
void Put(std::byte* base, size_t offset, T v) {
  std::memcpy(base + offset, &v, sizeof(T));
}

template <typename T>
T Get(const std::byte* base, size_t offset) {
  T v;
  std::memcpy(&v, base + offset, sizeof(T));
  return v;
}

// XXH3-64 of the header with its checksum field read as zero, without copying 4 KiB.
uint64_t HeaderChecksum(const std::byte* h) {
  XXH3_state_t state;
  XXH3_64bits_reset(&state);
  XXH3_64bits_update(&state, h, hdr::kChecksum);
  const uint64_t zero = 0;
  XXH3_64bits_update(&state, &zero, sizeof(zero));
  XXH3_64bits_update(&state, h + hdr::kChecksum + 8, kHeaderBytes - hdr::kChecksum - 8);
  return XXH3_64bits_digest(&state);
}

}  // namespace

uint64_t PayloadChecksum(const std::byte* data, size_t length) {
  return XXH3_64bits(data, length);
}

void EncodeRecordHeader(const RecordHeader& h, std::byte* out) {
  std::memset(out, 0, kHeaderBytes);
  std::memcpy(out + hdr::kMagic, kRecordMagic.data(), kRecordMagic.size());
  Put<uint32_t>(out, hdr::kVersion, kFormatVersion);
  Put<uint32_t>(out, hdr::kHeaderSize, static_cast<uint32_t>(kHeaderBytes));
  Put<uint64_t>(out, hdr::kSequence, h.sequence);
  Put<uint64_t>(out, hdr::kEpoch, h.epoch);
  Put<uint64_t>(out, hdr::kPayloadLength, h.payload_length);
  Put<uint64_t>(out, hdr::kPayloadChecksum, h.payload_checksum);
  Put<uint64_t>(out, hdr::kRecordBytes, h.record_bytes);
  Put<uint32_t>(out, hdr::kRecordIndex, h.record_index);
  Put<uint32_t>(out, hdr::kFlags, 0);
  std::memcpy(out + hdr::kKey, h.key.bytes.data(), 32);
  std::memcpy(out + hdr::kNamespace, h.ns.bytes.data(), 32);
  Put<uint64_t>(out, hdr::kChecksum, HeaderChecksum(out));
}

std::string_view HeaderStateName(HeaderState state) {
  switch (state) {
    case HeaderState::kValid:
      return "valid";
    case HeaderState::kEmpty:
      return "empty";
    case HeaderState::kBadMagic:
      return "bad magic";
    case HeaderState::kBadVersion:
      return "unsupported format version";
    case HeaderState::kBadChecksum:
      return "header checksum mismatch";
    case HeaderState::kMisplaced:
      return "record number or size does not match its slot";
  }
  return "?";
}

HeaderState DecodeRecordHeader(const std::byte* in, uint32_t record_index, uint64_t record_bytes,
                               RecordHeader* h) {
  if (std::memcmp(in + hdr::kMagic, kRecordMagic.data(), kRecordMagic.size()) != 0)
    return Get<uint64_t>(in, hdr::kMagic) == 0 ? HeaderState::kEmpty : HeaderState::kBadMagic;
  // The checksum first: a version field is only meaningful in an intact header.
  if (Get<uint64_t>(in, hdr::kChecksum) != HeaderChecksum(in)) return HeaderState::kBadChecksum;
  if (Get<uint32_t>(in, hdr::kVersion) != kFormatVersion ||
      Get<uint32_t>(in, hdr::kHeaderSize) != kHeaderBytes)
    return HeaderState::kBadVersion;
  if (Get<uint32_t>(in, hdr::kRecordIndex) != record_index ||
      Get<uint64_t>(in, hdr::kRecordBytes) != record_bytes)
    return HeaderState::kMisplaced;
  h->sequence = Get<uint64_t>(in, hdr::kSequence);
  h->epoch = Get<uint64_t>(in, hdr::kEpoch);
  h->payload_length = Get<uint64_t>(in, hdr::kPayloadLength);
  h->payload_checksum = Get<uint64_t>(in, hdr::kPayloadChecksum);
  h->record_bytes = record_bytes;
  h->record_index = record_index;
  std::memcpy(h->key.bytes.data(), in + hdr::kKey, 32);
  std::memcpy(h->ns.bytes.data(), in + hdr::kNamespace, 32);
  return HeaderState::kValid;
}

Result<DiskGeometry> DiskGeometry::Compute(uint64_t block_bytes, uint64_t capacity_bytes,
                                           uint64_t file_bytes, uint64_t region_bytes) {
  if (block_bytes == 0) return Status::InvalidArgument("disk tier: block size is 0");
  DiskGeometry g;
  g.block_bytes = block_bytes;
  g.record_bytes = kHeaderBytes + AlignUp(block_bytes, kAlign);
  g.records_per_region = static_cast<uint32_t>(
      std::clamp<uint64_t>(region_bytes / g.record_bytes, 1, uint64_t{1} << 30));
  g.region_bytes = uint64_t{g.records_per_region} * g.record_bytes;
  const uint64_t regions = capacity_bytes / g.region_bytes;
  if (regions == 0)
    return Status::InvalidArgument(fmt::format(
        "disk tier capacity_bytes {} holds no region of {} bytes ({} record(s) of {} bytes: a "
        "{}-byte header plus a {}-byte block); raise capacity_bytes",
        capacity_bytes, g.region_bytes, g.records_per_region, g.record_bytes, kHeaderBytes,
        block_bytes));
  if (regions * g.records_per_region >= (uint64_t{1} << 31))
    return Status::InvalidArgument(
        fmt::format("disk tier of {} records exceeds 2^31 records; use larger blocks or a "
                    "smaller capacity_bytes",
                    regions * g.records_per_region));
  g.num_regions = static_cast<uint32_t>(regions);
  g.num_records = g.num_regions * g.records_per_region;
  g.regions_per_file =
      static_cast<uint32_t>(std::clamp<uint64_t>(file_bytes / g.region_bytes, 1, g.num_regions));
  g.num_files = (g.num_regions + g.regions_per_file - 1) / g.regions_per_file;
  return g;
}

// ---- meta file ----------------------------------------------------------------------

namespace {
constexpr std::string_view kMetaTitle =
    "# Strata G3 disk tier. Do not edit: see docs/disk_format.md";

struct MetaField {
  std::string_view name;
  uint64_t value;
};
}  // namespace

std::string DiskMeta::Encode() const {
  std::string body = fmt::format("{}\nstrata_g3_meta=1\nformat_version={}\nlayout={}\n", kMetaTitle,
                                 format_version, layout);
  const MetaField fields[] = {
      {"block_bytes", geometry.block_bytes},   {"header_bytes", kHeaderBytes},
      {"record_bytes", geometry.record_bytes}, {"records_per_region", geometry.records_per_region},
      {"region_bytes", geometry.region_bytes}, {"regions_per_file", geometry.regions_per_file},
      {"num_regions", geometry.num_regions},   {"num_files", geometry.num_files},
      {"num_records", geometry.num_records},   {"created_unix", created_unix}};
  for (const MetaField& f : fields) body += fmt::format("{}={}\n", f.name, f.value);
  body += fmt::format("checksum={:016x}\n", XXH3_64bits(body.data(), body.size()));
  return body;
}

Result<DiskMeta> DiskMeta::Decode(std::string_view text, std::string_view path) {
  auto bad = [&](std::string_view why) {
    return Status::Corruption(fmt::format("disk tier meta file {}: {}", path, why));
  };
  const size_t cs = text.rfind("checksum=");
  if (cs == std::string_view::npos || (cs > 0 && text[cs - 1] != '\n'))
    return bad("no checksum line (truncated or not a Strata meta file)");
  uint64_t want = 0;
  const std::string_view hex = text.substr(cs + 9);
  auto [p, ec] = std::from_chars(hex.data(), hex.data() + hex.size(), want, 16);
  if (ec != std::errc() || p == hex.data()) return bad("malformed checksum line");
  if (XXH3_64bits(text.data(), cs) != want) return bad("checksum mismatch (the file is damaged)");

  DiskMeta m;
  m.format_version = 0;  // required: absent means damaged
  uint64_t header_bytes = 0, magic = 0;
  size_t pos = 0;
  while (pos < cs) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos || end > cs) end = cs;
    const std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.empty() || line[0] == '#') continue;
    const size_t eq = line.find('=');
    if (eq == std::string_view::npos) return bad(fmt::format("malformed line '{}'", line));
    const std::string_view name = line.substr(0, eq), value = line.substr(eq + 1);
    if (name == "layout") {
      m.layout = std::string(value);
      continue;
    }
    uint64_t v = 0;
    auto [vp, vec] = std::from_chars(value.data(), value.data() + value.size(), v);
    if (vec != std::errc() || vp != value.data() + value.size())
      return bad(fmt::format("malformed number in line '{}'", line));
    const std::pair<std::string_view, uint64_t*> u64_fields[] = {
        {"strata_g3_meta", &magic},
        {"block_bytes", &m.geometry.block_bytes},
        {"header_bytes", &header_bytes},
        {"record_bytes", &m.geometry.record_bytes},
        {"region_bytes", &m.geometry.region_bytes},
        {"created_unix", &m.created_unix}};
    const std::pair<std::string_view, uint32_t*> u32_fields[] = {
        {"format_version", &m.format_version},
        {"records_per_region", &m.geometry.records_per_region},
        {"regions_per_file", &m.geometry.regions_per_file},
        {"num_regions", &m.geometry.num_regions},
        {"num_files", &m.geometry.num_files},
        {"num_records", &m.geometry.num_records}};
    // Unknown keys are ignored: a later version may add informational fields.
    for (const auto& [field, out] : u64_fields)
      if (name == field) *out = v;
    for (const auto& [field, out] : u32_fields) {
      if (name != field) continue;
      if (v > UINT32_MAX) return bad(fmt::format("value out of range in line '{}'", line));
      *out = static_cast<uint32_t>(v);
    }
  }
  if (magic != 1) return bad("missing 'strata_g3_meta=1' line");
  if (m.format_version == 0) return bad("missing format_version");
  if (header_bytes != kHeaderBytes)
    return bad(fmt::format("header_bytes {} (this build reads {})", header_bytes, kHeaderBytes));
  // In arithmetic that cannot wrap: a damaged file must not add up modulo 2^32 or 2^64.
  const DiskGeometry& g = m.geometry;
  if (g.records_per_region == 0 || g.regions_per_file == 0 || g.num_regions == 0 ||
      g.block_bytes == 0 || g.block_bytes > UINT64_MAX - kHeaderBytes ||
      g.record_bytes < kHeaderBytes + g.block_bytes ||
      g.record_bytes > UINT64_MAX / g.records_per_region ||
      g.region_bytes != uint64_t{g.records_per_region} * g.record_bytes ||
      g.num_records != uint64_t{g.num_regions} * g.records_per_region ||
      g.num_files != (uint64_t{g.num_regions} + g.regions_per_file - 1) / g.regions_per_file)
    return bad("inconsistent geometry");
  return m;
}

std::string DiskMeta::Difference(const DiskMeta& o) const {
  std::vector<std::string> diffs;
  if (format_version != o.format_version)
    diffs.push_back(fmt::format("format version {} vs {}", format_version, o.format_version));
  if (layout != o.layout) diffs.push_back(fmt::format("layout '{}' vs '{}'", layout, o.layout));
  const DiskGeometry &a = geometry, &b = o.geometry;
  if (a.block_bytes != b.block_bytes || a.record_bytes != b.record_bytes)
    diffs.push_back(fmt::format("block/record bytes {}/{} vs {}/{}", a.block_bytes, a.record_bytes,
                                b.block_bytes, b.record_bytes));
  if (a.records_per_region != b.records_per_region || a.regions_per_file != b.regions_per_file ||
      a.num_regions != b.num_regions)
    diffs.push_back(
        fmt::format("geometry {} records/region x {} regions ({} regions/file) vs {} x {} ({})",
                    a.records_per_region, a.num_regions, a.regions_per_file, b.records_per_region,
                    b.num_regions, b.regions_per_file));
  std::string out;
  for (const auto& d : diffs) out += (out.empty() ? "" : "; ") + d;
  return out;
}

}  // namespace disk
}  // namespace strata
