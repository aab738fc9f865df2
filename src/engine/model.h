// Model: a Llama-architecture decoder on CPU (RMSNorm, RoPE, grouped-query attention over
// the paged KV cache, SwiGLU, fp32) over deterministic synthetic weights or weights loaded
// from a checkpoint (model_loader.h).
//
// Forward() runs any mix of tokens from any sequences in one pass: prefill chunks and
// decode tokens alike are rows (sequence, position, token). Each row writes its K/V into
// its sequence's blocks and attends to positions 0..pos of that sequence. A row's KV and
// logits are bit-identical whatever else shares the pass and however the prompt was
// chunked, and however many threads run it (see kernels.h): rows are laid out in GEMM
// "slots" by position modulo the BLAS row group, and attention runs per row in a fixed
// order. Forward uses kernels::NumThreads() threads (GEMM row groups, attention tiles and
// heads, and row-wise steps are split between them).
//
// Thread-compatible: the weights are immutable; a Workspace serves one Forward at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "engine/kv_cache.h"
#include "engine/model_config.h"
#include "strata/block_key.h"
#include "strata/status.h"

namespace strata::engine {

struct ForwardRow {
  uint32_t seq = 0;   // index into Forward's block_tables
  uint32_t pos = 0;   // position in the sequence
  TokenId token = 0;  // input token at pos
  bool want_logits = false;
};

// Scratch buffers of Forward, reused across calls.
struct Workspace {
  std::vector<float> x, xn, qkv, attn, proj, gate_up, act, logits_all;
  std::vector<float> rope_cos, rope_sin;
  std::vector<float> key_t;                 // transposed keys of every (sequence, KV head)
  std::vector<std::vector<float>> scratch;  // attention scratch, one per kernel thread
  std::vector<uint32_t> slot;
};

// The weights of one decoder layer, fp32, row-major with output features as rows (PyTorch's
// [out, in]). Q and K rows are in Hugging Face's RoPE order: each head's first half of rows
// pairs with its second half (GGUF's interleaved order is undone where the weights load).
struct LayerWeights {
  std::vector<float> attn_norm;     // [hidden]
  std::vector<float> wq, wk, wv;    // [heads*head_dim, hidden], [kv_heads*head_dim, hidden] x2
  std::vector<float> bq, bk, bv;    // the projections' biases; empty unless attention_bias
  std::vector<float> wo;            // [hidden, heads*head_dim]
  std::vector<float> mlp_norm;      // [hidden]
  std::vector<float> w_gate, w_up;  // [ffn, hidden]
  std::vector<float> w_down;        // [hidden, ffn]
};

struct ModelWeights {
  std::vector<float> embed;  // [vocab, hidden]
  std::vector<LayerWeights> layers;
  std::vector<float> final_norm;  // [hidden]
  std::vector<float> lm_head;     // [vocab, hidden]; empty when tied_embeddings (embed serves)
  // Empty, or head_dim / 2 factors: RoPE frequency i is theta^(-2i/head_dim) / factor[i]
  // (Llama-3.1's rope scaling, linear scaling, GGUF's rope_freqs tensor).
  std::vector<float> rope_freq_factors;
};

// The weights Model::Create builds from config.seed, as separate tensors (what the tests
// write into GGUF and safetensors files).
Result<ModelWeights> SyntheticWeights(const ModelConfig& config);

class Model {
 public:
  // Builds the weights from config.seed: identical on every process and machine.
  static Result<std::unique_ptr<Model>> Create(const ModelConfig& config);
  // A model over `weights`: InvalidArgument naming the tensor whose size does not match
  // `config`, or a missing bias / lm_head the config asks for.
  static Result<std::unique_ptr<Model>> FromWeights(const ModelConfig& config,
                                                    ModelWeights weights);

  const ModelConfig& config() const { return config_; }

  // Runs `rows`. block_tables[seq] holds the sequence's device blocks; they must cover
  // every row's position, and positions before a row's must already hold KV (from
  // earlier passes, loads, or earlier rows of this pass). Appends the logits of rows with
  // want_logits, in row order, to *logits (vocab_size floats each).
  Status Forward(std::span<const ForwardRow> rows,
                 std::span<const std::span<const uint32_t>> block_tables, PagedKvCache& kv,
                 Workspace& ws, std::vector<float>* logits) const;

  // Floating-point operations of a pass over `new_tokens` tokens of one sequence that
  // follow `past_tokens` cached ones: 2 per weight per token plus attention (QK and PV).
  double ForwardFlops(uint64_t new_tokens, uint64_t past_tokens) const;

 private:
  struct Layer {
    std::vector<float> attn_norm, wqkv, bqkv, wo, mlp_norm, w_gate_up, w_down;
  };
  explicit Model(const ModelConfig& config) : config_(config) {}
  void Attention(std::span<const ForwardRow> rows,
                 std::span<const std::span<const uint32_t>> block_tables, const PagedKvCache& kv,
                 uint32_t layer, Workspace& ws) const;

  ModelConfig config_;
  uint32_t row_group_ = 1;
  std::vector<float> embed_, final_norm_, lm_head_;  // lm_head_ empty: tied to embed_
  std::vector<Layer> layers_;
  std::vector<double> inv_freq_;
};

}  // namespace strata::engine
