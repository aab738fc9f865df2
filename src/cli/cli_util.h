// What the `strata` subcommands share: exit codes, loading the configuration, GiB sizes on
// the command line, the tier flags of `strata serve` and `strata daemon`, stop signals.
#pragma once

#include <signal.h>

#include <cstdint>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "strata/config.h"
#include "strata/status.h"

namespace strata::cli {

inline constexpr int kExitRuntime = 1;
inline constexpr int kExitUsage = 2;

// The configuration from `config_path` and the environment; on error prints it to stderr.
Result<StrataConfig> LoadOrReport(const std::string& config_path);

inline constexpr double kBytesPerGiB = double(uint64_t{1} << 30);
uint64_t GiBToBytes(double gib);
std::string FormatGiB(uint64_t bytes);
// Sizes in GiB on the command line: finite, 0 (or, when `positive`, more than 0) up to 1 PiB.
CLI::Validator GiBSize(bool positive);

// --host-gb, --disk-dir, --disk-gb, --shared-fs, --shared-redis: each, when given, overrides
// the configuration.
struct TierFlags {
  std::optional<double> host_gb;
  std::optional<std::string> disk_dir;
  std::optional<double> disk_gb;
  std::optional<std::string> shared_fs;     // directory of a filesystem G4
  std::optional<std::string> shared_redis;  // host:port[,host:port...] of a Redis G4
};
void AddTierFlags(CLI::App* cmd, TierFlags* flags);
// InvalidArgument when both shared tiers are asked for.
Status ApplyTierFlags(const TierFlags& flags, BlockManagerOptions* options);

// Blocks SIGINT and SIGTERM in the calling thread so every thread started afterwards
// inherits the mask and the signals are only ever taken by sigwait().
sigset_t BlockStopSignals();

}  // namespace strata::cli
