// memcpy backend: host <-> host and host-emulated device memory.
//
// Small requests are copied on the posting thread (a hand-off to a worker costs more
// than copying a few hundred KiB). A large request is cut once, at CreateRequest, into
// pieces of similar size (a large descriptor into several), which the workers and any
// thread waiting for the request claim one at a time from a shared cursor. So one 4 MiB
// descriptor is copied by every worker and by its waiter at once, and a waiter that
// arrives before the workers wake copies instead of sleeping through two hand-offs.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include <fmt/format.h>

#include "transfer/request.h"
#include "transfer/worker_group.h"

namespace strata::internal {
namespace {

// Piece sizes: about kPiecesPerThread pieces per copying thread (workers + the waiter)
// balance the load; pieces below kMinPiece cost more in claims than they gain.
constexpr uint64_t kPiecesPerThread = 4;
constexpr uint64_t kMinPiece = uint64_t{128} << 10;
constexpr uint64_t kMaxPiece = uint64_t{8} << 20;
constexpr uint64_t kPieceAlign = uint64_t{64} << 10;

struct Piece {
  uint32_t entry = 0;
  uint64_t offset = 0;  // within the entry
  uint64_t length = 0;
};

// RequestImpl::backend_state of a request copied by pieces. Outlives the request while a
// worker task holds it (a worker may wake after its request is done and freed: it then
// finds the cursor past the end and never touches `request`).
struct PiecePlan {
  explicit PiecePlan(size_t entries)
      : left(std::make_unique<std::atomic<uint32_t>[]>(entries)),
        decision(std::make_unique<std::atomic<uint8_t>[]>(entries)),
        pieces_of(entries, 0) {}

  RequestImpl* request = nullptr;
  std::vector<Piece> pieces;  // entry order; an entry's pieces are consecutive
  // Per entry, for the current post: pieces not finished yet, and whether it is copied
  // (decided by the first piece claimed: a request cancelled before then is not).
  std::unique_ptr<std::atomic<uint32_t>[]> left;
  std::unique_ptr<std::atomic<uint8_t>[]> decision;
  std::vector<uint32_t> pieces_of;
  // Next piece to claim; >= pieces.size() when there is nothing to claim.
  std::atomic<uint32_t> next{std::numeric_limits<uint32_t>::max()};
};

enum : uint8_t { kUndecided = 0, kCopy = 1, kSkip = 2 };

class MemcpyBackend final : public TransferBackend {
 public:
  explicit MemcpyBackend(const TransferEngineOptions& options)
      : inline_bytes_(options.memcpy_inline_bytes),
        execute_inline_bytes_(options.memcpy_execute_inline_bytes),
        workers_(options.memcpy_threads, 4096, "strata-memcpy", [](const TransferTask& t) {
          ClaimPieces(*static_cast<PiecePlan*>(t.keep.get()));
        }) {}

  BackendKind kind() const override { return BackendKind::kMemcpy; }

  bool Supports(const RegionInfo& local, const RegionInfo& remote) const override {
    return local.host_addressable() && remote.host_addressable();
  }

  Status Prepare(RequestImpl& req) override {
    if (req.total_bytes < inline_bytes_) return Status::Ok();  // always copied inline
    if (req.entries.size() > std::numeric_limits<uint32_t>::max() / 2)
      return Status::InvalidArgument(
          fmt::format("memcpy: {} descriptors in one request", req.entries.size()));
    auto plan = std::make_shared<PiecePlan>(req.entries.size());
    plan->request = &req;
    const uint64_t threads = workers_.size() + 1;  // the waiter copies too
    const uint64_t piece =
        std::clamp((req.total_bytes / (threads * kPiecesPerThread) + kPieceAlign - 1) /
                       kPieceAlign * kPieceAlign,
                   kMinPiece, kMaxPiece);
    for (uint32_t i = 0; i < req.entries.size(); ++i) {
      const uint64_t len = req.entries[i].length;
      // Split only what is worth splitting; the tail is folded into the last piece.
      const uint64_t count = std::max<uint64_t>(1, len / piece);
      for (uint64_t k = 0; k < count; ++k) {
        const uint64_t off = k * piece;
        plan->pieces.push_back({i, off, k + 1 == count ? len - off : piece});
      }
      plan->pieces_of[i] = static_cast<uint32_t>(count);
    }
    if (plan->pieces.size() > std::numeric_limits<uint32_t>::max() / 2)
      return Status::InvalidArgument(
          fmt::format("memcpy: {} pieces in one request", plan->pieces.size()));
    req.backend_state = std::move(plan);
    return Status::Ok();
  }

  void Post(RequestImpl& req) override {
    auto* plan = static_cast<PiecePlan*>(req.backend_state.get());
    if (plan == nullptr) {
      CopyEntries(req);
      return;
    }
    for (size_t i = 0; i < req.entries.size(); ++i) {
      plan->left[i].store(plan->pieces_of[i], std::memory_order_relaxed);
      plan->decision[i].store(kUndecided, std::memory_order_relaxed);
    }
    plan->next.store(0, std::memory_order_release);  // publishes the resets above
    const uint32_t helpers =
        static_cast<uint32_t>(std::min<size_t>(workers_.size(), plan->pieces.size()));
    const uint32_t first = workers_.NextWorker();
    // After the last Push the request may complete at any moment: only locals from here.
    std::shared_ptr<void> keep = req.backend_state;
    for (uint32_t w = 0; w < helpers; ++w) workers_.Push(first + w, {nullptr, 0, 0, keep});
  }

  // Execute: a request the caller waits for at once, copied here when small enough that
  // waking the workers would cost more than their help.
  bool RunInline(RequestImpl& req) override {
    if (req.total_bytes > execute_inline_bytes_) return false;
    CopyEntries(req);
    return true;
  }

  void Help(RequestImpl& req) override {
    if (auto* plan = static_cast<PiecePlan*>(req.backend_state.get())) ClaimPieces(*plan);
  }

 private:
  static void Copy(TransferOp op, const XferEntry& e, uint64_t offset, uint64_t length) {
    if (op == TransferOp::kRead) {
      std::memcpy(e.local + offset, e.remote + offset, length);
    } else {
      std::memcpy(e.remote + offset, e.local + offset, length);
    }
  }

  static void CopyEntries(RequestImpl& req) {
    for (uint32_t i = 0; i < req.entries.size(); ++i) {
      if (!req.Begin(i)) continue;
      Copy(req.op, req.entries[i], 0, req.entries[i].length);
      req.Complete(i, Status::Ok());
    }
  }

  // Claims and copies pieces until none is left. Touches the request only while holding
  // an unfinished piece of it, so the request cannot be done (and freed) meanwhile.
  static void ClaimPieces(PiecePlan& plan) {
    const uint32_t n = static_cast<uint32_t>(plan.pieces.size());
    for (;;) {
      if (plan.next.load(std::memory_order_relaxed) >= n) return;  // skip a useless RMW
      const uint32_t k = plan.next.fetch_add(1, std::memory_order_acq_rel);
      if (k >= n) return;
      const Piece& p = plan.pieces[k];
      RequestImpl& req = *plan.request;
      uint8_t d = plan.decision[p.entry].load(std::memory_order_acquire);
      if (d == kUndecided) {
        const uint8_t want = req.cancel.load(std::memory_order_acquire) ? kSkip : kCopy;
        if (plan.decision[p.entry].compare_exchange_strong(d, want, std::memory_order_acq_rel))
          d = want;
      }
      if (d == kCopy) Copy(req.op, req.entries[p.entry], p.offset, p.length);
      if (plan.left[p.entry].fetch_sub(1, std::memory_order_acq_rel) == 1)
        req.Complete(p.entry, d == kCopy
                                  ? Status::Ok()
                                  : Status::Cancelled(fmt::format(
                                        "descriptor {} cancelled before it started", p.entry)));
    }
  }

  const uint64_t inline_bytes_;
  const uint64_t execute_inline_bytes_;
  WorkerGroup workers_;
};

}  // namespace

Result<std::unique_ptr<TransferBackend>> MakeMemcpyBackend(const TransferEngineOptions& options) {
  if (options.memcpy_threads == 0)
    return Status::InvalidArgument("TransferEngineOptions.memcpy_threads must be >= 1");
  return std::unique_ptr<TransferBackend>(new MemcpyBackend(options));
}

}  // namespace strata::internal
