// What the `strata` subcommands share (see cli_util.h).
#include "cli/cli_util.h"

#include <cmath>

#include <fmt/format.h>

#include "cli/split.h"

namespace strata::cli {

Result<StrataConfig> LoadOrReport(const std::string& config_path) {
  Result<StrataConfig> config = LoadConfig(config_path, ProcessEnv());
  if (!config.ok()) fmt::print(stderr, "strata: {}\n", config.status().ToString());
  return config;
}

uint64_t GiBToBytes(double gib) {
  return static_cast<uint64_t>(gib * kBytesPerGiB);
}

std::string FormatGiB(uint64_t bytes) {
  return fmt::format("{:.2f} GiB", static_cast<double>(bytes) / kBytesPerGiB);
}

// CLI::Range lets NaN through and CLI::PositiveNumber prints DBL_MAX in full, so the check
// and its message are ours.
CLI::Validator GiBSize(bool positive) {
  return CLI::Validator(
      [positive](std::string& text) -> std::string {
        double v = 0;
        if (!CLI::detail::lexical_cast(text, v)) return fmt::format("'{}' is not a number", text);
        constexpr double kMaxGiB = 1024.0 * 1024.0;
        if (!std::isfinite(v) || v < 0 || (positive && v == 0) || v > kMaxGiB)
          return fmt::format("must be a finite number of GiB, {} {}; got {}",
                             positive ? "more than 0 and at most" : "from 0 to", kMaxGiB, text);
        return "";
      },
      positive ? "GiB>0" : "GiB");
}

void AddTierFlags(CLI::App* cmd, TierFlags* flags) {
  cmd->add_option("--host-gb", flags->host_gb,
                  "GiB of the G2 host tier (default: host.capacity_gb)")
      ->check(GiBSize(/*positive=*/false));
  cmd->add_option("--disk-dir", flags->disk_dir,
                  "Directory of the G3 disk tier (default: disk.directory)");
  cmd->add_option("--shared-fs", flags->shared_fs,
                  "Share KV blocks with other instances through this directory (a shared mount: "
                  "NFS, Lustre, WEKA, VAST...); the G4 tier")
      ->option_text("DIR");
  cmd->add_option("--shared-redis", flags->shared_redis,
                  "Share KV blocks with other instances through Redis/Valkey (one node or "
                  "cluster seeds); the G4 tier. Password: STRATA_SHARED_PASSWORD")
      ->option_text("HOST:PORT[,...]");
  cmd->add_option("--disk-gb", flags->disk_gb,
                  "GiB of the G3 disk tier; 0 disables it (default: disk.capacity_gb)")
      ->check(GiBSize(/*positive=*/false));
}

Status ApplyTierFlags(const TierFlags& flags, BlockManagerOptions* m) {
  if (flags.disk_dir) m->disk.directory = *flags.disk_dir;
  if (flags.disk_gb) m->disk.capacity_bytes = GiBToBytes(*flags.disk_gb);
  if (flags.host_gb) m->host.capacity_bytes = GiBToBytes(*flags.host_gb);
  if (flags.shared_fs && flags.shared_redis)
    return Status::InvalidArgument("--shared-fs and --shared-redis: choose one shared tier");
  if (flags.shared_fs) {
    m->shared.kind = SharedTierKind::kFilesystem;
    m->shared.directory = *flags.shared_fs;
  }
  if (flags.shared_redis) {
    m->shared.kind = SharedTierKind::kRedis;
    m->shared.endpoints = SplitComma(*flags.shared_redis);
  }
  return Status::Ok();
}

sigset_t BlockStopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

}  // namespace strata::cli
