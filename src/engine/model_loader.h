// LoadModel: a real Llama-family checkpoint for the reference engine — a GGUF file or a
// Hugging Face model directory (config.json + safetensors) — as a Model, its tokenizer and
// chat template, and the fingerprint that keys its KV in Strata. The tensor names and
// metadata keys read are listed in docs/model_formats.md ("engine loader").
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "engine/model.h"
#include "engine/model_config.h"
#include "strata/status.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace strata::engine {

struct ModelLoadOptions {
  // Context of one request (prompt + generated tokens). Default 0: the model's own context
  // length, at most 8192 (a larger one only costs memory when asked for).
  uint32_t max_context_tokens = 0;
  // Strata's block size. Default 16 (vLLM's).
  uint32_t tokens_per_block = 16;
};

struct LoadedModel {
  // The geometry read from the file, with name (the file's general.name or the directory's
  // name), weights_digest, tokens_per_block and max_context_tokens filled in.
  ModelConfig config;
  std::shared_ptr<const Model> model;
  std::shared_ptr<const tokenizer::Tokenizer> tokenizer;
  std::string format;         // "gguf" or "safetensors"
  std::string tensor_type;    // "F16", "BF16", "Q8_0", "F32", or "mixed" (of the 2-D weights)
  uint64_t tensor_bytes = 0;  // bytes of the weights as the file stores them
};

// Loads `path`: a regular file is read as GGUF, a directory as a Hugging Face model. Weights are
// memory-mapped and converted to fp32 (F32, F16, BF16; Q8_0 in GGUF). Errors name what is
// wrong: NotFound for a missing path or file; NotSupported naming an unknown architecture, a
// tensor type that does not convert, or a feature the engine lacks (partial RoPE, YaRN, sliding
// windows shorter than the context); InvalidArgument naming a tensor with the wrong shape or a
// missing metadata key; any error of the file readers or the tokenizer loaders.
Result<LoadedModel> LoadModel(const std::string& path, const ModelLoadOptions& options = {});

// The frequency factors of Llama-3.1's rope scaling (HF rope_type "llama3"), as Meta's
// reference computes them: one per RoPE frequency (head_dim / 2), the divisor of that frequency.
std::vector<float> Llama3RopeFactors(uint32_t head_dim, float theta, float factor,
                                     float low_freq_factor, float high_freq_factor,
                                     uint32_t original_context);

// llama.cpp's converter stores each head's Q and K rows with RoPE pairs adjacent (rows 2i and
// 2i+1); the engine, as Hugging Face, pairs row i with row i + head_dim/2. These map a [heads *
// head_dim, cols] matrix (or a bias, cols = 1) from one order to the other.
std::vector<float> RopeRowsInterleavedToHalves(const std::vector<float>& w, uint32_t heads,
                                               uint32_t head_dim, size_t cols);
std::vector<float> RopeRowsHalvesToInterleaved(const std::vector<float>& w, uint32_t heads,
                                               uint32_t head_dim, size_t cols);

// The digest of ModelConfig::weights_digest: SHA-256 over every tensor's name, size and
// XXH3-128 of its fp32 values, in a fixed order; lowercase hex.
std::string WeightsDigest(const ModelWeights& weights);

}  // namespace strata::engine
