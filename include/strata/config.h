// StrataConfig: Strata's resolved configuration (defaults < TOML file < environment) and
// a record of where every value came from.
//
// Precedence, lowest first:
//   1. Built-in defaults (DefaultConfig()): a demo model so `strata` runs with no config —
//      fingerprint "strata-demo", 32 layers x K/V x 8 KV heads x 128 head_dim, bf16,
//      16 tokens per block (the Llama-3-8B shape), a 4 GiB host tier.
//   2. A TOML file: the path passed to LoadConfig, or else $STRATA_CONFIG.
//   3. Environment variables.
//
// TOML keys (every key optional; unknown tables or keys are errors, not silently ignored):
//   [model]   fingerprint      string, non-empty
//   [layout]  num_layers       integer >= 1
//             kv_format        "kv" (separate K and V) | "latent" (MLA)
//             num_kv_heads     integer >= 1
//             head_dim         integer >= 1
//             dtype            "fp32" | "fp16" | "bf16" | "fp8_e4m3" | "fp8_e5m2" (ParseDType)
//             tokens_per_block integer >= 1
//             chunk_order      "nhd" | "hnd"
//   [keys]    hash             "sha256" | "xxh3_128"
//             rank             integer >= 0, < world_size
//             world_size       integer >= 1
//   [host]    capacity_gb      number >= 0, GiB (2^30 bytes), fractional allowed; 0 disables
//             huge_pages       boolean
//             pin_for_cuda     boolean
//   [manager] worker_threads   integer >= 1
//             max_queued_ops   integer >= 1
//
// Environment variables (an empty value counts as unset, so `VAR= strata` clears one):
//   STRATA_CONFIG            path of the TOML file, used when LoadConfig gets no path
//   DYN_KVBM_CPU_CACHE_GB    host.capacity_gb — NVIDIA Dynamo's name, same meaning
//   STRATA_HOST_CACHE_GB     host.capacity_gb; wins over DYN_KVBM_CPU_CACHE_GB when both are set
//   STRATA_MODEL_FINGERPRINT model.fingerprint
//   STRATA_HASH              keys.hash
//   STRATA_TP_RANK           keys.rank
//   STRATA_TP_WORLD_SIZE     keys.world_size
//   STRATA_WORKER_THREADS    manager.worker_threads
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "strata/options.h"
#include "strata/status.h"

namespace strata {

// Where one configuration value came from.
struct ConfigSource {
  enum class Kind : uint8_t { kDefault, kFile, kEnv };
  Kind kind = Kind::kDefault;
  std::string where;  // the file path (kFile), the variable name (kEnv), empty (kDefault)
  uint32_t line = 0;  // line in the file for kFile, else 0

  // "default", "file /etc/strata.toml:7", "env DYN_KVBM_CPU_CACHE_GB".
  std::string ToString() const;
  friend bool operator==(const ConfigSource&, const ConfigSource&) = default;
};

struct StrataConfig {
  BlockManagerOptions manager;

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
EnvLookup ProcessEnv();
// An environment holding exactly `vars`.
EnvLookup FixedEnv(std::map<std::string, std::string, std::less<>> vars);

// The built-in defaults (see the top of this file); every source is kDefault.
StrataConfig DefaultConfig();

// Resolves the configuration: DefaultConfig(), then the TOML file at `path_or_empty`
// (or $STRATA_CONFIG when empty; no file when both are empty), then the variables of
// `env`, then BlockManagerOptions::Validate().
// Returns:
//   IoError         the file cannot be opened or read (message names the path and errno)
//   InvalidArgument a TOML syntax error (names file, line, column); an unknown table or
//                   key, a wrong type, a bad enum name or an out-of-range number (names
//                   file:line:column and the key, e.g. "host.capacity_gb"); a malformed
//                   environment variable (names the variable and its value); or a
//                   resolved configuration that fails validation.
Result<StrataConfig> LoadConfig(const std::string& path_or_empty, const EnvLookup& env);

// Multi-line, human-readable report: every setting with its value and source, then the
// derived sizes — block bytes, KV bytes per token, host capacity in bytes and GiB, host
// blocks (capacity / block bytes) and the tokens they hold.
std::string DescribeConfig(const StrataConfig& config);

}  // namespace strata
