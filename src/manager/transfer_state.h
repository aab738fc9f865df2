// TransferState: the shared state behind a LoadHandle or StoreHandle.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "strata/status.h"
#include "strata/types.h"  // BlockState

namespace strata::internal {

struct TransferState {
  TransferState(size_t n, uint32_t tokens_per_block)
      : num_blocks(n),
        tokens_per_block(tokens_per_block),
        states(std::make_unique<std::atomic<BlockState>[]>(n)),
        errors(n),
        remaining(n) {
    for (size_t i = 0; i < n; ++i) states[i].store(BlockState::kPending, std::memory_order_relaxed);
  }

  // Sets block i's final state (once per block) and wakes waiters after the last one.
  void Finish(size_t i, BlockState state, Status error = Status::Ok()) {
    if (!error.ok()) {
      std::lock_guard lock(mu);
      errors[i] = std::move(error);
    }
    states[i].store(state, std::memory_order_release);
    if (remaining.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard lock(mu);  // pairs with Wait's predicate check: no lost wake-up
      cv.notify_all();
    }
  }
  bool cancelled() const { return cancel_requested.load(std::memory_order_acquire); }

  const size_t num_blocks;
  const uint32_t tokens_per_block;
  std::unique_ptr<std::atomic<BlockState>[]> states;
  mutable std::mutex mu;
  std::condition_variable cv;
  std::vector<Status> errors;  // GUARDED_BY(mu)
  std::atomic<size_t> remaining;
  std::atomic<bool> cancel_requested{false};
};

}  // namespace strata::internal
