// Validation of the typed options structs.
#include "strata/options.h"

#include <fmt/format.h>

namespace strata {

Status HostTierOptions::Validate() const {
  // A tier larger than 2^31 slots or than the address space is a typo (GiB vs bytes).
  if (capacity_bytes > (uint64_t{1} << 46))
    return Status::InvalidArgument(
        fmt::format("host.capacity_bytes {} exceeds 64 TiB; is the unit right?", capacity_bytes));
  return Status::Ok();
}

std::string_view WriteModeName(WriteMode mode) {
  switch (mode) {
    case WriteMode::kWriteThrough:
      return "write_through";
    case WriteMode::kSelective:
      return "selective";
    case WriteMode::kWriteBack:
      return "write_back";
  }
  return "?";
}

Result<WriteMode> ParseWriteMode(std::string_view name) {
  for (WriteMode m : {WriteMode::kWriteThrough, WriteMode::kSelective, WriteMode::kWriteBack})
    if (name == WriteModeName(m)) return m;
  return Status::InvalidArgument(fmt::format(
      "unknown write mode '{}' (expected write_through, selective or write_back)", name));
}

std::string_view SharedTierKindName(SharedTierKind kind) {
  switch (kind) {
    case SharedTierKind::kNone:
      return "none";
    case SharedTierKind::kFilesystem:
      return "fs";
    case SharedTierKind::kRedis:
      return "redis";
  }
  return "?";
}

Result<SharedTierKind> ParseSharedTierKind(std::string_view name) {
  for (SharedTierKind k :
       {SharedTierKind::kNone, SharedTierKind::kFilesystem, SharedTierKind::kRedis})
    if (name == SharedTierKindName(k)) return k;
  return Status::InvalidArgument(
      fmt::format("unknown shared tier kind '{}' (expected none, fs or redis)", name));
}

Status SharedTierOptions::Validate() const {
  auto bad = [](std::string what) { return Status::InvalidArgument("shared." + std::move(what)); };
  if (kind == SharedTierKind::kFilesystem && directory.empty() && !store)
    return bad("directory must be set for a filesystem shared tier");
  if (kind == SharedTierKind::kRedis && endpoints.empty() && !store)
    return bad("endpoints must name at least one host:port for a Redis shared tier");
  if (io_timeout.count() <= 0) return bad("io_timeout must be > 0");
  if (writer_threads == 0 || writer_threads > 64) return bad("writer_threads must be 1..64");
  if (max_queued_writes == 0) return bad("max_queued_writes must be >= 1");
  if (!tls && (!tls_ca_file.empty() || !tls_cert_file.empty() || !tls_key_file.empty()))
    return bad("tls_* files are set but tls is off");
  if (!hmac_key.empty() && hmac_key.size() < 16)
    return bad(
        fmt::format("hmac_key has {} bytes; it needs at least 16 (e.g. 32 random hex "
                    "digits)",
                    hmac_key.size()));
  if (!group.empty() && kind == SharedTierKind::kRedis)
    return bad("group applies to a filesystem shared tier only");
  return Status::Ok();
}

Status HierarchyOptions::Validate() const {
  if (device_to_host == WriteMode::kWriteBack)
    return Status::InvalidArgument(
        "hierarchy.device_to_host cannot be write_back: the engine owns device memory and "
        "decides when a block leaves it; call Store from the engine's eviction path instead");
  if (min_sightings == 0) return Status::InvalidArgument("hierarchy.min_sightings must be >= 1");
  if (min_sightings > 255)
    return Status::InvalidArgument(
        fmt::format("hierarchy.min_sightings {} exceeds 255 (8-bit counters)", min_sightings));
  if (sightings_counters < 64 || sightings_counters > (1u << 30))
    return Status::InvalidArgument(
        fmt::format("hierarchy.sightings_counters {} must be in [64, 2^30]", sightings_counters));
  if (sightings_decay_period == 0)
    return Status::InvalidArgument("hierarchy.sightings_decay_period must be >= 1");
  if (staging_slots == 0 || staging_slots > 4096)
    return Status::InvalidArgument(
        fmt::format("hierarchy.staging_slots {} must be in [1, 4096]", staging_slots));
  if (writeback_slots == 0 || writeback_slots > 4096)
    return Status::InvalidArgument(
        fmt::format("hierarchy.writeback_slots {} must be in [1, 4096]", writeback_slots));
  if (disk_writer_threads == 0 || disk_writer_threads > 64)
    return Status::InvalidArgument(
        fmt::format("hierarchy.disk_writer_threads {} must be in [1, 64]", disk_writer_threads));
  return Status::Ok();
}

Status DaemonClientOptions::Validate() const {
  if (socket.empty()) return Status::Ok();
  if (socket.size() >= 108)
    return Status::InvalidArgument(
        fmt::format("daemon.socket '{}' is {} bytes; a Unix socket path must be shorter than 108",
                    socket, socket.size()));
  if (io_timeout.count() <= 0)
    return Status::InvalidArgument("daemon.io_timeout must be more than 0");
  if (reconnect_interval.count() < 0)
    return Status::InvalidArgument("daemon.reconnect_interval must not be negative");
  if (connections == 0 || connections > 256)
    return Status::InvalidArgument(
        fmt::format("daemon.connections must be 1..256, got {}", connections));
  return Status::Ok();
}

Status BlockManagerOptions::Validate() const {
  if (model_fingerprint.empty())
    return Status::InvalidArgument("BlockManagerOptions.model_fingerprint must not be empty");
  STRATA_RETURN_IF_ERROR(layout.Validate().WithContext("BlockManagerOptions.layout"));
  if (world_size == 0)
    return Status::InvalidArgument("BlockManagerOptions.world_size must be >= 1");
  if (rank >= world_size)
    return Status::InvalidArgument(
        fmt::format("BlockManagerOptions.rank {} must be below world_size {}", rank, world_size));
  if (hash_algorithm != HashAlgorithm::kSha256 && hash_algorithm != HashAlgorithm::kXxh3_128)
    return Status::InvalidArgument("BlockManagerOptions.hash_algorithm is not a known algorithm");
  if (worker_threads == 0 || worker_threads > 256)
    return Status::InvalidArgument(
        fmt::format("BlockManagerOptions.worker_threads must be 1..256, got {}", worker_threads));
  if (max_queued_ops == 0)
    return Status::InvalidArgument("BlockManagerOptions.max_queued_ops must be >= 1");
  STRATA_RETURN_IF_ERROR(daemon.Validate());
  if (!daemon.socket.empty()) return Status::Ok();  // the tiers are the daemon's
  STRATA_RETURN_IF_ERROR(host.Validate());
  if (host.capacity_bytes != 0 && host.capacity_bytes < layout.block_bytes())
    return Status::InvalidArgument(
        fmt::format("host.capacity_bytes {} is smaller than one block ({} bytes for {}); use 0 to "
                    "disable the tier",
                    host.capacity_bytes, layout.block_bytes(), layout.ToString()));
  STRATA_RETURN_IF_ERROR(hierarchy.Validate());
  if (disk.capacity_bytes > 0) {
    STRATA_RETURN_IF_ERROR(disk.Validate().WithContext("BlockManagerOptions.disk"));
    if (host.capacity_bytes == 0)
      return Status::InvalidArgument(
          "the disk tier needs the host tier: blocks move device <-> host <-> disk (set "
          "host.capacity_bytes > 0, or disk.capacity_bytes = 0)");
  }
  if (shared.enabled()) {
    STRATA_RETURN_IF_ERROR(shared.Validate());
    if (host.capacity_bytes == 0)
      return Status::InvalidArgument(
          "the shared tier needs the host tier: blocks move device <-> host <-> shared store "
          "(set host.capacity_bytes > 0, or shared.kind = none)");
  }
  return Status::Ok();
}

}  // namespace strata
