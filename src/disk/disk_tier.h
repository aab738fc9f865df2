// DiskTier (G3): a durable, region-structured block store on local disk.
//
// Blocks are stored as self-describing records (a 4 KiB header with key, namespace
// fingerprint, length, checksums and sequence number, then the block) in large
// preallocated segment files. Records append into the open region; when no region is free
// the oldest region without leased or in-flight records is reclaimed whole (FIFO, after
// CacheLib Navy; never the region just filled while there is another), so random inserts
// become sequential writes. Regions are small enough that a tier has at least
// DiskTierOptions::min_regions of them. The index (key -> record)
// lives in memory and is rebuilt from the record headers on Open, so a restart or a kill -9
// loses no acknowledged block. The format is specified in docs/disk_format.md.
//
// Every byte moves through the shared TransferEngine: segment files are registered as file
// regions (O_DIRECT when the filesystem allows it), records are staged through an aligned,
// registered buffer pool, or move straight from/to caller memory registered with
// RegisterHostMemory (e.g. the G2 host tier's slots).
//
// A record is:  free -> writing (Write allocated it) -> ready (the write completed) ->
//               free (its region was reclaimed, or a Read found it bad and its last lease ended).
// A writing record is indexed, so a concurrent Write of the same key is deduplicated, but it
// is never matched. Leased and writing records pin their region against reclaim.
//
// Blocking API: Write and Read return when the I/O has completed. They are meant to be
// called from the BlockManager's worker threads, never from the engine's thread; many may
// run at once (up to DiskTierOptions::io_depth staged I/Os, more when zero-copy).
//
// Thread-safe. Index and region state take one mutex for short critical sections; I/O and
// checksums run outside it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "disk/disk_format.h"
#include "strata/block_key.h"
#include "strata/fault_injection.h"
#include "strata/layout.h"
#include "strata/options.h"
#include "strata/status.h"
#include "strata/transfer.h"
#include "tier/block_index.h"

namespace strata {

class HostBuffer;
namespace disk {
class DiskFiles;
}

// Result of DiskTier::Write that is not an error.
enum class DiskWriteOutcome : uint8_t {
  kWritten,   // stored and acknowledged: it survives a restart (see sync_on_write)
  kPresent,   // the key is already stored; nothing written
  kInFlight,  // another Write of the key is in progress; nothing written
  kNoSpace,   // every region but the newest holds leased or in-flight records; nothing
              // written (drop it)
};
std::string_view DiskWriteOutcomeName(DiskWriteOutcome outcome);

struct DiskTierStats {
  uint64_t capacity_records = 0;
  uint64_t block_bytes = 0;
  uint64_t record_bytes = 0;
  uint64_t records_per_region = 0;
  uint64_t regions = 0;
  uint64_t used_records = 0;    // ready + writing + failed-but-still-leased
  uint64_t leased_records = 0;  // records with at least one lease
  uint64_t free_regions = 0;    // never written since Open/reclaim
  // Writes.
  uint64_t writes = 0;           // kWritten
  uint64_t write_present = 0;    // kPresent
  uint64_t write_in_flight = 0;  // kInFlight
  uint64_t write_no_space = 0;   // kNoSpace
  uint64_t write_errors = 0;     // Write returned an error; nothing was indexed
  uint64_t bytes_written = 0;    // record bytes written by acknowledged writes
  // Reads.
  uint64_t reads = 0;                // Read returned OK
  uint64_t read_errors = 0;          // I/O errors on Read
  uint64_t corruptions = 0;          // header, key, fingerprint, length or checksum mismatches
  uint64_t invalidated_records = 0;  // corrupt records whose header was zeroed on disk
  uint64_t bytes_read = 0;           // record bytes read by successful reads
  uint64_t zero_copy_ios = 0;        // reads and writes that moved the block without a copy
  // Reclaim.
  uint64_t evictions = 0;  // records dropped by region reclaim
  uint64_t regions_reclaimed = 0;
  // Memory: index + per-record state + per-region state.
  uint64_t index_bytes = 0;
  double index_bytes_per_record = 0;
  // Recovery at Open.
  uint64_t recovered_records = 0;
  uint64_t recovery_invalid_headers = 0;  // torn, bit-flipped or foreign headers skipped
  uint64_t recovery_stale_records = 0;    // valid headers from a reclaimed region's older epoch
  uint64_t recovery_duplicates = 0;       // older copies of a key dropped
  double recovery_seconds = 0;
  bool direct_io = false;
};

class DiskTier {
 public:
  static constexpr uint32_t kNoRecord = UINT32_MAX;

  // Creates the tier in options.directory, or recovers the tier found there: every record
  // header is read, valid records are indexed (the newest copy of each key wins). `engine`
  // is shared and must outlive the tier. Errors: InvalidArgument for bad options or a
  // directory holding another layout/geometry (unless reset_on_mismatch); Unavailable when
  // another tier holds the directory; IoError (ENOSPC when the disk is too small for
  // capacity_bytes) naming the file.
  static Result<std::unique_ptr<DiskTier>> Open(const DiskTierOptions& options,
                                                const KvLayout& layout, TransferEngine* engine);
  // Syncs the segment files (a clean shutdown survives power loss) and releases the
  // directory. No call may be in progress and no lease held.
  ~DiskTier();
  DiskTier(const DiskTier&) = delete;
  DiskTier& operator=(const DiskTier&) = delete;

  // Registers caller memory (e.g. the host tier's slots) so Write and Read move blocks that
  // lie inside it straight to and from the disk, without a staging copy. With O_DIRECT a
  // block must also start on a 4 KiB boundary and block_bytes be a multiple of 4 KiB;
  // other blocks are staged. The memory must outlive the tier.
  Status RegisterHostMemory(void* base, size_t length, std::string_view name);

  // Stores `block` (block_bytes() bytes) under `key` with fingerprint `ns`, blocking until
  // the record is written (and synced with sync_on_write). `block` must not change during
  // the call. Returns an outcome, or an error (IoError with the file, offset and errno,
  // e.g. ENOSPC or a short write) in which case nothing was indexed: the key stays absent.
  Result<DiskWriteOutcome> Write(const BlockKey& key, const NamespaceFingerprint& ns,
                                 const std::byte* block);

  // One block of WriteBatch: `key` and its `block` in; `status` and `outcome` out.
  struct BatchWrite {
    BlockKey key;
    const std::byte* block = nullptr;
    Status status;                                          // OK, or the error Write would return
    DiskWriteOutcome outcome = DiskWriteOutcome::kNoSpace;  // valid when status is OK
  };
  // Writes every block like Write, with their I/Os in flight together (as many at a time
  // as there are staging buffers, more when zero-copy). Returns when all completed.
  void WriteBatch(std::span<BatchWrite> blocks, const NamespaceFingerprint& ns);

  // True when `key` is stored and ready.
  bool Contains(const BlockKey& key) const;
  // Leases `key` if it is ready: returns its record number, or kNoRecord on a miss.
  uint32_t Lease(const BlockKey& key);
  // Length of the run of leading `keys` that are ready here. With `leases` non-null each
  // of those records is leased and appended to it (release each with Unlease).
  size_t MatchPrefix(std::span<const BlockKey> keys, std::vector<uint32_t>* leases);
  // Ends one lease of `record` / of each record.
  void Unlease(uint32_t record);
  void Unlease(std::span<const uint32_t> records);

  // Reads leased `record` into `out` (block_bytes() bytes), verifying the header (magic,
  // version, checksum, record number), key == `expected`, fingerprint == `ns`, length,
  // region epoch and payload checksum. Returns OK only for a verified block. Otherwise
  // Corruption (any mismatch) or IoError (the read failed), both with the reason, and the
  // record leaves the index: a block that failed to load is never served again; `out` may
  // then hold garbage. InvalidArgument when `record` is not leased or holds another key;
  // NotFound when the record already failed a load under another lease. The lease is
  // still the caller's to Unlease either way.
  Status Read(uint32_t record, const BlockKey& expected, const NamespaceFingerprint& ns,
              std::byte* out);

  // One block of ReadBatch: a leased `record` expected to hold `key`, read into `out`.
  struct BatchRead {
    uint32_t record = kNoRecord;
    BlockKey key;
    std::byte* out = nullptr;
    Status status;  // out: what Read would return
  };
  // Reads every block like Read, with their I/Os in flight together.
  void ReadBatch(std::span<BatchRead> blocks, const NamespaceFingerprint& ns);

  // Keys of every ready record (e.g. to announce a warm tier's contents after Open).
  std::vector<BlockKey> Keys() const;
  // fdatasync of every segment file.
  Status Flush();

  // Where a record lives (tools, tests).
  struct Location {
    std::string path;
    uint64_t offset = 0;
  };
  Location Locate(uint32_t record) const;

  const disk::DiskGeometry& geometry() const { return geometry_; }
  size_t block_bytes() const { return geometry_.block_bytes; }
  uint32_t capacity_records() const { return geometry_.num_records; }
  bool direct_io() const;
  // Why I/O is buffered, what Open wiped or repaired; "" when nothing happened.
  const std::string& notes() const;
  DiskTierStats stats() const;

 private:
  enum class RecordState : uint8_t { kFree, kWriting, kReady, kFailed };
  // 4 bytes a record: state and lease count. A kFailed record left the index after a bad
  // Read but is still leased; its last Unlease frees it.
  struct Record {
    static constexpr uint32_t kMaxLeases = (1u << 30) - 1;
    uint32_t leases : 30 = 0;
    uint32_t state_bits : 2 = 0;
    RecordState state() const { return static_cast<RecordState>(state_bits); }
    void set_state(RecordState s) { state_bits = static_cast<uint32_t>(s); }
  };
  static_assert(sizeof(Record) == 4);

  struct Region {
    uint64_t epoch = 0;   // global order in which regions were opened; 0 = never (free)
    uint32_t fill = 0;    // records appended since the region was opened
    uint32_t pinned = 0;  // writing records + leases: the region may not be reclaimed
    bool in_fifo = false;
  };

  struct HostRange {
    std::byte* base;
    size_t length;
    RegionId region;
  };

  struct Staging;  // the aligned, registered staging pool

  DiskTier(const DiskTierOptions& options, const KvLayout& layout, TransferEngine* engine,
           const disk::DiskGeometry& geometry, std::unique_ptr<disk::DiskFiles> files);
  Status Init();
  Status Recover();
  // The geometry Open asks the directory for: regions of at most region_bytes, and at
  // least min_regions of them; or the geometry of a tier there made before min_regions.
  static Result<disk::DiskGeometry> ChooseGeometry(const DiskTierOptions& options,
                                                   const KvLayout& layout);

  // Record allocation (REQUIRES(mu_)): the next slot of the open region, else a free region,
  // else the oldest reclaimable region other than the newest. kNoRecord when there is none.
  uint32_t AllocateLocked();
  uint32_t OpenRegionLocked(uint32_t region);
  bool ReclaimLocked(uint32_t* region);
  uint32_t LeaseLocked(const BlockKey& key);
  void UnleaseLocked(uint32_t record);
  void RemoveLocked(uint32_t record, DiskRemoval why);  // ready -> out of the index

  // A prepared I/O of `record`. The header always moves through staging buffer
  // `staging_slot`; the block moves straight from/to `block` in `host` memory when given
  // (zero-copy), else through the same staging buffer.
  Result<std::unique_ptr<TransferRequest>> RecordRequest(TransferOp op, uint32_t record,
                                                         uint32_t staging_slot,
                                                         const std::optional<HostRange>& host,
                                                         const std::byte* block);
  // Posts every request, then waits for each however long it takes (their memory is in
  // use until then). (*results)[i] is request i's status.
  void RunRequests(std::vector<std::unique_ptr<TransferRequest>>& requests,
                   std::vector<Status>* results);
  // ReadBatch's phase 3 (REQUIRES(mu_)): counts, and takes failed blocks out of the index;
  // appends the records that failed verification to `corrupt`.
  void FinishReadsLocked(std::span<BatchRead> blocks, const std::vector<size_t>& todo,
                         const std::vector<bool>& zero_copy, std::vector<uint32_t>* corrupt);
  // Zeroes `record` on disk so no later recovery indexes it. Blocking.
  Status InvalidateOnDisk(uint32_t record);
  // The registered range `p`'s block can move to/from without a copy, if any.
  std::optional<HostRange> FindHostRange(const std::byte* p) const;
  Status VerifyRecord(uint32_t record, const std::byte* header, const std::byte* payload,
                      const BlockKey& expected, const NamespaceFingerprint& ns,
                      uint64_t epoch) const;

  const DiskTierOptions options_;
  const KvLayout layout_;
  TransferEngine* const engine_;
  const disk::DiskGeometry geometry_;
  std::unique_ptr<disk::DiskFiles> files_;
  std::vector<RegionId> file_regions_;  // engine region of each segment file
  std::unique_ptr<Staging> staging_;

  mutable std::mutex host_mu_;
  std::vector<HostRange> host_ranges_;  // GUARDED_BY(host_mu_)

  mutable std::mutex mu_;
  BlockIndex index_;                    // GUARDED_BY(mu_)
  std::vector<Record> records_;         // GUARDED_BY(mu_)
  std::vector<Region> regions_;         // GUARDED_BY(mu_)
  std::vector<uint32_t> fifo_;          // GUARDED_BY(mu_) opened regions, oldest first
  std::vector<uint32_t> free_regions_;  // GUARDED_BY(mu_) stack, lowest number on top
  uint32_t open_region_ = UINT32_MAX;   // GUARDED_BY(mu_) region being appended to
  uint64_t next_sequence_ = 1;          // GUARDED_BY(mu_)
  uint64_t next_epoch_ = 1;             // GUARDED_BY(mu_)
  uint64_t used_ = 0, leased_ = 0;      // GUARDED_BY(mu_)
  DiskTierStats counters_;              // GUARDED_BY(mu_) the event counters of stats()
};

}  // namespace strata
