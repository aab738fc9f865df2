// Greedy and nucleus sampling.
#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace strata::engine {

TokenId Sampler::Argmax(std::span<const float> logits) {
  size_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[best]) best = i;
  return static_cast<TokenId>(best);
}

TokenId Sampler::Sample(std::span<const float> logits) {
  if (temperature_ <= 0.0f || logits.size() <= 1) return Argmax(logits);
  const float max = logits[Argmax(logits)];
  std::vector<double> p(logits.size());
  for (size_t i = 0; i < p.size(); ++i)
    p[i] = std::exp(static_cast<double>(logits[i] - max) / temperature_);
  std::vector<uint32_t> order(p.size());
  std::iota(order.begin(), order.end(), 0u);
  // Most likely first; equal probabilities by id, so the order is total and portable.
  std::sort(order.begin(), order.end(),
            [&](uint32_t a, uint32_t b) { return p[a] != p[b] ? p[a] > p[b] : a < b; });
  const double total = std::accumulate(p.begin(), p.end(), 0.0);
  const double nucleus = std::clamp(static_cast<double>(top_p_), 0.0, 1.0) * total;
  size_t keep = 0;
  double kept = 0.0;
  while (keep < order.size() && (keep == 0 || kept < nucleus)) kept += p[order[keep++]];
  // 53 random bits -> [0, kept): uniform_real_distribution is not portable across STLs.
  const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53 * kept;
  double acc = 0.0;
  for (size_t i = 0; i < keep; ++i) {
    acc += p[order[i]];
    if (u < acc) return static_cast<TokenId>(order[i]);
  }
  return static_cast<TokenId>(order[keep - 1]);
}

}  // namespace strata::engine
