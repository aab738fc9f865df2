// Numeric kernels. Hot loops are compiled twice (AVX2 and baseline) and picked at load
// time; both clones do the same IEEE operations in the same order (the engine builds
// with -ffp-contract=off and no FMA target), so they give identical bits.
#include "engine/kernels.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <cblas.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define STRATA_KERNEL __attribute__((target_clones("avx2", "default")))
#else
#define STRATA_KERNEL
#endif

namespace strata::engine::kernels {
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
  if (group == 1) {
    for (uint32_t r = 0; r < m; ++r) RawSgemm(x + size_t{r} * k, 1, k, w, n, y + size_t{r} * n);
    return;
  }
  RawSgemm(x, m, k, w, n, y);
}

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

// s[j] = sum_i q[i] * kt[i * tpb + j] for j < nk, i in order; lanes run across keys.
[[gnu::always_inline]] inline void ScoresInline(const float* q, const float* kt, uint32_t d,
                                                uint32_t tpb, uint32_t nk, float* s) {
  if (tpb == 16 && nk == 16) {
    float acc[16] = {};
    for (uint32_t i = 0; i < d; ++i) {
      const float qi = q[i];
      for (uint32_t j = 0; j < 16; ++j) acc[j] += qi * kt[size_t{i} * 16 + j];
    }
    std::memcpy(s, acc, sizeof(acc));
    return;
  }
  for (uint32_t j = 0; j < nk; ++j) s[j] = 0.0f;
  for (uint32_t i = 0; i < d; ++i) {
    const float qi = q[i];
    for (uint32_t j = 0; j < nk; ++j) s[j] += qi * kt[size_t{i} * tpb + j];
  }
}

// out[0..D) += sum_j p[j] * v[j * stride + 0..D), j in order; lanes run across D.
template <uint32_t D>
[[gnu::always_inline]] inline void WeightedValuesFixed(const float* p, const float* v,
                                                       uint32_t stride, uint32_t nk, float* out) {
  float acc[D];
  std::memcpy(acc, out, sizeof(acc));
  for (uint32_t j = 0; j < nk; ++j) {
    const float pj = p[j];
    const float* vj = v + size_t{j} * stride;
    for (uint32_t i = 0; i < D; ++i) acc[i] += pj * vj[i];
  }
  std::memcpy(out, acc, sizeof(acc));
}

[[gnu::always_inline]] inline void WeightedValues(const float* p, const float* v, uint32_t d,
                                                  uint32_t stride, uint32_t nk, float* out) {
  switch (d) {
    case 64:
      return WeightedValuesFixed<64>(p, v, stride, nk, out);
    case 128:
      return WeightedValuesFixed<128>(p, v, stride, nk, out);
    case 16:
      return WeightedValuesFixed<16>(p, v, stride, nk, out);
    default:
      for (uint32_t j = 0; j < nk; ++j)
        for (uint32_t i = 0; i < d; ++i) out[i] += p[j] * v[size_t{j} * stride + i];
  }
}

}  // namespace

STRATA_KERNEL
void ExpShift(float* x, uint32_t n, float shift) {
  ExpShiftInline(x, n, shift);
}

STRATA_KERNEL
void Attend(const AttentionTile& t) {
  const uint32_t d = t.head_dim, tpb = t.tokens_per_block, heads = t.heads;
  const uint32_t num_blocks = (t.span + tpb - 1) / tpb;
  // Scores for every (row, head) and key position <= the row's.
  for (uint32_t b = 0; b < num_blocks; ++b) {
    const uint32_t valid = std::min(tpb, t.span - b * tpb);
    const float* kb = t.k[b];
    for (uint32_t j = 0; j < valid; ++j)
      for (uint32_t i = 0; i < d; ++i)
        t.key_t[size_t{i} * tpb + j] = kb[size_t{j} * t.token_stride + i];
    for (uint32_t r = 0; r < t.num_rows; ++r) {
      if (t.pos[r] < b * tpb) continue;
      const uint32_t nk = std::min(tpb, t.pos[r] + 1 - b * tpb);
      for (uint32_t h = 0; h < heads; ++h)
        ScoresInline(t.q[r] + size_t{h} * d, t.key_t, d, tpb, nk,
                     t.scores + (size_t{r} * heads + h) * t.span + b * tpb);
    }
  }
  // Softmax numerators in place; sums in key order.
  for (uint32_t r = 0; r < t.num_rows; ++r) {
    const uint32_t len = t.pos[r] + 1;
    for (uint32_t h = 0; h < heads; ++h) {
      float* s = t.scores + (size_t{r} * heads + h) * t.span;
      float m = s[0];
      for (uint32_t j = 1; j < len; ++j) m = std::max(m, s[j]);
      ExpShiftInline(s, len, m);
      float sum = 0.0f;
      for (uint32_t j = 0; j < len; ++j) sum += s[j];
      t.denom[size_t{r} * heads + h] = sum;
      std::memset(t.out[r] + size_t{h} * d, 0, sizeof(float) * d);
    }
  }
  // Weighted values, key positions in order.
  for (uint32_t b = 0; b < num_blocks; ++b) {
    const float* vb = t.v[b];
    for (uint32_t r = 0; r < t.num_rows; ++r) {
      if (t.pos[r] < b * tpb) continue;
      const uint32_t nk = std::min(tpb, t.pos[r] + 1 - b * tpb);
      for (uint32_t h = 0; h < heads; ++h)
        WeightedValues(t.scores + (size_t{r} * heads + h) * t.span + b * tpb, vb, d, t.token_stride,
                       nk, t.out[r] + size_t{h} * d);
    }
  }
  for (uint32_t r = 0; r < t.num_rows; ++r)
    for (uint32_t h = 0; h < heads; ++h) {
      const float inv = 1.0f / t.denom[size_t{r} * heads + h];
      float* o = t.out[r] + size_t{h} * d;
      for (uint32_t i = 0; i < d; ++i) o[i] *= inv;
    }
}

STRATA_KERNEL
void Add(float* x, const float* y, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i) x[i] += y[i];
}

}  // namespace strata::engine::kernels
