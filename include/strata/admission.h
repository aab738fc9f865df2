// AdmissionPolicy: whether a block may enter a tier at all. Separate from eviction, which
// decides what leaves a full tier (tier/eviction_policy.h).
//
// The BlockManager tells a policy which keys it sees (Observe: once per Match, for every
// full block of the prompt) and asks it, just before writing a block into the tier it
// guards, whether to write (Admit). Built in:
//   FrequencyAdmission    "seen N times": a decaying count per key (a compact sketch)
//   WriteBudgetAdmission  a bytes-per-second token bucket (e.g. to spare an SSD's endurance)
//   AllOfAdmission        every policy must admit; later ones are asked only if earlier
//                         ones admitted, so put budgets last (an admission consumes budget)
// Engines and operators may supply their own (HierarchyOptions::disk_admission).
//
// Thread-safe: every method may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "strata/block_key.h"
#include "strata/export.h"

namespace strata {

class STRATA_EXPORT AdmissionPolicy {
 public:
  virtual ~AdmissionPolicy() = default;
  virtual std::string_view name() const = 0;
  // One sighting of each of `keys`.
  virtual void Observe(std::span<const BlockKey> keys) = 0;
  // May `key` (`bytes` bytes) be written now? A true answer may consume budget: ask only
  // when about to write.
  virtual bool Admit(const BlockKey& key, uint64_t bytes) = 0;
};

// Admits a key seen at least `min_sightings` times. Counts live in `counters` 8-bit
// saturating cells, two per key (the smaller one is the estimate, so a collision can only
// over-count), incremented conservatively. Every `decay_period` sightings all counts halve,
// so old popularity fades (TinyLFU's reset). min_sightings <= 1 admits everything.
class STRATA_EXPORT FrequencyAdmission : public AdmissionPolicy {
 public:
  FrequencyAdmission(uint32_t min_sightings, uint32_t counters, uint64_t decay_period);
  std::string_view name() const override { return "frequency"; }
  void Observe(std::span<const BlockKey> keys) override;
  bool Admit(const BlockKey& key, uint64_t bytes) override;
  // The current count estimate of `key`.
  uint32_t Estimate(const BlockKey& key) const;
  // Times every count was halved.
  uint64_t decays() const;

 private:
  std::pair<uint32_t, uint32_t> Cells(const BlockKey& key) const;

  const uint32_t min_sightings_;
  const uint64_t decay_period_;
  mutable std::mutex mu_;
  std::vector<uint8_t> counts_;  // GUARDED_BY(mu_)
  uint64_t since_decay_ = 0;     // GUARDED_BY(mu_)
  uint64_t decays_ = 0;          // GUARDED_BY(mu_)
};

// A token bucket of `bytes_per_sec`, holding at most `burst_bytes` (default: one second's
// worth). A write is admitted when the bucket holds its bytes, which it then consumes.
// bytes_per_sec == 0 admits everything.
class STRATA_EXPORT WriteBudgetAdmission : public AdmissionPolicy {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;
  explicit WriteBudgetAdmission(uint64_t bytes_per_sec, uint64_t burst_bytes = 0,
                                Clock clock = nullptr);
  std::string_view name() const override { return "write_budget"; }
  void Observe(std::span<const BlockKey>) override {}
  bool Admit(const BlockKey& key, uint64_t bytes) override;

 private:
  const double rate_;   // bytes per second
  const double burst_;  // bucket size, bytes
  const Clock clock_;
  std::mutex mu_;
  double tokens_;                               // GUARDED_BY(mu_)
  std::chrono::steady_clock::time_point last_;  // GUARDED_BY(mu_)
};

class STRATA_EXPORT AllOfAdmission : public AdmissionPolicy {
 public:
  explicit AllOfAdmission(std::vector<std::shared_ptr<AdmissionPolicy>> policies);
  std::string_view name() const override { return name_; }
  void Observe(std::span<const BlockKey> keys) override;
  bool Admit(const BlockKey& key, uint64_t bytes) override;

 private:
  const std::vector<std::shared_ptr<AdmissionPolicy>> policies_;
  std::string name_;  // "frequency+write_budget"
};

}  // namespace strata
