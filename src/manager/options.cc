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
  STRATA_RETURN_IF_ERROR(host.Validate());
  if (host.capacity_bytes != 0 && host.capacity_bytes < layout.block_bytes())
    return Status::InvalidArgument(
        fmt::format("host.capacity_bytes {} is smaller than one block ({} bytes for {}); use 0 to "
                    "disable the tier",
                    host.capacity_bytes, layout.block_bytes(), layout.ToString()));
  return Status::Ok();
}

}  // namespace strata
