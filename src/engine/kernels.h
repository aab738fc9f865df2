// Numeric kernels of the reference engine, written so that a token's result never
// depends on which other tokens share the call: every reduction has one fixed order
// (vector lanes only ever run across independent outputs), no FMA contraction, and
// GEMMs go through OpenBLAS only in shapes whose per-row results were checked to be
// invariant (see GemmRowGroup). This is what makes KV loaded from Strata bit-identical
// to KV computed in place, whatever the chunking or batching.
#pragma once

#include <cstdint>

namespace strata::engine::kernels {

// OpenBLAS's single-threaded sgemm computes a row the same way wherever it sits, provided
// M is a multiple of the kernel's row unroll and the row keeps its index modulo that
// unroll. This returns the smallest such unroll ("row group"), found once per process by
// probing the linked OpenBLAS (12 for its Haswell kernels); 1 means rows go one by one.
// Also pins OpenBLAS to one thread (its threaded split is not row-invariant); the call is
// process-wide. Thread-safe.
uint32_t GemmRowGroup();

// y[m x n] = x[m x k] * w[n x k]^T, row-major. m must be a multiple of GemmRowGroup(),
// and a row's result is bit-identical whenever its index modulo the row group is.
void MatMulT(const float* x, uint32_t m, uint32_t k, const float* w, uint32_t n, float* y);

// out = x / rms(x) * weight, with the sum of squares in a fixed order.
void RmsNorm(const float* x, const float* weight, uint32_t n, float eps, float* out);

// Rotates v[0..head_dim) in place (rotate-half pairs (i, i + head_dim/2)) by the angles
// whose cos/sin are given (head_dim/2 each).
void Rope(float* v, uint32_t head_dim, const float* cos, const float* sin);

// out[i] = silu(gate[i]) * up[i].
void SiluMul(const float* gate, const float* up, uint32_t n, float* out);

// Causal attention of a tile of query rows of one sequence against one KV head: row r
// (at position pos[r]) attends with `heads` query heads to key positions 0..pos[r].
// Per (row, head) the order is fixed: scores q.k summed over head_dim in order, softmax
// with a max shift, the exp-weighted values summed over key positions in order, then
// divided by the weight sum. So the result for a row never depends on the tile.
struct AttentionTile {
  uint32_t head_dim = 0;
  uint32_t tokens_per_block = 0;
  uint32_t heads = 0;         // query heads sharing this KV head
  uint32_t token_stride = 0;  // floats between consecutive tokens in a KV chunk
  uint32_t num_rows = 0;
  uint32_t span = 0;                // max(pos) + 1
  const float* const* q = nullptr;  // q[r]: `heads` query vectors, contiguous
  const uint32_t* pos = nullptr;
  const float* const* k = nullptr;  // k[b]: first key of block b for this KV head
  const float* const* v = nullptr;  // v[b]: likewise for values
  float* const* out = nullptr;      // out[r]: `heads` output vectors, contiguous
  // Scratch: num_rows * heads * span, head_dim * tokens_per_block, num_rows * heads.
  float* scores = nullptr;
  float* key_t = nullptr;
  float* denom = nullptr;
};
void Attend(const AttentionTile& t);

// x[i] = exp(x[i] - shift) for i < n (a fixed polynomial, vectorisable, deterministic).
void ExpShift(float* x, uint32_t n, float shift);

// x[i] += y[i].
void Add(float* x, const float* y, uint32_t n);

}  // namespace strata::engine::kernels
