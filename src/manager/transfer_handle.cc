// TransferHandle / LoadHandle: read-only views of a TransferState.
#include "manager/transfer_state.h"

#include <fmt/format.h>

#include "strata/block_manager.h"  // TransferHandle, LoadHandle

namespace strata {

std::string_view BlockStateName(BlockState state) {
  switch (state) {
    case BlockState::kPending:
      return "pending";
    case BlockState::kDone:
      return "done";
    case BlockState::kSkipped:
      return "skipped";
    case BlockState::kDropped:
      return "dropped";
    case BlockState::kFailed:
      return "failed";
    case BlockState::kCancelled:
      return "cancelled";
  }
  return "?";
}

size_t TransferHandle::num_blocks() const {
  return state_ ? state_->num_blocks : 0;
}

bool TransferHandle::done() const {
  return !state_ || state_->remaining.load(std::memory_order_acquire) == 0;
}

Status TransferHandle::Wait(std::chrono::milliseconds timeout) const {
  if (done()) return Status::Ok();
  std::unique_lock lock(state_->mu);
  if (state_->cv.wait_for(lock, timeout, [this] { return state_->remaining.load() == 0; }))
    return Status::Ok();
  return Status::TimedOut(fmt::format("{} of {} blocks still pending after {} ms",
                                      state_->remaining.load(), state_->num_blocks,
                                      timeout.count()));
}

BlockState TransferHandle::state(size_t i) const {
  return state_->states[i].load(std::memory_order_acquire);
}

Status TransferHandle::error(size_t i) const {
  std::lock_guard lock(state_->mu);
  return state_->errors[i];
}

void TransferHandle::Cancel() const {
  if (state_) state_->cancel_requested.store(true, std::memory_order_release);
}

size_t LoadHandle::usable_blocks() const {
  size_t n = 0;
  while (n < num_blocks() && state(n) == BlockState::kDone) ++n;
  return n;
}

size_t LoadHandle::usable_tokens() const {
  return state_ ? usable_blocks() * state_->tokens_per_block : 0;
}

}  // namespace strata
