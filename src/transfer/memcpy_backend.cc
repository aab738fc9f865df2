// memcpy backend: host <-> host and host-emulated device memory.
//
// Small requests are copied on the posting thread (a hand-off to a worker costs more
// than copying a few hundred KiB); large ones are split by bytes into contiguous entry
// ranges, one per worker, so a batch of blocks uses every memory channel it can.
#include <cstring>

#include "transfer/request.h"
#include "transfer/worker_group.h"

namespace strata::internal {
namespace {

class MemcpyBackend final : public TransferBackend {
 public:
  explicit MemcpyBackend(const TransferEngineOptions& options)
      : inline_bytes_(options.memcpy_inline_bytes),
        workers_(options.memcpy_threads, 4096, "strata-memcpy",
                 [](const TransferTask& t) { Run(t); }) {}

  BackendKind kind() const override { return BackendKind::kMemcpy; }

  bool Supports(const RegionInfo& local, const RegionInfo& remote) const override {
    return local.host_addressable() && remote.host_addressable();
  }

  // The split plan: entry boundaries of up to workers_.size() ranges of similar bytes.
  Status Prepare(RequestImpl& req) override {
    auto plan = std::make_shared<std::vector<uint32_t>>();
    const uint32_t parts =
        std::max<uint32_t>(1, std::min<uint32_t>(workers_.size(), req.entries.size()));
    const uint64_t per_part = (req.total_bytes + parts - 1) / parts;
    plan->push_back(0);
    uint64_t acc = 0;
    for (uint32_t i = 0; i < req.entries.size(); ++i) {
      acc += req.entries[i].length;
      if (acc >= per_part * plan->size() && plan->size() < parts && i + 1 < req.entries.size())
        plan->push_back(i + 1);
    }
    plan->push_back(static_cast<uint32_t>(req.entries.size()));
    req.backend_state = std::move(plan);
    return Status::Ok();
  }

  void Post(RequestImpl& req) override {
    const auto& plan = *static_cast<const std::vector<uint32_t>*>(req.backend_state.get());
    if (req.total_bytes < inline_bytes_) {
      Run({&req, 0, static_cast<uint32_t>(req.entries.size())});
      return;
    }
    const uint32_t first = workers_.NextWorker();
    for (size_t p = 0; p + 1 < plan.size(); ++p)
      workers_.Push(first + static_cast<uint32_t>(p), {&req, plan[p], plan[p + 1]});
  }

 private:
  static void Run(const TransferTask& t) {
    RequestImpl& req = *t.request;
    for (uint32_t i = t.begin; i < t.end; ++i) {
      if (!req.Begin(i)) continue;
      const XferEntry& e = req.entries[i];
      if (req.op == TransferOp::kRead) {
        std::memcpy(e.local, e.remote, e.length);
      } else {
        std::memcpy(e.remote, e.local, e.length);
      }
      req.Complete(i, Status::Ok());
    }
  }

  const uint64_t inline_bytes_;
  WorkerGroup workers_;
};

}  // namespace

Result<std::unique_ptr<TransferBackend>> MakeMemcpyBackend(const TransferEngineOptions& options) {
  if (options.memcpy_threads == 0)
    return Status::InvalidArgument("TransferEngineOptions.memcpy_threads must be >= 1");
  return std::unique_ptr<TransferBackend>(new MemcpyBackend(options));
}

}  // namespace strata::internal
