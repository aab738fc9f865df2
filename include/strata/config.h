// StrataConfig: Strata's resolved configuration (defaults < TOML file < environment) and
// a record of where every value came from. docs/configuration.md is the operator's reference.
//
// Precedence, lowest first:
//   1. Built-in defaults (DefaultConfig()): a demo model so `strata` runs with no config —
//      fingerprint "strata-demo", 32 layers x K/V x 8 KV heads x 128 head_dim, bf16,
//      16 tokens per block (the Llama-3-8B shape), a 4 GiB host tier (G2) and an 8 GiB disk
//      tier (G3) under "./strata-cache". That directory is relative to the working
//      directory: operators should set an absolute one. Because the default enables the
//      disk tier, whoever builds a BlockManager from DefaultConfig() (or from a LoadConfig()
//      that leaves disk.capacity_gb alone) creates that directory; set disk.capacity_gb = 0
//      for a host-only manager.
//   2. A TOML file: the path passed to LoadConfig, or else $STRATA_CONFIG.
//   3. Environment variables.
//
// TOML keys (every key optional; unknown tables or keys are errors, not silently ignored):
//   [model]     fingerprint            string, non-empty
//   [layout]    num_layers             integer >= 1
//               kv_format              "kv" (separate K and V) | "latent" (MLA)
//               num_kv_heads           integer >= 1
//               head_dim               integer >= 1
//               dtype                  "fp32" | "fp16" | "bf16" | "fp8_e4m3" | "fp8_e5m2"
//               tokens_per_block       integer >= 1
//               chunk_order            "nhd" | "hnd"
//   [keys]      hash                   "sha256" | "xxh3_128"
//               rank                   integer >= 0, < world_size
//               world_size             integer >= 1
//   [host]      capacity_gb            number >= 0, GiB (2^30 bytes), fractional; 0 disables
//               huge_pages             boolean
//               prefault               boolean
//               pin_for_cuda           boolean
//   [manager]   worker_threads         integer >= 1
//               max_queued_ops         integer >= 1
//   [disk]      directory              string, non-empty
//               capacity_gb            number >= 0, GiB, fractional; 0 disables the disk tier
//               file_gb                number > 0, GiB, fractional (segment file size)
//               region_mb              number > 0, MiB (2^20 bytes), fractional (largest
//                                      reclaim unit)
//               min_regions            integer >= 1 (regions the capacity is split into)
//               direct_io              boolean (DiskTierOptions::use_direct_io)
//               sync_on_write          boolean
//               reset_on_mismatch      boolean
//               backend                "auto" | "posix" | "io_uring"
//               io_depth               integer 1..4096
//   [hierarchy] device_to_host         "write_through" | "selective"
//               host_to_disk           "write_through" | "selective" | "write_back"
//               min_sightings          integer 1..255
//               sightings_decay_period integer >= 1
//               sightings_counters     integer 64..2^30
//               disk_write_mb_per_sec  number >= 0, MiB/s, fractional; 0 = unlimited
//                                      (HierarchyOptions::disk_write_bytes_per_sec)
//               promote_disk_hits      boolean
//               staging_slots          integer 1..4096
//               writeback_slots        integer 1..4096
//               disk_writer_threads    integer 1..64
//               max_queued_disk_writes integer >= 0; 0 = sized from G2
//               defer_disk_writes      boolean (a full queue defers, not drops)
//   [shared]    kind                   "none" | "fs" (a shared mount) | "redis" (Redis/Valkey);
//                                      any but "none" needs the host tier
//               directory              string, non-empty; fs: the shared directory (required)
//               capacity_gb            number >= 0, GiB, fractional; fs: this node evicts least
//                                      recently used objects to keep the directory within it;
//                                      0 = no budget
//               grace_period_ms        integer >= 1, ms; fs: objects used this recently are
//                                      never evicted
//               endpoints              array of "host:port" strings, or one comma-separated
//                                      string; at least one; redis: the server or cluster seeds
//                                      (required)
//               cluster                boolean; redis: true = Redis Cluster, false = ask the server
//               username               string, may be empty; redis: AUTH user (ACL)
//               password               string, may be empty (no AUTH); never printed
//               hmac_key               string, >= 16 bytes; authenticates every object
//                                      (HMAC-SHA256); never printed
//               hmac_key_file          string, non-empty; a file (not world-readable) whose
//                                      bytes, less a trailing newline, are hmac_key
//               group                  string, non-empty; fs: the group sharing the store
//                                      (directories 2770, objects 0660)
//               tls                    boolean; redis over TLS
//               tls_ca_file            string, non-empty; CA file verifying the server
//               tls_cert_file          string, non-empty; client certificate
//               tls_key_file           string, non-empty; client private key
//                                      (the three tls_*_file keys need tls = true)
//               tls_server_name        string, non-empty; name to verify (default: the host)
//               tls_verify_peer        boolean
//               key_prefix             string, non-empty; redis: prefix of every key
//               ttl_seconds            integer >= 0; redis: expiry of published blocks,
//                                      0 = none (the server's maxmemory policy evicts)
//               io_timeout_ms          integer >= 1, ms; longest a shared-tier call may take
//               writer_threads         integer 1..64 (threads publishing blocks)
//               max_queued_writes      integer >= 1 (past it a publication is dropped)
//               promote_hits           boolean (copy a block loaded from G4 into G2)
//   [daemon]    socket                 string, non-empty; the `strata daemon` Unix socket: a
//                                      client attaches to it (BlockManagerOptions::daemon),
//                                      `strata daemon` listens on it
//               io_timeout_ms          integer >= 1, ms; longest one call to the daemon may take
//               connections            integer 1..256; sockets a client opens at most
//               group                  string, non-empty; `strata daemon`: members of this
//                                      group may connect too (socket 0660)
//   [server]    host                   string, non-empty (ServeConfig::host)
//               port                   integer 0..65535; 0 picks a free port
//   [model]     path                   string, non-empty; `strata serve`: a GGUF file or Hugging
//                                      Face model directory to serve (ServeConfig::model_path)
//   [engine]    preset                 string, non-empty (ServeConfig::model_preset)
//               seed                   integer >= 0
//               device_cache_gb        number > 0, GiB, fractional
//               max_batch              integer >= 1
//               prefill_chunk          integer >= 1
//               strata                 boolean (ServeConfig::strata_enabled)
//   [metrics]   port                   integer 0..65535; 0 picks a free port
//               enabled                boolean
//
// Environment variables (an empty value counts as unset, so `VAR= strata` clears one). Where
// a Dynamo name and a Strata name set the same key, the Strata name wins and a note says the
// other was ignored:
//   STRATA_CONFIG            path of the TOML file, used when LoadConfig gets no path
//   DYN_KVBM_CPU_CACHE_GB    host.capacity_gb — NVIDIA Dynamo's name, same meaning
//   STRATA_HOST_CACHE_GB     host.capacity_gb; wins over DYN_KVBM_CPU_CACHE_GB
//   DYN_KVBM_DISK_CACHE_DIR  disk.directory — Dynamo's name, same meaning
//   STRATA_DISK_CACHE_DIR    disk.directory; wins over DYN_KVBM_DISK_CACHE_DIR
//   DYN_KVBM_DISK_CACHE_GB   disk.capacity_gb — Dynamo's name, same meaning
//   STRATA_DISK_CACHE_GB     disk.capacity_gb; wins over DYN_KVBM_DISK_CACHE_GB
//   STRATA_HOST_TO_DISK      hierarchy.host_to_disk
//   STRATA_SHARED_KIND       shared.kind
//   STRATA_SHARED_DIR        shared.directory
//   STRATA_SHARED_CAPACITY_GB shared.capacity_gb
//   STRATA_SHARED_ENDPOINTS  shared.endpoints, comma-separated host:port
//   STRATA_SHARED_PASSWORD   shared.password (better here than in a config file)
//   STRATA_SHARED_HMAC_KEY   shared.hmac_key (likewise)
//   STRATA_SHARED_GROUP      shared.group
//   STRATA_DAEMON_SOCKET     daemon.socket
//   STRATA_MODEL_FINGERPRINT model.fingerprint
//   STRATA_HASH              keys.hash
//   STRATA_TP_RANK           keys.rank
//   STRATA_TP_WORLD_SIZE     keys.world_size
//   STRATA_WORKER_THREADS    manager.worker_threads
//   STRATA_SERVE_HOST        server.host
//   STRATA_SERVE_PORT        server.port
//   STRATA_MODEL_PRESET      engine.preset
//   STRATA_MODEL             model.path
//   DYN_KVBM_METRICS_PORT    metrics.port — Dynamo's name, same meaning
//   STRATA_METRICS_PORT      metrics.port; wins over DYN_KVBM_METRICS_PORT
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "strata/export.h"
#include "strata/options.h"
#include "strata/status.h"

namespace strata {

// Where one configuration value came from.
struct STRATA_EXPORT ConfigSource {
  enum class Kind : uint8_t { kDefault, kFile, kEnv };
  Kind kind = Kind::kDefault;
  std::string where;  // the file path (kFile), the variable name (kEnv), empty (kDefault)
  uint32_t line = 0;  // line in the file for kFile, else 0

  // "default", "file /etc/strata.toml:7", "env DYN_KVBM_CPU_CACHE_GB".
  std::string ToString() const;
  friend bool operator==(const ConfigSource&, const ConfigSource&) = default;
};

// `strata serve`: the reference engine behind an OpenAI-compatible HTTP server, plus a
// metrics endpoint. Its TOML tables are [server], [engine] and [metrics].
struct STRATA_EXPORT ServeConfig {
  // [server] host: the address the HTTP server binds. Default "127.0.0.1" (this machine only).
  // Env: STRATA_SERVE_HOST.
  std::string host = "127.0.0.1";
  // [server] port. 0 picks a free port. Default 8000. Env: STRATA_SERVE_PORT.
  uint16_t port = 8000;
  // [engine] preset: the reference engine's model preset (ModelConfig::Preset; the engine
  // rejects unknown names). Default "demo". Env: STRATA_MODEL_PRESET.
  std::string model_preset = "demo";
  // [model] path: a real checkpoint for the reference engine, a GGUF file or a Hugging Face
  // model directory (config.json + safetensors); when set, preset and seed are unused.
  // Default "": the synthetic preset. Env: STRATA_MODEL.
  std::string model_path;
  // [engine] seed: the synthetic weight seed. Default 0.
  uint64_t seed = 0;
  // [engine] device_cache_gb: GiB of the engine's paged KV cache (G1), fractional, > 0.
  // Default 1.
  double device_cache_gb = 1.0;
  // [engine] max_batch: sequences decoded together. Default 8.
  uint32_t max_batch = 8;
  // [engine] prefill_chunk: prompt tokens prefilled per engine step. Default 512.
  uint32_t prefill_chunk = 512;
  // [engine] strata: offload through a BlockManager; false runs the engine alone (the
  // baseline without offload). Default true.
  bool strata_enabled = true;
  // [metrics] port of the Prometheus endpoint. 0 picks a free port. Default 6880.
  // Env: DYN_KVBM_METRICS_PORT (Dynamo's name), STRATA_METRICS_PORT (wins).
  uint16_t metrics_port = 6880;
  // [metrics] enabled: serve the metrics endpoint. Default true.
  bool metrics_enabled = true;

  // InvalidArgument naming the key ("engine.max_batch"), or OK. Besides each field's range,
  // server.port and metrics.port may not be the same non-zero port while metrics are enabled.
  Status Validate() const;
};

struct STRATA_EXPORT StrataConfig {
  BlockManagerOptions manager;
  // [daemon] group: `strata daemon` lets this group's members connect. Default: this user only.
  std::string daemon_group;
  // `strata serve` settings; BlockManager users can ignore them.
  ServeConfig serve;

  // The TOML file that was read, empty when none.
  std::string config_file;
  // True when config_file was named by $STRATA_CONFIG rather than by the caller.
  bool config_file_from_env = false;
  // Source of every value that is not a default, keyed by TOML name ("host.capacity_gb").
  std::map<std::string, ConfigSource, std::less<>> sources;
  // What a user should know about how values were resolved, e.g. a shadowed variable.
  std::vector<std::string> notes;

  // The source of `key`; a kDefault source for keys never overridden.
  ConfigSource SourceOf(std::string_view key) const;
};

// Reads one environment variable: its value, or nullopt when it is unset. Injected so
// tests and embedding engines never depend on the real process environment.
using EnvLookup = std::function<std::optional<std::string>(std::string_view name)>;

// The process environment (getenv). Not safe against a concurrent setenv, like getenv.
STRATA_EXPORT EnvLookup ProcessEnv();
// An environment holding exactly `vars`.
STRATA_EXPORT EnvLookup FixedEnv(std::map<std::string, std::string, std::less<>> vars);

// The built-in defaults (see the top of this file); every source is kDefault.
STRATA_EXPORT StrataConfig DefaultConfig();

// Resolves the configuration: DefaultConfig(), then the TOML file at `path_or_empty`
// (or $STRATA_CONFIG when empty; no file when both are empty), then the variables of
// `env`, then BlockManagerOptions::Validate() and ServeConfig::Validate().
// Returns:
//   IoError         the file cannot be opened or read (message names the path and errno)
//   InvalidArgument a TOML syntax error (names file, line, column); an unknown table or
//                   key, a wrong type, a bad enum name or an out-of-range number (names
//                   file:line:column and the key, e.g. "host.capacity_gb"); a malformed
//                   environment variable (names the variable and its value); a disk tier
//                   without a host tier (names both keys and their sources); or a
//                   resolved configuration that fails validation.
STRATA_EXPORT Result<StrataConfig> LoadConfig(const std::string& path_or_empty,
                                              const EnvLookup& env);

// As LoadConfig, with the TOML document `toml_text` in place of a file (an engine that
// embeds its Strata settings; the C API's strata_manager_create_from_toml). $STRATA_CONFIG
// is not read; the other variables of `env` are applied as usual. `name` stands for the
// document in error messages and in sources ("<string>:7"). config_file stays empty.
STRATA_EXPORT Result<StrataConfig> LoadConfigFromString(std::string_view toml_text,
                                                        const EnvLookup& env,
                                                        const std::string& name = "<string>");

// Multi-line, human-readable report: every setting with its value and source, then the
// derived sizes — block bytes, KV bytes per token, host capacity in bytes and GiB, host
// blocks (capacity / block bytes) and the tokens they hold, disk capacity in bytes and GiB,
// the disk record size (block rounded up to 4 KiB + a 4 KiB header), disk blocks
// (capacity / record size; region and file rounding may hold a few fewer) and their tokens —
// then notes (shadowed variables, the demo fingerprint, a relative disk directory).
STRATA_EXPORT std::string DescribeConfig(const StrataConfig& config);

}  // namespace strata
