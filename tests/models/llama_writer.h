// Writers of small Llama-family checkpoints for tests: a model's weights (usually the synthetic
// generator's) written as a GGUF file the way llama.cpp's converter lays it out (Q/K rows in
// interleaved RoPE order, ggml dims innermost first) or as a Hugging Face directory
// (config.json, safetensors, tokenizer.json), with a small tokenizer of either kind.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "engine/model.h"
#include "engine/model_config.h"
#include "strata/status.h"

namespace strata::testing {

// How the 2-D weights are stored (norms and biases are always F32). Q8_0 is GGUF only.
enum class WeightType { kF32, kF16, kBF16, kQ8_0 };
const char* WeightTypeName(WeightType type);

// The tokenizer written beside the weights.
enum class TestTokenizer {
  kSentencePiece,  // "llama": <unk> <s> </s>, 256 byte pieces, "▁"-pieces with scores/merges
  kGpt2,           // "gpt2" with Qwen2's pre-tokenizer and ChatML specials
};

// Llama-3.1's rope scaling, written as rope_freqs (GGUF) or config.json rope_scaling (HF).
struct Llama3Scaling {
  float factor = 8.0f, low_freq_factor = 1.0f, high_freq_factor = 4.0f;
  uint32_t original_context = 64;
};

// A config whose vocabulary fits the test tokenizers (320 tokens): the tiny preset's geometry,
// 4 tokens per block.
engine::ModelConfig TestModelConfig(std::string_view architecture = "llama",
                                    bool tied_embeddings = false);

// `weights` as a file of `type` gives them back: each 2-D weight rounded through the type.
engine::ModelWeights RoundTrip(const engine::ModelWeights& weights, WeightType type);

// Writes `weights` of `config` as the GGUF file `path`.
// With `scaling`, weights.rope_freq_factors must be Llama3RopeFactors of it.
Status WriteGgufModel(const std::string& path, const engine::ModelConfig& config,
                      const engine::ModelWeights& weights, WeightType type, TestTokenizer tokenizer,
                      std::optional<Llama3Scaling> scaling = {});

// Writes `weights` of `config` as a Hugging Face model directory `dir` (created); with
// `shards` > 1 the tensors are split over that many files and an index.
Status WriteHfModel(const std::string& dir, const engine::ModelConfig& config,
                    const engine::ModelWeights& weights, WeightType type, TestTokenizer tokenizer,
                    int shards = 1, std::optional<Llama3Scaling> scaling = {});

}  // namespace strata::testing
