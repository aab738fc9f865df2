// Numeric kernels. Hot loops are compiled three times (AVX-512, AVX2 and baseline) and
// picked at load time; every clone does the same IEEE operations in the same order (the
// engine builds with -ffp-contract=off and no FMA target, and vector lanes only ever hold
// independent outputs), so they give identical bits.
#include "engine/kernels.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include <cblas.h>

// Each kernel in AVX-512, AVX2 and baseline variants, picked by an ifunc resolver at load
// time. Not in sanitizer builds: the resolver runs before the sanitizer runtime is up and
// crashes in its instrumentation.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(STRATA_SANITIZED)
#define STRATA_KERNEL __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define STRATA_KERNEL
#endif

namespace strata::engine::kernels {

// ---- Threads ------------------------------------------------------------------------

namespace {

uint32_t DefaultThreads() {
  if (const char* env = std::getenv("STRATA_ENGINE_THREADS"); env != nullptr) {
    const long v = std::strtol(env, nullptr, 10);
    if (v >= 1 && v <= 256) return static_cast<uint32_t>(v);
  }
  return std::clamp(std::thread::hardware_concurrency(), 1u, 16u);
}

std::atomic<uint32_t> g_threads{0};  // 0: not yet set

// A fixed set of workers that run one ParallelFor at a time. Workers spin briefly for
// the next job before sleeping: a forward pass issues several jobs per layer, and a
// cross-thread wake-up costs ~10-20 us on small VMs.
class Pool {
 public:
  explicit Pool(uint32_t workers) {
    for (uint32_t w = 1; w <= workers; ++w) threads_.emplace_back([this, w] { Work(w); });
  }
  ~Pool() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
      generation_.fetch_add(1);
    }
    cv_.notify_all();
    for (std::thread& t : threads_) t.join();
  }
  uint32_t workers() const { return static_cast<uint32_t>(threads_.size()); }

  // Runs the job with workers 1..helpers (helpers <= workers()) and the caller; false
  // when another job holds the pool.
  bool TryRun(uint32_t n, uint32_t helpers, const std::function<void(uint32_t, uint32_t)>& fn) {
    std::unique_lock run(run_mu_, std::try_to_lock);
    if (!run.owns_lock()) return false;
    {
      std::lock_guard lock(mu_);
      fn_ = &fn;
      n_ = n;
      helpers_ = helpers;
      next_.store(0);
      busy_.store(helpers);
      generation_.fetch_add(1);
    }
    cv_.notify_all();
    Claim(0);
    // The caller waits for the helpers (spinning: they finish within the same job).
    for (uint32_t spins = 0; busy_.load(std::memory_order_acquire) != 0; ++spins)
      if (spins > 1024) std::this_thread::yield();
    return true;
  }

 private:
  void Claim(uint32_t worker) {
    for (uint32_t t = next_.fetch_add(1); t < n_; t = next_.fetch_add(1)) (*fn_)(t, worker);
  }

  void Work(uint32_t worker) {
    uint64_t seen = 0;
    for (;;) {
      // Spin a few tens of microseconds for the next job, then sleep.
      for (uint32_t spins = 0; generation_.load(std::memory_order_acquire) == seen && spins < 4000;
           ++spins)
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#else
        std::this_thread::yield();
#endif
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return generation_.load() != seen; });
      seen = generation_.load();
      if (stop_) return;
      const bool helps = worker <= helpers_;
      lock.unlock();
      if (helps) {
        Claim(worker);
        busy_.fetch_sub(1, std::memory_order_release);
      }
    }
  }

  std::mutex run_mu_;  // one job at a time
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<uint64_t> generation_{0};
  bool stop_ = false;
  const std::function<void(uint32_t, uint32_t)>* fn_ = nullptr;
  uint32_t n_ = 0, helpers_ = 0;
  std::atomic<uint32_t> next_{0}, busy_{0};
  std::vector<std::thread> threads_;
};

Pool& GetPool() {
  // As many workers as CPUs (capped): SetNumThreads only changes how many take part.
  static Pool pool(std::clamp(std::thread::hardware_concurrency(), 1u, 16u) - 1);
  return pool;
}

}  // namespace

uint32_t NumThreads() {
  uint32_t t = g_threads.load(std::memory_order_relaxed);
  if (t == 0) {
    t = DefaultThreads();
    g_threads.store(t, std::memory_order_relaxed);
  }
  return t;
}

void SetNumThreads(uint32_t threads) {
  g_threads.store(threads == 0 ? DefaultThreads() : threads, std::memory_order_relaxed);
}

void ParallelFor(uint32_t n, const std::function<void(uint32_t task, uint32_t worker)>& fn,
                 uint32_t max_threads) {
  if (n == 0) return;
  uint32_t threads = std::min(NumThreads(), n);
  if (max_threads != 0) threads = std::min(threads, max_threads);
  if (threads > 1) {
    Pool& pool = GetPool();
    if (pool.TryRun(n, std::min(threads - 1, pool.workers()), fn)) return;
  }
  for (uint32_t t = 0; t < n; ++t) fn(t, 0);
}

// ---- GEMM ---------------------------------------------------------------------------

namespace {

void RawSgemm(const float* x, uint32_t m, uint32_t k, const float* w, uint32_t n, float* y) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(k), 1.0f, x, static_cast<int>(k), w, static_cast<int>(k), 0.0f, y,
              static_cast<int>(n));
}

// True when, for row group `u`, every row of calls with M in {u, 2u, 3u} starting at
// row offsets that are multiples of u matches the same row of one large call.
bool RowGroupHolds(uint32_t u, uint32_t n, uint32_t k) {
  const uint32_t rows = 8 * u;
  std::mt19937 rng(u * 7919 + n);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> x(size_t{rows} * k), w(size_t{n} * k), ref(size_t{rows} * n),
      y(size_t{rows} * n);
  for (float& v : x) v = dist(rng);
  for (float& v : w) v = dist(rng);
  RawSgemm(x.data(), rows, k, w.data(), n, ref.data());
  for (uint32_t groups : {1u, 2u, 3u})
    for (uint32_t offset_groups : {0u, 1u, 5u}) {
      const size_t off = size_t{offset_groups} * u;
      const uint32_t m = groups * u;
      RawSgemm(x.data() + off * k, m, k, w.data(), n, y.data());
      if (std::memcmp(y.data(), ref.data() + off * n, sizeof(float) * m * n) != 0) return false;
    }
  return true;
}

uint32_t ProbeRowGroup() {
  openblas_set_num_threads(1);
  for (uint32_t u : {4u, 8u, 12u, 16u, 24u, 32u, 48u, 64u, 96u}) {
    bool ok = true;
    for (auto [n, k] : {std::pair{64u, 64u}, std::pair{96u, 160u}, std::pair{259u, 392u}})
      ok = ok && RowGroupHolds(u, n, k);
    if (ok) return u;
  }
  return 1;  // one row per call: always the same code path
}

}  // namespace

uint32_t GemmRowGroup() {
  static const uint32_t group = ProbeRowGroup();
  return group;
}

void MatMulT(const float* x, uint32_t m, uint32_t k, const float* w, uint32_t n, float* y) {
  if (m == 0) return;
  const uint32_t group = GemmRowGroup();
  const uint32_t groups = m / group;
  // Split between threads when each part keeps a few million multiply-adds (below that a
  // wake-up costs more than it saves). Parts start at row-group boundaries, so every row
  // keeps its index modulo the group and its bits (see GemmRowGroup).
  const uint64_t macs = uint64_t{m} * k * n;
  const uint32_t parts =
      std::min<uint64_t>({NumThreads(), groups, std::max<uint64_t>(1, macs / (uint64_t{4} << 20))});
  if (parts <= 1) {
    if (group == 1) {
      for (uint32_t r = 0; r < m; ++r) RawSgemm(x + size_t{r} * k, 1, k, w, n, y + size_t{r} * n);
    } else {
      RawSgemm(x, m, k, w, n, y);
    }
    return;
  }
  ParallelFor(parts, [&](uint32_t part, uint32_t) {
    const uint32_t g0 = static_cast<uint32_t>(uint64_t{groups} * part / parts);
    const uint32_t g1 = static_cast<uint32_t>(uint64_t{groups} * (part + 1) / parts);
    for (uint32_t g = g0; g < g1;) {
      // group == 1: rows one by one, as above.
      const uint32_t rows = group == 1 ? 1 : (g1 - g) * group;
      const size_t r0 = size_t{g} * group;
      RawSgemm(x + r0 * k, rows, k, w, n, y + r0 * n);
      g += group == 1 ? 1 : g1 - g;
    }
  });
}

// ---- Element-wise and per-row -------------------------------------------------------

STRATA_KERNEL
void RmsNorm(const float* x, const float* weight, uint32_t n, float eps, float* out) {
  // Eight running sums across lanes, combined in a fixed tree: vectorisable without
  // reassociation.
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  uint32_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (uint32_t j = 0; j < 8; ++j) acc[j] += x[i + j] * x[i + j];
  for (uint32_t j = 0; i < n; ++i, ++j) acc[j] += x[i] * x[i];
  const float sum =
      ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  const float scale = 1.0f / std::sqrt(sum / static_cast<float>(n) + eps);
  for (i = 0; i < n; ++i) out[i] = x[i] * scale * weight[i];
}

void Rope(float* v, uint32_t head_dim, const float* cos, const float* sin) {
  const uint32_t half = head_dim / 2;
  for (uint32_t i = 0; i < half; ++i) {
    const float a = v[i], b = v[i + half];
    v[i] = a * cos[i] - b * sin[i];
    v[i + half] = b * cos[i] + a * sin[i];
  }
}

STRATA_KERNEL
void SiluMul(const float* gate, const float* up, uint32_t n, float* out) {
  for (uint32_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

namespace {

// Shared by ExpShift and Attend (inlined into each clone).
[[gnu::always_inline]] inline void ExpShiftInline(float* x, uint32_t n, float shift) {
  // Cephes-style expf: 2^k * p(r), |error| ~ 2 ulp; only inputs <= 0 occur (x - max).
  for (uint32_t i = 0; i < n; ++i) {
    float v = x[i] - shift;
    v = std::max(v, -87.0f);
    v = std::min(v, 88.0f);
    const float fx = v * 1.44269504088896341f + 0.5f;
    int32_t k = static_cast<int32_t>(fx);
    k -= static_cast<float>(k) > fx ? 1 : 0;  // floor
    const float kf = static_cast<float>(k);
    float r = v - kf * 0.693359375f;
    r = r - kf * -2.12194440e-4f;
    const float z = r * r;
    float y = 1.9875691500e-4f;
    y = y * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * z + r + 1.0f;
    x[i] = y * std::bit_cast<float>(static_cast<uint32_t>(k + 127) << 23);
  }
}

// Sixteen floats / ints: one AVX-512 register, two AVX2 or four SSE registers, depending
// on the clone; the operations are element-wise IEEE, so every clone gives the same bits.
// Passed by reference only (no vector-ABI differences between clones).
// The helpers below take and return V16 by value but are always inlined into their
// clone, so GCC's note that such a signature has a different ABI per target is moot.
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float V16 __attribute__((vector_size(64)));
typedef int32_t I16 __attribute__((vector_size(64)));
static_assert(kKeyGroup == 16);

// A broadcast of lane 0 (GCC builds a {x, x, ...} literal lane by lane).
[[gnu::always_inline]] inline V16 Splat(float x) {
  return __builtin_shuffle(V16{x}, I16{});
}
[[gnu::always_inline]] inline V16 LoadV(const float* p) {
  V16 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
[[gnu::always_inline]] inline void StoreV(float* p, const V16& v) {
  std::memcpy(p, &v, sizeof(v));
}

// ExpShiftInline on 16 lanes: the same operations in the same order.
[[gnu::always_inline]] inline void ExpShiftV(float* x, float shift) {
  V16 v = LoadV(x) - Splat(shift);
  v = v < Splat(-87.0f) ? Splat(-87.0f) : v;  // std::max(v, -87)
  v = Splat(88.0f) < v ? Splat(88.0f) : v;    // std::min(v, 88)
  const V16 fx = v * Splat(1.44269504088896341f) + Splat(0.5f);
  I16 k = __builtin_convertvector(fx, I16);                       // truncation, as static_cast
  k += __builtin_convertvector(k, V16) > fx ? I16{} - 1 : I16{};  // floor
  const V16 kf = __builtin_convertvector(k, V16);
  V16 r = v - kf * Splat(0.693359375f);
  r = r - kf * Splat(-2.12194440e-4f);
  const V16 z = r * r;
  V16 y = Splat(1.9875691500e-4f);
  y = y * r + Splat(1.3981999507e-3f);
  y = y * r + Splat(8.3334519073e-3f);
  y = y * r + Splat(4.1665795894e-2f);
  y = y * r + Splat(1.6666665459e-1f);
  y = y * r + Splat(5.0000001201e-1f);
  y = y * z + r + Splat(1.0f);
  const I16 bits = (k + 127) << 23;
  V16 scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  StoreV(x, y * scale);
}

// Scores of R (row, head) pairs against one group of 16 keys: out[p][j] = sum over i in
// order of q[p][i] * kt[i][j], starting from +0 (lanes run across keys). Also folds the
// first valid[p] lanes into the pair's running lane-wise maximum mx[p].
template <uint32_t R>
[[gnu::always_inline]] inline void ScoresGroup(const float* const* q, const float* kt, uint32_t d,
                                               float* const* out, float* const* mx,
                                               const uint32_t* valid) {
  V16 acc[R];
#pragma GCC unroll 16
  for (uint32_t p = 0; p < R; ++p) acc[p] = V16{};
  for (uint32_t i = 0; i < d; ++i) {
    const V16 k = LoadV(kt + size_t{i} * 16);
#pragma GCC unroll 16
    for (uint32_t p = 0; p < R; ++p) acc[p] += Splat(q[p][i]) * k;
  }
  const I16 lane = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  const V16 neg_inf = Splat(-std::numeric_limits<float>::infinity());
#pragma GCC unroll 16
  for (uint32_t p = 0; p < R; ++p) {
    StoreV(out[p], acc[p]);
    const V16 a = lane < static_cast<int32_t>(valid[p]) ? acc[p] : neg_inf;
    const V16 m = LoadV(mx[p]);
    StoreV(mx[p], a > m ? a : m);
  }
}

// Weighted values of R pairs over keys [0, n) of a chunk, continuing their running sums:
// out[p][0..16 NV) += w[p][j] * v[j][..] and sum[p] += w[p][j], j in order (lanes run
// across the head dimension).
template <uint32_t NV, uint32_t R>
[[gnu::always_inline]] inline void ValuesRun(const float* const* w, const float* const* v,
                                             uint32_t n, float* const* out, float* sum) {
  V16 acc[R][NV];
  float s[R];
#pragma GCC unroll 16
  for (uint32_t p = 0; p < R; ++p) {
    s[p] = sum[p];
#pragma GCC unroll 16
    for (uint32_t c = 0; c < NV; ++c) acc[p][c] = LoadV(out[p] + 16 * c);
  }
  for (uint32_t j = 0; j < n; ++j) {
    V16 vj[NV];
#pragma GCC unroll 16
    for (uint32_t c = 0; c < NV; ++c) vj[c] = LoadV(v[j] + 16 * c);
#pragma GCC unroll 16
    for (uint32_t p = 0; p < R; ++p) {
      const float wj = w[p][j];
      s[p] += wj;
      const V16 ws = Splat(wj);
#pragma GCC unroll 16
      for (uint32_t c = 0; c < NV; ++c) acc[p][c] += ws * vj[c];
    }
  }
#pragma GCC unroll 16
  for (uint32_t p = 0; p < R; ++p) {
    sum[p] = s[p];
#pragma GCC unroll 16
    for (uint32_t c = 0; c < NV; ++c) StoreV(out[p] + 16 * c, acc[p][c]);
  }
}

// The same for any head_dim (scalar lanes), one pair.
[[gnu::always_inline]] inline void ValuesRunAny(const float* w, const float* const* v, uint32_t n,
                                                uint32_t d, float* out, float* sum) {
  for (uint32_t j = 0; j < n; ++j) {
    *sum += w[j];
    for (uint32_t i = 0; i < d; ++i) out[i] += w[j] * v[j][i];
  }
}

// One (row, head) of a tile.
struct Pair {
  const float* q;
  float* out;
  float* scores;  // span_pad floats
  float* mx;      // 16 lanes
  float* sum;
  uint32_t len;  // keys attended: pos + 1
  float shift;
};

// Key positions per chunk of the weighted-value pass: the chunk's values (64 x head_dim
// floats) stay in L1 while every pair of the tile runs over them.
constexpr uint32_t kValueChunk = 64;

template <uint32_t NV, uint32_t R>
[[gnu::always_inline]] inline void ValuesChunk(Pair* const* pairs, uint32_t count, uint32_t j0,
                                               uint32_t j1, const float* const* vrow) {
  uint32_t i = 0;
  for (; i + R <= count; i += R) {
    // The keys every pair of the group attends run together, then each pair's tail alone.
    uint32_t common = j1;
    for (uint32_t p = 0; p < R; ++p) common = std::min(common, pairs[i + p]->len);
    const float* w[R];
    float* out[R];
    float sum[R];
    for (uint32_t p = 0; p < R; ++p) {
      w[p] = pairs[i + p]->scores + j0;
      out[p] = pairs[i + p]->out;
      sum[p] = *pairs[i + p]->sum;
    }
    ValuesRun<NV, R>(w, vrow, common - j0, out, sum);
    for (uint32_t p = 0; p < R; ++p) {
      Pair& pr = *pairs[i + p];
      const uint32_t end = std::min(j1, pr.len);
      const float* wp = pr.scores + common;
      float* op = pr.out;
      ValuesRun<NV, 1>(&wp, vrow + (common - j0), end - common, &op, &sum[p]);
      *pr.sum = sum[p];
    }
  }
  for (; i < count; ++i) {
    Pair& pr = *pairs[i];
    const float* wp = pr.scores + j0;
    float* op = pr.out;
    ValuesRun<NV, 1>(&wp, vrow, std::min(j1, pr.len) - j0, &op, pr.sum);
  }
}

template <uint32_t NV, uint32_t R>
[[gnu::always_inline]] inline void AttendValues(Pair* const* pairs, uint32_t count, uint32_t span,
                                                const AttentionTile& t) {
  const uint32_t tpb = t.tokens_per_block;
  const float* vrow[kValueChunk];
  Pair* active[256];
  for (uint32_t j0 = 0; j0 < span; j0 += kValueChunk) {
    const uint32_t j1 = std::min(span, j0 + kValueChunk);
    for (uint32_t j = j0; j < j1; ++j)
      vrow[j - j0] = t.v[j / tpb] + size_t{j % tpb} * t.token_stride;
    uint32_t n = 0;
    for (uint32_t p = 0; p < count; ++p)
      if (pairs[p]->len > j0) {
        Pair& pr = *pairs[p];
        // Softmax numerators of this chunk in place (whole lanes: the padding lanes past
        // len are never read).
        const uint32_t end = std::min(j1, pr.len);
        for (uint32_t j = j0; j < end; j += 16) ExpShiftV(pr.scores + j, pr.shift);
        active[n++] = &pr;
      }
    ValuesChunk<NV, R>(active, n, j0, j1, vrow);
  }
}

}  // namespace

STRATA_KERNEL
void ExpShift(float* x, uint32_t n, float shift) {
  ExpShiftInline(x, n, shift);
}

void TransposeKeys(const float* const* k, uint32_t tokens_per_block, uint32_t token_stride,
                   uint32_t head_dim, uint32_t span, float* kt) {
  const uint32_t d = head_dim, groups = (span + kKeyGroup - 1) / kKeyGroup;
  for (uint32_t g = 0; g < groups; ++g) {
    float* out = kt + size_t{g} * d * kKeyGroup;
    for (uint32_t j = 0; j < kKeyGroup; ++j) {
      const uint32_t p = g * kKeyGroup + j;
      if (p >= span) {
        for (uint32_t i = 0; i < d; ++i) out[size_t{i} * kKeyGroup + j] = 0.0f;
        continue;
      }
      const float* key = k[p / tokens_per_block] + size_t{p % tokens_per_block} * token_stride;
      for (uint32_t i = 0; i < d; ++i) out[size_t{i} * kKeyGroup + j] = key[i];
    }
  }
}

size_t AttendScratchFloats(uint32_t num_rows, uint32_t heads, uint32_t span) {
  const size_t pairs = size_t{num_rows} * heads;
  const size_t span_pad = (span + kKeyGroup - 1) / kKeyGroup * kKeyGroup;
  return pairs * (span_pad + 16 + 1);
}

STRATA_KERNEL
void Attend(const AttentionTile& t) {
  const uint32_t d = t.head_dim, heads = t.heads;
  const uint32_t num_pairs = t.num_rows * heads;
  uint32_t span = 0;
  for (uint32_t r = 0; r < t.num_rows; ++r) span = std::max(span, t.pos[r] + 1);
  const uint32_t span_pad = (span + 15) / 16 * 16;

  // Scratch: scores [pair][span_pad], lane maxima [pair][16], weight sums [pair].
  std::vector<Pair> pairs(num_pairs);
  for (uint32_t r = 0; r < t.num_rows; ++r)
    for (uint32_t h = 0; h < heads; ++h) {
      const uint32_t p = r * heads + h;
      Pair& pr = pairs[p];
      pr.q = t.q[r] + size_t{h} * d;
      pr.out = t.out[r] + size_t{h} * d;
      pr.scores = t.scratch + size_t{p} * span_pad;
      pr.mx = t.scratch + size_t{num_pairs} * span_pad + size_t{p} * 16;
      pr.sum = t.scratch + size_t{num_pairs} * (span_pad + 16) + p;
      pr.len = t.pos[r] + 1;
      std::fill(pr.mx, pr.mx + 16, -std::numeric_limits<float>::infinity());
      *pr.sum = 0.0f;
      std::memset(pr.out, 0, sizeof(float) * d);
    }

  // Scores, key group by key group; eight pairs share each load of the group's keys.
  constexpr uint32_t kR = 8;
  std::vector<Pair*> active;
  active.reserve(num_pairs);
  for (uint32_t g = 0; g < span_pad / 16; ++g) {
    const uint32_t j0 = g * 16;
    const float* kt = t.key_t + size_t{g} * d * 16;
    active.clear();
    for (Pair& pr : pairs)
      if (pr.len > j0) active.push_back(&pr);
    const float* q[kR];
    float* out[kR];
    float* mx[kR];
    uint32_t valid[kR];
    uint32_t i = 0;
    auto fill = [&](uint32_t count) {
      for (uint32_t p = 0; p < count; ++p) {
        const Pair& pr = *active[i + p];
        q[p] = pr.q;
        out[p] = pr.scores + j0;
        mx[p] = pr.mx;
        valid[p] = std::min(16u, pr.len - j0);
      }
    };
    for (; i + kR <= active.size(); i += kR) {
      fill(kR);
      ScoresGroup<kR>(q, kt, d, out, mx, valid);
    }
    if (i + 4 <= active.size()) {
      fill(4);
      ScoresGroup<4>(q, kt, d, out, mx, valid);
      i += 4;
    }
    if (i + 2 <= active.size()) {
      fill(2);
      ScoresGroup<2>(q, kt, d, out, mx, valid);
      i += 2;
    }
    if (i < active.size()) {
      fill(1);
      ScoresGroup<1>(q, kt, d, out, mx, valid);
    }
  }

  // Softmax shift: the exact maximum of each pair's scores.
  for (Pair& pr : pairs) {
    float m = pr.mx[0];
    for (uint32_t j = 1; j < 16; ++j) m = std::max(m, pr.mx[j]);
    pr.shift = m;
  }

  // Numerators, weighted values and weight sums, chunk by chunk of key positions.
  std::vector<Pair*> all(num_pairs);
  for (uint32_t p = 0; p < num_pairs; ++p) all[p] = &pairs[p];
  for (uint32_t p0 = 0; p0 < num_pairs; p0 += 256) {
    const uint32_t count = std::min(256u, num_pairs - p0);
    switch (d) {
      case 16:
        AttendValues<1, 8>(all.data() + p0, count, span, t);
        break;
      case 32:
        AttendValues<2, 6>(all.data() + p0, count, span, t);
        break;
      case 64:
        AttendValues<4, 4>(all.data() + p0, count, span, t);
        break;
      case 128:
        AttendValues<8, 2>(all.data() + p0, count, span, t);
        break;
      default: {
        // Any other head_dim: scalar lanes, the same order.
        const uint32_t tpb = t.tokens_per_block;
        std::vector<const float*> vrow(span);
        for (uint32_t j = 0; j < span; ++j)
          vrow[j] = t.v[j / tpb] + size_t{j % tpb} * t.token_stride;
        for (uint32_t p = p0; p < p0 + count; ++p) {
          Pair& pr = pairs[p];
          ExpShiftInline(pr.scores, pr.len, pr.shift);
          ValuesRunAny(pr.scores, vrow.data(), pr.len, d, pr.out, pr.sum);
        }
      }
    }
  }

  for (Pair& pr : pairs) {
    const float inv = 1.0f / *pr.sum;
    for (uint32_t i = 0; i < d; ++i) pr.out[i] *= inv;
  }
}

STRATA_KERNEL
void Add(float* x, const float* y, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i) x[i] += y[i];
}

}  // namespace strata::engine::kernels
