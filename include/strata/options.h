// Typed options of each Strata component. Every field states its default; a config
// file and environment variables override them (strata/config.h).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "strata/admission.h"
#include "strata/block_key.h"
#include "strata/export.h"
#include "strata/fault_injection.h"
#include "strata/layout.h"
#include "strata/remote_store.h"
#include "strata/status.h"
#include "strata/transfer.h"

namespace strata {

// G2: host RAM. One large allocation carved into block-sized slots.
struct STRATA_EXPORT HostTierOptions {
  // Bytes of block storage. Default 4 GiB. Env: DYN_KVBM_CPU_CACHE_GB (GiB, may be fractional).
  // 0 disables the host tier.
  uint64_t capacity_bytes = uint64_t{4} << 30;
  // Back the slots with explicit 2 MiB huge pages (MAP_HUGETLB), falling back to
  // transparent-huge-page advice when none are reserved. Default true: with 4 KiB pages
  // O_DIRECT reads into G2 reached only 0.52-0.79 of fio (docs/benchmarks.md).
  bool huge_pages = true;
  // Fault the slots in on a background thread after start-up, so the first stores and
  // loads do not pay for first touch (seconds per GiB on some VMs) and start-up is not
  // delayed either. Default true.
  bool prefault = true;
  // Register the slots as pinned memory with CUDA (cudaHostRegister) when Strata is built
  // with CUDA and a device is present, so device<->host copies run at full speed. Default true.
  bool pin_for_cuda = true;

  Status Validate() const;
};

// Why a key left the disk tier's index (DiskTierOptions::on_remove).
enum class DiskRemoval : uint8_t {
  kEvicted,     // its region was reclaimed to make room
  kLoadFailed,  // a Read found it corrupt, mismatched or unreadable
};

// G3: local disk. Large preallocated segment files under one directory, written in
// regions and reclaimed region by region; durable across restarts (docs/disk_format.md).
struct STRATA_EXPORT DiskTierOptions {
  // Directory of the tier's files; created when missing. Default "./strata-cache".
  // Env: DYN_KVBM_DISK_CACHE_DIR.
  std::string directory = "./strata-cache";
  // Bytes of disk the tier may use. Default 0: no disk tier (`strata serve` and the
  // config file default to 8 GiB). Env: DYN_KVBM_DISK_CACHE_GB.
  uint64_t capacity_bytes = 0;
  // Size of each preallocated segment file, rounded down to whole regions (at least one),
  // capped by the capacity. Default 1 GiB.
  uint64_t file_bytes = uint64_t{1} << 30;
  // Largest size of a region, the unit of reclaim, rounded down to whole records (at least
  // one). Default 64 MiB. A tier smaller than min_regions such regions uses smaller ones.
  uint64_t region_bytes = uint64_t{64} << 20;
  // Regions the capacity is split into at least (as long as a region keeps one record):
  // regions shrink below region_bytes to reach it, so a few leased blocks or writes in
  // flight can never pin most of a small disk and leave only the region just written to
  // reclaim. 1 keeps regions of exactly region_bytes. Default 32 (so tiers of 2 GiB and
  // more keep 64 MiB regions). A directory holding a tier made with min_regions = 1
  // (before this option existed) keeps its geometry.
  uint32_t min_regions = 32;
  // Open segment files with O_DIRECT. When the filesystem refuses it (EINVAL, e.g. tmpfs)
  // the tier uses buffered I/O and says why in notes() and the log. Default true.
  bool use_direct_io = true;
  // fdatasync the segment file before a Write is acknowledged. Default false: an
  // acknowledged block survives a crash or kill -9 of the process (the write completed
  // into the kernel or the device) but not necessarily a power loss or kernel crash;
  // with true it survives those too, at the cost of a device flush per write.
  bool sync_on_write = false;
  // When the directory holds a tier of another format, layout or geometry: false (the
  // default) refuses to open with an error saying what differs; true wipes it.
  bool reset_on_mismatch = false;
  // Transfer-engine backend for file I/O. Default kAuto (io_uring when available, else posix).
  BackendKind backend = BackendKind::kAuto;
  // Staging buffers of one record each: the most staged reads and writes in flight at
  // once (callers beyond it wait for a buffer). Default 16.
  uint32_t io_depth = 16;
  // Called for every key that leaves the index by eviction or a failed load, with the
  // tier's lock held: must be quick and must not call into the DiskTier. Default none.
  std::function<void(const BlockKey&, DiskRemoval)> on_remove;
  // Tests: a fault plan attached to every segment file (strata/fault_injection.h).
  std::shared_ptr<FaultInjector> faults;

  Status Validate() const;
};

// G4: a store shared by many nodes, so a prefix one engine instance computed is reused by
// every other. Blocks are published write-through from G2 (in the background, never
// waited for) and found by Match where the local tiers stop; loads stage through G2.
enum class SharedTierKind : uint8_t {
  kNone,        // no shared tier (default)
  kFilesystem,  // NFS, Lustre, WEKA, VAST or any POSIX mount (docs/shared_fs_tier.md)
  kRedis,       // Redis or Valkey, one node or a cluster (docs/redis_tier.md)
};
STRATA_EXPORT std::string_view SharedTierKindName(SharedTierKind kind);  // "none", "fs", "redis"
STRATA_EXPORT Result<SharedTierKind> ParseSharedTierKind(std::string_view name);

struct STRATA_EXPORT SharedTierOptions {
  SharedTierKind kind = SharedTierKind::kNone;
  // kFilesystem: the shared directory (created when missing), and the bytes this node
  // keeps it within by evicting the least recently used objects (0 = no budget).
  std::string directory;
  uint64_t capacity_bytes = 0;
  // kFilesystem: objects used within this long are never evicted by any node (a reader on
  // another node may have them open). Default 30 s.
  std::chrono::milliseconds grace_period{30000};
  // kRedis: "host:port" of each node (a cluster needs one or more; the slot map is read
  // from them), AUTH user (may be empty) and password (empty: no AUTH).
  std::vector<std::string> endpoints;
  bool cluster = false;
  std::string username;
  std::string password;
  // kRedis over TLS: CA file to verify the server, optional client certificate and key,
  // the name to verify (default: the host of the endpoint).
  bool tls = false;
  std::string tls_ca_file, tls_cert_file, tls_key_file, tls_server_name;
  bool tls_verify_peer = true;
  // kRedis: prefix of every key ("strata:" + hex key), and an expiry for published
  // objects (0 = none: the server's maxmemory policy evicts).
  std::string key_prefix = "strata:";
  uint32_t ttl_seconds = 0;
  // Longest a shared-tier call may take before it fails (and, for Redis, the node is
  // marked down and retried with backoff). Default 2 s.
  std::chrono::milliseconds io_timeout{2000};
  // Threads publishing blocks and the blocks that may wait for them; past it a
  // publication is dropped (counted). Defaults 1 and 256.
  uint32_t writer_threads = 1;
  uint32_t max_queued_writes = 256;
  // Copy a block loaded from G4 into G2 so its next load is local. Default true.
  bool promote_hits = true;
  // Authenticates every object with HMAC-SHA256 under this key (at least 16 bytes; every
  // node sharing the tier needs the same one): objects are written with a tag, and one
  // without a valid tag is refused and removed as forged. Empty (default): XXH3 checksums
  // only, which detect corruption, not forgery (docs/shared_fs_tier.md, "Trust").
  std::string hmac_key;
  // kFilesystem: a group whose members share the store (several users' servers): the
  // directories become 2770 and the objects 0660, owned by that group. Empty (default):
  // 0750 / 0640, writable by this user only.
  std::string group;
  // A store of your own (strata/remote_store.h), or a test's: used instead of opening one
  // from `kind`.
  std::shared_ptr<RemoteStore> store;

  bool enabled() const { return kind != SharedTierKind::kNone || store != nullptr; }
  Status Validate() const;
};

// When a block written into one tier is copied into the tier below it.
enum class WriteMode : uint8_t {
  kWriteThrough,  // as soon as the block is complete in the upper tier
  kSelective,     // once the block has been seen min_sightings times (a frequency filter)
  kWriteBack,     // only when the upper tier evicts it (G2 -> G3 only)
};
// "write_through", "selective", "write_back".
STRATA_EXPORT std::string_view WriteModeName(WriteMode mode);
STRATA_EXPORT Result<WriteMode> ParseWriteMode(std::string_view name);

// How blocks move between the tiers of a BlockManager.
struct STRATA_EXPORT HierarchyOptions {
  // G1 -> G2 (BlockManager::Store): kWriteThrough (default: every stored block enters the
  // host tier) or kSelective (only blocks seen min_sightings times; others are kDropped).
  // kWriteBack is refused: the engine owns G1 and decides when its blocks are evicted, so
  // "write-back" there means calling Store from the engine's eviction path.
  WriteMode device_to_host = WriteMode::kWriteThrough;
  // G2 -> G3. Default kWriteThrough: every block stored in G2 is also written to disk
  // (durable at once); kSelective protects the SSD's endurance; kWriteBack writes a block
  // only when G2 evicts it (blocks that live and die in G2 never touch the disk).
  WriteMode host_to_disk = WriteMode::kWriteThrough;
  // kSelective: sightings (a prompt whose full blocks include the key, counted at Match)
  // a block needs before it is admitted. Default 2 (Dynamo's "seen twice").
  uint32_t min_sightings = 2;
  // The frequency filter forgets: every `sightings_decay_period` sightings all counts halve.
  // Default 1M. Counters: `sightings_counters` 8-bit cells (memory). Default 1M.
  uint64_t sightings_decay_period = uint64_t{1} << 20;
  uint32_t sightings_counters = 1u << 20;
  // Disk write budget, bytes per second (token bucket, one second of burst); blocks over
  // budget are not written (counted as admission rejects). 0 = unlimited (default).
  uint64_t disk_write_bytes_per_sec = 0;
  // Replaces the built-in G2 -> G3 admission (frequency filter + write budget).
  std::shared_ptr<AdmissionPolicy> disk_admission;
  // Copy a block loaded from G3 into G2 so its next load is a host hit. Default true.
  // With false, G3 loads stage through a small reserved set of host slots.
  bool promote_disk_hits = true;
  // Host slots reserved for staging G3 loads that do not promote (or find G2 full),
  // allocated beside G2 (32 x block bytes: 64 MiB for 2 MiB blocks). Default 32.
  uint32_t staging_slots = 32;
  // kWriteBack: host slots that hold evicted blocks until they are on disk (the evicted
  // slot itself is reused at once). With all of them busy, an eviction is not written
  // back (counted as dropped). Allocated beside G2 in write-back mode only. Default 64.
  uint32_t writeback_slots = 64;
  // Threads that write blocks to G3 (offload), separate from the load/store workers so
  // a slow disk never delays a load from G2. Default 2.
  uint32_t disk_writer_threads = 2;
  // Blocks queued for or being written by the disk writers (each holds its G2 slot until
  // written). Default 0: sized from G2, half of its blocks (at least disk_writer_threads x
  // 32), so the queue holds several whole prompts yet never pins more than half of G2.
  uint32_t max_queued_disk_writes = 0;
  // When the queue is full, a G2 block bound for disk waits in a backlog by key (32 bytes,
  // no G2 slot held; at most G2's capacity) and is queued once the writers catch up, if G2
  // still holds it; only a block G2 evicted first is dropped (counted). false: dropped at
  // once (as before this option existed). Default true. Never waits either way.
  bool defer_disk_writes = true;

  Status Validate() const;
};

// Told how long each finished load and store took (metrics: latency histograms). Called on
// the BlockManager's worker threads: must be thread-safe and quick.
class STRATA_EXPORT BlockManagerObserver {
 public:
  virtual ~BlockManagerObserver() = default;
  // A Load finished: `seconds` from the Load call to its last block's final state;
  // `from_disk` of its blocks were read from G3, `failed` failed or were cancelled.
  virtual void OnLoadDone(double seconds, size_t blocks, size_t from_disk, size_t failed) = 0;
  // A Store's blocks reached G2: `seconds` from the Store call (the copy to G3, if any,
  // goes on in the background and is not included).
  virtual void OnStoreDone(double seconds, size_t blocks) = 0;
};

// Client mode: the tiers (G2, G3, G4 and their policies) are those of a `strata daemon` on
// this node, shared with its other clients; G2 is the daemon's shared memory, mapped here, so
// blocks still move between the device and G2 directly (docs/daemon.md).
struct STRATA_EXPORT DaemonClientOptions {
  // The daemon's Unix socket. Empty (default): the tiers live in this process, configured
  // by the host/disk/hierarchy/shared options; with a socket those are the daemon's.
  // Env: STRATA_DAEMON_SOCKET.
  std::string socket;
  // Longest one call to the daemon may take before it fails and the connection is dropped:
  // Match then misses and loads and stores fail per block; nothing waits longer. Default 5 s.
  std::chrono::milliseconds io_timeout{5000};
  // Once the daemon is lost, calls fail at once and a reconnect is tried at most this
  // often. Default 200 ms.
  std::chrono::milliseconds reconnect_interval{200};
  // Sockets to the daemon, one call at a time each, so concurrent calls do not queue
  // behind a slow one. Default 8.
  uint32_t connections = 8;
  Status Validate() const;
};

// The engine-facing BlockManager.
struct STRATA_EXPORT BlockManagerOptions {
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
  // G3 disk tier (off unless disk.capacity_bytes > 0; needs the host tier).
  DiskTierOptions disk;
  // Write modes, admission and promotion between the tiers.
  HierarchyOptions hierarchy;
  // G4 shared tier (off unless shared.kind is set; needs the host tier).
  SharedTierOptions shared;
  // The transfer engine that moves blocks between tiers.
  TransferEngineOptions transfer;
  // Threads that run asynchronous loads and stores. Default 2.
  uint32_t worker_threads = 2;
  // Loads and stores that may wait for a worker; past this a store is dropped (counted)
  // and a load fails per block, so the engine never waits. Default 1024.
  uint32_t max_queued_ops = 1024;
  // Latency reports for metrics. Default none.
  std::shared_ptr<BlockManagerObserver> observer;
  // Attach to a `strata daemon` instead of owning the tiers (client mode). Default: off.
  DaemonClientOptions daemon;

  Status Validate() const;
};

}  // namespace strata
