// Configuration loading: built-in defaults, a TOML file (toml++), environment variables,
// with the source of every value recorded for `strata config`.
#include "strata/config.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <utility>

#include <fmt/format.h>
#include <toml++/toml.h>

namespace strata {
namespace {

constexpr uint64_t kGiB = uint64_t{1} << 30;
// A GiB count whose byte count still fits in uint64_t.
constexpr double kMaxGiB = 17179869184.0;  // 2^34
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
template <typename Int>
Result<uint32_t> ToUInt32(Int value, uint32_t min) {
  if (std::cmp_less(value, 0))
    return Status::InvalidArgument(fmt::format("must not be negative, got {}", value));
  if (std::cmp_less(value, min))
    return Status::InvalidArgument(fmt::format("must be >= {}, got {}", min, value));
  if (std::cmp_greater(value, std::numeric_limits<uint32_t>::max()))
    return Status::InvalidArgument(fmt::format("out of range: at most {}, got {}",
                                               std::numeric_limits<uint32_t>::max(), value));
  return static_cast<uint32_t>(value);
}

Result<uint64_t> GiBToBytes(double gib) {
  if (!std::isfinite(gib))
    return Status::InvalidArgument(fmt::format("must be finite, got {}", gib));
  if (gib < 0) return Status::InvalidArgument(fmt::format("must not be negative, got {}", gib));
  if (gib >= kMaxGiB)
    return Status::InvalidArgument(
        fmt::format("out of range: must be below {} GiB, got {}", kMaxGiB, gib));
  // Round to the nearest byte: 0.1 GiB is not a whole number of bytes.
  return static_cast<uint64_t>(std::round(gib * static_cast<double>(kGiB)));
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

Status ReadUInt32(const toml::node& node, uint32_t min, uint32_t* out) {
  const auto* v = node.as_integer();
  if (v == nullptr)
    return Status::InvalidArgument(fmt::format("expected an integer, got {}", TomlTypeName(node)));
  STRATA_ASSIGN_OR_RETURN(*out, ToUInt32(v->get(), min));
  return Status::Ok();
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

// An integer is accepted too: `capacity_gb = 4` is what people write.
Status ReadGiB(const toml::node& node, uint64_t* out) {
  double gib = 0;
  if (const auto* f = node.as_floating_point()) {
    gib = f->get();
  } else if (const auto* i = node.as_integer()) {
    if (i->get() < 0)
      return Status::InvalidArgument(fmt::format("must not be negative, got {}", i->get()));
    gib = static_cast<double>(i->get());
  } else {
    return Status::InvalidArgument(
        fmt::format("expected a number of GiB (e.g. 4 or 0.5), got {}", TomlTypeName(node)));
  }
  STRATA_ASSIGN_OR_RETURN(*out, GiBToBytes(gib));
  return Status::Ok();
}

std::string FormatGiB(uint64_t bytes) {
  return fmt::format("{:g}", static_cast<double>(bytes) / static_cast<double>(kGiB));
}

// One configurable setting: how the file sets it and how `strata config` shows it.
struct Setting {
  std::string_view table;
  std::string_view name;
  Status (*read)(const toml::node&, BlockManagerOptions&);
  std::string (*show)(const BlockManagerOptions&);

  std::string key() const { return fmt::format("{}.{}", table, name); }
};

// In documentation order; DescribeConfig prints them in this order.
const Setting kSettings[] = {
    {"model", "fingerprint",
     [](const toml::node& n, BlockManagerOptions& o) {
       STRATA_ASSIGN_OR_RETURN(std::string s, ReadString(n));
       if (s.empty()) return Status::InvalidArgument("must not be empty");
       o.model_fingerprint = std::move(s);
       return Status::Ok();
     },
     [](const BlockManagerOptions& o) { return fmt::format("\"{}\"", o.model_fingerprint); }},
    {"layout", "num_layers",
     [](const toml::node& n, BlockManagerOptions& o) {
       return ReadUInt32(n, 1, &o.layout.num_layers);
     },
     [](const BlockManagerOptions& o) { return fmt::format("{}", o.layout.num_layers); }},
    {"layout", "kv_format",
     [](const toml::node& n, BlockManagerOptions& o) {
       return ReadEnum(n, &ParseKvFormat, &o.layout.format);
     },
     [](const BlockManagerOptions& o) { return std::string(KvFormatName(o.layout.format)); }},
    {"layout", "num_kv_heads",
     [](const toml::node& n, BlockManagerOptions& o) {
       return ReadUInt32(n, 1, &o.layout.num_kv_heads);
     },
     [](const BlockManagerOptions& o) { return fmt::format("{}", o.layout.num_kv_heads); }},
    {"layout", "head_dim",
     [](const toml::node& n, BlockManagerOptions& o) {
       return ReadUInt32(n, 1, &o.layout.head_dim);
     },
     [](const BlockManagerOptions& o) { return fmt::format("{}", o.layout.head_dim); }},
    {"layout", "dtype",
     [](const toml::node& n, BlockManagerOptions& o) {
       return ReadEnum(n, &ParseDType, &o.layout.dtype);
     },
     [](const BlockManagerOptions& o) { return std::string(DTypeName(o.layout.dtype)); }},
    {"layout", "tokens_per_block",
     [](const toml::node& n, BlockManagerOptions& o) {
       return ReadUInt32(n, 1, &o.layout.tokens_per_block);
     },
     [](const BlockManagerOptions& o) { return fmt::format("{}", o.layout.tokens_per_block); }},
    {"layout", "chunk_order",
     [](const toml::node& n, BlockManagerOptions& o) {
       return ReadEnum(n, &ParseChunkOrder, &o.layout.chunk_order);
     },
     [](const BlockManagerOptions& o) {
       return std::string(ChunkOrderName(o.layout.chunk_order));
     }},
    {"keys", "hash",
     [](const toml::node& n, BlockManagerOptions& o) {
       return ReadEnum(n, &ParseHashAlgorithm, &o.hash_algorithm);
     },
     [](const BlockManagerOptions& o) { return std::string(HashAlgorithmName(o.hash_algorithm)); }},
    {"keys", "rank",
     [](const toml::node& n, BlockManagerOptions& o) { return ReadUInt32(n, 0, &o.rank); },
     [](const BlockManagerOptions& o) { return fmt::format("{}", o.rank); }},
    {"keys", "world_size",
     [](const toml::node& n, BlockManagerOptions& o) { return ReadUInt32(n, 1, &o.world_size); },
     [](const BlockManagerOptions& o) { return fmt::format("{}", o.world_size); }},
    {"host", "capacity_gb",
     [](const toml::node& n, BlockManagerOptions& o) { return ReadGiB(n, &o.host.capacity_bytes); },
     [](const BlockManagerOptions& o) {
       return fmt::format("{} ({} bytes)", FormatGiB(o.host.capacity_bytes), o.host.capacity_bytes);
     }},
    {"host", "huge_pages",
     [](const toml::node& n, BlockManagerOptions& o) { return ReadBool(n, &o.host.huge_pages); },
     [](const BlockManagerOptions& o) { return fmt::format("{}", o.host.huge_pages); }},
    {"host", "pin_for_cuda",
     [](const toml::node& n, BlockManagerOptions& o) { return ReadBool(n, &o.host.pin_for_cuda); },
     [](const BlockManagerOptions& o) { return fmt::format("{}", o.host.pin_for_cuda); }},
    {"manager", "worker_threads",
     [](const toml::node& n, BlockManagerOptions& o) {
       return ReadUInt32(n, 1, &o.worker_threads);
     },
     [](const BlockManagerOptions& o) { return fmt::format("{}", o.worker_threads); }},
    {"manager", "max_queued_ops",
     [](const toml::node& n, BlockManagerOptions& o) {
       return ReadUInt32(n, 1, &o.max_queued_ops);
     },
     [](const BlockManagerOptions& o) { return fmt::format("{}", o.max_queued_ops); }},
};

constexpr std::string_view kTables[] = {"model", "layout", "keys", "host", "manager"};

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
                           ? "unknown table (expected [model], [layout], [keys], [host] or "
                             "[manager])"
                           : "unknown top-level key (settings belong in the tables [model], "
                             "[layout], [keys], [host] and [manager])");
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
      if (Status s = setting->read(node, config->manager); !s.ok())
        return FileError(path, node.source(), full_key, s.message());
      config->sources[full_key] = ConfigSource{ConfigSource::Kind::kFile, path,
                                               static_cast<uint32_t>(node.source().begin.line)};
    }
  }
  return Status::Ok();
}

Status ApplyFile(const std::string& path, StrataConfig* config) {
  STRATA_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(path));
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

  // Returns whether the variable was set.
  Result<bool> GiB(std::string_view var, std::string_view key, uint64_t* out) {
    const std::optional<std::string> v = Get(var);
    if (!v) return false;
    double gib = 0;
    const char* begin = v->data();
    const char* end = begin + v->size();
    const auto [ptr, ec] = std::from_chars(begin, end, gib);
    if (ec == std::errc::result_out_of_range) return Bad(var, *v, "number out of range");
    if (ec != std::errc()) return Bad(var, *v, "not a number of GiB (expected e.g. 4 or 0.5)");
    if (ptr != end)
      return Bad(var, *v, fmt::format("unexpected characters '{}' after the number", ptr));
    Result<uint64_t> bytes = GiBToBytes(gib);
    if (!bytes.ok()) return Bad(var, *v, bytes.status().message());
    *out = *bytes;
    Record(key, var);
    return true;
  }

  Status UInt32(std::string_view var, std::string_view key, uint32_t min, uint32_t* out) {
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
    Result<uint32_t> checked = ToUInt32(n, min);
    if (!checked.ok()) return Bad(var, *v, checked.status().message());
    *out = *checked;
    Record(key, var);
    return Status::Ok();
  }

  Status Apply() {
    BlockManagerOptions& o = config_->manager;

    // Dynamo's name first so that Strata's own name, applied second, wins.
    uint64_t dyn_bytes = 0;
    STRATA_ASSIGN_OR_RETURN(const bool dyn_set,
                            GiB("DYN_KVBM_CPU_CACHE_GB", "host.capacity_gb", &dyn_bytes));
    if (dyn_set) o.host.capacity_bytes = dyn_bytes;
    STRATA_ASSIGN_OR_RETURN(const bool strata_set, GiB("STRATA_HOST_CACHE_GB", "host.capacity_gb",
                                                       &o.host.capacity_bytes));
    if (dyn_set && strata_set) {
      config_->notes.push_back(
          fmt::format("DYN_KVBM_CPU_CACHE_GB={} is ignored: STRATA_HOST_CACHE_GB={} wins",
                      *Get("DYN_KVBM_CPU_CACHE_GB"), *Get("STRATA_HOST_CACHE_GB")));
    }

    if (std::optional<std::string> v = Get("STRATA_MODEL_FINGERPRINT")) {
      o.model_fingerprint = *v;
      Record("model.fingerprint", "STRATA_MODEL_FINGERPRINT");
    }
    if (std::optional<std::string> v = Get("STRATA_HASH")) {
      Result<HashAlgorithm> algorithm = ParseHashAlgorithm(*v);
      if (!algorithm.ok()) return Bad("STRATA_HASH", *v, algorithm.status().message());
      o.hash_algorithm = *algorithm;
      Record("keys.hash", "STRATA_HASH");
    }
    STRATA_RETURN_IF_ERROR(UInt32("STRATA_TP_RANK", "keys.rank", 0, &o.rank));
    STRATA_RETURN_IF_ERROR(UInt32("STRATA_TP_WORLD_SIZE", "keys.world_size", 1, &o.world_size));
    STRATA_RETURN_IF_ERROR(
        UInt32("STRATA_WORKER_THREADS", "manager.worker_threads", 1, &o.worker_threads));
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
  return config;
}

Result<StrataConfig> LoadConfig(const std::string& path_or_empty, const EnvLookup& env) {
  StrataConfig config = DefaultConfig();
  EnvReader env_reader(env, &config);

  std::string path = path_or_empty;
  if (path.empty()) {
    if (std::optional<std::string> from_env = env_reader.Get("STRATA_CONFIG")) {
      path = *from_env;
      config.config_file_from_env = true;
    }
  }
  if (!path.empty()) {
    Status s = ApplyFile(path, &config);
    if (!s.ok())
      return config.config_file_from_env ? s.WithContext("config file named by STRATA_CONFIG") : s;
  }
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
  if (Status s = o.Validate(); !s.ok()) {
    return s.WithContext(path.empty() ? std::string("invalid configuration")
                                      : fmt::format("invalid configuration (file {})", path));
  }
  return config;
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
    Row row{s.key(), s.show(o), config.SourceOf(s.key()).ToString()};
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

  std::vector<std::string> notes = config.notes;
  if (config.SourceOf("model.fingerprint").kind == ConfigSource::Kind::kDefault) {
    notes.push_back(
        "model.fingerprint is the built-in demo value: set [model] fingerprint or "
        "STRATA_MODEL_FINGERPRINT to the real model so its blocks get their own keys");
  }
  if (!notes.empty()) {
    out += "\nNotes\n";
    for (const std::string& n : notes) out += fmt::format("  - {}\n", n);
  }
  return out;
}

}  // namespace strata
