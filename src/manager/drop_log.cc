// DropLog: at most one warning line per period about dropped blocks.
#include "manager/drop_log.h"

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace strata {

DropLog::DropLog(std::string what, std::string advice, std::chrono::steady_clock::duration period,
                 Clock clock)
    : what_(std::move(what)),
      advice_(std::move(advice)),
      period_(period),
      clock_(clock ? std::move(clock) : Clock([] { return std::chrono::steady_clock::now(); })) {}

DropLog::~DropLog() {
  std::string line;
  {
    std::lock_guard lock(mu_);
    if (!counts_.empty()) line = TakeLineLocked(clock_());
  }
  if (!line.empty()) spdlog::warn("{}", line);
}

void DropLog::Note(std::string_view reason, uint64_t n, std::string_view detail) {
  if (n == 0) return;
  std::string line;
  {
    std::lock_guard lock(mu_);
    auto it = std::find_if(counts_.begin(), counts_.end(),
                           [&](const auto& c) { return c.first == reason; });
    if (it == counts_.end()) {
      counts_.emplace_back(std::string(reason), n);
    } else {
      it->second += n;
    }
    if (!detail.empty()) detail_ = detail;
    const auto now = clock_();
    if (logged_ && now - last_ < period_) return;
    line = TakeLineLocked(now);
  }
  spdlog::warn("{}", line);
}

std::string DropLog::TakeLineLocked(std::chrono::steady_clock::time_point now) {
  uint64_t total = 0;
  std::string reasons;
  for (const auto& [reason, n] : counts_) {
    total += n;
    reasons += fmt::format("{}{} {}", reasons.empty() ? "" : ", ", reason, n);
  }
  const std::string since =
      logged_
          ? fmt::format("in the last {:.1f} s", std::chrono::duration<double>(now - last_).count())
          : std::string("since start-up");
  std::string line =
      fmt::format("strata: {} block{} not written to {} {} ({}){}; {}", total,
                  total == 1 ? " was" : "s were", what_, since, reasons,
                  detail_.empty() ? "" : fmt::format("; latest error: {}", detail_), advice_);
  counts_.clear();
  detail_.clear();
  last_ = now;
  logged_ = true;
  ++lines_;
  return line;
}

uint64_t DropLog::lines() const {
  std::lock_guard lock(mu_);
  return lines_;
}

}  // namespace strata
