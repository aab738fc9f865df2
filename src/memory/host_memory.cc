// HostBuffer: mmap-backed slot memory with optional huge pages and CUDA pinning.
#include "memory/host_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include <fmt/format.h>

#ifdef STRATA_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace strata {
namespace {
constexpr size_t kHugePage = size_t{2} << 20;

size_t RoundUp(size_t v, size_t to) {
  return (v + to - 1) / to * to;
}
}  // namespace

Result<std::unique_ptr<HostBuffer>> HostBuffer::Allocate(size_t bytes,
                                                         const HostBufferOptions& options) {
  if (bytes == 0) return Status::InvalidArgument("HostBuffer: size must be > 0");
  std::unique_ptr<HostBuffer> buf(new HostBuffer());
  buf->size_ = bytes;
  void* p = MAP_FAILED;
  if (options.huge_pages) {
    buf->mapped_ = RoundUp(bytes, kHugePage);
    p = mmap(nullptr, buf->mapped_, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
    if (p != MAP_FAILED) {
      buf->huge_pages_ = true;
    } else {
      buf->notes_ = fmt::format("MAP_HUGETLB refused ({}), using transparent huge pages; ",
                                strerrorname_np(errno));
    }
  }
  if (p == MAP_FAILED) {
    buf->mapped_ = RoundUp(bytes, static_cast<size_t>(sysconf(_SC_PAGESIZE)));
    p = mmap(nullptr, buf->mapped_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
      return Status::IoError(fmt::format("mmap of {} bytes for host tier", buf->mapped_), errno);
    if (options.huge_pages) madvise(p, buf->mapped_, MADV_HUGEPAGE);  // advice only; may be ignored
  }
  buf->data_ = static_cast<std::byte*>(p);

  if (options.pin_for_cuda) {
#ifdef STRATA_HAVE_CUDA
    int devices = 0;
    cudaError_t err = cudaGetDeviceCount(&devices);
    if (err == cudaSuccess && devices > 0) {
      err = cudaHostRegister(p, buf->mapped_, cudaHostRegisterPortable);
      if (err == cudaSuccess) {
        buf->pinned_ = true;
      } else {
        buf->notes_ += fmt::format("cudaHostRegister failed: {}; ", cudaGetErrorString(err));
      }
    } else {
      buf->notes_ += fmt::format("no CUDA device ({}), memory not pinned; ",
                                 err == cudaSuccess ? "0 devices" : cudaGetErrorString(err));
    }
#else
    buf->notes_ += "built without CUDA, memory not pinned; ";
#endif
  }
  if (options.prefault && !buf->pinned_) {  // pinning already faulted every page in
    HostBuffer* b = buf.get();
    b->prefault_thread_ = std::thread([b] { b->Prefault(); });
  }
  return buf;
}

void HostBuffer::Prefault() {
  // In chunks, so destruction can stop it and progress is visible. MADV_POPULATE_WRITE
  // (Linux 5.14) faults pages in writable without changing their contents, so it is safe
  // while other threads already write slots; on older kernels it fails and the pages fault
  // in on first use as they would have anyway.
  constexpr size_t kChunk = size_t{64} << 20;
  for (size_t off = 0; off < mapped_ && !stop_prefault_.load(std::memory_order_relaxed);
       off += kChunk) {
    const size_t len = std::min(kChunk, mapped_ - off);
    if (madvise(data_ + off, len, MADV_POPULATE_WRITE) != 0) return;
    prefaulted_.store(std::min(off + len, size_), std::memory_order_relaxed);
  }
}

HostBuffer::~HostBuffer() {
  if (prefault_thread_.joinable()) {
    stop_prefault_.store(true, std::memory_order_relaxed);
    prefault_thread_.join();
  }
  if (data_ == nullptr) return;
#ifdef STRATA_HAVE_CUDA
  if (pinned_) cudaHostUnregister(data_);
#endif
  munmap(data_, mapped_);
}

}  // namespace strata
