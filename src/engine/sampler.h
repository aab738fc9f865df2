// Sampler: picks the next token from logits. Greedy (argmax, ties to the lowest id) at
// temperature 0; otherwise temperature-scaled softmax restricted to the top_p nucleus,
// drawn from a per-request RNG seeded with SamplingParams::seed, so a request replays
// exactly given equal logits.
#pragma once

#include <cstdint>
#include <random>
#include <span>

#include "engine/generator.h"

namespace strata::engine {

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params)
      : temperature_(params.temperature), top_p_(params.top_p), rng_(params.seed) {}

  TokenId Sample(std::span<const float> logits);

  static TokenId Argmax(std::span<const float> logits);

 private:
  float temperature_;
  float top_p_;
  std::mt19937_64 rng_;
};

}  // namespace strata::engine
