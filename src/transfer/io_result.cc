// IoResultStatus: one place that turns a syscall or io_uring result into a Status.
#include <cerrno>

#include <fmt/format.h>

#include "transfer/request.h"

namespace strata::internal {

Status IoResultStatus(TransferOp op, const XferEntry& e, int64_t result, uint64_t requested) {
  const char* verb = op == TransferOp::kRead ? "read" : "write";
  const std::string& file = e.remote_region ? e.remote_region->name : std::string("?");
  if (result < 0) {
    std::string what =
        fmt::format("{} of {} bytes at offset {} of {}", verb, requested, e.remote_offset, file);
    if (result == -EINVAL && e.remote_region && e.remote_region->direct)
      what += " (O_DIRECT needs offset, length and buffer aligned to the device's logical block)";
    return Status::IoError(what, static_cast<int>(-result));
  }
  if (static_cast<uint64_t>(result) != requested) {
    // Never a silent success: a short read (e.g. past the end of the file) or a short
    // write (e.g. the device filled up) leaves the block incomplete.
    return Status::IoError(fmt::format("short {}: {} of {} bytes at offset {} of {}", verb, result,
                                       requested, e.remote_offset, file),
                           op == TransferOp::kRead ? ENODATA : ENOSPC);
  }
  return Status::Ok();
}

}  // namespace strata::internal
