// The built-in admission policies.
#include "strata/admission.h"

#include <algorithm>
#include <cstring>

namespace strata {

// ---- FrequencyAdmission ------------------------------------------------------------------

FrequencyAdmission::FrequencyAdmission(uint32_t min_sightings, uint32_t counters,
                                       uint64_t decay_period)
    : min_sightings_(min_sightings),
      decay_period_(std::max<uint64_t>(decay_period, 1)),
      counts_(std::max<uint32_t>(counters, 64)) {}

std::pair<uint32_t, uint32_t> FrequencyAdmission::Cells(const BlockKey& key) const {
  // Keys are uniform hash output: two independent 64-bit words give two cells.
  uint64_t a, b;
  std::memcpy(&a, key.bytes.data(), 8);
  std::memcpy(&b, key.bytes.data() + 8, 8);
  const uint64_t n = counts_.size();
  return {static_cast<uint32_t>(a % n), static_cast<uint32_t>(b % n)};
}

void FrequencyAdmission::Observe(std::span<const BlockKey> keys) {
  std::lock_guard lock(mu_);
  for (const BlockKey& key : keys) {
    auto [i, j] = Cells(key);
    const uint8_t low = std::min(counts_[i], counts_[j]);
    if (low == UINT8_MAX) continue;
    // Conservative update: raise only the cells at the minimum.
    if (counts_[i] == low) ++counts_[i];
    if (counts_[j] == low && j != i) ++counts_[j];
    if (++since_decay_ >= decay_period_) {
      for (uint8_t& c : counts_) c >>= 1;
      since_decay_ = 0;
      ++decays_;
    }
  }
}

uint32_t FrequencyAdmission::Estimate(const BlockKey& key) const {
  std::lock_guard lock(mu_);
  auto [i, j] = Cells(key);
  return std::min(counts_[i], counts_[j]);
}

bool FrequencyAdmission::Admit(const BlockKey& key, uint64_t) {
  return min_sightings_ <= 1 || Estimate(key) >= min_sightings_;
}

uint64_t FrequencyAdmission::decays() const {
  std::lock_guard lock(mu_);
  return decays_;
}

// ---- WriteBudgetAdmission ----------------------------------------------------------------

WriteBudgetAdmission::WriteBudgetAdmission(uint64_t bytes_per_sec, uint64_t burst_bytes,
                                           Clock clock)
    : rate_(static_cast<double>(bytes_per_sec)),
      burst_(static_cast<double>(burst_bytes ? burst_bytes : bytes_per_sec)),
      clock_(clock ? std::move(clock) : Clock([] { return std::chrono::steady_clock::now(); })),
      tokens_(burst_),
      last_(clock_()) {}

bool WriteBudgetAdmission::Admit(const BlockKey&, uint64_t bytes) {
  if (rate_ == 0) return true;
  std::lock_guard lock(mu_);
  const auto now = clock_();
  const double elapsed = std::chrono::duration<double>(now - last_).count();
  last_ = now;
  tokens_ = std::min(burst_, tokens_ + std::max(elapsed, 0.0) * rate_);
  if (tokens_ < static_cast<double>(bytes)) return false;
  tokens_ -= static_cast<double>(bytes);
  return true;
}

// ---- AllOfAdmission ----------------------------------------------------------------------

AllOfAdmission::AllOfAdmission(std::vector<std::shared_ptr<AdmissionPolicy>> policies)
    : policies_(std::move(policies)) {
  for (const auto& p : policies_) {
    if (!name_.empty()) name_ += '+';
    name_ += p->name();
  }
}

void AllOfAdmission::Observe(std::span<const BlockKey> keys) {
  for (const auto& p : policies_) p->Observe(keys);
}

bool AllOfAdmission::Admit(const BlockKey& key, uint64_t bytes) {
  for (const auto& p : policies_)
    if (!p->Admit(key, bytes)) return false;
  return true;
}

}  // namespace strata
