// Tests of configuration loading: defaults, TOML file, environment, precedence and errors.
#include "strata/config.h"

#include <sys/stat.h>

#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace strata {
namespace {

using ::testing::HasSubstr;
using Kind = ConfigSource::Kind;

constexpr uint64_t kGiB = uint64_t{1} << 30;

// A TOML file in the test's temp dir, removed when the test ends.
class TempToml {
 public:
  explicit TempToml(const std::string& text) {
    std::string pattern = testing::TempDir() + "/strata_config_XXXXXX";
    const int fd = mkstemp(pattern.data());
    EXPECT_GE(fd, 0) << "mkstemp " << pattern;
    path_ = pattern;
    EXPECT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
    close(fd);
  }
  ~TempToml() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

EnvLookup NoEnv() {
  return FixedEnv({});
}

TEST(ConfigTest, DefaultsLoadWithNoFileAndNoEnvironment) {
  Result<StrataConfig> config = LoadConfig("", NoEnv());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  const BlockManagerOptions& o = config->manager;
  EXPECT_EQ(o.model_fingerprint, "strata-demo");
  EXPECT_EQ(o.layout.num_layers, 32u);
  EXPECT_EQ(o.layout.format, KvFormat::kKeyValue);
  EXPECT_EQ(o.layout.num_kv_heads, 8u);
  EXPECT_EQ(o.layout.head_dim, 128u);
  EXPECT_EQ(o.layout.dtype, DType::kBFloat16);
  EXPECT_EQ(o.layout.tokens_per_block, 16u);
  EXPECT_EQ(o.host.capacity_bytes, 4 * kGiB);
  EXPECT_EQ(o.rank, 0u);
  EXPECT_EQ(o.world_size, 1u);
  EXPECT_EQ(o.hash_algorithm, HashAlgorithm::kSha256);
  EXPECT_TRUE(config->config_file.empty());
  EXPECT_TRUE(config->sources.empty());
  EXPECT_EQ(config->SourceOf("host.capacity_gb").kind, Kind::kDefault);
  // The demo layout is the Llama-3-8B shape: 128 KiB of KV per token, 2 MiB blocks.
  EXPECT_EQ(o.layout.bytes_per_token(), 128u * 1024);
  EXPECT_EQ(o.layout.block_bytes(), 2u * 1024 * 1024);
}

TEST(ConfigTest, FileOverridesDefaults) {
  TempToml file(R"(
[model]
fingerprint = "llama-3.1-70b@main"

[layout]
num_layers = 80
num_kv_heads = 8
head_dim = 128
dtype = "fp16"
tokens_per_block = 32
chunk_order = "hnd"

[keys]
hash = "xxh3_128"
rank = 1
world_size = 4

[host]
capacity_gb = 16
huge_pages = true
prefault = false
pin_for_cuda = false

[manager]
worker_threads = 4
max_queued_ops = 64
)");
  Result<StrataConfig> config = LoadConfig(file.path(), NoEnv());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  const BlockManagerOptions& o = config->manager;
  EXPECT_EQ(o.model_fingerprint, "llama-3.1-70b@main");
  EXPECT_EQ(o.layout.num_layers, 80u);
  EXPECT_EQ(o.layout.dtype, DType::kFloat16);
  EXPECT_EQ(o.layout.tokens_per_block, 32u);
  EXPECT_EQ(o.layout.chunk_order, ChunkOrder::kHeadTokenDim);
  EXPECT_EQ(o.hash_algorithm, HashAlgorithm::kXxh3_128);
  EXPECT_EQ(o.rank, 1u);
  EXPECT_EQ(o.world_size, 4u);
  EXPECT_EQ(o.host.capacity_bytes, 16 * kGiB);
  EXPECT_TRUE(o.host.huge_pages);
  EXPECT_FALSE(o.host.prefault);
  EXPECT_FALSE(o.host.pin_for_cuda);
  EXPECT_EQ(o.worker_threads, 4u);
  EXPECT_EQ(o.max_queued_ops, 64u);
  EXPECT_EQ(config->config_file, file.path());
  EXPECT_EQ(config->SourceOf("layout.num_layers"), (ConfigSource{Kind::kFile, file.path(), 6}));
  EXPECT_EQ(config->SourceOf("layout.kv_format").kind, Kind::kDefault);
}

TEST(ConfigTest, EnvironmentOverridesFile) {
  TempToml file(
      "[host]\ncapacity_gb = 16\n[model]\nfingerprint = \"from-file\"\n"
      "[keys]\nworld_size = 2\n");
  Result<StrataConfig> config =
      LoadConfig(file.path(), FixedEnv({
                                  {"STRATA_HOST_CACHE_GB", "2"},
                                  {"STRATA_MODEL_FINGERPRINT", "from-env"},
                                  {"STRATA_HASH", "xxh3_128"},
                                  {"STRATA_TP_RANK", "1"},
                                  {"STRATA_WORKER_THREADS", "8"},
                              }));
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->manager.host.capacity_bytes, 2 * kGiB);
  EXPECT_EQ(config->manager.model_fingerprint, "from-env");
  EXPECT_EQ(config->manager.hash_algorithm, HashAlgorithm::kXxh3_128);
  EXPECT_EQ(config->manager.rank, 1u);
  EXPECT_EQ(config->manager.world_size, 2u);
  EXPECT_EQ(config->manager.worker_threads, 8u);
  EXPECT_EQ(config->SourceOf("host.capacity_gb"),
            (ConfigSource{Kind::kEnv, "STRATA_HOST_CACHE_GB"}));
  EXPECT_EQ(config->SourceOf("model.fingerprint").kind, Kind::kEnv);
  EXPECT_EQ(config->SourceOf("keys.world_size").kind, Kind::kFile);
}

TEST(ConfigTest, DynamoCacheVariableGivesFractionalGiB) {
  Result<StrataConfig> config = LoadConfig("", FixedEnv({{"DYN_KVBM_CPU_CACHE_GB", "0.5"}}));
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->manager.host.capacity_bytes, uint64_t{512} << 20);
  EXPECT_EQ(config->SourceOf("host.capacity_gb"),
            (ConfigSource{Kind::kEnv, "DYN_KVBM_CPU_CACHE_GB"}));
}

TEST(ConfigTest, StrataCacheVariableWinsOverDynamoAndSaysSo) {
  Result<StrataConfig> config =
      LoadConfig("", FixedEnv({{"DYN_KVBM_CPU_CACHE_GB", "8"}, {"STRATA_HOST_CACHE_GB", "1.5"}}));
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->manager.host.capacity_bytes, 3 * kGiB / 2);
  EXPECT_EQ(config->SourceOf("host.capacity_gb").where, "STRATA_HOST_CACHE_GB");
  ASSERT_EQ(config->notes.size(), 1u);
  EXPECT_THAT(config->notes[0], HasSubstr("DYN_KVBM_CPU_CACHE_GB=8 is ignored"));
}

TEST(ConfigTest, EmptyVariableCountsAsUnset) {
  Result<StrataConfig> config =
      LoadConfig("", FixedEnv({{"DYN_KVBM_CPU_CACHE_GB", ""}, {"STRATA_CONFIG", ""}}));
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->manager.host.capacity_bytes, 4 * kGiB);
}

TEST(ConfigTest, FilePathComesFromStrataConfigWhenNotGiven) {
  TempToml file("[layout]\nnum_layers = 61\n");
  Result<StrataConfig> config = LoadConfig("", FixedEnv({{"STRATA_CONFIG", file.path()}}));
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->manager.layout.num_layers, 61u);
  EXPECT_EQ(config->config_file, file.path());
  EXPECT_TRUE(config->config_file_from_env);

  // An explicit path beats STRATA_CONFIG.
  TempToml other("[layout]\nnum_layers = 40\n");
  config = LoadConfig(other.path(), FixedEnv({{"STRATA_CONFIG", file.path()}}));
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->manager.layout.num_layers, 40u);
  EXPECT_FALSE(config->config_file_from_env);
}

TEST(ConfigTest, LatentLayoutParses) {
  // DeepSeek-V3's MLA cache: one 576-wide latent (512 + 64 RoPE) per layer.
  TempToml file(R"(
[model]
fingerprint = "deepseek-v3"
[layout]
num_layers = 61
kv_format = "latent"
num_kv_heads = 1
head_dim = 576
dtype = "bf16"
tokens_per_block = 64
[host]
capacity_gb = 0.25
)");
  Result<StrataConfig> config = LoadConfig(file.path(), NoEnv());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  const KvLayout& layout = config->manager.layout;
  EXPECT_EQ(layout.format, KvFormat::kLatent);
  EXPECT_EQ(layout.num_components(), 1u);
  EXPECT_EQ(layout.block_bytes(), size_t{64} * 576 * 2 * 61);
  EXPECT_EQ(config->manager.host.capacity_bytes, kGiB / 4);
}

TEST(ConfigTest, ZeroCapacityDisablesHostTier) {
  // The disk tier sits below the host tier, so it goes too.
  TempToml file("[host]\ncapacity_gb = 0\n[disk]\ncapacity_gb = 0\n");
  Result<StrataConfig> config = LoadConfig(file.path(), NoEnv());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->manager.host.capacity_bytes, 0u);
  EXPECT_EQ(config->manager.disk.capacity_bytes, 0u);
}

TEST(ConfigTest, DefaultConfigHasEightGiBDiskTierAndServeDefaults) {
  const StrataConfig config = DefaultConfig();
  EXPECT_EQ(config.manager.disk.capacity_bytes, 8 * kGiB);
  EXPECT_EQ(config.manager.disk.directory, "./strata-cache");
  EXPECT_EQ(config.manager.host.capacity_bytes, 4 * kGiB);
  EXPECT_TRUE(config.manager.Validate().ok());
  const ServeConfig& serve = config.serve;
  EXPECT_EQ(serve.host, "127.0.0.1");
  EXPECT_EQ(serve.port, 8000);
  EXPECT_EQ(serve.model_preset, "demo");
  EXPECT_EQ(serve.seed, 0u);
  EXPECT_EQ(serve.device_cache_gb, 1.0);
  EXPECT_EQ(serve.max_batch, 8u);
  EXPECT_EQ(serve.prefill_chunk, 512u);
  EXPECT_TRUE(serve.strata_enabled);
  EXPECT_EQ(serve.metrics_port, 6880);
  EXPECT_TRUE(serve.metrics_enabled);
  EXPECT_TRUE(serve.Validate().ok());
}

TEST(ConfigTest, DiskAndHierarchyKeysFromFile) {
  TempToml file(R"([disk]
directory = "/var/cache/strata"
capacity_gb = 1.5
file_gb = 0.25
region_mb = 32
direct_io = false
sync_on_write = true
reset_on_mismatch = true
backend = "posix"
io_depth = 64
[hierarchy]
device_to_host = "selective"
host_to_disk = "write_back"
min_sightings = 3
sightings_decay_period = 5000
sightings_counters = 4096
disk_write_mb_per_sec = 0.5
promote_disk_hits = false
staging_slots = 8
writeback_slots = 16
disk_writer_threads = 4
max_queued_disk_writes = 32
)");
  Result<StrataConfig> config = LoadConfig(file.path(), NoEnv());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  const DiskTierOptions& d = config->manager.disk;
  EXPECT_EQ(d.directory, "/var/cache/strata");
  EXPECT_EQ(d.capacity_bytes, 3 * kGiB / 2);
  EXPECT_EQ(d.file_bytes, kGiB / 4);
  EXPECT_EQ(d.region_bytes, uint64_t{32} << 20);
  EXPECT_FALSE(d.use_direct_io);
  EXPECT_TRUE(d.sync_on_write);
  EXPECT_TRUE(d.reset_on_mismatch);
  EXPECT_EQ(d.backend, BackendKind::kPosix);
  EXPECT_EQ(d.io_depth, 64u);
  const HierarchyOptions& h = config->manager.hierarchy;
  EXPECT_EQ(h.device_to_host, WriteMode::kSelective);
  EXPECT_EQ(h.host_to_disk, WriteMode::kWriteBack);
  EXPECT_EQ(h.min_sightings, 3u);
  EXPECT_EQ(h.sightings_decay_period, 5000u);
  EXPECT_EQ(h.sightings_counters, 4096u);
  EXPECT_EQ(h.disk_write_bytes_per_sec, uint64_t{512} << 10);
  EXPECT_FALSE(h.promote_disk_hits);
  EXPECT_EQ(h.staging_slots, 8u);
  EXPECT_EQ(h.writeback_slots, 16u);
  EXPECT_EQ(h.disk_writer_threads, 4u);
  EXPECT_EQ(h.max_queued_disk_writes, 32u);
  // Every key records its own line.
  const char* keys[] = {"disk.directory",
                        "disk.capacity_gb",
                        "disk.file_gb",
                        "disk.region_mb",
                        "disk.direct_io",
                        "disk.sync_on_write",
                        "disk.reset_on_mismatch",
                        "disk.backend",
                        "disk.io_depth",
                        nullptr,
                        "hierarchy.device_to_host",
                        "hierarchy.host_to_disk",
                        "hierarchy.min_sightings",
                        "hierarchy.sightings_decay_period",
                        "hierarchy.sightings_counters",
                        "hierarchy.disk_write_mb_per_sec",
                        "hierarchy.promote_disk_hits",
                        "hierarchy.staging_slots",
                        "hierarchy.writeback_slots",
                        "hierarchy.disk_writer_threads",
                        "hierarchy.max_queued_disk_writes"};
  for (uint32_t i = 0; i < std::size(keys); ++i) {
    if (keys[i] == nullptr) continue;  // the [hierarchy] header
    EXPECT_EQ(config->SourceOf(keys[i]), (ConfigSource{Kind::kFile, file.path(), i + 2}))
        << keys[i];
  }
}

TEST(ConfigTest, ServeKeysFromFile) {
  TempToml file(R"([server]
host = "0.0.0.0"
port = 0
[engine]
preset = "tiny"
seed = 42
device_cache_gb = 0.25
max_batch = 4
prefill_chunk = 128
strata = false
[metrics]
port = 9100
enabled = false
)");
  Result<StrataConfig> config = LoadConfig(file.path(), NoEnv());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  const ServeConfig& serve = config->serve;
  EXPECT_EQ(serve.host, "0.0.0.0");
  EXPECT_EQ(serve.port, 0);
  EXPECT_EQ(serve.model_preset, "tiny");
  EXPECT_EQ(serve.seed, 42u);
  EXPECT_EQ(serve.device_cache_gb, 0.25);
  EXPECT_EQ(serve.max_batch, 4u);
  EXPECT_EQ(serve.prefill_chunk, 128u);
  EXPECT_FALSE(serve.strata_enabled);
  EXPECT_EQ(serve.metrics_port, 9100);
  EXPECT_FALSE(serve.metrics_enabled);
  EXPECT_EQ(config->SourceOf("server.host"), (ConfigSource{Kind::kFile, file.path(), 2}));
  EXPECT_EQ(config->SourceOf("server.port"), (ConfigSource{Kind::kFile, file.path(), 3}));
  EXPECT_EQ(config->SourceOf("engine.preset"), (ConfigSource{Kind::kFile, file.path(), 5}));
  EXPECT_EQ(config->SourceOf("engine.seed"), (ConfigSource{Kind::kFile, file.path(), 6}));
  EXPECT_EQ(config->SourceOf("engine.device_cache_gb"),
            (ConfigSource{Kind::kFile, file.path(), 7}));
  EXPECT_EQ(config->SourceOf("engine.max_batch"), (ConfigSource{Kind::kFile, file.path(), 8}));
  EXPECT_EQ(config->SourceOf("engine.prefill_chunk"), (ConfigSource{Kind::kFile, file.path(), 9}));
  EXPECT_EQ(config->SourceOf("engine.strata"), (ConfigSource{Kind::kFile, file.path(), 10}));
  EXPECT_EQ(config->SourceOf("metrics.port"), (ConfigSource{Kind::kFile, file.path(), 12}));
  EXPECT_EQ(config->SourceOf("metrics.enabled"), (ConfigSource{Kind::kFile, file.path(), 13}));
}

TEST(ConfigTest, DynamoDiskAndMetricsVariables) {
  TempToml file("[disk]\ncapacity_gb = 2\n[metrics]\nport = 9100\n");
  Result<StrataConfig> config =
      LoadConfig(file.path(), FixedEnv({
                                  {"DYN_KVBM_DISK_CACHE_DIR", "/mnt/nvme/kv"},
                                  {"DYN_KVBM_DISK_CACHE_GB", "0.5"},
                                  {"DYN_KVBM_METRICS_PORT", "7000"},
                                  {"STRATA_HOST_TO_DISK", "selective"},
                                  {"STRATA_SERVE_HOST", "0.0.0.0"},
                                  {"STRATA_SERVE_PORT", "8080"},
                                  {"STRATA_MODEL_PRESET", "tiny"},
                                  {"STRATA_MODEL", "/models/smollm2.gguf"},
                              }));
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->manager.disk.directory, "/mnt/nvme/kv");
  EXPECT_EQ(config->manager.disk.capacity_bytes, kGiB / 2);
  EXPECT_EQ(config->manager.hierarchy.host_to_disk, WriteMode::kSelective);
  EXPECT_EQ(config->serve.metrics_port, 7000);
  EXPECT_EQ(config->serve.host, "0.0.0.0");
  EXPECT_EQ(config->serve.port, 8080);
  EXPECT_EQ(config->serve.model_preset, "tiny");
  EXPECT_EQ(config->serve.model_path, "/models/smollm2.gguf");
  EXPECT_EQ(config->SourceOf("model.path"), (ConfigSource{Kind::kEnv, "STRATA_MODEL"}));
  EXPECT_EQ(config->SourceOf("disk.directory"),
            (ConfigSource{Kind::kEnv, "DYN_KVBM_DISK_CACHE_DIR"}));
  EXPECT_EQ(config->SourceOf("disk.capacity_gb"),
            (ConfigSource{Kind::kEnv, "DYN_KVBM_DISK_CACHE_GB"}));
  EXPECT_EQ(config->SourceOf("metrics.port"), (ConfigSource{Kind::kEnv, "DYN_KVBM_METRICS_PORT"}));
  EXPECT_EQ(config->SourceOf("hierarchy.host_to_disk"),
            (ConfigSource{Kind::kEnv, "STRATA_HOST_TO_DISK"}));
  EXPECT_EQ(config->SourceOf("server.host"), (ConfigSource{Kind::kEnv, "STRATA_SERVE_HOST"}));
  EXPECT_EQ(config->SourceOf("server.port"), (ConfigSource{Kind::kEnv, "STRATA_SERVE_PORT"}));
  EXPECT_EQ(config->SourceOf("engine.preset"), (ConfigSource{Kind::kEnv, "STRATA_MODEL_PRESET"}));
  EXPECT_TRUE(config->notes.empty());
}

TEST(ConfigTest, StrataDiskAndMetricsVariablesWinOverDynamoAndSaySo) {
  Result<StrataConfig> config = LoadConfig("", FixedEnv({
                                                   {"DYN_KVBM_DISK_CACHE_DIR", "/dyn"},
                                                   {"STRATA_DISK_CACHE_DIR", "/strata"},
                                                   {"DYN_KVBM_DISK_CACHE_GB", "16"},
                                                   {"STRATA_DISK_CACHE_GB", "2"},
                                                   {"DYN_KVBM_METRICS_PORT", "7000"},
                                                   {"STRATA_METRICS_PORT", "7001"},
                                               }));
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->manager.disk.directory, "/strata");
  EXPECT_EQ(config->manager.disk.capacity_bytes, 2 * kGiB);
  EXPECT_EQ(config->serve.metrics_port, 7001);
  EXPECT_EQ(config->SourceOf("disk.directory").where, "STRATA_DISK_CACHE_DIR");
  EXPECT_EQ(config->SourceOf("disk.capacity_gb").where, "STRATA_DISK_CACHE_GB");
  EXPECT_EQ(config->SourceOf("metrics.port").where, "STRATA_METRICS_PORT");
  EXPECT_THAT(config->notes,
              ::testing::UnorderedElementsAre(
                  HasSubstr("DYN_KVBM_DISK_CACHE_DIR=/dyn is ignored: STRATA_DISK_CACHE_DIR"),
                  HasSubstr("DYN_KVBM_DISK_CACHE_GB=16 is ignored: STRATA_DISK_CACHE_GB"),
                  HasSubstr("DYN_KVBM_METRICS_PORT=7000 is ignored: STRATA_METRICS_PORT")));
}

// --- Errors.

// Loads `toml` and expects InvalidArgument whose message contains every one of `parts`.
void ExpectFileError(const std::string& toml, std::initializer_list<std::string> parts) {
  TempToml file(toml);
  Result<StrataConfig> config = LoadConfig(file.path(), NoEnv());
  ASSERT_FALSE(config.ok()) << "accepted:\n" << toml;
  EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument) << config.status().ToString();
  EXPECT_THAT(config.status().message(), HasSubstr(file.path()));
  for (const std::string& part : parts)
    EXPECT_THAT(config.status().message(), HasSubstr(part)) << "for:\n" << toml;
}

TEST(ConfigErrorTest, UnknownKey) {
  ExpectFileError("[host]\ncapacity_gib = 4\n", {"host.capacity_gib", "unknown key", ":2:1:"});
}

TEST(ConfigErrorTest, UnknownTable) {
  ExpectFileError("[cache]\ncapacity_gb = 4\n", {"cache", "unknown table", "[hierarchy]"});
  ExpectFileError("capacity_gb = 4\n", {"capacity_gb", "unknown top-level key"});
}

TEST(ConfigErrorTest, WrongType) {
  ExpectFileError("[host]\ncapacity_gb = \"4\"\n", {"host.capacity_gb", "got a string"});
  ExpectFileError("[layout]\nnum_layers = 32.0\n", {"layout.num_layers", "expected an integer"});
  ExpectFileError("[host]\nhuge_pages = 1\n", {"host.huge_pages", "expected a boolean"});
  ExpectFileError("host = 4\n", {"host", "expected a table"});
}

TEST(ConfigErrorTest, NegativeAndOutOfRangeNumbers) {
  ExpectFileError("[host]\ncapacity_gb = -1.5\n", {"host.capacity_gb", "negative"});
  ExpectFileError("[host]\ncapacity_gb = -2\n", {"host.capacity_gb", "negative"});
  ExpectFileError("[host]\ncapacity_gb = inf\n", {"host.capacity_gb", "finite"});
  ExpectFileError("[layout]\nnum_layers = -3\n", {"layout.num_layers", "negative"});
  ExpectFileError("[layout]\nnum_layers = 0\n", {"layout.num_layers", ">= 1"});
  ExpectFileError("[keys]\nrank = 5000000000\n", {"keys.rank", "out of range"});
}

TEST(ConfigErrorTest, BadEnumNames) {
  ExpectFileError("[layout]\ndtype = \"int4\"\n", {"layout.dtype", "int4"});
  ExpectFileError("[layout]\nkv_format = \"mha\"\n", {"layout.kv_format", "mha"});
  ExpectFileError("[layout]\nchunk_order = \"thd\"\n", {"layout.chunk_order", "thd"});
  ExpectFileError("[keys]\nhash = \"md5\"\n", {"keys.hash", "md5"});
  ExpectFileError("[model]\nfingerprint = \"\"\n", {"model.fingerprint", "empty"});
}

TEST(ConfigErrorTest, BadDiskHierarchyAndServeValues) {
  ExpectFileError("[disk]\ncapacity_gb = -1\n", {"disk.capacity_gb", "negative", ":2:"});
  ExpectFileError("[disk]\nbackend = \"memcpy\"\n", {"disk.backend", "memcpy", ":2:"});
  ExpectFileError("[disk]\nbackend = \"cuda\"\n", {"disk.backend", "cuda"});
  ExpectFileError("[disk]\nio_depth = 5000\n", {"disk.io_depth", "at most 4096", ":2:"});
  ExpectFileError("[disk]\nregion_mb = 0\n", {"disk.region_mb", "more than 0"});
  ExpectFileError("[disk]\ncapacity_gb = 1\nsize_gb = 4\n",
                  {"disk.size_gb", "unknown key", ":3:1:", "capacity_gb"});
  ExpectFileError("[hierarchy]\nhost_to_disk = \"lazy\"\n",
                  {"hierarchy.host_to_disk", "unknown write mode 'lazy'", ":2:"});
  ExpectFileError("[hierarchy]\ndevice_to_host = \"write_back\"\n",
                  {"hierarchy.device_to_host", "write_back", ":2:"});
  ExpectFileError("[hierarchy]\nmin_sightings = 300\n", {"hierarchy.min_sightings", "255"});
  ExpectFileError("[hierarchy]\ndisk_write_mb_per_sec = -5\n",
                  {"hierarchy.disk_write_mb_per_sec", "negative"});
  ExpectFileError("[server]\nport = 70000\n", {"server.port", "65535", ":2:"});
  ExpectFileError("[metrics]\nport = -1\n", {"metrics.port", "negative"});
  ExpectFileError("[engine]\ndevice_cache_gb = 0\n", {"engine.device_cache_gb", "more than 0"});
  ExpectFileError("[engine]\nmax_batch = 0\n", {"engine.max_batch", ">= 1"});
  ExpectFileError("[engine]\nstrata = \"yes\"\n", {"engine.strata", "expected a boolean"});
}

TEST(ConfigErrorTest, DiskTierWithoutHostTierNamesBothKeys) {
  TempToml file("[host]\ncapacity_gb = 0\n");
  Result<StrataConfig> config = LoadConfig(file.path(), NoEnv());
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(config.status().message(), HasSubstr("disk.capacity_gb (8 GiB, from default)"));
  EXPECT_THAT(config.status().message(), HasSubstr("host.capacity_gb is 0 (from file"));
}

TEST(ConfigErrorTest, ServeValidationRejectsOneSharedPort) {
  TempToml file("[server]\nport = 9000\n[metrics]\nport = 9000\n");
  Result<StrataConfig> config = LoadConfig(file.path(), NoEnv());
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(config.status().message(), HasSubstr("server.port and metrics.port"));
  EXPECT_THAT(config.status().message(), HasSubstr(file.path()));

  // With metrics off, or port 0 (a free port each), there is no clash.
  TempToml off("[server]\nport = 9000\n[metrics]\nport = 9000\nenabled = false\n");
  EXPECT_TRUE(LoadConfig(off.path(), NoEnv()).ok());
  TempToml zero("[server]\nport = 0\n[metrics]\nport = 0\n");
  EXPECT_TRUE(LoadConfig(zero.path(), NoEnv()).ok());
}

TEST(ConfigErrorTest, SyntaxErrorNamesLineAndColumn) {
  ExpectFileError("[host]\ncapacity_gb = 4\nhuge_pages = yes\n", {"TOML syntax error", ":3:"});
}

TEST(ConfigErrorTest, MissingFileIsIoErrorNamingPathAndErrno) {
  const std::string path = testing::TempDir() + "/strata_no_such_config.toml";
  Result<StrataConfig> config = LoadConfig(path, NoEnv());
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kIoError);
  EXPECT_EQ(config.status().sys_errno(), ENOENT);
  EXPECT_THAT(config.status().message(), HasSubstr(path));
  EXPECT_THAT(config.status().message(), HasSubstr("No such file or directory"));

  // Through STRATA_CONFIG the message says where the path came from.
  config = LoadConfig("", FixedEnv({{"STRATA_CONFIG", path}}));
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("STRATA_CONFIG"));
}

TEST(ConfigErrorTest, MalformedEnvironmentValues) {
  struct Case {
    const char* var;
    const char* value;
  };
  const Case cases[] = {
      {"DYN_KVBM_CPU_CACHE_GB", "abc"},   {"DYN_KVBM_CPU_CACHE_GB", "-1"},
      {"DYN_KVBM_CPU_CACHE_GB", "1e999"}, {"DYN_KVBM_CPU_CACHE_GB", "4GB"},
      {"STRATA_HOST_CACHE_GB", "nan"},    {"STRATA_HOST_CACHE_GB", " 4"},
      {"STRATA_TP_RANK", "-1"},           {"STRATA_TP_RANK", "1.0"},
      {"STRATA_TP_WORLD_SIZE", "0"},      {"STRATA_TP_WORLD_SIZE", "99999999999"},
      {"STRATA_WORKER_THREADS", "two"},   {"STRATA_HASH", "md5"},
      {"DYN_KVBM_DISK_CACHE_GB", "-1"},   {"STRATA_DISK_CACHE_GB", "8GB"},
      {"STRATA_HOST_TO_DISK", "lazy"},    {"STRATA_SERVE_PORT", "70000"},
      {"DYN_KVBM_METRICS_PORT", "-1"},    {"STRATA_METRICS_PORT", "http"},
  };
  for (const Case& c : cases) {
    Result<StrataConfig> config = LoadConfig("", FixedEnv({{c.var, c.value}}));
    ASSERT_FALSE(config.ok()) << c.var << "=" << c.value;
    EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(config.status().message(), HasSubstr(c.var));
    EXPECT_THAT(config.status().message(), HasSubstr(std::string("'") + c.value + "'"));
  }
}

TEST(ConfigErrorTest, RankNotBelowWorldSizeNamesBothSources) {
  TempToml file("[keys]\nworld_size = 2\n");
  Result<StrataConfig> config = LoadConfig(file.path(), FixedEnv({{"STRATA_TP_RANK", "2"}}));
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(config.status().message(), HasSubstr("env STRATA_TP_RANK"));
  EXPECT_THAT(config.status().message(), HasSubstr("file " + file.path()));
}

TEST(ConfigErrorTest, ValidationFailureCarriesContext) {
  // capacity_gb is well-formed on its own; only the whole config shows the tier is too small.
  TempToml file("[host]\ncapacity_gb = 0.0009765625\n");  // 1 MiB < one 2 MiB block
  Result<StrataConfig> config = LoadConfig(file.path(), NoEnv());
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(config.status().message(), HasSubstr("invalid configuration"));
  EXPECT_THAT(config.status().message(), HasSubstr(file.path()));
}

TEST(DescribeConfigTest, ShowsEveryKeyValueSourceAndDerivedSizes) {
  Result<StrataConfig> config = LoadConfig("", FixedEnv({{"DYN_KVBM_CPU_CACHE_GB", "0.5"}}));
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  const std::string text = DescribeConfig(*config);
  for (const char* key : {"model.fingerprint",
                          "layout.num_layers",
                          "layout.kv_format",
                          "layout.num_kv_heads",
                          "layout.head_dim",
                          "layout.dtype",
                          "layout.tokens_per_block",
                          "layout.chunk_order",
                          "keys.hash",
                          "keys.rank",
                          "keys.world_size",
                          "host.capacity_gb",
                          "host.huge_pages",
                          "host.pin_for_cuda",
                          "manager.worker_threads",
                          "manager.max_queued_ops",
                          "disk.directory",
                          "disk.capacity_gb",
                          "disk.file_gb",
                          "disk.region_mb",
                          "disk.min_regions",
                          "disk.direct_io",
                          "disk.sync_on_write",
                          "disk.reset_on_mismatch",
                          "disk.backend",
                          "disk.io_depth",
                          "hierarchy.device_to_host",
                          "hierarchy.host_to_disk",
                          "hierarchy.min_sightings",
                          "hierarchy.sightings_decay_period",
                          "hierarchy.sightings_counters",
                          "hierarchy.disk_write_mb_per_sec",
                          "hierarchy.promote_disk_hits",
                          "hierarchy.staging_slots",
                          "hierarchy.writeback_slots",
                          "hierarchy.disk_writer_threads",
                          "hierarchy.max_queued_disk_writes",
                          "hierarchy.defer_disk_writes",
                          "server.host",
                          "server.port",
                          "engine.preset",
                          "engine.seed",
                          "engine.device_cache_gb",
                          "engine.max_batch",
                          "engine.prefill_chunk",
                          "engine.strata",
                          "metrics.port",
                          "metrics.enabled"}) {
    EXPECT_THAT(text, HasSubstr(key));
  }
  EXPECT_THAT(text, HasSubstr("env DYN_KVBM_CPU_CACHE_GB"));
  EXPECT_THAT(text, HasSubstr("536870912 bytes (0.5 GiB)"));  // capacity
  EXPECT_THAT(text, HasSubstr("2097152 bytes"));              // block size
  EXPECT_THAT(text, HasSubstr("131072 bytes"));               // KV per token
  EXPECT_THAT(text, HasSubstr("host blocks         256\n"));  // 512 MiB / 2 MiB
  EXPECT_THAT(text, HasSubstr("host tokens         4096\n"));
  EXPECT_THAT(text, HasSubstr("built-in demo value"));
  // The default 8 GiB disk tier: 2 MiB blocks take 2 MiB + 4 KiB records.
  EXPECT_THAT(text, HasSubstr("disk capacity       8589934592 bytes (8 GiB)\n"));
  EXPECT_THAT(text, HasSubstr("disk record         2101248 bytes"));
  EXPECT_THAT(text, HasSubstr("disk blocks         4088\n"));  // 8 GiB / (2 MiB + 4 KiB)
  EXPECT_THAT(text, HasSubstr("disk tokens         65408\n"));
  EXPECT_THAT(text, HasSubstr("\"./strata-cache\" is relative"));
}

TEST(DescribeConfigTest, ShowsNewSourcesAndDisabledDiskTier) {
  TempToml file("[disk]\ncapacity_gb = 0\n[hierarchy]\ndisk_write_mb_per_sec = 100\n");
  Result<StrataConfig> config =
      LoadConfig(file.path(), FixedEnv({{"STRATA_METRICS_PORT", "9200"}}));
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  const std::string text = DescribeConfig(*config);
  EXPECT_THAT(text, HasSubstr("file " + file.path() + ":2"));
  EXPECT_THAT(text, HasSubstr("100 (104857600 bytes/s)"));
  EXPECT_THAT(text, HasSubstr("file " + file.path() + ":4"));
  EXPECT_THAT(text, HasSubstr("9200"));
  EXPECT_THAT(text, HasSubstr("env STRATA_METRICS_PORT"));
  EXPECT_THAT(text, HasSubstr(", disk tier disabled"));
  EXPECT_THAT(text, HasSubstr("disk blocks         0\n"));
  EXPECT_THAT(text, ::testing::Not(HasSubstr("is relative")));
}

}  // namespace
}  // namespace strata

namespace strata {
namespace {

TEST(ConfigSharedTierTest, RedisFromFilePasswordFromEnvironmentNeverShown) {
  TempToml file(
      "[shared]\nkind = \"redis\"\nendpoints = [\"127.0.0.1:7000\", \"127.0.0.1:7001\"]\n"
      "cluster = true\nio_timeout_ms = 500\nttl_seconds = 3600\n");
  Result<StrataConfig> config =
      LoadConfig(file.path(), FixedEnv({{"STRATA_SHARED_PASSWORD", "s3cret"}}));
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  const SharedTierOptions& s = config->manager.shared;
  EXPECT_EQ(s.kind, SharedTierKind::kRedis);
  EXPECT_EQ(s.endpoints, (std::vector<std::string>{"127.0.0.1:7000", "127.0.0.1:7001"}));
  EXPECT_TRUE(s.cluster);
  EXPECT_EQ(s.io_timeout.count(), 500);
  EXPECT_EQ(s.ttl_seconds, 3600u);
  EXPECT_EQ(s.password, "s3cret");
  const std::string shown = DescribeConfig(*config);
  EXPECT_EQ(shown.find("s3cret"), std::string::npos) << shown;
  EXPECT_NE(shown.find("(set, hidden)"), std::string::npos) << shown;
  EXPECT_NE(shown.find("STRATA_SHARED_PASSWORD"), std::string::npos) << shown;
}

TEST(ConfigSharedTierTest, HmacKeyFromAPrivateFileNeverShownAndGroup) {
  TempToml key_file("0123456789abcdef0123456789abcdef\n");
  ASSERT_EQ(chmod(key_file.path().c_str(), 0600), 0);
  TempToml file(
      "[shared]\nkind = \"fs\"\ndirectory = \"/mnt/kv\"\ngroup = \"strata\"\n"
      "hmac_key_file = \"" +
      key_file.path() + "\"\n");
  Result<StrataConfig> config = LoadConfig(file.path(), FixedEnv({}));
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->manager.shared.hmac_key, "0123456789abcdef0123456789abcdef");
  EXPECT_EQ(config->manager.shared.group, "strata");
  const std::string shown = DescribeConfig(*config);
  EXPECT_EQ(shown.find("0123456789abcdef"), std::string::npos) << shown;

  // A key file every user can read is refused; so is a short key.
  ASSERT_EQ(chmod(key_file.path().c_str(), 0644), 0);
  Result<StrataConfig> readable = LoadConfig(file.path(), FixedEnv({}));
  ASSERT_FALSE(readable.ok());
  EXPECT_NE(readable.status().message().find("readable by every user"), std::string::npos)
      << readable.status().ToString();
  Result<StrataConfig> short_key = LoadConfig("", FixedEnv({{"STRATA_SHARED_KIND", "fs"},
                                                            {"STRATA_SHARED_DIR", "/mnt/kv"},
                                                            {"STRATA_SHARED_HMAC_KEY", "short"}}));
  ASSERT_FALSE(short_key.ok());
  EXPECT_NE(short_key.status().message().find("at least 16"), std::string::npos)
      << short_key.status().ToString();
}

TEST(ConfigSharedTierTest, FilesystemFromEnvironment) {
  Result<StrataConfig> config = LoadConfig("", FixedEnv({{"STRATA_SHARED_KIND", "fs"},
                                                         {"STRATA_SHARED_DIR", "/mnt/kv"},
                                                         {"STRATA_SHARED_CAPACITY_GB", "100"}}));
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->manager.shared.kind, SharedTierKind::kFilesystem);
  EXPECT_EQ(config->manager.shared.directory, "/mnt/kv");
  EXPECT_EQ(config->manager.shared.capacity_bytes, uint64_t{100} << 30);
}

TEST(ConfigSharedTierTest, BadValuesAreRejectedWithTheirName) {
  const struct {
    const char* toml;
    const char* expect;
  } cases[] = {
      {"[shared]\nkind = \"s3\"\n", "unknown shared tier kind"},
      {"[shared]\nkind = \"redis\"\nendpoints = \"localhost\"\n", "not host:port"},
      {"[shared]\nkind = \"redis\"\n", "endpoints"},
      {"[shared]\nkind = \"fs\"\n", "directory"},
      {"[shared]\nio_timeout_ms = 0\n", "io_timeout_ms"},
  };
  for (const auto& c : cases) {
    TempToml file(c.toml);
    Result<StrataConfig> config = LoadConfig(file.path(), NoEnv());
    ASSERT_FALSE(config.ok()) << c.toml;
    EXPECT_NE(config.status().message().find(c.expect), std::string::npos)
        << c.toml << " -> " << config.status().ToString();
  }
  Result<StrataConfig> env = LoadConfig("", FixedEnv({{"STRATA_SHARED_ENDPOINTS", "a:1,b"}}));
  ASSERT_FALSE(env.ok());
  EXPECT_NE(env.status().message().find("STRATA_SHARED_ENDPOINTS"), std::string::npos);
}

}  // namespace
}  // namespace strata

namespace strata {
namespace {

TEST(ConfigDaemonTest, DaemonKeysFromFileAndTheSocketFromTheEnvironment) {
  TempToml file(
      "[daemon]\nsocket = \"/run/strata/a.sock\"\nio_timeout_ms = 750\nconnections = 4\n"
      "group = \"kv\"\n");
  Result<StrataConfig> config = LoadConfig(file.path(), FixedEnv({}));
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->manager.daemon.socket, "/run/strata/a.sock");
  EXPECT_EQ(config->manager.daemon.io_timeout.count(), 750);
  EXPECT_EQ(config->manager.daemon.connections, 4u);
  EXPECT_EQ(config->daemon_group, "kv");
  EXPECT_NE(DescribeConfig(*config).find("/run/strata/a.sock"), std::string::npos);
  config = LoadConfig(file.path(), FixedEnv({{"STRATA_DAEMON_SOCKET", "/tmp/b.sock"}}));
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->manager.daemon.socket, "/tmp/b.sock");
  // Out of range, and a path no Unix socket can have.
  TempToml bad("[daemon]\nconnections = 0\n");
  Result<StrataConfig> refused = LoadConfig(bad.path(), FixedEnv({}));
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("daemon.connections"), std::string::npos)
      << refused.status().ToString();
  refused = LoadConfig("", FixedEnv({{"STRATA_DAEMON_SOCKET", "/" + std::string(200, 'x')}}));
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("shorter than 108"), std::string::npos)
      << refused.status().ToString();
}

}  // namespace
}  // namespace strata
