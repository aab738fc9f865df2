// The model alone: presets, GEMM row invariance, and the bit-exactness that
// reuse depends on: a token's KV and logits do not change with prefill chunking, with
// the other sequences of a pass, or with where a copied-in prefix ends.
#include "engine/model.h"

#include <cstring>
#include <random>

#include <gtest/gtest.h>

#include "engine/kernels.h"

namespace strata::engine {
namespace {

std::vector<TokenId> Prompt(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<TokenId> t(n);
  for (auto& x : t) x = static_cast<TokenId>(rng() % 256);
  return t;
}

ModelConfig Tiny() {
  return *ModelConfig::Preset("tiny");
}

// A model, a KV cache and a helper that prefills one sequence in chunks.
struct Harness {
  explicit Harness(const ModelConfig& config = Tiny()) {
    auto m = Model::Create(config);
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    model = std::move(m).value();
    auto k = PagedKvCache::Create(config.kv_layout(), 64);
    EXPECT_TRUE(k.ok());
    kv = std::move(k).value();
  }
  std::vector<uint32_t> Blocks(size_t tokens) {
    auto b = kv->Allocate(static_cast<uint32_t>((tokens + model->config().tokens_per_block - 1) /
                                                model->config().tokens_per_block));
    EXPECT_TRUE(b.ok());
    return *b;
  }
  // Prefills prompt[from..] in chunks of `chunk`; returns the last token's logits.
  std::vector<float> Prefill(const std::vector<TokenId>& prompt, const std::vector<uint32_t>& table,
                             uint32_t chunk, uint32_t from = 0) {
    std::vector<float> logits;
    std::vector<std::span<const uint32_t>> tables{table};
    for (uint32_t start = from; start < prompt.size(); start += chunk) {
      std::vector<ForwardRow> rows;
      const uint32_t end = std::min<uint32_t>(static_cast<uint32_t>(prompt.size()), start + chunk);
      for (uint32_t p = start; p < end; ++p)
        rows.push_back({0, p, prompt[p], p + 1 == prompt.size()});
      logits.clear();
      EXPECT_TRUE(model->Forward(rows, tables, *kv, ws, &logits).ok());
    }
    return logits;
  }
  // KV bytes of positions [0, n) of a sequence, all layers.
  std::vector<float> Kv(const std::vector<uint32_t>& table, size_t n) {
    const KvLayout l = kv->layout();
    const size_t per = size_t{l.num_kv_heads} * l.head_dim;
    std::vector<float> out;
    for (uint32_t layer = 0; layer < l.num_layers; ++layer)
      for (uint32_t c = 0; c < 2; ++c)
        for (size_t p = 0; p < n; ++p) {
          const float* src =
              kv->chunk(layer, c, table[p / l.tokens_per_block]) + (p % l.tokens_per_block) * per;
          out.insert(out.end(), src, src + per);
        }
    return out;
  }
  std::unique_ptr<Model> model;
  std::unique_ptr<PagedKvCache> kv;
  Workspace ws;
};

bool BitEqual(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(ModelConfigTest, PresetsAndFingerprint) {
  auto demo = ModelConfig::Preset("demo");
  ASSERT_TRUE(demo.ok());
  EXPECT_TRUE(demo->Validate().ok());
  EXPECT_GT(demo->num_parameters(), 90'000'000u);
  EXPECT_LT(demo->num_parameters(), 120'000'000u);
  EXPECT_EQ(demo->kv_layout().tokens_per_block, 16u);
  EXPECT_EQ(demo->kv_layout().dtype, DType::kFloat32);
  EXPECT_FALSE(ModelConfig::Preset("huge").ok());
  EXPECT_NE(Tiny().Fingerprint(), ModelConfig::Preset("tiny", 2)->Fingerprint());
  EXPECT_NE(Tiny().Fingerprint(), demo->Fingerprint());
  ModelConfig bad = Tiny();
  bad.num_kv_heads = 3;
  EXPECT_EQ(bad.Validate().code(), StatusCode::kInvalidArgument);
}

TEST(KernelsTest, GemmRowsAreInvariantToBatchShape) {
  const uint32_t u = kernels::GemmRowGroup();
  const uint32_t k = 96, n = 80, rows = 6 * u;
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> dist(-1, 1);
  std::vector<float> x(size_t{rows} * k), w(size_t{n} * k), ref(size_t{rows} * n), y(ref.size());
  for (auto& v : x) v = dist(rng);
  for (auto& v : w) v = dist(rng);
  kernels::MatMulT(x.data(), rows, k, w.data(), n, ref.data());
  for (uint32_t groups = 1; groups <= 5; ++groups)
    for (uint32_t off = 0; off + groups <= 6; ++off) {
      kernels::MatMulT(x.data() + size_t{off} * u * k, groups * u, k, w.data(), n, y.data());
      EXPECT_EQ(
          std::memcmp(y.data(), ref.data() + size_t{off} * u * n, sizeof(float) * groups * u * n),
          0)
          << "groups " << groups << " offset " << off << " row group " << u;
    }
}

TEST(ModelTest, ChunkedPrefillIsBitIdenticalToOneShot) {
  const auto prompt = Prompt(37, 1);
  Harness one;
  const auto table = one.Blocks(prompt.size());
  const auto ref_logits = one.Prefill(prompt, table, 1000);
  ASSERT_EQ(ref_logits.size(), Tiny().vocab_size);
  const auto ref_kv = one.Kv(table, prompt.size());
  for (uint32_t chunk : {1u, 3u, 4u, 5u, 8u, 13u, 36u}) {
    Harness h;
    const auto t = h.Blocks(prompt.size());
    EXPECT_TRUE(BitEqual(h.Prefill(prompt, t, chunk), ref_logits)) << "chunk " << chunk;
    EXPECT_TRUE(BitEqual(h.Kv(t, prompt.size()), ref_kv)) << "chunk " << chunk;
  }
}

TEST(ModelTest, CopiedPrefixAtAnyBlockBoundaryGivesTheSameLogits) {
  // What a Strata load does: the prefix's KV bytes arrive from elsewhere; only the rest
  // is computed.
  const auto prompt = Prompt(30, 2);
  Harness src;
  const auto src_table = src.Blocks(prompt.size());
  const auto ref = src.Prefill(prompt, src_table, 7);
  const uint32_t tpb = Tiny().tokens_per_block;
  for (uint32_t blocks = 1; blocks * tpb < prompt.size(); ++blocks) {
    Harness dst;
    const auto table = dst.Blocks(prompt.size());
    for (uint32_t b = 0; b < blocks; ++b)
      for (uint32_t l = 0; l < Tiny().num_layers; ++l)
        for (uint32_t c = 0; c < 2; ++c)
          std::memcpy(dst.kv->chunk(l, c, table[b]), src.kv->chunk(l, c, src_table[b]),
                      dst.kv->layout().chunk_bytes());
    EXPECT_TRUE(BitEqual(dst.Prefill(prompt, table, 5, blocks * tpb), ref)) << blocks;
  }
}

TEST(ModelTest, OtherSequencesInThePassChangeNothing) {
  const auto a = Prompt(21, 3), b = Prompt(40, 4), c = Prompt(9, 5);
  Harness alone;
  const auto ref = alone.Prefill(a, alone.Blocks(a.size()), 6);

  // a in chunks of 6 while b prefills in chunks of 11 and c is prefilled then decodes.
  Harness mixed;
  const auto ta = mixed.Blocks(a.size()), tb = mixed.Blocks(b.size()),
             tc = mixed.Blocks(c.size() + 8);
  mixed.Prefill(c, tc, 100);
  std::vector<std::span<const uint32_t>> tables{ta, tb, tc};
  std::vector<float> last;
  uint32_t pa = 0, pb = 0, pc = static_cast<uint32_t>(c.size());
  while (pa < a.size()) {
    std::vector<ForwardRow> rows;
    rows.push_back({2, pc, static_cast<TokenId>(pc % 256), true});  // a decode of c
    ++pc;
    for (uint32_t i = 0; i < 11 && pb < b.size(); ++i, ++pb) rows.push_back({1, pb, b[pb], false});
    for (uint32_t i = 0; i < 6 && pa < a.size(); ++i, ++pa)
      rows.push_back({0, pa, a[pa], pa + 1 == a.size()});
    std::vector<float> logits;
    ASSERT_TRUE(mixed.model->Forward(rows, tables, *mixed.kv, mixed.ws, &logits).ok());
    if (pa == a.size()) last.assign(logits.end() - Tiny().vocab_size, logits.end());
  }
  EXPECT_TRUE(BitEqual(last, ref));
}

TEST(ModelTest, WeightsAreDeterministicAcrossInstances) {
  const auto prompt = Prompt(10, 6);
  Harness x, y;
  EXPECT_TRUE(BitEqual(x.Prefill(prompt, x.Blocks(10), 4), y.Prefill(prompt, y.Blocks(10), 10)));
  ModelConfig other = Tiny();
  other.seed = 7;
  Harness z(other);
  EXPECT_FALSE(BitEqual(x.Prefill(prompt, x.Blocks(10), 4), z.Prefill(prompt, z.Blocks(10), 4)));
}

TEST(ModelTest, RejectsRowsOutsideTheirBlocks) {
  Harness h;
  const auto table = h.Blocks(4);
  std::vector<std::span<const uint32_t>> tables{table};
  std::vector<ForwardRow> rows{{0, 4, 1, true}};
  std::vector<float> logits;
  EXPECT_EQ(h.model->Forward(rows, tables, *h.kv, h.ws, &logits).code(),
            StatusCode::kInvalidArgument);
  rows = {{1, 0, 1, true}};
  EXPECT_EQ(h.model->Forward(rows, tables, *h.kv, h.ws, &logits).code(),
            StatusCode::kInvalidArgument);
}

TEST(ModelTest, ForwardFlopsCountsWeightsAndAttention) {
  Harness h;
  const ModelConfig& c = h.model->config();
  const double weights = static_cast<double>(c.num_parameters()) - c.vocab_size * c.hidden -
                         c.hidden * (2.0 * c.num_layers + 1);
  EXPECT_DOUBLE_EQ(h.model->ForwardFlops(1, 0),
                   2 * weights + 4.0 * c.num_layers * c.num_heads * c.head_dim);
}

// The kernels' thread pool splits attention, GEMMs and element-wise work between threads;
// no split may change a bit of the logits or the KV.
TEST(ModelTest, ThreadCountDoesNotChangeAnyBit) {
  const auto prompt = Prompt(200, 9);
  const uint32_t saved = kernels::NumThreads();
  std::vector<float> logits[2], kv[2];
  for (uint32_t threads : {1u, 2u}) {
    kernels::SetNumThreads(threads);
    Harness h;
    const auto table = h.Blocks(prompt.size());
    logits[threads - 1] = h.Prefill(prompt, table, 1000);
    kv[threads - 1] = h.Kv(table, prompt.size());
  }
  kernels::SetNumThreads(saved);
  EXPECT_TRUE(BitEqual(logits[0], logits[1]));
  EXPECT_TRUE(BitEqual(kv[0], kv[1]));
}

}  // namespace
}  // namespace strata::engine
