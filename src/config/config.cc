// Configuration loading: built-in defaults, a TOML file (toml++), environment variables,
// with the source of every value recorded for `strata config`.
#include "strata/config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <toml++/toml.h>

namespace strata {
namespace {

// The shared tier's HMAC key from a file: its bytes, less one trailing newline. A key every
// local user can read authenticates nothing, so a world-readable file is refused.
Result<std::string> ReadKeyFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IoError(fmt::format("opening HMAC key file {}", path), errno);
  struct stat st {};
  std::string key(4097, '\0');
  ssize_t n = -1;
  if (fstat(fd, &st) == 0 && (st.st_mode & S_IROTH) == 0) n = ::read(fd, key.data(), key.size());
  const int err = errno;
  ::close(fd);
  if ((st.st_mode & S_IROTH) != 0)
    return Status::InvalidArgument(
        fmt::format("HMAC key file {} is readable by every user (mode {:04o}); chmod o-r it", path,
                    st.st_mode & 07777));
  if (n < 0) return Status::IoError(fmt::format("reading HMAC key file {}", path), err);
  if (static_cast<size_t>(n) == key.size())
    return Status::InvalidArgument(fmt::format("HMAC key file {} is over 4 KiB", path));
  key.resize(static_cast<size_t>(n));
  if (!key.empty() && key.back() == '\n') key.pop_back();
  return key;
}

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kGiB = uint64_t{1} << 30;
// 2^64: a byte count must stay below it to fit in uint64_t.
constexpr double kTwoTo64 = 18446744073709551616.0;
// Config files are a few hundred bytes; the cap stops `--config /dev/zero` from eating RAM.
constexpr size_t kMaxConfigFileBytes = size_t{1} << 20;

std::string_view TomlTypeName(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::none:
      return "nothing";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
  }
  return "an unknown type";
}

// "must be >= 1, got 0"-style problem text, or the value as uint32_t. Shared by the file and
// the environment so both reject the same numbers with the same words.
template <typename UInt, typename Int>
Result<UInt> ToUInt(Int value, UInt min, UInt max) {
  if (std::cmp_less(value, 0))
    return Status::InvalidArgument(fmt::format("must not be negative, got {}", value));
  if (std::cmp_less(value, min))
    return Status::InvalidArgument(fmt::format("must be >= {}, got {}", min, value));
  if (std::cmp_greater(value, max))
    return Status::InvalidArgument(fmt::format("out of range: at most {}, got {}", max, value));
  return static_cast<UInt>(value);
}

template <typename Int>
Result<uint32_t> ToUInt32(Int value, uint32_t min,
                          uint32_t max = std::numeric_limits<uint32_t>::max()) {
  return ToUInt<uint32_t>(value, min, max);
}

// Ports: 0..65535, where 0 asks the kernel for a free port.
template <typename Int>
Result<uint16_t> ToPort(Int value) {
  return ToUInt<uint16_t>(value, 0, std::numeric_limits<uint16_t>::max());
}

// A unit of size: sizes are written as fractional counts of it ("capacity_gb = 0.5").
struct Unit {
  uint64_t bytes;
  std::string_view name;  // "GiB"
};
constexpr Unit kGiBUnit{kGiB, "GiB"};
constexpr Unit kMiBUnit{kMiB, "MiB"};

Result<uint64_t> ToBytes(double count, Unit unit) {
  if (!std::isfinite(count))
    return Status::InvalidArgument(fmt::format("must be finite, got {}", count));
  if (count < 0) return Status::InvalidArgument(fmt::format("must not be negative, got {}", count));
  const double max = kTwoTo64 / static_cast<double>(unit.bytes);
  if (count >= max)
    return Status::InvalidArgument(
        fmt::format("out of range: must be below {} {}, got {}", max, unit.name, count));
  // Round to the nearest byte: 0.1 GiB is not a whole number of bytes. The product is exact
  // (unit.bytes is a power of two), so it stays below 2^64.
  return static_cast<uint64_t>(std::round(count * static_cast<double>(unit.bytes)));
}

Result<KvFormat> ParseKvFormat(std::string_view name) {
  if (name == "kv") return KvFormat::kKeyValue;
  if (name == "latent") return KvFormat::kLatent;
  return Status::InvalidArgument(
      fmt::format("unknown kv_format '{}' (expected \"kv\" or \"latent\")", name));
}
std::string_view KvFormatName(KvFormat format) {
  return format == KvFormat::kKeyValue ? "kv" : "latent";
}

Result<ChunkOrder> ParseChunkOrder(std::string_view name) {
  if (name == "nhd") return ChunkOrder::kTokenHeadDim;
  if (name == "hnd") return ChunkOrder::kHeadTokenDim;
  return Status::InvalidArgument(
      fmt::format("unknown chunk_order '{}' (expected \"nhd\" or \"hnd\")", name));
}
std::string_view ChunkOrderName(ChunkOrder order) {
  return order == ChunkOrder::kTokenHeadDim ? "nhd" : "hnd";
}

// --- TOML value readers: each returns InvalidArgument with only the problem; the caller
// prefixes file:line:column and the key.

Status ReadUInt32(const toml::node& node, uint32_t min, uint32_t max, uint32_t* out) {
  const auto* v = node.as_integer();
  if (v == nullptr)
    return Status::InvalidArgument(fmt::format("expected an integer, got {}", TomlTypeName(node)));
  STRATA_ASSIGN_OR_RETURN(*out, ToUInt32(v->get(), min, max));
  return Status::Ok();
}
Status ReadUInt32(const toml::node& node, uint32_t min, uint32_t* out) {
  return ReadUInt32(node, min, std::numeric_limits<uint32_t>::max(), out);
}

Status ReadBool(const toml::node& node, bool* out) {
  const auto* v = node.as_boolean();
  if (v == nullptr)
    return Status::InvalidArgument(
        fmt::format("expected a boolean (true or false), got {}", TomlTypeName(node)));
  *out = v->get();
  return Status::Ok();
}

Result<std::string> ReadString(const toml::node& node) {
  const auto* v = node.as_string();
  if (v == nullptr)
    return Status::InvalidArgument(fmt::format("expected a string, got {}", TomlTypeName(node)));
  return v->get();
}

template <typename T>
Status ReadEnum(const toml::node& node, Result<T> (*parse)(std::string_view), T* out) {
  STRATA_ASSIGN_OR_RETURN(std::string text, ReadString(node));
  STRATA_ASSIGN_OR_RETURN(*out, parse(text));
  return Status::Ok();
}

Status ReadUInt64(const toml::node& node, uint64_t min, uint64_t* out) {
  const auto* v = node.as_integer();
  if (v == nullptr)
    return Status::InvalidArgument(fmt::format("expected an integer, got {}", TomlTypeName(node)));
  STRATA_ASSIGN_OR_RETURN(*out, ToUInt<uint64_t>(v->get(), min, ~uint64_t{0}));
  return Status::Ok();
}

Status ReadPort(const toml::node& node, uint16_t* out) {
  const auto* v = node.as_integer();
  if (v == nullptr)
    return Status::InvalidArgument(
        fmt::format("expected an integer port (0..65535), got {}", TomlTypeName(node)));
  STRATA_ASSIGN_OR_RETURN(*out, ToPort(v->get()));
  return Status::Ok();
}

Status ReadNonEmptyString(const toml::node& node, std::string* out) {
  STRATA_ASSIGN_OR_RETURN(std::string s, ReadString(node));
  if (s.empty()) return Status::InvalidArgument("must not be empty");
  *out = std::move(s);
  return Status::Ok();
}

// A number of `unit`s. An integer is accepted too: `capacity_gb = 4` is what people write.
Status ReadSize(const toml::node& node, Unit unit, bool allow_zero, uint64_t* out) {
  double count = 0;
  if (const auto* f = node.as_floating_point()) {
    count = f->get();
  } else if (const auto* i = node.as_integer()) {
    if (i->get() < 0)
      return Status::InvalidArgument(fmt::format("must not be negative, got {}", i->get()));
    count = static_cast<double>(i->get());
  } else {
    return Status::InvalidArgument(fmt::format("expected a number of {} (e.g. 4 or 0.5), got {}",
                                               unit.name, TomlTypeName(node)));
  }
  STRATA_ASSIGN_OR_RETURN(const uint64_t bytes, ToBytes(count, unit));
  if (bytes == 0 && !allow_zero)
    return Status::InvalidArgument(fmt::format("must be more than 0 {}, got {}", unit.name, count));
  *out = bytes;
  return Status::Ok();
}

Status ReadGiB(const toml::node& node, uint64_t* out) {
  return ReadSize(node, kGiBUnit, /*allow_zero=*/true, out);
}

std::string FormatUnits(uint64_t bytes, Unit unit) {
  return fmt::format("{:g}", static_cast<double>(bytes) / static_cast<double>(unit.bytes));
}
std::string FormatGiB(uint64_t bytes) {
  return FormatUnits(bytes, kGiBUnit);
}

// "4 (4294967296 bytes)": the value as written in the file, then exactly.
std::string ShowSize(uint64_t bytes, Unit unit) {
  return fmt::format("{} ({} bytes)", FormatUnits(bytes, unit), bytes);
}

// The disk tier moves files: the memcpy and cuda backends cannot serve it.
Result<BackendKind> ParseDiskBackend(std::string_view name) {
  constexpr std::string_view kExpected = R"(expected "auto", "posix" or "io_uring")";
  Result<BackendKind> kind = ParseBackendKind(name);
  if (!kind.ok())
    return Status::InvalidArgument(fmt::format("unknown backend '{}' ({})", name, kExpected));
  if (*kind == BackendKind::kMemcpy || *kind == BackendKind::kCuda)
    return Status::InvalidArgument(
        fmt::format("backend '{}' cannot move files ({})", name, kExpected));
  return *kind;
}

// G1 -> G2 has no write-back: the engine owns device memory (HierarchyOptions).
Result<WriteMode> ParseDeviceToHostMode(std::string_view name) {
  STRATA_ASSIGN_OR_RETURN(const WriteMode mode, ParseWriteMode(name));
  if (mode == WriteMode::kWriteBack)
    return Status::InvalidArgument(
        "write_back is not a device-to-host mode (expected write_through or selective): the "
        "engine owns device memory and decides when a block leaves it");
  return mode;
}

// The device cache of `strata serve`, GiB: positive and finite.
Status ReadDeviceCacheGiB(const toml::node& node, double* out) {
  double gib = 0;
  if (const auto* f = node.as_floating_point()) {
    gib = f->get();
  } else if (const auto* i = node.as_integer()) {
    gib = static_cast<double>(i->get());
  } else {
    return Status::InvalidArgument(
        fmt::format("expected a number of GiB (e.g. 1 or 0.5), got {}", TomlTypeName(node)));
  }
  STRATA_ASSIGN_OR_RETURN(const uint64_t bytes, ToBytes(gib, kGiBUnit));
  if (bytes == 0) return Status::InvalidArgument(fmt::format("must be more than 0, got {}", gib));
  *out = gib;
  return Status::Ok();
}

// Milliseconds, at least 1.
Status ReadMillis(const toml::node& node, std::chrono::milliseconds* out) {
  uint32_t ms = 0;
  STRATA_RETURN_IF_ERROR(ReadUInt32(node, 1, &ms));
  *out = std::chrono::milliseconds(ms);
  return Status::Ok();
}

// "host:port" entries: an array of strings, or one comma-separated string.
Result<std::vector<std::string>> ParseEndpointList(std::string_view text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string_view::npos) comma = text.size();
    std::string_view e = text.substr(pos, comma - pos);
    while (!e.empty() && e.front() == ' ') e.remove_prefix(1);
    while (!e.empty() && e.back() == ' ') e.remove_suffix(1);
    if (!e.empty()) {
      const size_t colon = e.rfind(':');
      if (colon == std::string_view::npos || colon == 0 || colon + 1 == e.size())
        return Status::InvalidArgument(fmt::format("endpoint '{}' is not host:port", e));
      out.emplace_back(e);
    }
    pos = comma + 1;
  }
  if (out.empty()) return Status::InvalidArgument("no endpoint given (expected host:port,...)");
  return out;
}

Status ReadEndpoints(const toml::node& node, std::vector<std::string>* out) {
  if (const auto* arr = node.as_array()) {
    std::string joined;
    for (const toml::node& e : *arr) {
      STRATA_ASSIGN_OR_RETURN(std::string one, ReadString(e));
      joined += one + ",";
    }
    STRATA_ASSIGN_OR_RETURN(*out, ParseEndpointList(joined));
    return Status::Ok();
  }
  STRATA_ASSIGN_OR_RETURN(std::string text, ReadString(node));
  STRATA_ASSIGN_OR_RETURN(*out, ParseEndpointList(text));
  return Status::Ok();
}

// One configurable setting: how the file sets it and how `strata config` shows it.
struct Setting {
  std::string_view table;
  std::string_view name;
  Status (*read)(const toml::node&, StrataConfig&);
  std::string (*show)(const StrataConfig&);

  std::string key() const { return fmt::format("{}.{}", table, name); }
};

// In documentation order; DescribeConfig prints them in this order.
const Setting kSettings[] = {
    {"model", "fingerprint",
     [](const toml::node& n, StrataConfig& c) {
       STRATA_ASSIGN_OR_RETURN(std::string s, ReadString(n));
       if (s.empty()) return Status::InvalidArgument("must not be empty");
       c.manager.model_fingerprint = std::move(s);
       return Status::Ok();
     },
     [](const StrataConfig& c) { return fmt::format("\"{}\"", c.manager.model_fingerprint); }},
    {"layout", "num_layers",
     [](const toml::node& n, StrataConfig& c) {
       return ReadUInt32(n, 1, &c.manager.layout.num_layers);
     },
     [](const StrataConfig& c) { return fmt::format("{}", c.manager.layout.num_layers); }},
    {"layout", "kv_format",
     [](const toml::node& n, StrataConfig& c) {
       return ReadEnum(n, &ParseKvFormat, &c.manager.layout.format);
     },
     [](const StrataConfig& c) { return std::string(KvFormatName(c.manager.layout.format)); }},
    {"layout", "num_kv_heads",
     [](const toml::node& n, StrataConfig& c) {
       return ReadUInt32(n, 1, &c.manager.layout.num_kv_heads);
     },
     [](const StrataConfig& c) { return fmt::format("{}", c.manager.layout.num_kv_heads); }},
    {"layout", "head_dim",
     [](const toml::node& n, StrataConfig& c) {
       return ReadUInt32(n, 1, &c.manager.layout.head_dim);
     },
     [](const StrataConfig& c) { return fmt::format("{}", c.manager.layout.head_dim); }},
    {"layout", "dtype",
     [](const toml::node& n, StrataConfig& c) {
       return ReadEnum(n, &ParseDType, &c.manager.layout.dtype);
     },
     [](const StrataConfig& c) { return std::string(DTypeName(c.manager.layout.dtype)); }},
    {"layout", "tokens_per_block",
     [](const toml::node& n, StrataConfig& c) {
       return ReadUInt32(n, 1, &c.manager.layout.tokens_per_block);
     },
     [](const StrataConfig& c) { return fmt::format("{}", c.manager.layout.tokens_per_block); }},
    {"layout", "chunk_order",
     [](const toml::node& n, StrataConfig& c) {
       return ReadEnum(n, &ParseChunkOrder, &c.manager.layout.chunk_order);
     },
     [](const StrataConfig& c) {
       return std::string(ChunkOrderName(c.manager.layout.chunk_order));
     }},
    {"keys", "hash",
     [](const toml::node& n, StrataConfig& c) {
       return ReadEnum(n, &ParseHashAlgorithm, &c.manager.hash_algorithm);
     },
     [](const StrataConfig& c) {
       return std::string(HashAlgorithmName(c.manager.hash_algorithm));
     }},
    {"keys", "rank",
     [](const toml::node& n, StrataConfig& c) { return ReadUInt32(n, 0, &c.manager.rank); },
     [](const StrataConfig& c) { return fmt::format("{}", c.manager.rank); }},
    {"keys", "world_size",
     [](const toml::node& n, StrataConfig& c) { return ReadUInt32(n, 1, &c.manager.world_size); },
     [](const StrataConfig& c) { return fmt::format("{}", c.manager.world_size); }},
    {"host", "capacity_gb",
     [](const toml::node& n, StrataConfig& c) {
       return ReadGiB(n, &c.manager.host.capacity_bytes);
     },
     [](const StrataConfig& c) {
       return fmt::format("{} ({} bytes)", FormatGiB(c.manager.host.capacity_bytes),
                          c.manager.host.capacity_bytes);
     }},
    {"host", "huge_pages",
     [](const toml::node& n, StrataConfig& c) { return ReadBool(n, &c.manager.host.huge_pages); },
     [](const StrataConfig& c) { return fmt::format("{}", c.manager.host.huge_pages); }},
    {"host", "prefault",
     [](const toml::node& n, StrataConfig& c) { return ReadBool(n, &c.manager.host.prefault); },
     [](const StrataConfig& c) { return fmt::format("{}", c.manager.host.prefault); }},
    {"host", "pin_for_cuda",
     [](const toml::node& n, StrataConfig& c) { return ReadBool(n, &c.manager.host.pin_for_cuda); },
     [](const StrataConfig& c) { return fmt::format("{}", c.manager.host.pin_for_cuda); }},
    {"manager", "worker_threads",
     [](const toml::node& n, StrataConfig& c) {
       return ReadUInt32(n, 1, &c.manager.worker_threads);
     },
     [](const StrataConfig& c) { return fmt::format("{}", c.manager.worker_threads); }},
    {"manager", "max_queued_ops",
     [](const toml::node& n, StrataConfig& c) {
       return ReadUInt32(n, 1, &c.manager.max_queued_ops);
     },
     [](const StrataConfig& c) { return fmt::format("{}", c.manager.max_queued_ops); }},
    {"disk", "directory",
     [](const toml::node& n, StrataConfig& c) {
       return ReadNonEmptyString(n, &c.manager.disk.directory);
     },
     [](const StrataConfig& c) { return fmt::format("\"{}\"", c.manager.disk.directory); }},
    {"disk", "capacity_gb",
     [](const toml::node& n, StrataConfig& c) {
       return ReadGiB(n, &c.manager.disk.capacity_bytes);
     },
     [](const StrataConfig& c) { return ShowSize(c.manager.disk.capacity_bytes, kGiBUnit); }},
    {"disk", "file_gb",
     [](const toml::node& n, StrataConfig& c) {
       return ReadSize(n, kGiBUnit, /*allow_zero=*/false, &c.manager.disk.file_bytes);
     },
     [](const StrataConfig& c) { return ShowSize(c.manager.disk.file_bytes, kGiBUnit); }},
    {"disk", "region_mb",
     [](const toml::node& n, StrataConfig& c) {
       return ReadSize(n, kMiBUnit, /*allow_zero=*/false, &c.manager.disk.region_bytes);
     },
     [](const StrataConfig& c) { return ShowSize(c.manager.disk.region_bytes, kMiBUnit); }},
    {"disk", "min_regions",
     [](const toml::node& n, StrataConfig& c) {
       return ReadUInt32(n, 1, &c.manager.disk.min_regions);
     },
     [](const StrataConfig& c) { return fmt::format("{}", c.manager.disk.min_regions); }},
    {"disk", "direct_io",
     [](const toml::node& n, StrataConfig& c) {
       return ReadBool(n, &c.manager.disk.use_direct_io);
     },
     [](const StrataConfig& c) { return fmt::format("{}", c.manager.disk.use_direct_io); }},
    {"disk", "sync_on_write",
     [](const toml::node& n, StrataConfig& c) {
       return ReadBool(n, &c.manager.disk.sync_on_write);
     },
     [](const StrataConfig& c) { return fmt::format("{}", c.manager.disk.sync_on_write); }},
    {"disk", "reset_on_mismatch",
     [](const toml::node& n, StrataConfig& c) {
       return ReadBool(n, &c.manager.disk.reset_on_mismatch);
     },
     [](const StrataConfig& c) { return fmt::format("{}", c.manager.disk.reset_on_mismatch); }},
    {"disk", "backend",
     [](const toml::node& n, StrataConfig& c) {
       return ReadEnum(n, &ParseDiskBackend, &c.manager.disk.backend);
     },
     [](const StrataConfig& c) { return std::string(BackendKindName(c.manager.disk.backend)); }},
    {"disk", "io_depth",
     [](const toml::node& n, StrataConfig& c) {
       return ReadUInt32(n, 1, 4096, &c.manager.disk.io_depth);
     },
     [](const StrataConfig& c) { return fmt::format("{}", c.manager.disk.io_depth); }},
    {"hierarchy", "device_to_host",
     [](const toml::node& n, StrataConfig& c) {
       return ReadEnum(n, &ParseDeviceToHostMode, &c.manager.hierarchy.device_to_host);
     },
     [](const StrataConfig& c) {
       return std::string(WriteModeName(c.manager.hierarchy.device_to_host));
     }},
    {"hierarchy", "host_to_disk",
     [](const toml::node& n, StrataConfig& c) {
       return ReadEnum(n, &ParseWriteMode, &c.manager.hierarchy.host_to_disk);
     },
     [](const StrataConfig& c) {
       return std::string(WriteModeName(c.manager.hierarchy.host_to_disk));
     }},
    {"hierarchy", "min_sightings",
     [](const toml::node& n, StrataConfig& c) {
       return ReadUInt32(n, 1, 255, &c.manager.hierarchy.min_sightings);
     },
     [](const StrataConfig& c) { return fmt::format("{}", c.manager.hierarchy.min_sightings); }},
    {"hierarchy", "sightings_decay_period",
     [](const toml::node& n, StrataConfig& c) {
       return ReadUInt64(n, 1, &c.manager.hierarchy.sightings_decay_period);
     },
     [](const StrataConfig& c) {
       return fmt::format("{}", c.manager.hierarchy.sightings_decay_period);
     }},
    {"hierarchy", "sightings_counters",
     [](const toml::node& n, StrataConfig& c) {
       return ReadUInt32(n, 64, 1u << 30, &c.manager.hierarchy.sightings_counters);
     },
     [](const StrataConfig& c) {
       return fmt::format("{}", c.manager.hierarchy.sightings_counters);
     }},
    {"hierarchy", "disk_write_mb_per_sec",
     [](const toml::node& n, StrataConfig& c) {
       return ReadSize(n, kMiBUnit, /*allow_zero=*/true,
                       &c.manager.hierarchy.disk_write_bytes_per_sec);
     },
     [](const StrataConfig& c) {
       const uint64_t rate = c.manager.hierarchy.disk_write_bytes_per_sec;
       return rate == 0 ? std::string("0 (unlimited)")
                        : fmt::format("{} ({} bytes/s)", FormatUnits(rate, kMiBUnit), rate);
     }},
    {"hierarchy", "promote_disk_hits",
     [](const toml::node& n, StrataConfig& c) {
       return ReadBool(n, &c.manager.hierarchy.promote_disk_hits);
     },
     [](const StrataConfig& c) {
       return fmt::format("{}", c.manager.hierarchy.promote_disk_hits);
     }},
    {"hierarchy", "staging_slots",
     [](const toml::node& n, StrataConfig& c) {
       return ReadUInt32(n, 1, 4096, &c.manager.hierarchy.staging_slots);
     },
     [](const StrataConfig& c) { return fmt::format("{}", c.manager.hierarchy.staging_slots); }},
    {"hierarchy", "writeback_slots",
     [](const toml::node& n, StrataConfig& c) {
       return ReadUInt32(n, 1, 4096, &c.manager.hierarchy.writeback_slots);
     },
     [](const StrataConfig& c) { return fmt::format("{}", c.manager.hierarchy.writeback_slots); }},
    {"hierarchy", "disk_writer_threads",
     [](const toml::node& n, StrataConfig& c) {
       return ReadUInt32(n, 1, 64, &c.manager.hierarchy.disk_writer_threads);
     },
     [](const StrataConfig& c) {
       return fmt::format("{}", c.manager.hierarchy.disk_writer_threads);
     }},
    {"hierarchy", "max_queued_disk_writes",
     [](const toml::node& n, StrataConfig& c) {
       return ReadUInt32(n, 0, &c.manager.hierarchy.max_queued_disk_writes);
     },
     [](const StrataConfig& c) {
       return fmt::format("{}", c.manager.hierarchy.max_queued_disk_writes);
     }},
    {"hierarchy", "defer_disk_writes",
     [](const toml::node& n, StrataConfig& c) {
       return ReadBool(n, &c.manager.hierarchy.defer_disk_writes);
     },
     [](const StrataConfig& c) {
       return fmt::format("{}", c.manager.hierarchy.defer_disk_writes);
     }},
    {"shared", "kind",
     [](const toml::node& n, StrataConfig& c) {
       return ReadEnum(n, &ParseSharedTierKind, &c.manager.shared.kind);
     },
     [](const StrataConfig& c) {
       return fmt::format("\"{}\"", SharedTierKindName(c.manager.shared.kind));
     }},
    {"shared", "directory",
     [](const toml::node& n, StrataConfig& c) {
       return ReadNonEmptyString(n, &c.manager.shared.directory);
     },
     [](const StrataConfig& c) { return fmt::format("\"{}\"", c.manager.shared.directory); }},
    {"shared", "capacity_gb",
     [](const toml::node& n, StrataConfig& c) {
       return ReadGiB(n, &c.manager.shared.capacity_bytes);
     },
     [](const StrataConfig& c) { return ShowSize(c.manager.shared.capacity_bytes, kGiBUnit); }},
    {"shared", "grace_period_ms",
     [](const toml::node& n, StrataConfig& c) {
       return ReadMillis(n, &c.manager.shared.grace_period);
     },
     [](const StrataConfig& c) {
       return fmt::format("{}", c.manager.shared.grace_period.count());
     }},
    {"shared", "endpoints",
     [](const toml::node& n, StrataConfig& c) {
       return ReadEndpoints(n, &c.manager.shared.endpoints);
     },
     [](const StrataConfig& c) {
       return fmt::format("\"{}\"", fmt::join(c.manager.shared.endpoints, ","));
     }},
    {"shared", "cluster",
     [](const toml::node& n, StrataConfig& c) { return ReadBool(n, &c.manager.shared.cluster); },
     [](const StrataConfig& c) { return fmt::format("{}", c.manager.shared.cluster); }},
    {"shared", "username",
     [](const toml::node& n, StrataConfig& c) {
       STRATA_ASSIGN_OR_RETURN(c.manager.shared.username, ReadString(n));
       return Status::Ok();
     },
     [](const StrataConfig& c) { return fmt::format("\"{}\"", c.manager.shared.username); }},
    {"shared", "password",
     [](const toml::node& n, StrataConfig& c) {
       STRATA_ASSIGN_OR_RETURN(c.manager.shared.password, ReadString(n));
       return Status::Ok();
     },
     // Never printed: `strata config` output ends up in logs and bug reports.
     [](const StrataConfig& c) {
       return std::string(c.manager.shared.password.empty() ? "(none)" : "(set, hidden)");
     }},
    {"shared", "hmac_key",
     [](const toml::node& n, StrataConfig& c) {
       STRATA_ASSIGN_OR_RETURN(c.manager.shared.hmac_key, ReadString(n));
       return Status::Ok();
     },
     // Never printed, like the password.
     [](const StrataConfig& c) {
       return std::string(c.manager.shared.hmac_key.empty() ? "(none)" : "(set, hidden)");
     }},
    {"shared", "hmac_key_file",
     [](const toml::node& n, StrataConfig& c) {
       std::string path;
       STRATA_RETURN_IF_ERROR(ReadNonEmptyString(n, &path));
       STRATA_ASSIGN_OR_RETURN(c.manager.shared.hmac_key, ReadKeyFile(path));
       return Status::Ok();
     },
     [](const StrataConfig&) { return std::string("(read into hmac_key)"); }},
    {"daemon", "socket",
     [](const toml::node& n, StrataConfig& c) {
       return ReadNonEmptyString(n, &c.manager.daemon.socket);
     },
     [](const StrataConfig& c) { return fmt::format("\"{}\"", c.manager.daemon.socket); }},
    {"daemon", "io_timeout_ms",
     [](const toml::node& n, StrataConfig& c) {
       return ReadMillis(n, &c.manager.daemon.io_timeout);
     },
     [](const StrataConfig& c) { return fmt::format("{}", c.manager.daemon.io_timeout.count()); }},
    {"daemon", "connections",
     [](const toml::node& n, StrataConfig& c) {
       return ReadUInt32(n, 1, 256, &c.manager.daemon.connections);
     },
     [](const StrataConfig& c) { return fmt::format("{}", c.manager.daemon.connections); }},
    {"daemon", "group",
     [](const toml::node& n, StrataConfig& c) { return ReadNonEmptyString(n, &c.daemon_group); },
     [](const StrataConfig& c) { return fmt::format("\"{}\"", c.daemon_group); }},
    {"shared", "group",
     [](const toml::node& n, StrataConfig& c) {
       return ReadNonEmptyString(n, &c.manager.shared.group);
     },
     [](const StrataConfig& c) { return fmt::format("\"{}\"", c.manager.shared.group); }},
    {"shared", "tls",
     [](const toml::node& n, StrataConfig& c) { return ReadBool(n, &c.manager.shared.tls); },
     [](const StrataConfig& c) { return fmt::format("{}", c.manager.shared.tls); }},
    {"shared", "tls_ca_file",
     [](const toml::node& n, StrataConfig& c) {
       return ReadNonEmptyString(n, &c.manager.shared.tls_ca_file);
     },
     [](const StrataConfig& c) { return fmt::format("\"{}\"", c.manager.shared.tls_ca_file); }},
    {"shared", "tls_cert_file",
     [](const toml::node& n, StrataConfig& c) {
       return ReadNonEmptyString(n, &c.manager.shared.tls_cert_file);
     },
     [](const StrataConfig& c) { return fmt::format("\"{}\"", c.manager.shared.tls_cert_file); }},
    {"shared", "tls_key_file",
     [](const toml::node& n, StrataConfig& c) {
       return ReadNonEmptyString(n, &c.manager.shared.tls_key_file);
     },
     [](const StrataConfig& c) { return fmt::format("\"{}\"", c.manager.shared.tls_key_file); }},
    {"shared", "tls_server_name",
     [](const toml::node& n, StrataConfig& c) {
       return ReadNonEmptyString(n, &c.manager.shared.tls_server_name);
     },
     [](const StrataConfig& c) { return fmt::format("\"{}\"", c.manager.shared.tls_server_name); }},
    {"shared", "tls_verify_peer",
     [](const toml::node& n, StrataConfig& c) {
       return ReadBool(n, &c.manager.shared.tls_verify_peer);
     },
     [](const StrataConfig& c) { return fmt::format("{}", c.manager.shared.tls_verify_peer); }},
    {"shared", "key_prefix",
     [](const toml::node& n, StrataConfig& c) {
       return ReadNonEmptyString(n, &c.manager.shared.key_prefix);
     },
     [](const StrataConfig& c) { return fmt::format("\"{}\"", c.manager.shared.key_prefix); }},
    {"shared", "ttl_seconds",
     [](const toml::node& n, StrataConfig& c) {
       return ReadUInt32(n, 0, &c.manager.shared.ttl_seconds);
     },
     [](const StrataConfig& c) { return fmt::format("{}", c.manager.shared.ttl_seconds); }},
    {"shared", "io_timeout_ms",
     [](const toml::node& n, StrataConfig& c) {
       return ReadMillis(n, &c.manager.shared.io_timeout);
     },
     [](const StrataConfig& c) { return fmt::format("{}", c.manager.shared.io_timeout.count()); }},
    {"shared", "writer_threads",
     [](const toml::node& n, StrataConfig& c) {
       return ReadUInt32(n, 1, 64, &c.manager.shared.writer_threads);
     },
     [](const StrataConfig& c) { return fmt::format("{}", c.manager.shared.writer_threads); }},
    {"shared", "max_queued_writes",
     [](const toml::node& n, StrataConfig& c) {
       return ReadUInt32(n, 1, &c.manager.shared.max_queued_writes);
     },
     [](const StrataConfig& c) { return fmt::format("{}", c.manager.shared.max_queued_writes); }},
    {"shared", "promote_hits",
     [](const toml::node& n, StrataConfig& c) {
       return ReadBool(n, &c.manager.shared.promote_hits);
     },
     [](const StrataConfig& c) { return fmt::format("{}", c.manager.shared.promote_hits); }},
    {"server", "host",
     [](const toml::node& n, StrataConfig& c) { return ReadNonEmptyString(n, &c.serve.host); },
     [](const StrataConfig& c) { return fmt::format("\"{}\"", c.serve.host); }},
    {"server", "port",
     [](const toml::node& n, StrataConfig& c) { return ReadPort(n, &c.serve.port); },
     [](const StrataConfig& c) { return fmt::format("{}", c.serve.port); }},
    {"model", "path",
     [](const toml::node& n, StrataConfig& c) {
       return ReadNonEmptyString(n, &c.serve.model_path);
     },
     [](const StrataConfig& c) { return fmt::format("\"{}\"", c.serve.model_path); }},
    {"engine", "preset",
     [](const toml::node& n, StrataConfig& c) {
       return ReadNonEmptyString(n, &c.serve.model_preset);
     },
     [](const StrataConfig& c) { return fmt::format("\"{}\"", c.serve.model_preset); }},
    {"engine", "seed",
     [](const toml::node& n, StrataConfig& c) { return ReadUInt64(n, 0, &c.serve.seed); },
     [](const StrataConfig& c) { return fmt::format("{}", c.serve.seed); }},
    {"engine", "device_cache_gb",
     [](const toml::node& n, StrataConfig& c) {
       return ReadDeviceCacheGiB(n, &c.serve.device_cache_gb);
     },
     [](const StrataConfig& c) { return fmt::format("{:g}", c.serve.device_cache_gb); }},
    {"engine", "max_batch",
     [](const toml::node& n, StrataConfig& c) { return ReadUInt32(n, 1, &c.serve.max_batch); },
     [](const StrataConfig& c) { return fmt::format("{}", c.serve.max_batch); }},
    {"engine", "prefill_chunk",
     [](const toml::node& n, StrataConfig& c) { return ReadUInt32(n, 1, &c.serve.prefill_chunk); },
     [](const StrataConfig& c) { return fmt::format("{}", c.serve.prefill_chunk); }},
    {"engine", "strata",
     [](const toml::node& n, StrataConfig& c) { return ReadBool(n, &c.serve.strata_enabled); },
     [](const StrataConfig& c) { return fmt::format("{}", c.serve.strata_enabled); }},
    {"metrics", "port",
     [](const toml::node& n, StrataConfig& c) { return ReadPort(n, &c.serve.metrics_port); },
     [](const StrataConfig& c) { return fmt::format("{}", c.serve.metrics_port); }},
    {"metrics", "enabled",
     [](const toml::node& n, StrataConfig& c) { return ReadBool(n, &c.serve.metrics_enabled); },
     [](const StrataConfig& c) { return fmt::format("{}", c.serve.metrics_enabled); }},
};

constexpr std::string_view kTables[] = {"model",   "layout", "keys",   "host",
                                        "manager", "disk",   "shared", "hierarchy",
                                        "daemon",  "server", "engine", "metrics"};

// "[model], [layout], ... or [metrics]" for error messages.
std::string TableList(std::string_view last_word) {
  std::string out;
  for (size_t i = 0; i < std::size(kTables); ++i) {
    if (i > 0) out += i + 1 == std::size(kTables) ? fmt::format(" {} ", last_word) : ", ";
    out += fmt::format("[{}]", kTables[i]);
  }
  return out;
}

bool IsKnownTable(std::string_view name) {
  for (std::string_view t : kTables)
    if (t == name) return true;
  return false;
}

const Setting* FindSetting(std::string_view table, std::string_view name) {
  for (const Setting& s : kSettings)
    if (s.table == table && s.name == name) return &s;
  return nullptr;
}

std::string KeysOfTable(std::string_view table) {
  std::string out;
  for (const Setting& s : kSettings) {
    if (s.table != table) continue;
    if (!out.empty()) out += ", ";
    out += s.name;
  }
  return out;
}

// "path:line:column: key: problem" — the position a user's editor can jump to.
Status FileError(const std::string& path, const toml::source_region& where, std::string_view key,
                 std::string_view problem) {
  if (where.begin.line == 0)
    return Status::InvalidArgument(fmt::format("{}: {}: {}", path, key, problem));
  return Status::InvalidArgument(
      fmt::format("{}:{}:{}: {}: {}", path, where.begin.line, where.begin.column, key, problem));
}

Result<std::string> ReadWholeFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IoError(fmt::format("opening config file {}", path), errno);
  std::string text;
  char buf[16384];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return Status::IoError(fmt::format("reading config file {}", path), err);
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > kMaxConfigFileBytes) {
      ::close(fd);
      return Status::InvalidArgument(
          fmt::format("config file {} is larger than {} bytes; not a Strata config", path,
                      kMaxConfigFileBytes));
    }
  }
  ::close(fd);
  return text;
}

Status ApplyTomlTable(const toml::table& root, const std::string& path, StrataConfig* config) {
  for (auto&& [table_key, table_node] : root) {
    const std::string_view table_name = table_key.str();
    if (!IsKnownTable(table_name)) {
      return FileError(path, table_key.source(), table_name,
                       table_node.is_table()
                           ? fmt::format("unknown table (expected {})", TableList("or"))
                           : fmt::format("unknown top-level key (settings belong in the tables {})",
                                         TableList("and")));
    }
    const toml::table* table = table_node.as_table();
    if (table == nullptr) {
      return FileError(path, table_node.source(), table_name,
                       fmt::format("expected a table, got {}", TomlTypeName(table_node)));
    }
    for (auto&& [key, node] : *table) {
      const std::string full_key = fmt::format("{}.{}", table_name, key.str());
      const Setting* setting = FindSetting(table_name, key.str());
      if (setting == nullptr) {
        return FileError(
            path, key.source(), full_key,
            fmt::format("unknown key (keys of [{}]: {})", table_name, KeysOfTable(table_name)));
      }
      if (Status s = setting->read(node, *config); !s.ok())
        return FileError(path, node.source(), full_key, s.message());
      config->sources[full_key] = ConfigSource{ConfigSource::Kind::kFile, path,
                                               static_cast<uint32_t>(node.source().begin.line)};
    }
  }
  return Status::Ok();
}

// `path` names the text in messages and sources: a file path, or "<string>".
Status ApplyText(std::string_view text, const std::string& path, StrataConfig* config) {
  if (text.size() > kMaxConfigFileBytes)
    return Status::InvalidArgument(fmt::format(
        "config {} is larger than {} bytes; not a Strata config", path, kMaxConfigFileBytes));
  toml::table root;
  // toml++ reports syntax errors by exception; none may leave this function.
  try {
    root = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    return Status::InvalidArgument(fmt::format("{}:{}:{}: TOML syntax error: {}", path,
                                               e.source().begin.line, e.source().begin.column,
                                               e.description()));
  } catch (const std::exception& e) {
    return Status::InvalidArgument(fmt::format("{}: cannot parse TOML: {}", path, e.what()));
  }
  config->config_file = path;
  return ApplyTomlTable(root, path, config);
}

Status ApplyFile(const std::string& path, StrataConfig* config) {
  STRATA_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(path));
  return ApplyText(text, path, config);
}

// --- Environment variables.

class EnvReader {
 public:
  EnvReader(const EnvLookup& env, StrataConfig* config) : env_(env), config_(config) {}

  // The variable's value; nullopt when unset or empty.
  std::optional<std::string> Get(std::string_view name) const {
    std::optional<std::string> v = env_ ? env_(name) : std::nullopt;
    if (v && v->empty()) return std::nullopt;
    return v;
  }

  Status Bad(std::string_view name, const std::string& value, std::string_view problem) const {
    return Status::InvalidArgument(
        fmt::format("environment variable {}='{}': {}", name, value, problem));
  }

  void Record(std::string_view key, std::string_view var) {
    config_->sources[std::string(key)] = ConfigSource{ConfigSource::Kind::kEnv, std::string(var)};
  }

  // A number of GiB, fractional allowed.
  Status GiB(std::string_view var, std::string_view key, uint64_t* out) {
    const std::optional<std::string> v = Get(var);
    if (!v) return Status::Ok();
    double gib = 0;
    const char* begin = v->data();
    const char* end = begin + v->size();
    const auto [ptr, ec] = std::from_chars(begin, end, gib);
    if (ec == std::errc::result_out_of_range) return Bad(var, *v, "number out of range");
    if (ec != std::errc()) return Bad(var, *v, "not a number of GiB (expected e.g. 4 or 0.5)");
    if (ptr != end)
      return Bad(var, *v, fmt::format("unexpected characters '{}' after the number", ptr));
    Result<uint64_t> bytes = ToBytes(gib, kGiBUnit);
    if (!bytes.ok()) return Bad(var, *v, bytes.status().message());
    *out = *bytes;
    Record(key, var);
    return Status::Ok();
  }

  // A non-negative integer, range-checked by `check` (ToUInt32, ToPort).
  template <typename T, typename Check>
  Status Integer(std::string_view var, std::string_view key, Check check, T* out) {
    const std::optional<std::string> v = Get(var);
    if (!v) return Status::Ok();
    uint64_t n = 0;
    const char* begin = v->data();
    const char* end = begin + v->size();
    const auto [ptr, ec] = std::from_chars(begin, end, n);
    if (ec == std::errc::result_out_of_range) return Bad(var, *v, "number out of range");
    if (ec != std::errc()) return Bad(var, *v, "expected a non-negative integer");
    if (ptr != end)
      return Bad(var, *v, fmt::format("unexpected characters '{}' after the number", ptr));
    Result<T> checked = check(n);
    if (!checked.ok()) return Bad(var, *v, checked.status().message());
    *out = *checked;
    Record(key, var);
    return Status::Ok();
  }

  Status UInt32(std::string_view var, std::string_view key, uint32_t min, uint32_t* out) {
    return Integer(
        var, key, [min](uint64_t n) { return ToUInt32(n, min); }, out);
  }

  Status Port(std::string_view var, std::string_view key, uint16_t* out) {
    return Integer(
        var, key, [](uint64_t n) { return ToPort(n); }, out);
  }

  // Any non-empty text.
  void String(std::string_view var, std::string_view key, std::string* out) {
    if (std::optional<std::string> v = Get(var)) {
      *out = *v;
      Record(key, var);
    }
  }

  template <typename T>
  Status Enum(std::string_view var, std::string_view key, Result<T> (*parse)(std::string_view),
              T* out) {
    const std::optional<std::string> v = Get(var);
    if (!v) return Status::Ok();
    Result<T> parsed = parse(*v);
    if (!parsed.ok()) return Bad(var, *v, parsed.status().message());
    *out = *parsed;
    Record(key, var);
    return Status::Ok();
  }

  // Call after applying Dynamo's variable and then Strata's: when both were set, Strata's
  // won, and the user should hear that the other one did nothing.
  void NoteShadowed(std::string_view dyn_var, std::string_view strata_var) {
    const std::optional<std::string> dyn = Get(dyn_var);
    const std::optional<std::string> strata = Get(strata_var);
    if (dyn && strata) {
      config_->notes.push_back(
          fmt::format("{}={} is ignored: {}={} wins", dyn_var, *dyn, strata_var, *strata));
    }
  }

  Status Apply() {
    BlockManagerOptions& o = config_->manager;
    ServeConfig& serve = config_->serve;

    // Dynamo's names first so that Strata's own names, applied second, win.
    STRATA_RETURN_IF_ERROR(
        GiB("DYN_KVBM_CPU_CACHE_GB", "host.capacity_gb", &o.host.capacity_bytes));
    STRATA_RETURN_IF_ERROR(GiB("STRATA_HOST_CACHE_GB", "host.capacity_gb", &o.host.capacity_bytes));
    NoteShadowed("DYN_KVBM_CPU_CACHE_GB", "STRATA_HOST_CACHE_GB");

    String("DYN_KVBM_DISK_CACHE_DIR", "disk.directory", &o.disk.directory);
    String("STRATA_DISK_CACHE_DIR", "disk.directory", &o.disk.directory);
    NoteShadowed("DYN_KVBM_DISK_CACHE_DIR", "STRATA_DISK_CACHE_DIR");
    STRATA_RETURN_IF_ERROR(
        GiB("DYN_KVBM_DISK_CACHE_GB", "disk.capacity_gb", &o.disk.capacity_bytes));
    STRATA_RETURN_IF_ERROR(GiB("STRATA_DISK_CACHE_GB", "disk.capacity_gb", &o.disk.capacity_bytes));
    NoteShadowed("DYN_KVBM_DISK_CACHE_GB", "STRATA_DISK_CACHE_GB");
    STRATA_RETURN_IF_ERROR(Enum("STRATA_HOST_TO_DISK", "hierarchy.host_to_disk", &ParseWriteMode,
                                &o.hierarchy.host_to_disk));

    // G4: kind, where, and the secret (best kept out of config files).
    STRATA_RETURN_IF_ERROR(
        Enum("STRATA_SHARED_KIND", "shared.kind", &ParseSharedTierKind, &o.shared.kind));
    String("STRATA_SHARED_DIR", "shared.directory", &o.shared.directory);
    STRATA_RETURN_IF_ERROR(
        GiB("STRATA_SHARED_CAPACITY_GB", "shared.capacity_gb", &o.shared.capacity_bytes));
    STRATA_RETURN_IF_ERROR(Enum("STRATA_SHARED_ENDPOINTS", "shared.endpoints", &ParseEndpointList,
                                &o.shared.endpoints));
    String("STRATA_SHARED_PASSWORD", "shared.password", &o.shared.password);
    String("STRATA_SHARED_HMAC_KEY", "shared.hmac_key", &o.shared.hmac_key);
    String("STRATA_SHARED_GROUP", "shared.group", &o.shared.group);
    String("STRATA_DAEMON_SOCKET", "daemon.socket", &o.daemon.socket);

    String("STRATA_MODEL_FINGERPRINT", "model.fingerprint", &o.model_fingerprint);
    STRATA_RETURN_IF_ERROR(
        Enum("STRATA_HASH", "keys.hash", &ParseHashAlgorithm, &o.hash_algorithm));
    STRATA_RETURN_IF_ERROR(UInt32("STRATA_TP_RANK", "keys.rank", 0, &o.rank));
    STRATA_RETURN_IF_ERROR(UInt32("STRATA_TP_WORLD_SIZE", "keys.world_size", 1, &o.world_size));
    STRATA_RETURN_IF_ERROR(
        UInt32("STRATA_WORKER_THREADS", "manager.worker_threads", 1, &o.worker_threads));

    String("STRATA_SERVE_HOST", "server.host", &serve.host);
    STRATA_RETURN_IF_ERROR(Port("STRATA_SERVE_PORT", "server.port", &serve.port));
    String("STRATA_MODEL_PRESET", "engine.preset", &serve.model_preset);
    String("STRATA_MODEL", "model.path", &serve.model_path);
    STRATA_RETURN_IF_ERROR(Port("DYN_KVBM_METRICS_PORT", "metrics.port", &serve.metrics_port));
    STRATA_RETURN_IF_ERROR(Port("STRATA_METRICS_PORT", "metrics.port", &serve.metrics_port));
    NoteShadowed("DYN_KVBM_METRICS_PORT", "STRATA_METRICS_PORT");
    return Status::Ok();
  }

 private:
  const EnvLookup& env_;
  StrataConfig* config_;
};

std::string FormatBytes(uint64_t bytes) {
  static constexpr std::string_view kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = static_cast<double>(bytes);
  size_t unit = 0;
  while (v >= 1024 && unit + 1 < std::size(kUnits)) {
    v /= 1024;
    ++unit;
  }
  return fmt::format("{:.4g} {}", v, kUnits[unit]);
}

}  // namespace

std::string ConfigSource::ToString() const {
  switch (kind) {
    case Kind::kDefault:
      return "default";
    case Kind::kFile:
      return line == 0 ? fmt::format("file {}", where) : fmt::format("file {}:{}", where, line);
    case Kind::kEnv:
      return fmt::format("env {}", where);
  }
  return "?";
}

ConfigSource StrataConfig::SourceOf(std::string_view key) const {
  const auto it = sources.find(key);
  return it == sources.end() ? ConfigSource{} : it->second;
}

EnvLookup ProcessEnv() {
  return [](std::string_view name) -> std::optional<std::string> {
    const char* v = std::getenv(std::string(name).c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

EnvLookup FixedEnv(std::map<std::string, std::string, std::less<>> vars) {
  return [vars = std::move(vars)](std::string_view name) -> std::optional<std::string> {
    const auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

StrataConfig DefaultConfig() {
  StrataConfig config;
  BlockManagerOptions& o = config.manager;
  o.model_fingerprint = "strata-demo";
  // The Llama-3-8B shape: 32 layers, GQA with 8 KV heads of 128, bf16 — 128 KiB of KV per token.
  o.layout.num_layers = 32;
  o.layout.format = KvFormat::kKeyValue;
  o.layout.num_kv_heads = 8;
  o.layout.head_dim = 128;
  o.layout.dtype = DType::kBFloat16;
  o.layout.tokens_per_block = 16;
  o.layout.chunk_order = ChunkOrder::kTokenHeadDim;
  o.host.capacity_bytes = uint64_t{4} * kGiB;
  o.disk.directory = "./strata-cache";
  o.disk.capacity_bytes = uint64_t{8} * kGiB;
  return config;
}

Status ServeConfig::Validate() const {
  if (host.empty()) return Status::InvalidArgument("server.host must not be empty");
  if (model_preset.empty()) return Status::InvalidArgument("engine.preset must not be empty");
  if (!std::isfinite(device_cache_gb) || device_cache_gb <= 0 ||
      !ToBytes(device_cache_gb, kGiBUnit).ok())
    return Status::InvalidArgument(fmt::format(
        "engine.device_cache_gb must be a positive number of GiB, got {}", device_cache_gb));
  if (max_batch == 0) return Status::InvalidArgument("engine.max_batch must be >= 1");
  if (prefill_chunk == 0) return Status::InvalidArgument("engine.prefill_chunk must be >= 1");
  if (metrics_enabled && port != 0 && port == metrics_port)
    return Status::InvalidArgument(fmt::format(
        "server.port and metrics.port are both {}: the metrics endpoint needs its own port", port));
  return Status::Ok();
}

namespace {
// The steps after the file: environment, cross-checks, validation.
Result<StrataConfig> ResolveAfterFile(StrataConfig config, const std::string& path,
                                      const EnvLookup& env) {
  EnvReader env_reader(env, &config);
  STRATA_RETURN_IF_ERROR(env_reader.Apply());

  // Checked here as well as in Validate() because only here are the sources known, and a
  // rank from one place clashing with a world size from another is hard to see otherwise.
  const BlockManagerOptions& o = config.manager;
  if (o.rank >= o.world_size) {
    return Status::InvalidArgument(
        fmt::format("keys.rank ({}, from {}) must be less than keys.world_size ({}, from {})",
                    o.rank, config.SourceOf("keys.rank").ToString(), o.world_size,
                    config.SourceOf("keys.world_size").ToString()));
  }
  if (o.disk.capacity_bytes > 0 && o.host.capacity_bytes == 0) {
    return Status::InvalidArgument(fmt::format(
        "disk.capacity_gb ({} GiB, from {}) needs the host tier, but host.capacity_gb is 0 "
        "(from {}): blocks move device <-> host <-> disk; set disk.capacity_gb = 0 too, or give "
        "the host tier a capacity",
        FormatGiB(o.disk.capacity_bytes), config.SourceOf("disk.capacity_gb").ToString(),
        config.SourceOf("host.capacity_gb").ToString()));
  }
  const std::string context = path.empty() ? std::string("invalid configuration")
                                           : fmt::format("invalid configuration (file {})", path);
  if (Status s = o.Validate(); !s.ok()) return s.WithContext(context);
  if (Status s = config.serve.Validate(); !s.ok()) return s.WithContext(context);
  return config;
}
}  // namespace

Result<StrataConfig> LoadConfig(const std::string& path_or_empty, const EnvLookup& env) {
  StrataConfig config = DefaultConfig();
  std::string path = path_or_empty;
  if (path.empty()) {
    if (std::optional<std::string> from_env = EnvReader(env, &config).Get("STRATA_CONFIG")) {
      path = *from_env;
      config.config_file_from_env = true;
    }
  }
  if (!path.empty()) {
    Status s = ApplyFile(path, &config);
    if (!s.ok())
      return config.config_file_from_env ? s.WithContext("config file named by STRATA_CONFIG") : s;
  }
  return ResolveAfterFile(std::move(config), path, env);
}

Result<StrataConfig> LoadConfigFromString(std::string_view toml_text, const EnvLookup& env,
                                          const std::string& name) {
  StrataConfig config = DefaultConfig();
  STRATA_RETURN_IF_ERROR(ApplyText(toml_text, name, &config));
  config.config_file.clear();  // no file was read
  return ResolveAfterFile(std::move(config), name, env);
}

std::string DescribeConfig(const StrataConfig& config) {
  const BlockManagerOptions& o = config.manager;
  std::string out;
  if (config.config_file.empty()) {
    out += "Strata configuration (no config file: built-in defaults and environment)\n";
  } else {
    out += fmt::format("Strata configuration (config file {}{})\n", config.config_file,
                       config.config_file_from_env ? ", named by STRATA_CONFIG" : "");
  }

  struct Row {
    std::string key, value, source;
  };
  std::vector<Row> rows;
  size_t key_width = std::string_view("setting").size();
  size_t value_width = std::string_view("value").size();
  for (const Setting& s : kSettings) {
    Row row{s.key(), s.show(config), config.SourceOf(s.key()).ToString()};
    key_width = std::max(key_width, row.key.size());
    value_width = std::max(value_width, row.value.size());
    rows.push_back(std::move(row));
  }
  out +=
      fmt::format("  {:<{}}  {:<{}}  {}\n", "setting", key_width, "value", value_width, "source");
  for (const Row& r : rows)
    out += fmt::format("  {:<{}}  {:<{}}  {}\n", r.key, key_width, r.value, value_width, r.source);

  const size_t block_bytes = o.layout.block_bytes();
  const uint64_t host_blocks = block_bytes == 0 ? 0 : o.host.capacity_bytes / block_bytes;
  out += "\nDerived sizes\n";
  out += fmt::format("  layout              {}\n", o.layout.ToString());
  out +=
      fmt::format("  block size          {} bytes ({})\n", block_bytes, FormatBytes(block_bytes));
  out += fmt::format("  KV per token        {} bytes ({})\n", o.layout.bytes_per_token(),
                     FormatBytes(o.layout.bytes_per_token()));
  out += fmt::format("  host capacity       {} bytes ({} GiB){}\n", o.host.capacity_bytes,
                     FormatGiB(o.host.capacity_bytes),
                     o.host.capacity_bytes == 0 ? ", host tier disabled" : "");
  out += fmt::format("  host blocks         {}\n", host_blocks);
  out += fmt::format("  host tokens         {}\n", host_blocks * o.layout.tokens_per_block);
  // A disk record is one 4 KiB header plus the block rounded up to 4 KiB (docs/disk_format.md).
  constexpr uint64_t kDiskAlign = 4096;
  const uint64_t disk_record_bytes =
      kDiskAlign + (block_bytes + kDiskAlign - 1) / kDiskAlign * kDiskAlign;
  const uint64_t disk_blocks = o.disk.capacity_bytes / disk_record_bytes;
  out += fmt::format("  disk capacity       {} bytes ({} GiB){}\n", o.disk.capacity_bytes,
                     FormatGiB(o.disk.capacity_bytes),
                     o.disk.capacity_bytes == 0 ? ", disk tier disabled" : "");
  out += fmt::format(
      "  disk record         {} bytes ({}: the block in 4 KiB pages + a 4 KiB header)\n",
      disk_record_bytes, FormatBytes(disk_record_bytes));
  out += fmt::format("  disk blocks         {}\n", disk_blocks);
  out += fmt::format("  disk tokens         {}\n", disk_blocks * o.layout.tokens_per_block);

  std::vector<std::string> notes = config.notes;
  if (config.SourceOf("model.fingerprint").kind == ConfigSource::Kind::kDefault) {
    notes.push_back(
        "model.fingerprint is the built-in demo value: set [model] fingerprint or "
        "STRATA_MODEL_FINGERPRINT to the real model so its blocks get their own keys");
  }
  if (o.disk.capacity_bytes > 0 && !o.disk.directory.starts_with('/')) {
    notes.push_back(fmt::format(
        "disk.directory \"{}\" is relative to the working directory: set an absolute path so "
        "every start finds the same cache",
        o.disk.directory));
  }
  if (!notes.empty()) {
    out += "\nNotes\n";
    for (const std::string& n : notes) out += fmt::format("  - {}\n", n);
  }
  return out;
}

}  // namespace strata
