// FaultInjector: a fault plan attached to a registered file so tests can prove how
// every backend reports I/O failures (EIO, ENOSPC, short reads and writes) — as
// per-descriptor errors with reasons, never as a silent success.
//
// Backends consult Check() before each I/O: an error fault fails the I/O with that
// errno without touching the file; a short fault really issues a shorter I/O (so the
// backend's handling of a real short result is what gets tested).
//
// Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <vector>

#include "strata/export.h"
#include "strata/transfer.h"

namespace strata {

struct IoFault {
  enum class Kind : uint8_t { kNone, kError, kShort };
  Kind kind = Kind::kNone;
  int error = 0;       // errno, for kError
  uint64_t bytes = 0;  // bytes the I/O really moves, for kShort (< requested)
};

class STRATA_EXPORT FaultInjector {
 public:
  // The next `count` I/Os of `op` fail with `error`.
  void FailNext(TransferOp op, int error, uint32_t count = 1);
  // The next `count` I/Os of `op` move only `bytes` bytes.
  void ShortNext(TransferOp op, uint64_t bytes, uint32_t count = 1);
  // Every I/O of `op` overlapping [offset, offset + length) fails with `error` until Clear().
  void FailRange(TransferOp op, uint64_t offset, uint64_t length, int error);
  // Every I/O of `op` is delayed by `delay` (a slow device) until Clear(); faults still apply.
  void SetDelay(TransferOp op, std::chrono::microseconds delay);
  void Clear();

  // Consulted by backends once per I/O (sleeps first when a delay is set).
  IoFault Check(TransferOp op, uint64_t offset, uint64_t length);
  // Faults injected so far.
  uint64_t injected() const;

 private:
  struct Rule {
    TransferOp op;
    IoFault fault;
    uint32_t remaining;  // 0 = persistent range rule
    uint64_t offset = 0, length = UINT64_MAX;
  };
  mutable std::mutex mu_;
  std::vector<Rule> rules_;                  // GUARDED_BY(mu_)
  uint64_t injected_ = 0;                    // GUARDED_BY(mu_)
  std::chrono::microseconds delay_[2] = {};  // GUARDED_BY(mu_) by TransferOp
};

}  // namespace strata
