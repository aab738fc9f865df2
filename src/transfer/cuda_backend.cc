// CUDA backend: moves bytes between host and device memory (or device to device) with
// cudaMemcpyAsync on a small per-device pool of streams, reporting each descriptor pair.
//
// Plain C++ over the CUDA runtime API (no nvcc). Compiled only when the build found the
// toolkit (STRATA_HAVE_CUDA); otherwise MakeCudaBackend says the build lacks it.
//
// Shape of a post:
//   Prepare  once per request: entries are cut into chunks (contiguous entry ranges of one
//            device, of similar bytes, at most one per stream) and a per-entry flag array is
//            allocated, so Post allocates nothing.
//   Post     per chunk: Begin(i) and cudaMemcpyAsync every entry on one of the device's
//            streams, take a preallocated completion slot (its own cudaEvent_t), record the
//            event after the copies and hand the slot to the device's completion thread.
//   Complete the device's completion thread waits for each slot's event in order, then
//            completes the chunk's entries with OK or with the CUDA error naming the
//            descriptor pair, the direction and the CUDA error text.
// Slots are the bound of the completion queue: Post blocks while all of a device's slots
// are in flight, and the queue (a ring of that many entries) can never overflow.
//
// Device state (streams, events, completion thread) is created when the first region of a
// device is registered, not at start-up: creating a context costs hundreds of MiB of device
// memory, and an inference server typically runs one process per GPU, so a process touches
// only the devices it registers memory on.
//
// Files are not supported: GPUDirect Storage (cuFile) between files and device memory is
// future work; today file <-> device moves stage through host memory in the tiers above.
//
// Thread-safe: Supports, OnRegister, OnDeregister, Prepare and Post may be called from any
// thread. Post saves and restores the calling thread's current CUDA device.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#ifdef STRATA_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

#include "transfer/request.h"

namespace strata::internal {

#ifdef STRATA_HAVE_CUDA
namespace {

// Streams per device a request's chunks are spread over: enough to overlap copies in
// both directions and keep the copy engines busy, few enough that chunks stay large.
constexpr uint32_t kStreamsPerDevice = 4;
// Chunks in flight per device (each holds one preallocated event). Post waits for a free
// slot beyond this.
constexpr uint32_t kSlotsPerDevice = 256;
// Requests smaller than streams x this use fewer streams: an extra stream costs an event
// record, a completion hand-off and a wake-up, which small copies do not repay.
constexpr uint64_t kMinChunkBytes = uint64_t{256} << 10;

// "invalid argument (cudaErrorInvalidValue)"
std::string CudaErrorText(cudaError_t err) {
  return fmt::format("{} ({})", cudaGetErrorString(err), cudaGetErrorName(err));
}

// A failed CUDA call as a Status: the code callers branch on, the context and the CUDA text.
// Also clears the runtime's last-error slot, so a handled failure does not surface later in
// the application's own cudaGetLastError().
Status CudaStatus(cudaError_t err, std::string_view context) {
  (void)cudaGetLastError();
  std::string msg = fmt::format("{}: {}", context, CudaErrorText(err));
  switch (err) {
    case cudaErrorInvalidValue:
    case cudaErrorInvalidDevice:
    case cudaErrorInvalidDevicePointer:
    case cudaErrorInvalidMemcpyDirection:
      return Status::InvalidArgument(std::move(msg));
    case cudaErrorMemoryAllocation:
      return Status::ResourceExhausted(std::move(msg));
    default:
      // Driver, device and hardware failures (no device, ECC, launch failure, lost
      // device): the device cannot be used right now.
      return Status::Unavailable(std::move(msg));
  }
}

bool IsMemory(const RegionInfo& r) {
  return r.type == MemoryType::kHost || r.type == MemoryType::kDevice;
}
bool IsRealDevice(const RegionInfo& r) {
  return r.type == MemoryType::kDevice && !r.host_emulated;
}

// "device region 'kv0'+4096"
std::string Where(const RegionInfo& r, const std::byte* p) {
  return fmt::format("{} region '{}'+{}", MemoryTypeName(r.type), r.name, p - r.addr);
}

// Why descriptor pair i of `req` failed: the pair, the direction and the CUDA error.
Status EntryError(const RequestImpl& req, size_t i, std::string_view call, cudaError_t err) {
  const XferEntry& e = req.entries[i];
  const std::string local = Where(*e.local_region, e.local);
  const std::string remote = Where(*e.remote_region, e.remote);
  const bool read = req.op == TransferOp::kRead;
  return CudaStatus(err, fmt::format("cuda {} of descriptor pair {} ({} -> {}, {} bytes): {}",
                                     TransferOpName(req.op), i, read ? remote : local,
                                     read ? local : remote, e.length, call));
}

const char* MemoryTypeText(cudaMemoryType type) {
  switch (type) {
    case cudaMemoryTypeUnregistered:
      return "unregistered host memory";
    case cudaMemoryTypeHost:
      return "pinned host memory";
    case cudaMemoryTypeDevice:
      return "device memory";
    case cudaMemoryTypeManaged:
      return "managed memory";
  }
  return "unknown memory";
}

// What CUDA knows of an address. Pageable memory is reported as unregistered (older
// drivers fail the query for it instead; that is treated the same way).
cudaPointerAttributes PointerAttributes(const void* p) {
  cudaPointerAttributes attrs{};
  if (cudaPointerGetAttributes(&attrs, p) != cudaSuccess) {
    (void)cudaGetLastError();
    attrs = cudaPointerAttributes{};
    attrs.type = cudaMemoryTypeUnregistered;
  }
  return attrs;
}

// Makes `device` current on the calling thread for a scope, then restores whatever the
// thread had: posting never changes the caller's CUDA state.
class DeviceScope {
 public:
  DeviceScope() {
    if (cudaGetDevice(&saved_) != cudaSuccess) {
      (void)cudaGetLastError();
      saved_ = -1;
    }
    current_ = saved_;
  }
  ~DeviceScope() {
    if (saved_ >= 0 && current_ != saved_) (void)cudaSetDevice(saved_);
  }
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;

  cudaError_t Use(int device) {
    if (device == current_) return cudaSuccess;
    const cudaError_t err = cudaSetDevice(device);
    if (err == cudaSuccess) current_ = device;
    return err;
  }

 private:
  int saved_ = -1;
  int current_ = -1;
};

// How Post left each entry, read by the completion thread for the entry's chunk.
enum class EntryFate : uint8_t {
  kNone,      // cancelled (Begin returned false) or failed at enqueue: already completed
  kEnqueued,  // copy enqueued: the completion thread completes it
};

class DeviceQueue;

// A contiguous range of a request's entries moved on one device's stream.
struct Chunk {
  DeviceQueue* device = nullptr;
  uint32_t begin = 0;
  uint32_t end = 0;
};

// Per-request state built by Prepare; request.backend_state owns it.
struct CudaRequestState {
  std::vector<Chunk> chunks;
  // Written by Post before the chunk's slot is queued, read by the completion thread after
  // it is dequeued (the queue's mutex orders the two).
  std::unique_ptr<EntryFate[]> fates;
};

// One chunk in flight: the event recorded after its copies and what to complete after it.
struct Slot {
  cudaEvent_t event = nullptr;
  RequestImpl* request = nullptr;
  const CudaRequestState* state = nullptr;
  uint32_t begin = 0;
  uint32_t end = 0;
};

// Completes the enqueued entries of [begin, end) with `err`. The request's last completion
// may let its owner destroy it (and `state`), so the last Complete call is the last touch.
void FinishChunk(RequestImpl& req, const CudaRequestState& state, uint32_t begin, uint32_t end,
                 cudaError_t err, std::string_view call) {
  uint32_t last = end;
  for (uint32_t i = end; i > begin; --i) {
    if (state.fates[i - 1] == EntryFate::kEnqueued) {
      last = i - 1;
      break;
    }
  }
  if (last == end) return;
  for (uint32_t i = begin; i < last; ++i) {
    if (state.fates[i] != EntryFate::kEnqueued) continue;
    req.Complete(i, err == cudaSuccess ? Status::Ok() : EntryError(req, i, call, err));
  }
  req.Complete(last, err == cudaSuccess ? Status::Ok() : EntryError(req, last, call, err));
}

// One device's streams, completion slots and completion thread.
class DeviceQueue {
 public:
  static Result<std::unique_ptr<DeviceQueue>> Create(int device) {
    std::unique_ptr<DeviceQueue> q(new DeviceQueue(device));
    DeviceScope scope;
    if (cudaError_t err = scope.Use(device); err != cudaSuccess)
      return CudaStatus(err, fmt::format("cuda device {}: cudaSetDevice", device));
    for (cudaStream_t& s : q->streams_) {
      if (cudaError_t err = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
          err != cudaSuccess)
        return CudaStatus(err, fmt::format("cuda device {}: cudaStreamCreateWithFlags", device));
    }
    q->slots_.resize(kSlotsPerDevice);
    q->free_.reserve(kSlotsPerDevice);
    q->ring_.resize(kSlotsPerDevice);
    for (Slot& slot : q->slots_) {
      // Blocking sync: the completion thread sleeps in cudaEventSynchronize instead of
      // spinning a core; no timing: recording is cheaper.
      if (cudaError_t err =
              cudaEventCreateWithFlags(&slot.event, cudaEventDisableTiming | cudaEventBlockingSync);
          err != cudaSuccess)
        return CudaStatus(err, fmt::format("cuda device {}: cudaEventCreateWithFlags", device));
      q->free_.push_back(&slot);
    }
    q->thread_ = std::thread([raw = q.get()] { raw->CompletionLoop(); });
    return q;
  }

  // Drains every chunk in flight (so each posted entry is completed), then frees the
  // streams and events.
  ~DeviceQueue() {
    if (thread_.joinable()) {
      {
        std::lock_guard lock(mu_);
        stopping_ = true;
      }
      work_cv_.notify_all();
      thread_.join();
    }
    DeviceScope scope;
    (void)scope.Use(device_);
    for (cudaStream_t s : streams_) {
      if (s == nullptr) continue;
      (void)cudaStreamSynchronize(s);
      (void)cudaStreamDestroy(s);
    }
    for (Slot& slot : slots_)
      if (slot.event != nullptr) (void)cudaEventDestroy(slot.event);
    (void)cudaGetLastError();  // e.g. cudaErrorCudartUnloading at process exit
  }

  int device() const { return device_; }

  // Round-robin over the streams, so concurrent requests spread out too.
  cudaStream_t NextStream() {
    return streams_[next_stream_.fetch_add(1, std::memory_order_relaxed) % kStreamsPerDevice];
  }

  // A free slot; waits while all are in flight.
  Slot* Acquire() {
    std::unique_lock lock(mu_);
    free_cv_.wait(lock, [this] { return !free_.empty(); });
    Slot* slot = free_.back();
    free_.pop_back();
    return slot;
  }

  void Release(Slot* slot) {
    {
      std::lock_guard lock(mu_);
      free_.push_back(slot);
    }
    free_cv_.notify_one();
  }

  // Hands a slot whose event is recorded to the completion thread.
  void Submit(Slot* slot) {
    {
      std::lock_guard lock(mu_);
      ring_[(head_ + count_) % kSlotsPerDevice] = slot;
      ++count_;  // never exceeds kSlotsPerDevice: each queued slot came from free_
    }
    work_cv_.notify_one();
  }

 private:
  explicit DeviceQueue(int device) : device_(device) {}

  void CompletionLoop() {
    // Events belong to this device; waiting on them from its context avoids a switch.
    if (cudaSetDevice(device_) != cudaSuccess) (void)cudaGetLastError();
    for (;;) {
      Slot* slot = nullptr;
      {
        std::unique_lock lock(mu_);
        work_cv_.wait(lock, [this] { return count_ > 0 || stopping_; });
        if (count_ == 0) return;  // stopping, and everything posted has been completed
        slot = ring_[head_];
        head_ = (head_ + 1) % kSlotsPerDevice;
        --count_;
      }
      cudaError_t err = cudaEventQuery(slot->event);
      if (err == cudaErrorNotReady) err = cudaEventSynchronize(slot->event);
      RequestImpl& req = *slot->request;
      const CudaRequestState& state = *slot->state;
      const uint32_t begin = slot->begin, end = slot->end;
      Release(slot);  // the event has fired; Post may record it again
      FinishChunk(req, state, begin, end, err, "copy failed on the device stream");
    }
  }

  const int device_;
  cudaStream_t streams_[kStreamsPerDevice] = {};
  std::atomic<uint32_t> next_stream_{0};
  std::vector<Slot> slots_;  // fixed after Create; events live as long as the queue

  std::mutex mu_;
  std::condition_variable free_cv_;  // a slot was released
  std::condition_variable work_cv_;  // a slot was submitted, or stopping_
  std::vector<Slot*> free_;          // GUARDED_BY(mu_); capacity kSlotsPerDevice
  std::vector<Slot*> ring_;          // GUARDED_BY(mu_); submitted slots, FIFO
  uint32_t head_ = 0;                // GUARDED_BY(mu_)
  uint32_t count_ = 0;               // GUARDED_BY(mu_)
  bool stopping_ = false;            // GUARDED_BY(mu_)
  std::thread thread_;
};

class CudaBackend final : public TransferBackend {
 public:
  explicit CudaBackend(int device_count)
      : device_count_(device_count),
        queues_(std::make_unique<std::atomic<DeviceQueue*>[]>(device_count)),
        owned_(device_count) {
    for (int d = 0; d < device_count_; ++d) queues_[d].store(nullptr, std::memory_order_relaxed);
  }

  // Each device's queue drains its chunks in flight before its streams are destroyed.
  ~CudaBackend() override = default;

  BackendKind kind() const override { return BackendKind::kCuda; }

  bool Supports(const RegionInfo& local, const RegionInfo& remote) const override {
    return IsMemory(local) && IsMemory(remote) && (IsRealDevice(local) || IsRealDevice(remote));
  }

  Status OnRegister(RegionInfo& region) override {
    if (region.type == MemoryType::kFile) return Status::Ok();  // no GPUDirect Storage yet
    if (IsRealDevice(region)) return RegisterDevice(region);
    return RegisterHost(region);
  }

  void OnDeregister(RegionInfo& region) override {
    if (!region.cuda_pinned) return;
    region.cuda_pinned = false;
    if (cudaError_t err = cudaHostUnregister(region.addr); err != cudaSuccess) {
      (void)cudaGetLastError();
      spdlog::warn("strata cuda: cudaHostUnregister of {} region '{}' failed: {}",
                   MemoryTypeName(region.type), region.name, CudaErrorText(err));
    }
  }

  Status Prepare(RequestImpl& req) override {
    auto state = std::make_shared<CudaRequestState>();
    const size_t n = req.entries.size();
    state->fates = std::make_unique<EntryFate[]>(n);
    const uint64_t target =
        std::max(kMinChunkBytes, (req.total_bytes + kStreamsPerDevice - 1) / kStreamsPerDevice);
    uint64_t chunk_bytes = 0;
    for (size_t i = 0; i < n; ++i) {
      const XferEntry& e = req.entries[i];
      if (!Supports(*e.local_region, *e.remote_region))
        return Status::InvalidArgument(fmt::format(
            "cuda: descriptor pair {} moves {} <-> {}; the CUDA backend needs device memory on "
            "one side and memory on both",
            i, MemoryTypeName(e.local_region->type), MemoryTypeName(e.remote_region->type)));
      // The device side decides the stream; for device <-> device, the local device.
      const int device =
          IsRealDevice(*e.local_region) ? e.local_region->device_id : e.remote_region->device_id;
      STRATA_ASSIGN_OR_RETURN(DeviceQueue * queue, Queue(device));
      if (state->chunks.empty() || state->chunks.back().device != queue || chunk_bytes >= target) {
        state->chunks.push_back({queue, static_cast<uint32_t>(i), static_cast<uint32_t>(i)});
        chunk_bytes = 0;
      }
      state->chunks.back().end = static_cast<uint32_t>(i + 1);
      chunk_bytes += e.length;
    }
    req.backend_state = std::move(state);
    return Status::Ok();
  }

  void Post(RequestImpl& req) override {
    const auto* state = static_cast<const CudaRequestState*>(req.backend_state.get());
    if (state == nullptr) {  // a bug in the engine: Prepare was skipped
      for (size_t i = 0; i < req.entries.size(); ++i)
        if (req.Begin(i)) req.Complete(i, Status::Internal("cuda: request posted unprepared"));
      return;
    }
    // The caller owns `req` until Post returns, so touching it after the completion
    // thread may have finished earlier chunks is safe.
    DeviceScope scope;
    for (const Chunk& chunk : state->chunks) PostChunk(req, *state, chunk, scope);
  }

 private:
  void PostChunk(RequestImpl& req, const CudaRequestState& cstate, const Chunk& chunk,
                 DeviceScope& scope) {
    // Post is the only writer of the fates, between Arm and the chunk's Submit.
    EntryFate* fates = cstate.fates.get();
    DeviceQueue& queue = *chunk.device;
    if (cudaError_t err = scope.Use(queue.device()); err != cudaSuccess) {
      for (uint32_t i = chunk.begin; i < chunk.end; ++i) {
        fates[i] = EntryFate::kNone;
        if (req.Begin(i)) req.Complete(i, EntryError(req, i, "cudaSetDevice", err));
      }
      return;
    }
    cudaStream_t stream = queue.NextStream();
    uint32_t enqueued = 0;
    for (uint32_t i = chunk.begin; i < chunk.end; ++i) {
      fates[i] = EntryFate::kNone;
      if (!req.Begin(i)) continue;  // cancelled: already completed
      const XferEntry& e = req.entries[i];
      void* dst = req.op == TransferOp::kRead ? e.local : e.remote;
      const void* src = req.op == TransferOp::kRead ? e.remote : e.local;
      if (cudaError_t err = cudaMemcpyAsync(dst, src, e.length, cudaMemcpyDefault, stream);
          err != cudaSuccess) {
        req.Complete(i, EntryError(req, i, "cudaMemcpyAsync", err));
        continue;
      }
      fates[i] = EntryFate::kEnqueued;
      ++enqueued;
    }
    if (enqueued == 0) return;

    Slot* slot = queue.Acquire();
    if (cudaError_t err = cudaEventRecord(slot->event, stream); err != cudaSuccess) {
      // Without the event nothing can tell when the copies end: wait for the stream here,
      // so no entry is reported before its bytes have landed.
      (void)cudaGetLastError();
      queue.Release(slot);
      const cudaError_t sync = cudaStreamSynchronize(stream);
      FinishChunk(req, cstate, chunk.begin, chunk.end, sync,
                  "cudaEventRecord failed, then cudaStreamSynchronize");
      return;
    }
    slot->request = &req;
    slot->state = &cstate;
    slot->begin = chunk.begin;
    slot->end = chunk.end;
    queue.Submit(slot);
  }

  Status RegisterDevice(const RegionInfo& region) {
    if (region.device_id < 0 || region.device_id >= device_count_)
      return Status::InvalidArgument(
          fmt::format("device region '{}' names device {}, but this process sees {} CUDA "
                      "device(s)",
                      region.name, region.device_id, device_count_));
    // Both ends, so a range running off its allocation into host memory is caught too.
    for (const std::byte* p : {region.addr, region.addr + region.length - 1}) {
      const cudaPointerAttributes attrs = PointerAttributes(p);
      const bool device_memory =
          attrs.type == cudaMemoryTypeDevice || attrs.type == cudaMemoryTypeManaged;
      if (!device_memory || attrs.device != region.device_id)
        return Status::InvalidArgument(fmt::format(
            "device region '{}' ({} bytes at {}): byte {} is {}{}, not device memory of "
            "device {}",
            region.name, region.length, static_cast<const void*>(region.addr), p - region.addr,
            MemoryTypeText(attrs.type),
            device_memory ? fmt::format(" of device {}", attrs.device) : std::string(),
            region.device_id));
    }
    return Queue(region.device_id).status();
  }

  // Pins host memory so copies are true DMA and run asynchronously; failing to pin only
  // makes them slower (staged pageable copies), so it is logged, not returned.
  Status RegisterHost(RegionInfo& region) {
    const cudaPointerAttributes attrs = PointerAttributes(region.addr);
    if (attrs.type == cudaMemoryTypeDevice)
      return Status::InvalidArgument(fmt::format(
          "{} region '{}' is device memory of device {}; register it as MemoryType::kDevice",
          MemoryTypeName(region.type), region.name, attrs.device));
    // Already pinned (cudaHostAlloc or registered by its owner) or managed: nothing to do,
    // and not ours to unpin.
    if (attrs.type != cudaMemoryTypeUnregistered) return Status::Ok();
    const cudaError_t err = cudaHostRegister(region.addr, region.length, cudaHostRegisterPortable);
    if (err == cudaSuccess) {
      region.cuda_pinned = true;
    } else {
      (void)cudaGetLastError();
      spdlog::warn(
          "strata cuda: cannot pin {} region '{}' ({} bytes): cudaHostRegister: {}; its copies "
          "to and from devices will be pageable and slower",
          MemoryTypeName(region.type), region.name, region.length, CudaErrorText(err));
    }
    return Status::Ok();
  }

  // The queue of `device`, created on first use.
  Result<DeviceQueue*> Queue(int device) {
    if (device < 0 || device >= device_count_)
      return Status::InvalidArgument(
          fmt::format("cuda: device {} out of range ({} CUDA device(s))", device, device_count_));
    if (DeviceQueue* q = queues_[device].load(std::memory_order_acquire)) return q;
    std::lock_guard lock(init_mu_);
    if (DeviceQueue* q = queues_[device].load(std::memory_order_acquire)) return q;
    STRATA_ASSIGN_OR_RETURN(owned_[device], DeviceQueue::Create(device));
    queues_[device].store(owned_[device].get(), std::memory_order_release);
    return owned_[device].get();
  }

  const int device_count_;
  // Lock-free lookup for Prepare; entries go from null to a queue once, under init_mu_.
  std::unique_ptr<std::atomic<DeviceQueue*>[]> queues_;
  std::mutex init_mu_;
  std::vector<std::unique_ptr<DeviceQueue>> owned_;  // GUARDED_BY(init_mu_) for writes
};

}  // namespace

Result<std::unique_ptr<TransferBackend>> MakeCudaBackend(const TransferEngineOptions& /*options*/) {
  int devices = 0;
  const cudaError_t err = cudaGetDeviceCount(&devices);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    return Status::Unavailable(fmt::format("no CUDA device: {}", cudaGetErrorString(err)));
  }
  if (devices <= 0)
    return Status::Unavailable("no CUDA device: cudaGetDeviceCount found 0 devices");
  return std::unique_ptr<TransferBackend>(new CudaBackend(devices));
}

#else  // !STRATA_HAVE_CUDA

Result<std::unique_ptr<TransferBackend>> MakeCudaBackend(const TransferEngineOptions& /*options*/) {
  return Status::NotSupported("built without the CUDA toolkit");
}

#endif  // STRATA_HAVE_CUDA

}  // namespace strata::internal
