// HostBuffer: one large page-aligned host allocation for a tier's block slots,
// optionally on huge pages and pinned (registered) with CUDA.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>
#include <thread>

#include "strata/status.h"

namespace strata {

struct HostBufferOptions {
  bool huge_pages = false;    // try MAP_HUGETLB, else madvise(MADV_HUGEPAGE)
  bool pin_for_cuda = false;  // cudaHostRegister when built with CUDA and a device exists
  // Fault the pages in on a background thread (MADV_POPULATE_WRITE, in chunks), so the
  // first stores and loads do not pay for first touch, without delaying start-up.
  bool prefault = false;
  // Back the buffer with a memfd (MAP_SHARED) that other processes can map through fd():
  // a `strata daemon`'s G2, which its clients copy to and from directly.
  bool shared = false;
};

class HostBuffer {
 public:
  // Maps `bytes` (rounded up to the page size) of zeroed anonymous memory.
  static Result<std::unique_ptr<HostBuffer>> Allocate(size_t bytes,
                                                      const HostBufferOptions& options);
  // Maps `bytes` of the shared buffer another process allocated, through its memfd `fd`
  // (taken over: closed with the buffer). InvalidArgument when the file is smaller.
  // options.huge_pages and shared are implied by the file; pin_for_cuda applies.
  static Result<std::unique_ptr<HostBuffer>> MapShared(int fd, size_t bytes,
                                                       const HostBufferOptions& options);
  ~HostBuffer();
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;

  std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  bool huge_pages() const { return huge_pages_; }
  bool pinned() const { return pinned_; }
  // The memfd of a shared buffer (HostBufferOptions::shared, MapShared), else -1.
  int fd() const { return fd_; }
  // Why the buffer is not pinned / not on huge pages, for logs ("" when it is or was not asked).
  const std::string& notes() const { return notes_; }
  // Bytes the background prefault has populated so far (== size() when done; 0 without).
  size_t prefaulted_bytes() const { return prefaulted_.load(std::memory_order_relaxed); }

 private:
  HostBuffer() = default;
  void Prefault();
  void Pin(const HostBufferOptions& options);

  std::byte* data_ = nullptr;
  size_t size_ = 0;
  size_t mapped_ = 0;
  int fd_ = -1;
  bool huge_pages_ = false;
  bool pinned_ = false;
  std::string notes_;
  std::atomic<size_t> prefaulted_{0};
  std::atomic<bool> stop_prefault_{false};
  std::thread prefault_thread_;
};

}  // namespace strata
