// FaultInjector: one-shot and range fault rules, first match wins.
#include "strata/fault_injection.h"

#include <thread>

namespace strata {

void FaultInjector::FailNext(TransferOp op, int error, uint32_t count) {
  std::lock_guard lock(mu_);
  rules_.push_back({op, {IoFault::Kind::kError, error, 0}, count});
}

void FaultInjector::ShortNext(TransferOp op, uint64_t bytes, uint32_t count) {
  std::lock_guard lock(mu_);
  rules_.push_back({op, {IoFault::Kind::kShort, 0, bytes}, count});
}

void FaultInjector::FailRange(TransferOp op, uint64_t offset, uint64_t length, int error) {
  std::lock_guard lock(mu_);
  rules_.push_back({op, {IoFault::Kind::kError, error, 0}, 0, offset, length});
}

void FaultInjector::SetDelay(TransferOp op, std::chrono::microseconds delay) {
  std::lock_guard lock(mu_);
  delay_[static_cast<int>(op)] = delay;
}

void FaultInjector::Clear() {
  std::lock_guard lock(mu_);
  rules_.clear();
  delay_[0] = delay_[1] = {};
}

IoFault FaultInjector::Check(TransferOp op, uint64_t offset, uint64_t length) {
  std::chrono::microseconds delay;
  {
    std::lock_guard lock(mu_);
    delay = delay_[static_cast<int>(op)];
  }
  if (delay.count() > 0) std::this_thread::sleep_for(delay);
  std::lock_guard lock(mu_);
  for (auto it = rules_.begin(); it != rules_.end(); ++it) {
    if (it->op != op) continue;
    if (it->remaining == 0) {  // range rule
      if (offset < it->offset + it->length && it->offset < offset + length) {
        ++injected_;
        return it->fault;
      }
      continue;
    }
    IoFault fault = it->fault;
    if (fault.kind == IoFault::Kind::kShort && fault.bytes >= length) continue;  // not short
    if (--it->remaining == 0) rules_.erase(it);
    ++injected_;
    return fault;
  }
  return {};
}

uint64_t FaultInjector::injected() const {
  std::lock_guard lock(mu_);
  return injected_;
}

}  // namespace strata
