// HostBuffer: mmap-backed slot memory with optional huge pages and CUDA pinning.
#include "memory/host_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
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
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  void* p = MAP_FAILED;
  if (options.shared) {
    // A memfd, sealed against shrinking so a client's mapping can never lose its pages.
    if (options.huge_pages) {
      buf->fd_ = memfd_create("strata-g2", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB);
      buf->mapped_ = RoundUp(bytes, kHugePage);
      if (buf->fd_ >= 0 && ftruncate(buf->fd_, static_cast<off_t>(buf->mapped_)) == 0) {
        p = mmap(nullptr, buf->mapped_, PROT_READ | PROT_WRITE, MAP_SHARED, buf->fd_, 0);
      }
      if (p != MAP_FAILED) {
        buf->huge_pages_ = true;
      } else {
        buf->notes_ = fmt::format("hugetlbfs memfd refused ({}), using transparent huge pages; ",
                                  strerrorname_np(errno));
        if (buf->fd_ >= 0) close(buf->fd_);
        buf->fd_ = -1;
      }
    }
    if (p == MAP_FAILED) {
      buf->fd_ = memfd_create("strata-g2", MFD_CLOEXEC | MFD_ALLOW_SEALING);
      if (buf->fd_ < 0) return Status::IoError("memfd_create for the host tier", errno);
      buf->mapped_ = RoundUp(bytes, page);
      if (ftruncate(buf->fd_, static_cast<off_t>(buf->mapped_)) != 0)
        return Status::IoError(
            fmt::format("sizing the host tier's memfd to {} bytes", buf->mapped_), errno);
      p = mmap(nullptr, buf->mapped_, PROT_READ | PROT_WRITE, MAP_SHARED, buf->fd_, 0);
      if (p == MAP_FAILED)
        return Status::IoError(fmt::format("mmap of {} bytes for host tier", buf->mapped_), errno);
      if (options.huge_pages) madvise(p, buf->mapped_, MADV_HUGEPAGE);
    }
    fcntl(buf->fd_, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
  } else if (options.huge_pages) {
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
    buf->mapped_ = RoundUp(bytes, page);
    p = mmap(nullptr, buf->mapped_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
      return Status::IoError(fmt::format("mmap of {} bytes for host tier", buf->mapped_), errno);
    if (options.huge_pages) madvise(p, buf->mapped_, MADV_HUGEPAGE);  // advice only; may be ignored
  }
  buf->data_ = static_cast<std::byte*>(p);
  buf->Pin(options);
  if (options.prefault && !buf->pinned_) {  // pinning already faulted every page in
    HostBuffer* b = buf.get();
    b->prefault_thread_ = std::thread([b] { b->Prefault(); });
  }
  return buf;
}

Result<std::unique_ptr<HostBuffer>> HostBuffer::MapShared(int fd, size_t bytes,
                                                          const HostBufferOptions& options) {
  std::unique_ptr<HostBuffer> buf(new HostBuffer());
  buf->fd_ = fd;  // closed by the destructor from here on
  if (bytes == 0) return Status::InvalidArgument("HostBuffer: size must be > 0");
  struct stat st {};
  if (fstat(fd, &st) != 0) return Status::IoError("fstat of a shared host buffer", errno);
  if (static_cast<uint64_t>(st.st_size) < bytes)
    return Status::InvalidArgument(
        fmt::format("shared host buffer holds {} bytes, {} were announced", st.st_size, bytes));
  buf->size_ = bytes;
  buf->mapped_ = static_cast<size_t>(st.st_size);
  void* p = mmap(nullptr, buf->mapped_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED)
    return Status::IoError(
        fmt::format("mmap of the {} bytes of a shared host buffer", buf->mapped_), errno);
  buf->data_ = static_cast<std::byte*>(p);
  buf->Pin(options);
  return buf;
}

void HostBuffer::Pin(const HostBufferOptions& options) {
  if (!options.pin_for_cuda) return;
#ifdef STRATA_HAVE_CUDA
  int devices = 0;
  cudaError_t err = cudaGetDeviceCount(&devices);
  if (err == cudaSuccess && devices > 0) {
    err = cudaHostRegister(data_, mapped_, cudaHostRegisterPortable);
    if (err == cudaSuccess) {
      pinned_ = true;
    } else {
      notes_ += fmt::format("cudaHostRegister failed: {}; ", cudaGetErrorString(err));
    }
  } else {
    notes_ += fmt::format("no CUDA device ({}), memory not pinned; ",
                          err == cudaSuccess ? "0 devices" : cudaGetErrorString(err));
  }
#else
  notes_ += "built without CUDA, memory not pinned; ";
#endif
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
  if (data_ == nullptr) {
    if (fd_ >= 0) close(fd_);
    return;
  }
#ifdef STRATA_HAVE_CUDA
  if (pinned_) cudaHostUnregister(data_);
#endif
  munmap(data_, mapped_);
  if (fd_ >= 0) close(fd_);
}

}  // namespace strata
