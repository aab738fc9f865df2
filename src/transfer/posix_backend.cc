// posix backend: pread/pwrite between host memory and files on a pool of threads.
//
// Each request's entries are split into contiguous ranges, one per worker, and every
// worker has its own queue (WorkerGroup): requests never serialise behind one lock, and
// the effective queue depth is the number of workers. Works with and without O_DIRECT.
#include <unistd.h>

#include <cerrno>

#include "transfer/request.h"
#include "transfer/worker_group.h"

namespace strata::internal {
namespace {

class PosixBackend final : public TransferBackend {
 public:
  explicit PosixBackend(const TransferEngineOptions& options)
      : inline_bytes_(options.inline_io_bytes),
        workers_(options.posix_threads, 4096, "strata-posix",
                 [](const TransferTask& t) { RunFileEntries(*t.request, t.begin, t.end); }) {}

  BackendKind kind() const override { return BackendKind::kPosix; }

  bool Supports(const RegionInfo& local, const RegionInfo& remote) const override {
    return local.host_addressable() && remote.type == MemoryType::kFile;
  }

  void Post(RequestImpl& req) override {
    const uint32_t n = static_cast<uint32_t>(req.entries.size());
    const uint32_t parts = std::max<uint32_t>(1, std::min(workers_.size(), n));
    const uint32_t first = workers_.NextWorker();
    // Interleaved ranges would spread adjacent blocks over threads; contiguous ranges
    // keep each thread's I/O sequential, which is what a disk prefers.
    for (uint32_t p = 0; p < parts; ++p) {
      const uint32_t begin = static_cast<uint32_t>(uint64_t{n} * p / parts);
      const uint32_t end = static_cast<uint32_t>(uint64_t{n} * (p + 1) / parts);
      if (begin < end) workers_.Push(first + p, {&req, begin, end});
    }
  }

  bool RunInline(RequestImpl& req) override {
    if (req.total_bytes > inline_bytes_) return false;
    RunFileEntries(req, 0, static_cast<uint32_t>(req.entries.size()));
    return true;
  }

 private:
  const uint64_t inline_bytes_;
  WorkerGroup workers_;
};

int64_t Transfer(TransferOp op, int fd, std::byte* buf, uint64_t len, uint64_t off) {
  for (;;) {
    const ssize_t r = op == TransferOp::kRead ? pread(fd, buf, len, static_cast<off_t>(off))
                                              : pwrite(fd, buf, len, static_cast<off_t>(off));
    if (r >= 0) return r;
    if (errno != EINTR) return -errno;
  }
}

}  // namespace

void RunFileEntries(RequestImpl& req, uint32_t begin, uint32_t end) {
  for (uint32_t i = begin; i < end; ++i) {
    if (!req.Begin(i)) continue;
    const XferEntry& e = req.entries[i];
    uint64_t len = e.length;
    int64_t result;
    IoFault fault;
    if (e.remote_region->faults)
      fault = e.remote_region->faults->Check(req.op, e.remote_offset, len);
    if (fault.kind == IoFault::Kind::kError) {
      result = -fault.error;
    } else {
      if (fault.kind == IoFault::Kind::kShort) len = fault.bytes;
      result = Transfer(req.op, e.remote_region->fd, e.local, len, e.remote_offset);
    }
    req.Complete(i, IoResultStatus(req.op, e, result, e.length));
  }
}

Result<std::unique_ptr<TransferBackend>> MakePosixBackend(const TransferEngineOptions& options) {
  if (options.posix_threads == 0)
    return Status::InvalidArgument("TransferEngineOptions.posix_threads must be >= 1");
  return std::unique_ptr<TransferBackend>(new PosixBackend(options));
}

}  // namespace strata::internal
