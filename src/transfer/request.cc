// RequestImpl state machine and the TransferRequest accessors.
#include "transfer/request.h"

#include <thread>

#include <fmt/format.h>

namespace strata {
namespace internal {

RequestImpl::RequestImpl(TransferOp op, TransferBackend* backend, BackendKind kind,
                         std::vector<XferEntry> entries_in)
    : op(op),
      backend(backend),
      kind(kind),
      entries(std::move(entries_in)),
      states(std::make_unique<std::atomic<DescriptorState>[]>(entries.size())),
      errors(entries.size()) {
  for (size_t i = 0; i < entries.size(); ++i) {
    total_bytes += entries[i].length;
    states[i].store(DescriptorState::kIdle, std::memory_order_relaxed);
  }
}

void RequestImpl::Arm() {
  {
    std::lock_guard lock(mu);
    for (auto& e : errors) e = Status::Ok();
  }
  for (size_t i = 0; i < entries.size(); ++i)
    states[i].store(DescriptorState::kPending, std::memory_order_relaxed);
  failed.store(0, std::memory_order_relaxed);
  cancel.store(false, std::memory_order_relaxed);
  remaining.store(static_cast<uint32_t>(entries.size()), std::memory_order_relaxed);
  busy.store(!entries.empty(), std::memory_order_release);
}

bool RequestImpl::Begin(size_t i) {
  if (!cancel.load(std::memory_order_acquire)) return true;
  Complete(i, Status::Cancelled(fmt::format("descriptor {} cancelled before it started", i)));
  return false;
}

void RequestImpl::Complete(size_t i, Status status) {
  DescriptorState state = DescriptorState::kDone;
  if (!status.ok()) {
    state = status.code() == StatusCode::kCancelled ? DescriptorState::kCancelled
                                                    : DescriptorState::kFailed;
    failed.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard lock(mu);
    errors[i] = std::move(status);
  }
  states[i].store(state, std::memory_order_release);
  if (remaining.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    // The last touch of this object by a backend: under mu, so the destructor (which
    // takes mu) cannot free it before this thread lets go.
    std::lock_guard lock(mu);
    busy.store(false, std::memory_order_release);
    cv.notify_all();
  }
}

}  // namespace internal

TransferRequest::TransferRequest(std::unique_ptr<internal::RequestImpl> impl)
    : impl_(std::move(impl)) {}

TransferRequest::~TransferRequest() {
  // Backends hold raw pointers to an in-flight request: never free it under them. The
  // lock is taken even when done, to wait out a completer still inside Complete().
  if (impl_) {
    std::unique_lock lock(impl_->mu);
    impl_->cv.wait(lock, [this] { return !impl_->in_flight(); });
  }
}

size_t TransferRequest::size() const {
  return impl_->entries.size();
}
uint64_t TransferRequest::total_bytes() const {
  return impl_->total_bytes;
}
TransferOp TransferRequest::op() const {
  return impl_->op;
}
BackendKind TransferRequest::backend() const {
  return impl_->kind;
}
bool TransferRequest::done() const {
  return !impl_->in_flight();
}

Status TransferRequest::status() const {
  if (impl_->in_flight()) return Status::TimedOut("transfer still in flight");
  if (impl_->failed.load(std::memory_order_acquire) == 0) return Status::Ok();
  std::lock_guard lock(impl_->mu);
  for (const Status& s : impl_->errors)
    if (!s.ok()) return s;
  return Status::Ok();
}

Status TransferRequest::Wait(std::chrono::nanoseconds timeout) const {
  // Work nobody has started yet is done here rather than waited for (memcpy pieces).
  if (impl_->in_flight()) impl_->backend->Help(*impl_);
  // Fast transfers finish within microseconds: spin briefly before sleeping, since a
  // futex sleep and wake-up costs more than that.
  const auto spin_until =
      std::chrono::steady_clock::now() +
      std::min<std::chrono::nanoseconds>(timeout, std::chrono::microseconds(20));
  while (impl_->in_flight() && std::chrono::steady_clock::now() < spin_until) {
#if defined(__x86_64__)
    __builtin_ia32_pause();
#endif
  }
  if (impl_->in_flight()) {
    std::unique_lock lock(impl_->mu);
    if (!impl_->cv.wait_for(lock, timeout, [this] { return !impl_->in_flight(); }))
      return Status::TimedOut(
          fmt::format("{} of {} descriptors still in flight after {} us", impl_->remaining.load(),
                      impl_->entries.size(),
                      std::chrono::duration_cast<std::chrono::microseconds>(timeout).count()));
  }
  return status();
}

DescriptorState TransferRequest::state(size_t i) const {
  return impl_->states[i].load(std::memory_order_acquire);
}

Status TransferRequest::error(size_t i) const {
  std::lock_guard lock(impl_->mu);
  return impl_->errors[i];
}

void TransferRequest::Cancel() {
  impl_->cancel.store(true, std::memory_order_release);
}

}  // namespace strata
