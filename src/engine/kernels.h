// Numeric kernels of the reference engine, written so that a token's result never
// depends on which other tokens share the call, nor on how many threads run it: every
// reduction has one fixed order (vector lanes only ever run across independent outputs),
// no FMA contraction, GEMMs go through OpenBLAS only in shapes whose per-row results were
// checked to be invariant (see GemmRowGroup), and work is split between threads only
// along independent outputs (GEMM row groups, attention heads and query rows). This is
// what makes KV loaded from Strata bit-identical to KV computed in place, whatever the
// chunking, batching or thread count.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

namespace strata::engine::kernels {

// ---- Threads ------------------------------------------------------------------------

// Threads the kernels use (the caller plus pool workers), process-wide. Default: the
// environment variable STRATA_ENGINE_THREADS if set, else the number of CPUs (at most 16).
// Results never depend on it. Thread-safe.
uint32_t NumThreads();
// Sets it (0 restores the default). For tests and benchmarks: takes effect for later calls.
void SetNumThreads(uint32_t threads);

// Runs fn(task, worker) for every task in [0, n) on up to min(NumThreads(), max_threads)
// threads (max_threads 0: no cap; the caller is worker 0, and worker < that number) and
// returns when all are done. Tasks must be independent. When another ParallelFor is
// running (another engine in the process), the caller runs every task itself.
// Thread-safe.
void ParallelFor(uint32_t n, const std::function<void(uint32_t task, uint32_t worker)>& fn,
                 uint32_t max_threads = 0);

// ---- GEMM ---------------------------------------------------------------------------

// OpenBLAS's single-threaded sgemm computes a row the same way wherever it sits, provided
// M is a multiple of the kernel's row unroll and the row keeps its index modulo that
// unroll. This returns the smallest such unroll ("row group"), found once per process by
// probing the linked OpenBLAS (12 for its Haswell kernels); 1 means rows go one by one.
// Also pins OpenBLAS to one thread (its threaded split is not row-invariant); the call is
// process-wide. Thread-safe.
uint32_t GemmRowGroup();

// y[m x n] = x[m x k] * w[n x k]^T, row-major. m must be a multiple of GemmRowGroup(),
// and a row's result is bit-identical whenever its index modulo the row group is. Large
// products are split between threads at row-group boundaries (one single-threaded sgemm
// per part), which by the same invariance changes no bit.
void MatMulT(const float* x, uint32_t m, uint32_t k, const float* w, uint32_t n, float* y);

// ---- Element-wise and per-row -------------------------------------------------------

// out = x / rms(x) * weight, with the sum of squares in a fixed order.
void RmsNorm(const float* x, const float* weight, uint32_t n, float eps, float* out);

// Rotates v[0..head_dim) in place (rotate-half pairs (i, i + head_dim/2)) by the angles
// whose cos/sin are given (head_dim/2 each).
void Rope(float* v, uint32_t head_dim, const float* cos, const float* sin);

// out[i] = silu(gate[i]) * up[i].
void SiluMul(const float* gate, const float* up, uint32_t n, float* out);

// x[i] = exp(x[i] - shift) for i < n (a fixed polynomial, vectorisable, deterministic).
void ExpShift(float* x, uint32_t n, float shift);

// x[i] += y[i].
void Add(float* x, const float* y, uint32_t n);

// ---- Attention ----------------------------------------------------------------------

// Key positions are processed in groups of this many (one vector of scores).
inline constexpr uint32_t kKeyGroup = 16;

// Copies the keys of one KV head at positions [0, span) into groups of kKeyGroup
// positions, each group [head_dim][kKeyGroup]: kt[(g * head_dim + i) * 16 + j] is
// element i of the key at position 16 g + j (zero past span). k[b] points at the first
// key of block b for this head; consecutive tokens are token_stride floats apart.
// kt holds KeyGroupsFloats(span, head_dim) floats.
void TransposeKeys(const float* const* k, uint32_t tokens_per_block, uint32_t token_stride,
                   uint32_t head_dim, uint32_t span, float* kt);
inline size_t KeyGroupsFloats(uint32_t span, uint32_t head_dim) {
  return size_t{(span + kKeyGroup - 1) / kKeyGroup} * kKeyGroup * head_dim;
}

// Causal attention of a tile of query rows of one sequence against one KV head: row r
// (at position pos[r]) attends with `heads` query heads to key positions 0..pos[r].
// Per (row, head) the order is fixed: each score q.k summed over head_dim in order, the
// softmax shift is the exact maximum, the exp-weighted values and the weight sum are each
// accumulated over key positions in order, then the values are divided by the sum. So
// the result for a row never depends on the tile, the thread, or the vector width.
struct AttentionTile {
  uint32_t head_dim = 0;
  uint32_t tokens_per_block = 0;
  uint32_t heads = 0;         // query heads sharing this KV head
  uint32_t token_stride = 0;  // floats between consecutive tokens in a KV chunk
  uint32_t num_rows = 0;
  const float* const* q = nullptr;  // q[r]: `heads` query vectors, contiguous
  const uint32_t* pos = nullptr;
  const float* key_t = nullptr;     // TransposeKeys of this head over max(pos) + 1 keys
  const float* const* v = nullptr;  // v[b]: first value of block b for this KV head
  float* const* out = nullptr;      // out[r]: `heads` output vectors, contiguous
  float* scratch = nullptr;         // AttendScratchFloats(num_rows, heads, max(pos) + 1)
};
size_t AttendScratchFloats(uint32_t num_rows, uint32_t heads, uint32_t span);
void Attend(const AttentionTile& t);

}  // namespace strata::engine::kernels
