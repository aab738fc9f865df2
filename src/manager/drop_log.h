// DropLog: a rate-limited warning for blocks the BlockManager dropped on their way to a
// lower tier (never waited for, by design), so an operator sees them in the log without a
// line per block: at most one line per period, with the count since the last line by reason.
//
// Thread-safe. Note takes a mutex for a few counter updates; the line is logged outside it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace strata {

class DropLog {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;
  // `what` names the destination ("the G3 disk tier"); `advice` ends each line (what to
  // change). `clock` defaults to steady_clock (tests pass their own).
  DropLog(std::string what, std::string advice, std::chrono::steady_clock::duration period,
          Clock clock = nullptr);
  // Logs the drops not logged yet.
  ~DropLog();
  DropLog(const DropLog&) = delete;
  DropLog& operator=(const DropLog&) = delete;

  // `n` blocks were dropped for `reason` (a short phrase, e.g. "queue full");
  // `detail` (may be empty) is the latest error, quoted in the next line.
  void Note(std::string_view reason, uint64_t n = 1, std::string_view detail = {});
  // Lines logged so far.
  uint64_t lines() const;

 private:
  std::string TakeLineLocked(std::chrono::steady_clock::time_point now);  // REQUIRES(mu_)

  const std::string what_;
  const std::string advice_;
  const std::chrono::steady_clock::duration period_;
  const Clock clock_;

  mutable std::mutex mu_;
  std::vector<std::pair<std::string, uint64_t>> counts_;  // GUARDED_BY(mu_) since the last line
  std::string detail_;                                    // GUARDED_BY(mu_)
  std::chrono::steady_clock::time_point last_{};          // GUARDED_BY(mu_)
  bool logged_ = false;                                   // GUARDED_BY(mu_)
  uint64_t lines_ = 0;                                    // GUARDED_BY(mu_)
};

}  // namespace strata
