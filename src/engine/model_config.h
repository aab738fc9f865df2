// ModelConfig: the geometry of the reference engine's Llama-architecture decoder, named
// presets, and the fingerprint that binds a config and its weights (a synthetic seed, or the
// digest of a loaded checkpoint) into Strata's block keys: two engines share cached KV only
// when their fingerprints are equal.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "strata/layout.h"
#include "strata/status.h"

namespace strata::engine {

struct ModelConfig {
  std::string name = "tiny";      // preset name, reported as the model name
  uint32_t vocab_size = 258;      // 256 byte tokens + BOS + EOS (tokenizer::MakeByteTokenizer)
  uint32_t hidden = 64;           // model width
  uint32_t num_layers = 2;        // decoder layers
  uint32_t num_heads = 4;         // query heads
  uint32_t num_kv_heads = 2;      // key/value heads (grouped-query attention); divides num_heads
  uint32_t head_dim = 16;         // per-head width
  uint32_t ffn = 128;             // SwiGLU inner width
  uint32_t tokens_per_block = 4;  // paged KV block size (Strata's block)
  uint32_t max_context_tokens = 1024;  // prompt + generated tokens per request
  float rope_theta = 10000.0f;         // RoPE base
  float rms_eps = 1e-5f;               // RMSNorm epsilon
  uint64_t seed = 1;                   // synthetic weight seed
  // The family as GGUF names it: "llama" (Llama-2/3, TinyLlama, SmolLM2, Mistral), "qwen2".
  std::string architecture = "llama";
  bool attention_bias = false;   // Q/K/V projections carry biases (Qwen2)
  bool tied_embeddings = false;  // the LM head is the token embedding
  // Loaded checkpoints only: a digest of the weights as the engine computes with them (every
  // tensor's shape and values after conversion to fp32, and the RoPE frequencies); empty for
  // the synthetic presets, whose weights the seed determines.
  std::string weights_digest;

  // Presets: "tiny" (tests: 2 layers, width 64), "small" (~25M parameters: 8 layers,
  // width 512, 8 query / 4 KV heads of 64, SwiGLU 1536, 16 tokens per block, 8K context;
  // the end-to-end serve test), "demo" (~100M parameters: 12 layers, width 768, 12 query /
  // 4 KV heads of 64, SwiGLU 3072, 16 tokens per block).
  static Result<ModelConfig> Preset(std::string_view name, uint64_t seed = 1);

  // InvalidArgument naming the bad field, or OK.
  Status Validate() const;
  // Number of weights (embeddings, layers, final norm, LM head).
  uint64_t num_parameters() const;
  // The KV layout of the paged cache: fp32, K/V per layer, NHD chunks.
  KvLayout kv_layout() const;
  // Canonical text binding every field that changes weights or KV bytes, e.g.
  // "strata-ref-llama/v1 tiny seed=1 vocab=258 hidden=64 ..." for a preset, or
  // "strata-ref-llama/v2 arch=llama vocab=... weights=<sha256>" for a loaded checkpoint (the
  // same weights loaded from GGUF or safetensors compute the same KV and share the
  // fingerprint). Goes into BlockManagerOptions::model_fingerprint.
  std::string Fingerprint() const;
};

}  // namespace strata::engine
