// Typed options of each Strata component. Every field states its default; a config
// file and environment variables override them (strata/config.h).
#pragma once

#include <cstdint>
#include <string>

#include "strata/block_key.h"
#include "strata/layout.h"
#include "strata/status.h"
#include "strata/transfer.h"

namespace strata {

// G2: host RAM. One large allocation carved into block-sized slots.
struct HostTierOptions {
  // Bytes of block storage. Default 4 GiB. Env: DYN_KVBM_CPU_CACHE_GB (GiB, may be fractional).
  // 0 disables the host tier.
  uint64_t capacity_bytes = uint64_t{4} << 30;
  // Back the slots with explicit 2 MiB huge pages (MAP_HUGETLB), falling back to
  // transparent-huge-page advice when none are reserved. Default false.
  bool huge_pages = false;
  // Register the slots as pinned memory with CUDA (cudaHostRegister) when Strata is built
  // with CUDA and a device is present, so device<->host copies run at full speed. Default true.
  bool pin_for_cuda = true;

  Status Validate() const;
};

// The engine-facing BlockManager.
struct BlockManagerOptions {
  // Identity of the model weights (name, revision, digest); part of every block key. Required.
  std::string model_fingerprint;
  // Geometry of one KV block of this shard. Required.
  KvLayout layout;
  // Tensor-parallel rank and world size of this shard. Defaults 0 and 1.
  uint32_t rank = 0;
  uint32_t world_size = 1;
  // Block-key hash. Default SHA-256; XXH3-128 is faster but not collision-resistant.
  HashAlgorithm hash_algorithm = HashAlgorithm::kSha256;
  // G2 host tier.
  HostTierOptions host;
  // The transfer engine that moves blocks between tiers.
  TransferEngineOptions transfer;
  // Threads that run asynchronous loads and stores. Default 2.
  uint32_t worker_threads = 2;
  // Loads and stores that may wait for a worker; past this a store is dropped (counted)
  // and a load fails per block, so the engine never waits. Default 1024.
  uint32_t max_queued_ops = 1024;

  Status Validate() const;
};

}  // namespace strata
