// Admission policies: the frequency filter counts, thresholds and forgets; the write
// budget refills at its rate; AllOf asks budgets only after filters admitted.
#include "strata/admission.h"

#include <cstring>

#include <gtest/gtest.h>

namespace strata {
namespace {

BlockKey Key(uint32_t i) {
  BlockKey k;
  for (size_t b = 0; b < k.bytes.size(); ++b)
    k.bytes[b] = static_cast<uint8_t>((i * 131 + b * 7919) >> (b % 3));
  std::memcpy(k.bytes.data(), &i, 4);
  const uint32_t j = i * 2654435761u;
  std::memcpy(k.bytes.data() + 8, &j, 4);
  return k;
}

TEST(FrequencyAdmissionTest, AdmitsAfterMinSightings) {
  FrequencyAdmission f(/*min_sightings=*/2, /*counters=*/4096, /*decay_period=*/1 << 20);
  const BlockKey a = Key(1), b = Key(2);
  EXPECT_FALSE(f.Admit(a, 100));
  f.Observe({&a, 1});
  EXPECT_EQ(f.Estimate(a), 1u);
  EXPECT_FALSE(f.Admit(a, 100));
  f.Observe({&a, 1});
  EXPECT_TRUE(f.Admit(a, 100));
  EXPECT_FALSE(f.Admit(b, 100));  // another key is unaffected
  EXPECT_EQ(f.Estimate(b), 0u);
}

TEST(FrequencyAdmissionTest, OneSightingOrLessAdmitsEverything) {
  FrequencyAdmission f(1, 64, 100);
  EXPECT_TRUE(f.Admit(Key(7), 1));
  FrequencyAdmission g(0, 64, 100);
  EXPECT_TRUE(g.Admit(Key(7), 1));
}

TEST(FrequencyAdmissionTest, CountsDecaySoOldPopularityFades) {
  FrequencyAdmission f(2, 1 << 16, /*decay_period=*/100);
  const BlockKey hot = Key(42);
  for (int i = 0; i < 4; ++i) f.Observe({&hot, 1});
  EXPECT_EQ(f.Estimate(hot), 4u);
  // 96 sightings of other keys reach the period: every count halves.
  for (uint32_t i = 0; i < 96; ++i) {
    const BlockKey k = Key(1000 + i);
    f.Observe({&k, 1});
  }
  EXPECT_EQ(f.decays(), 1u);
  EXPECT_EQ(f.Estimate(hot), 2u);
  for (uint32_t i = 0; i < 100; ++i) {
    const BlockKey k = Key(5000 + i);
    f.Observe({&k, 1});
  }
  EXPECT_EQ(f.Estimate(hot), 1u);
  EXPECT_FALSE(f.Admit(hot, 1));
}

TEST(FrequencyAdmissionTest, CountsSaturate) {
  FrequencyAdmission f(2, 64, uint64_t{1} << 40);
  const BlockKey k = Key(3);
  for (int i = 0; i < 1000; ++i) f.Observe({&k, 1});
  EXPECT_EQ(f.Estimate(k), 255u);
}

TEST(WriteBudgetAdmissionTest, RefillsAtItsRate) {
  auto now = std::chrono::steady_clock::time_point{};
  WriteBudgetAdmission b(/*bytes_per_sec=*/1000, /*burst=*/1000, [&] { return now; });
  const BlockKey k = Key(1);
  EXPECT_TRUE(b.Admit(k, 600));
  EXPECT_FALSE(b.Admit(k, 600));          // 400 left
  now += std::chrono::milliseconds(200);  // +200
  EXPECT_TRUE(b.Admit(k, 600));
  EXPECT_FALSE(b.Admit(k, 1));
  now += std::chrono::seconds(100);  // capped at the burst
  EXPECT_TRUE(b.Admit(k, 1000));
  EXPECT_FALSE(b.Admit(k, 1));
}

TEST(WriteBudgetAdmissionTest, ZeroRateIsUnlimited) {
  WriteBudgetAdmission b(0);
  EXPECT_TRUE(b.Admit(Key(1), uint64_t{1} << 40));
}

TEST(AllOfAdmissionTest, BudgetIsSpentOnlyOnBlocksTheFilterAdmits) {
  auto now = std::chrono::steady_clock::time_point{};
  auto freq = std::make_shared<FrequencyAdmission>(2, 4096, 1 << 20);
  auto budget = std::make_shared<WriteBudgetAdmission>(100, 100, [&] { return now; });
  AllOfAdmission all({freq, budget});
  EXPECT_EQ(all.name(), "frequency+write_budget");
  const BlockKey cold = Key(1), hot = Key(2);
  all.Observe({&hot, 1});
  all.Observe({&hot, 1});
  EXPECT_FALSE(all.Admit(cold, 100));  // rejected by the filter: budget untouched
  EXPECT_TRUE(all.Admit(hot, 100));
  EXPECT_FALSE(all.Admit(hot, 100));  // budget spent
}

}  // namespace
}  // namespace strata
