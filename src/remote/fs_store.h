// FsStore: the G4 store on a shared filesystem (NFS, Lustre, WEKA, VAST, or a local
// directory several processes share). docs/shared_fs_tier.md is its written spec.
//
// One file per block, content-addressed by its key:
//   <directory>/strata-g4.meta                         format version and block size
//   <directory>/objects/<hex[0:2]>/<hex[2:4]>/<hex>.obj   object_format.h: header + payload
//   <directory>/trash/                                 evicted objects awaiting deletion
//
// Publication is atomic and safe with any number of writers on any number of nodes: the
// object is written to a temporary name unique to this node, synced, then linked to its
// final name without replacing (renameat2 RENAME_NOREPLACE, else link(2)); the loser of a
// race removes its temporary. Readers verify key, namespace fingerprint, length and
// checksum, and remove what fails. Eviction keeps the directory within a byte budget and
// is safe when every node evicts at once: an object used within the grace period is never
// evicted, and an evicted object is first moved to trash/ and deleted only a grace period
// later, so a reader that opened it keeps a valid file.
//
// Every file operation runs on a small pool of I/O threads under a deadline (io_timeout):
// a hung mount makes calls return TimedOut and marks the store unavailable, after which
// calls fail fast with Unavailable until a background probe finds the directory again.
//
// Thread-safe: any number of threads may call any method at once.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "strata/fault_injection.h"
#include "strata/remote_store.h"
#include "strata/status.h"

namespace strata {

struct FsStoreOptions {
  // The shared directory; created (with its parents) when missing. Required.
  std::string directory;
  // Budget for the bytes of all objects in the directory, shared by every node using it;
  // 0 = unlimited (no eviction). Each node's evictor enforces it. Default 0.
  uint64_t capacity_bytes = 0;
  // Payload bytes of every block (the layout's block size). Required; recorded in
  // strata-g4.meta, and every node must agree.
  size_t block_bytes = 0;
  // Read and write objects with O_DIRECT where the filesystem allows it; a filesystem
  // that refuses it (EINVAL: tmpfs before Linux 6.6, some FUSE and NFS setups) gets
  // buffered I/O and the reason in notes(). Default true.
  bool use_direct_io = true;
  // fdatasync each object before publishing it, so a published name never points at
  // data a crash can lose. Default true.
  bool fsync_on_publish = true;
  // Also fsync the shard directory after publishing, so the name itself survives a
  // crash. Default false: a lost name is only a cache miss.
  bool fsync_directory = false;
  // Threads doing file I/O; a batch keeps up to this many objects in flight (shared
  // filesystems reward concurrency). Default 4, at most 256.
  uint32_t io_threads = 4;
  // An object read or written within this period is never evicted, and an evicted object
  // stays readable (in trash/) this long; stale temporary files older than this are
  // removed. Must exceed the longest time one object I/O can take (io_timeout).
  // Default 30 s.
  std::chrono::milliseconds grace_period{30'000};
  // Period of the background eviction pass (jittered ±20% so nodes do not scan in step);
  // a node that wrote past the budget since its last pass starts one early. Default 10 s.
  std::chrono::milliseconds eviction_interval{10'000};
  // Run eviction passes on this node's background thread. false: only EvictNow() evicts
  // (tests, tools, or deployments where one node evicts for all to save directory scans;
  // the rule that makes concurrent eviction safe also makes one evictor enough). Default
  // true.
  bool background_eviction = true;
  // An eviction pass evicts down to this fraction of capacity_bytes, so it does not run
  // again for every new object. Default 0.95, in (0, 1].
  double eviction_target = 0.95;
  // A batch (or MatchPrefix) in which no object finished for this long returns TimedOut
  // for what is left and marks the store unavailable (the mount may be hung). A deadline
  // on progress, not on the whole batch, so large batches on slow filesystems are fine.
  // Default 10 s.
  std::chrono::milliseconds io_timeout{10'000};
  // HMAC-SHA256 key authenticating every object (object_auth.h); empty = none.
  std::string hmac_key;
  // A group sharing the store: directories 2770 and objects 0660 owned by it, instead of
  // 0750 / 0640. Empty = none.
  std::string group;
  // How often the background thread checks that the directory and its meta file are
  // still there. Default 1 s.
  std::chrono::milliseconds health_interval{1'000};
  // First wait before probing a store marked unavailable; doubles after every failed
  // probe up to max_retry_backoff. Defaults 250 ms and 10 s.
  std::chrono::milliseconds retry_backoff{250};
  std::chrono::milliseconds max_retry_backoff{10'000};
  // Names this writer in temporary file names, so writers on different nodes never pick
  // the same name (O_EXCL guards against a clash regardless). Default
  // "<hostname>.<pid>.<random hex>". No '/' or spaces.
  std::string node_id;
  // When strata-g4.meta records another format or block size: false (default) refuses
  // with InvalidArgument; true moves every existing object to trash/ (deleted a grace
  // period later) and rewrites the meta file. Other nodes still using the old block size
  // then see the store as unavailable. Never set this on a directory others rely on.
  bool reset_on_mismatch = false;
  // Tests: a fault plan consulted before each object read (kRead) and write (kWrite);
  // its delay emulates a hung mount. An EINVAL write fault at Create (the O_DIRECT probe)
  // or while O_DIRECT is on emulates a filesystem that refuses O_DIRECT.
  std::shared_ptr<FaultInjector> faults;

  Status Validate() const;
};

// What one eviction pass saw and did (every node's pass sees the whole directory).
struct FsStoreScan {
  uint64_t objects = 0;            // objects found
  uint64_t object_bytes = 0;       // their bytes, after this pass's evictions
  uint64_t trash_bytes = 0;        // evicted objects waiting out the grace period
  uint64_t protected_objects = 0;  // over budget, but used within the grace period
  uint64_t evicted = 0;            // objects this pass moved to trash/
  uint64_t temps_removed = 0;      // stale temporary files of crashed writers removed
  uint64_t trash_removed = 0;      // trash entries deleted after the grace period
  double seconds = 0;              // how long the pass took
};

class FsStore final : public RemoteStore {
 public:
  // Opens (or creates) the store in options.directory: creates the directory, objects/
  // and trash/ when missing, writes strata-g4.meta or checks the one found, probes
  // O_DIRECT and starts the I/O threads and the evictor. Errors: InvalidArgument for bad
  // options or a meta file of another format or block size (unless reset_on_mismatch);
  // IoError naming the path and errno when the directory cannot be used.
  static Result<std::unique_ptr<FsStore>> Create(const FsStoreOptions& options);
  // Stops the background threads and waits for in-flight I/O (up to about io_timeout;
  // threads stuck in a hung mount are left to finish on their own).
  ~FsStore() override;
  FsStore(const FsStore&) = delete;
  FsStore& operator=(const FsStore&) = delete;

  std::string_view kind() const override { return "fs"; }
  // "fs://<absolute directory>".
  std::string describe() const override;
  bool available() const override;

  // Per item: OK with written=true (published), OK with written=false (the object already
  // existed, or another writer published it first), IoError (ENOSPC, EACCES, ... naming
  // the file), Unavailable (store marked down; fails fast), TimedOut (io_timeout passed),
  // InvalidArgument (block of the wrong size).
  void PutBatch(std::span<Put> puts, const NamespaceFingerprint& ns) override;
  // Per item: OK (verified bytes in `out`), NotFound, Corruption (the object is removed),
  // Unavailable, TimedOut, IoError, InvalidArgument (out of the wrong size).
  void GetBatch(std::span<Get> gets, const NamespaceFingerprint& ns) override;
  // Stats every key's object in order, a wave of io_threads at a time, stopping at the
  // first miss. 0 when unavailable or timed out.
  size_t MatchPrefix(std::span<const BlockKey> keys) override;
  RemoteStoreStats stats() const override;

  // Why I/O is buffered, what Create reset, which publication method the filesystem
  // forced; "" when nothing happened.
  std::string notes() const;
  // Objects are read and written with O_DIRECT (false once the filesystem refused it).
  bool direct_io() const;
  // Runs one eviction pass now, on the calling thread (tests, tools). Unavailable while
  // the store is marked down.
  Result<FsStoreScan> EvictNow();
  // The latest eviction pass of this node (zeros before the first).
  FsStoreScan last_scan() const;
  // Where `key`'s object lives (tests, tools).
  std::string ObjectPath(const BlockKey& key) const;

  const FsStoreOptions& options() const;
  static constexpr const char* kMetaName = "strata-g4.meta";

 private:
  struct Shared;  // state shared with the I/O and background threads (fs_store.cc)
  explicit FsStore(std::shared_ptr<Shared> shared);
  std::shared_ptr<Shared> shared_;
};

}  // namespace strata
