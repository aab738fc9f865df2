// The transfer engine: every byte that moves between tiers goes through it.
//
// Shaped for fixed-size blocks, after NIXL: register memory regions once (host RAM,
// device memory, files), prepare descriptor lists over them once, then build a
// TransferRequest that pairs local and remote descriptors by index, post it, and poll
// or wait. A prepared request can be posted again and again with no allocation.
//
//   TransferEngine engine = *TransferEngine::Create({});
//   RegionId host = *engine.RegisterMemory({.type = MemoryType::kHost, .addr = p, .length = n});
//   RegionId file = *engine.RegisterFile({.fd = fd, .length = size, .direct = true, .name = path});
//   DescListId slots = *engine.PrepareDescList(host_block_descriptors);
//   DescListId disk  = *engine.PrepareDescList(file_block_descriptors);
//   auto req = *engine.CreateRequest(TransferOp::kWrite, slots, {0, 1, 2}, disk, {7, 8, 9});
//   engine.Post(*req); req->Wait(1s);  // then req->error(i) for each descriptor pair
//
// Each backend (memcpy, posix, io_uring, cuda) declares the memory-type pairs it moves;
// the engine picks one per request, or the caller names one. Failures are reported per
// descriptor with their reason (errno text, which descriptor, which file, which
// offset) — never as a silent success.
//
// Thread-safe: every method of TransferEngine may be called from any thread. One
// TransferRequest is posted by one thread at a time; its state may be read from any.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "strata/export.h"
#include "strata/status.h"

namespace strata {

enum class MemoryType : uint8_t {
  kHost,    // host RAM
  kDevice,  // accelerator memory (or host memory emulating it, see MemoryRegionDesc)
  kFile,    // a byte range of an open file
};
STRATA_EXPORT std::string_view MemoryTypeName(MemoryType type);  // "host", "device", "file"

// kRead moves remote -> local; kWrite moves local -> remote. Local is always memory.
enum class TransferOp : uint8_t { kRead, kWrite };
STRATA_EXPORT std::string_view TransferOpName(TransferOp op);

using RegionId = uint32_t;
using DescListId = uint32_t;

struct MemoryRegionDesc {
  MemoryType type = MemoryType::kHost;  // kHost or kDevice
  void* addr = nullptr;
  size_t length = 0;
  int device_id = 0;           // kDevice: the CUDA device ordinal
  bool host_emulated = false;  // kDevice: the "device" memory is host memory (CPU engine, tests)
  std::string name;            // for error messages; default "<type> region <id>"
};

class FaultInjector;  // strata/fault_injection.h

struct FileRegionDesc {
  int fd = -1;          // caller-owned; must stay open until DeregisterFile
  uint64_t length = 0;  // bytes addressable through this region (offset + length bounds)
  bool direct = false;  // fd has O_DIRECT: offsets, lengths and buffers must be aligned
  std::string name;     // the path, for error messages
  // Tests attach a fault plan: backends consult it on every I/O (strata/fault_injection.h).
  std::shared_ptr<FaultInjector> faults;
};

// A contiguous byte range of one registered region.
struct Descriptor {
  RegionId region = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
};

enum class BackendKind : uint8_t { kAuto, kMemcpy, kPosix, kIoUring, kCuda };
// "auto", "memcpy", "posix", "io_uring", "cuda".
STRATA_EXPORT std::string_view BackendKindName(BackendKind kind);
STRATA_EXPORT Result<BackendKind> ParseBackendKind(std::string_view name);

struct TransferEngineOptions {
  // memcpy backend: worker threads that split large batches. Default 2.
  uint32_t memcpy_threads = 2;
  // A memcpy request smaller than this runs on the posting thread. Default 1 MiB.
  uint64_t memcpy_inline_bytes = uint64_t{1} << 20;
  // TransferEngine::Execute copies a memcpy request of at most this many bytes on the
  // calling thread alone: waking the workers costs more than they save below about 2 MiB
  // on the development VM (docs/benchmarks.md). Default 2 MiB.
  uint64_t memcpy_execute_inline_bytes = uint64_t{2} << 20;
  // posix backend: pread/pwrite worker threads, each with its own queue. Default 4.
  uint32_t posix_threads = 4;
  // io_uring backend: number of rings (each with one completion thread) and the queue
  // depth of each. Defaults 1 and 64.
  uint32_t uring_rings = 1;
  uint32_t uring_queue_depth = 64;
  // io_uring: rings that TransferEngine::Execute borrows, one per concurrent caller, and
  // drives on the calling thread (submit, wait and reap in one io_uring_enter; no
  // completion thread). Each has the same queue depth and registrations as the shared
  // rings (registered buffers count against RLIMIT_MEMLOCK once per ring). Default 2;
  // 0 makes Execute use pread/pwrite for small requests.
  uint32_t uring_sync_rings = 2;
  // io_uring: register host regions as fixed buffers, so the kernel does not pin pages
  // on every I/O. Costs pinning the whole region at registration (about 1.4 s per GiB
  // on the development VM) and RLIMIT_MEMLOCK per ring. Default true.
  bool uring_register_buffers = true;
  // ... but only regions up to this size: pinning a multi-GiB host tier would delay
  // start-up (and a warm restart) by seconds, while the per-I/O pinning it saves is small
  // beside a block-sized transfer (docs/benchmarks.md). Default 256 MiB.
  uint64_t uring_register_buffers_max_bytes = uint64_t{256} << 20;
  // TransferEngine::Execute runs file requests of at most this many bytes on the calling
  // thread with pread/pwrite, when no io_uring caller ring is free (or there is no
  // io_uring). Default 1 MiB; 0 never.
  uint64_t inline_io_bytes = uint64_t{1} << 20;
  // Try io_uring at start-up; when the kernel refuses it, file transfers use posix and
  // the reason is logged and reported by backend_notes(). Default true.
  bool enable_io_uring = true;
};

enum class DescriptorState : uint8_t { kIdle, kPending, kDone, kFailed, kCancelled };
STRATA_EXPORT std::string_view DescriptorStateName(DescriptorState state);

namespace internal {
struct RequestImpl;
}

// A prepared transfer of N descriptor pairs. Created by TransferEngine::CreateRequest;
// posted with TransferEngine::Post. Destroying a request that is in flight waits for it.
class STRATA_EXPORT TransferRequest {
 public:
  ~TransferRequest();
  TransferRequest(const TransferRequest&) = delete;
  TransferRequest& operator=(const TransferRequest&) = delete;

  size_t size() const;  // descriptor pairs
  uint64_t total_bytes() const;
  TransferOp op() const;
  BackendKind backend() const;  // the backend that moves it
  // True when every descriptor of the current post reached a final state (or never posted).
  bool done() const;
  // Waits until done() or `timeout` passes: the first descriptor error if one failed,
  // Cancelled if cancelled, TimedOut if still running, OK otherwise.
  Status Wait(std::chrono::nanoseconds timeout) const;
  // OK, or the first failure's Status, once done(); TimedOut-free snapshot.
  Status status() const;
  DescriptorState state(size_t i) const;
  // Why descriptor pair i failed or was cancelled; OK otherwise.
  Status error(size_t i) const;
  // Descriptors that have not started are cancelled; started ones finish.
  void Cancel();

 private:
  friend class TransferEngine;
  explicit TransferRequest(std::unique_ptr<internal::RequestImpl> impl);
  std::unique_ptr<internal::RequestImpl> impl_;
};

class STRATA_EXPORT TransferEngine {
 public:
  static Result<std::unique_ptr<TransferEngine>> Create(const TransferEngineOptions& options);
  ~TransferEngine();
  TransferEngine(const TransferEngine&) = delete;
  TransferEngine& operator=(const TransferEngine&) = delete;

  // Registers host or device memory. InvalidArgument for a null/empty range;
  // NotSupported for real device memory without the CUDA backend.
  Result<RegionId> RegisterMemory(const MemoryRegionDesc& desc);
  // Registers an open file. With direct, the length must be a multiple of 4096.
  Result<RegionId> RegisterFile(const FileRegionDesc& desc);
  // NotFound for an unknown id; Busy-like InvalidArgument while a descriptor list uses it.
  Status Deregister(RegionId region);

  // Validates every descriptor (region exists, range inside it, O_DIRECT alignment for
  // direct files) once, so requests built from the list need no checks. All
  // descriptors of one list must be of one memory type.
  Result<DescListId> PrepareDescList(std::span<const Descriptor> descriptors);
  Status ReleaseDescList(DescListId list);

  // Pairs local[local_indices[i]] with remote[remote_indices[i]]; each pair must have
  // equal lengths. `backend` kAuto picks the best backend for the memory-type pair.
  Result<std::unique_ptr<TransferRequest>> CreateRequest(TransferOp op, DescListId local,
                                                         std::span<const uint32_t> local_indices,
                                                         DescListId remote,
                                                         std::span<const uint32_t> remote_indices,
                                                         BackendKind backend = BackendKind::kAuto);

  // Starts the request. InvalidArgument if it is still in flight.
  Status Post(TransferRequest& request);
  // Posts the request and waits for it: the request's status (OK, or the first failed
  // descriptor's reason). For callers that would wait at once anyway: a file request then
  // runs on the calling thread — through an io_uring ring this thread drives (any size), or
  // with pread/pwrite (up to `inline_io_bytes`) — with no hand-off to a worker or
  // completion thread, so its latency is the I/O's own; a memcpy request is copied on the
  // calling thread (up to `memcpy_execute_inline_bytes`) or by it and the workers together.
  Status Execute(TransferRequest& request);

  // Backends available in this process, in preference order.
  std::vector<BackendKind> backends() const;
  // Why a backend is missing or degraded ("io_uring: queue_init: Operation not permitted").
  std::string backend_notes() const;

 private:
  class Impl;
  explicit TransferEngine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace strata
