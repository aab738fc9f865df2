// RemoteStore: the interface of G4, a store shared by many nodes (a shared filesystem, a
// Redis-protocol server or cluster). Every engine instance that points at the same store
// reuses the blocks any of them published. Strata has two (SharedTierKind kFilesystem and
// kRedis); a store of your own — another key-value service, an object store — implements
// this interface and goes into SharedTierOptions::store. Whole blocks move as opaque
// bytes under their BlockKey and the NamespaceFingerprint of the manager: what comes back
// from a get has been verified against its key, fingerprint, length and checksum, or it
// is not returned at all (the built-in stores keep a self-describing object per block).
//
// Contract for every implementation:
//   - thread-safe; calls from several threads may overlap;
//   - never blocks longer than its configured timeouts; while the backend is known to be
//     down (available() false) calls fail fast with Unavailable and count as misses;
//   - per-item results: one bad object never fails the rest of a batch;
//   - a corrupt, truncated or mismatched object is reported as Corruption with the
//     reason, and is removed (or left to be overwritten) so it is not served again.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "strata/block_key.h"
#include "strata/export.h"
#include "strata/namespace_fingerprint.h"
#include "strata/status.h"

namespace strata {

struct RemoteStoreStats {
  uint64_t puts = 0;                // objects published
  uint64_t puts_present = 0;        // puts skipped: the object already existed
  uint64_t put_errors = 0;          // puts that failed (status not OK)
  uint64_t gets = 0;                // gets that returned a verified block
  uint64_t get_misses = 0;          // gets of absent keys
  uint64_t get_corrupt = 0;         // objects that failed verification
  uint64_t get_errors = 0;          // gets that failed otherwise (I/O, timeout, unavailable)
  uint64_t bytes_written = 0;       // object bytes written (header + payload)
  uint64_t bytes_read = 0;          // object bytes read
  uint64_t unavailable_events = 0;  // times the store was marked unavailable
  uint64_t evictions = 0;           // objects this node removed to stay within budget
  bool available = true;
};

class STRATA_EXPORT RemoteStore {
 public:
  virtual ~RemoteStore() = default;

  // A short name: "fs" and "redis" for the built-in stores, your own for yours; used in
  // logs, metrics labels and notes.
  virtual std::string_view kind() const = 0;
  // Human-readable description of where the store is (directory, host:port list).
  virtual std::string describe() const = 0;
  // False while the backend is known to be down; calls then fail fast.
  virtual bool available() const = 0;

  struct Put {
    BlockKey key;
    std::span<const std::byte> block;  // exactly the block size (layout.block_bytes())
    Status status;                     // out: OK or why it failed
    bool written = false;              // out: false when the object already existed
  };
  // Publishes each block under its key as one object carrying `ns`. A key already present
  // is not rewritten (written=false, OK). Publication is atomic: a concurrent reader sees
  // the whole verified object or a miss, never a torn one.
  virtual void PutBatch(std::span<Put> puts, const NamespaceFingerprint& ns) = 0;

  struct Get {
    BlockKey key;
    std::span<std::byte> out;  // exactly the block size (layout.block_bytes())
    Status status;             // out: OK (verified bytes in `out`), NotFound, Corruption,
                               //      Unavailable, TimedOut or IoError, with the reason
  };
  // Reads each block, verifying key, fingerprint `ns`, length and checksum. `out` may
  // hold garbage for any item whose status is not OK.
  virtual void GetBatch(std::span<Get> gets, const NamespaceFingerprint& ns) = 0;

  // Length of the run of leading `keys` present in the store (existence only; a get may
  // still miss if another node evicts in between, or fail verification). One round trip
  // per batch where the backend allows it. 0 when unavailable.
  virtual size_t MatchPrefix(std::span<const BlockKey> keys) = 0;

  virtual RemoteStoreStats stats() const = 0;
};

}  // namespace strata
