// Internal shapes shared by the transfer engine and its backends: registered regions,
// resolved transfer entries, the request state machine, and the backend interface.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "strata/fault_injection.h"
#include "strata/transfer.h"

namespace strata::internal {

// A registered region. Immutable after registration except for the backend fields,
// which backends set in OnRegister before the region is published.
struct RegionInfo {
  RegionId id = 0;
  MemoryType type = MemoryType::kHost;
  std::byte* addr = nullptr;  // memory regions
  uint64_t length = 0;
  int device_id = 0;
  bool host_emulated = false;
  int fd = -1;             // file regions
  bool direct = false;     // the fd has O_DIRECT
  uint32_t dio_align = 1;  // O_DIRECT offset/length alignment
  std::string name;
  std::shared_ptr<FaultInjector> faults;

  // io_uring: index of this file in every ring's registered file table, or -1.
  int32_t uring_file_index = -1;
  // io_uring: index of the first registered buffer covering this memory region (one
  // buffer per kUringBufferSpan bytes), or -1.
  int32_t uring_buffer_index = -1;
  // cuda: the host region was registered (pinned) with cudaHostRegister.
  bool cuda_pinned = false;

  // Host-addressable memory: host RAM or host-emulated device memory.
  bool host_addressable() const {
    return type == MemoryType::kHost || (type == MemoryType::kDevice && host_emulated);
  }
};

// io_uring registered buffers are limited to 1 GiB each; larger regions use several.
inline constexpr uint64_t kUringBufferSpan = uint64_t{1} << 30;

// One descriptor pair of a request, resolved to addresses once at CreateRequest.
struct XferEntry {
  std::byte* local = nullptr;   // local memory
  std::byte* remote = nullptr;  // remote memory, when the remote region is memory
  uint64_t remote_offset = 0;   // offset in the remote file, when it is a file
  uint64_t length = 0;
  int32_t uring_buffer = -1;  // registered buffer holding [local, local+length), or -1
  const RegionInfo* local_region = nullptr;
  const RegionInfo* remote_region = nullptr;
};

class TransferBackend;

struct RequestImpl {
  RequestImpl(TransferOp op, TransferBackend* backend, BackendKind kind,
              std::vector<XferEntry> entries);

  // Backends call Begin(i) right before moving entry i: false when the request was
  // cancelled, in which case entry i is already completed as kCancelled.
  bool Begin(size_t i);
  // Backends report each entry exactly once per post.
  void Complete(size_t i, Status status);

  // Resets states for a new post. Precondition: not in flight.
  void Arm();
  // True from Arm() until the last descriptor's completion has finished touching this
  // object, so a waiter that sees false may free it at once.
  bool in_flight() const { return busy.load(std::memory_order_acquire); }

  const TransferOp op;
  TransferBackend* const backend;
  const BackendKind kind;
  const std::vector<XferEntry> entries;
  uint64_t total_bytes = 0;

  std::unique_ptr<std::atomic<DescriptorState>[]> states;
  std::atomic<uint32_t> remaining{0};
  std::atomic<bool> busy{false};  // written under mu when it turns false
  std::atomic<uint32_t> failed{0};
  std::atomic<bool> cancel{false};
  mutable std::mutex mu;
  std::condition_variable cv;
  std::vector<Status> errors;  // GUARDED_BY(mu)

  // Keeps the regions (and the descriptor lists' view of them) alive while the request exists.
  std::vector<std::shared_ptr<const RegionInfo>> pins;
  // Backend-private per-request state (e.g. split plans); owned here, typed by the backend.
  std::shared_ptr<void> backend_state;
};

class TransferBackend {
 public:
  virtual ~TransferBackend() = default;
  virtual BackendKind kind() const = 0;
  // Whether this backend moves data between `local` memory and `remote`.
  virtual bool Supports(const RegionInfo& local, const RegionInfo& remote) const = 0;
  // Registration hooks, called with the region not yet visible to any request.
  virtual Status OnRegister(RegionInfo& /*region*/) { return Status::Ok(); }
  virtual void OnDeregister(RegionInfo& /*region*/) {}
  // Once per request, after entries are resolved: precompute whatever Post needs so
  // posting allocates nothing.
  virtual Status Prepare(RequestImpl& /*request*/) { return Status::Ok(); }
  // Starts every entry of an armed request; each entry is completed exactly once,
  // possibly before Post returns.
  virtual void Post(RequestImpl& request) = 0;
  // Moves every entry of an armed request on the calling thread and returns true, or
  // returns false (touching nothing) when this backend cannot or should not.
  virtual bool RunInline(RequestImpl& /*request*/) { return false; }
  // Called by a thread about to wait for a posted request: it may do work of that request
  // that no worker has started yet, so a waiter copies instead of sleeping through a
  // hand-off. Must return in bounded time (CPU work only, never I/O that may hang).
  virtual void Help(RequestImpl& /*request*/) {}
};

// Moves entries [begin, end) of `req` with pread/pwrite on the calling thread, honouring
// the file's fault injector, completing each entry.
void RunFileEntries(RequestImpl& req, uint32_t begin, uint32_t end);

// Interprets the result of one read/write syscall or io_uring completion for entry `e`:
// `result` is bytes moved or -errno. A short count is an error naming the shortfall.
Status IoResultStatus(TransferOp op, const XferEntry& e, int64_t result, uint64_t requested);

// Backends. Each factory returns an error naming why the backend is unavailable.
Result<std::unique_ptr<TransferBackend>> MakeMemcpyBackend(const TransferEngineOptions& options);
Result<std::unique_ptr<TransferBackend>> MakePosixBackend(const TransferEngineOptions& options);
Result<std::unique_ptr<TransferBackend>> MakeIoUringBackend(const TransferEngineOptions& options);
Result<std::unique_ptr<TransferBackend>> MakeCudaBackend(const TransferEngineOptions& options);

}  // namespace strata::internal
