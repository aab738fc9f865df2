// Llama-architecture forward pass over the paged KV cache.
#include "engine/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "engine/kernels.h"

namespace strata::engine {
namespace {

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Tensor `id` of the model built from `seed`: `count` values uniform in
// [center - scale, center + scale), from integers only, so every machine gets the same bits.
std::vector<float> Synthetic(uint64_t seed, uint64_t id, size_t count, float scale,
                             float center = 0.0f) {
  uint64_t state = seed * 0x2545f4914f6cdd1dull + id * 0x9e3779b97f4a7c15ull;
  SplitMix64(state);
  std::vector<float> v(count);
  for (float& x : v) {
    const float u = static_cast<float>(SplitMix64(state) >> 40) * 0x1.0p-24f;  // [0, 1)
    x = center + (2.0f * u - 1.0f) * scale;
  }
  return v;
}

}  // namespace

Result<std::unique_ptr<Model>> Model::Create(const ModelConfig& config) {
  STRATA_RETURN_IF_ERROR(config.Validate());
  std::unique_ptr<Model> m(new Model(config));
  const ModelConfig& c = m->config_;
  const uint32_t q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim;
  const auto inv_sqrt = [](uint32_t fan_in) {
    return 1.0f / std::sqrt(static_cast<float>(fan_in));
  };
  uint64_t id = 0;
  m->embed_ = Synthetic(c.seed, id++, size_t{c.vocab_size} * c.hidden, 1.0f);
  for (uint32_t l = 0; l < c.num_layers; ++l) {
    Layer layer;
    layer.attn_norm = Synthetic(c.seed, id++, c.hidden, 0.1f, 1.0f);
    layer.wqkv = Synthetic(c.seed, id++, size_t{q + 2 * kv} * c.hidden, inv_sqrt(c.hidden));
    layer.wo = Synthetic(c.seed, id++, size_t{c.hidden} * q, inv_sqrt(q));
    layer.mlp_norm = Synthetic(c.seed, id++, c.hidden, 0.1f, 1.0f);
    layer.w_gate_up = Synthetic(c.seed, id++, size_t{2} * c.ffn * c.hidden, inv_sqrt(c.hidden));
    layer.w_down = Synthetic(c.seed, id++, size_t{c.hidden} * c.ffn, inv_sqrt(c.ffn));
    m->layers_.push_back(std::move(layer));
  }
  m->final_norm_ = Synthetic(c.seed, id++, c.hidden, 0.1f, 1.0f);
  m->lm_head_ = Synthetic(c.seed, id++, size_t{c.vocab_size} * c.hidden, inv_sqrt(c.hidden));
  for (uint32_t i = 0; i < c.head_dim / 2; ++i)
    m->inv_freq_.push_back(
        std::pow(static_cast<double>(c.rope_theta), -2.0 * static_cast<double>(i) / c.head_dim));
  m->row_group_ = kernels::GemmRowGroup();
  return m;
}

double Model::ForwardFlops(uint64_t new_tokens, uint64_t past_tokens) const {
  const ModelConfig& c = config_;
  const double q = static_cast<double>(c.num_heads) * c.head_dim,
               kv = static_cast<double>(c.num_kv_heads) * c.head_dim;
  const double per_layer = c.hidden * (q + 2 * kv) + q * c.hidden + 3.0 * c.hidden * c.ffn;
  const double matrix = c.num_layers * per_layer + static_cast<double>(c.vocab_size) * c.hidden;
  // Keys attended: sum over the new positions p of (p + 1).
  const double keys = static_cast<double>(new_tokens) * static_cast<double>(past_tokens) +
                      static_cast<double>(new_tokens) * static_cast<double>(new_tokens + 1) / 2;
  return 2.0 * matrix * static_cast<double>(new_tokens) + 4.0 * c.num_layers * q * keys;
}

Status Model::Forward(std::span<const ForwardRow> rows,
                      std::span<const std::span<const uint32_t>> block_tables, PagedKvCache& kv,
                      Workspace& ws, std::vector<float>* logits) const {
  const ModelConfig& c = config_;
  const uint32_t tpb = c.tokens_per_block, d = c.head_dim, half = d / 2;
  const uint32_t nq = c.num_heads * d, nkv = c.num_kv_heads * d, nqkv = nq + 2 * nkv;
  if (kv.layout() != c.kv_layout())
    return Status::InvalidArgument("Forward: KV cache layout differs from the model's");
  if (rows.empty()) return Status::Ok();
  for (const ForwardRow& r : rows) {
    if (r.seq >= block_tables.size())
      return Status::InvalidArgument(fmt::format("Forward: row of unknown sequence {}", r.seq));
    if (r.pos / tpb >= block_tables[r.seq].size())
      return Status::InvalidArgument(
          fmt::format("Forward: position {} of sequence {} is past its {} blocks", r.pos, r.seq,
                      block_tables[r.seq].size()));
    if (r.token < 0 || static_cast<uint32_t>(r.token) >= c.vocab_size)
      return Status::InvalidArgument(fmt::format("Forward: token {} out of vocabulary", r.token));
  }

  // Slots: row r sits at a GEMM row whose index modulo the row group equals its position
  // modulo the row group, so its projections are computed the same way in every pass.
  const uint32_t group = row_group_;
  std::vector<uint32_t> per_residue(group, 0);
  ws.slot.resize(rows.size());
  uint32_t groups = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    const uint32_t res = rows[i].pos % group;
    ws.slot[i] = per_residue[res]++ * group + res;
    groups = std::max(groups, per_residue[res]);
  }
  const uint32_t slots = groups * group;

  ws.x.assign(size_t{slots} * c.hidden, 0.0f);
  for (size_t i = 0; i < rows.size(); ++i)
    std::memcpy(&ws.x[size_t{ws.slot[i]} * c.hidden], &embed_[size_t(rows[i].token) * c.hidden],
                sizeof(float) * c.hidden);
  ws.rope_cos.resize(rows.size() * half);
  ws.rope_sin.resize(rows.size() * half);
  for (size_t i = 0; i < rows.size(); ++i)
    for (uint32_t j = 0; j < half; ++j) {
      const double angle = static_cast<double>(rows[i].pos) * inv_freq_[j];
      ws.rope_cos[i * half + j] = static_cast<float>(std::cos(angle));
      ws.rope_sin[i * half + j] = static_cast<float>(std::sin(angle));
    }
  ws.xn.resize(size_t{slots} * c.hidden);
  ws.qkv.resize(size_t{slots} * nqkv);
  ws.proj.resize(size_t{slots} * c.hidden);
  ws.gate_up.resize(size_t{slots} * 2 * c.ffn);
  ws.act.resize(size_t{slots} * c.ffn);
  const float q_scale = 1.0f / std::sqrt(static_cast<float>(d));

  for (uint32_t l = 0; l < c.num_layers; ++l) {
    const Layer& layer = layers_[l];
    // Attention block. Padding slots are all-zero and stay so through every step.
    for (uint32_t s = 0; s < slots; ++s)
      kernels::RmsNorm(&ws.x[size_t{s} * c.hidden], layer.attn_norm.data(), c.hidden, c.rms_eps,
                       &ws.xn[size_t{s} * c.hidden]);
    kernels::MatMulT(ws.xn.data(), slots, c.hidden, layer.wqkv.data(), nqkv, ws.qkv.data());
    for (size_t i = 0; i < rows.size(); ++i) {
      float* qkv = &ws.qkv[size_t{ws.slot[i]} * nqkv];
      const float* cs = &ws.rope_cos[i * half];
      const float* sn = &ws.rope_sin[i * half];
      for (uint32_t h = 0; h < c.num_heads; ++h) {
        kernels::Rope(qkv + h * d, d, cs, sn);
        for (uint32_t j = 0; j < d; ++j) qkv[h * d + j] *= q_scale;
      }
      for (uint32_t g = 0; g < c.num_kv_heads; ++g) kernels::Rope(qkv + nq + g * d, d, cs, sn);
      const uint32_t block = block_tables[rows[i].seq][rows[i].pos / tpb];
      const size_t offset = size_t{rows[i].pos % tpb} * nkv;
      std::memcpy(kv.chunk(l, 0, block) + offset, qkv + nq, sizeof(float) * nkv);
      std::memcpy(kv.chunk(l, 1, block) + offset, qkv + nq + nkv, sizeof(float) * nkv);
    }
    ws.attn.assign(size_t{slots} * nq, 0.0f);
    Attention(rows, block_tables, kv, l, ws);
    kernels::MatMulT(ws.attn.data(), slots, nq, layer.wo.data(), c.hidden, ws.proj.data());
    kernels::Add(ws.x.data(), ws.proj.data(), slots * c.hidden);

    // SwiGLU block.
    for (uint32_t s = 0; s < slots; ++s)
      kernels::RmsNorm(&ws.x[size_t{s} * c.hidden], layer.mlp_norm.data(), c.hidden, c.rms_eps,
                       &ws.xn[size_t{s} * c.hidden]);
    kernels::MatMulT(ws.xn.data(), slots, c.hidden, layer.w_gate_up.data(), 2 * c.ffn,
                     ws.gate_up.data());
    for (uint32_t s = 0; s < slots; ++s)
      kernels::SiluMul(&ws.gate_up[size_t{s} * 2 * c.ffn],
                       &ws.gate_up[size_t{s} * 2 * c.ffn + c.ffn], c.ffn,
                       &ws.act[size_t{s} * c.ffn]);
    kernels::MatMulT(ws.act.data(), slots, c.ffn, layer.w_down.data(), c.hidden, ws.proj.data());
    kernels::Add(ws.x.data(), ws.proj.data(), slots * c.hidden);
  }

  if (logits == nullptr) return Status::Ok();
  bool any = false;
  for (const ForwardRow& r : rows) any = any || r.want_logits;
  if (!any) return Status::Ok();
  for (uint32_t s = 0; s < slots; ++s)
    kernels::RmsNorm(&ws.x[size_t{s} * c.hidden], final_norm_.data(), c.hidden, c.rms_eps,
                     &ws.xn[size_t{s} * c.hidden]);
  ws.logits_all.resize(size_t{slots} * c.vocab_size);
  kernels::MatMulT(ws.xn.data(), slots, c.hidden, lm_head_.data(), c.vocab_size,
                   ws.logits_all.data());
  for (size_t i = 0; i < rows.size(); ++i)
    if (rows[i].want_logits) {
      const float* p = &ws.logits_all[size_t{ws.slot[i]} * c.vocab_size];
      logits->insert(logits->end(), p, p + c.vocab_size);
    }
  return Status::Ok();
}

void Model::Attention(std::span<const ForwardRow> rows,
                      std::span<const std::span<const uint32_t>> block_tables,
                      const PagedKvCache& kv, uint32_t layer, Workspace& ws) const {
  const ModelConfig& c = config_;
  const uint32_t tpb = c.tokens_per_block, d = c.head_dim;
  const uint32_t nq = c.num_heads * d, nkv = c.num_kv_heads * d, nqkv = nq + 2 * nkv;
  const uint32_t heads_per_kv = c.num_heads / c.num_kv_heads;
  constexpr uint32_t kTileRows = 16;

  // Rows grouped by sequence; each (row, head) is computed alone and in position order,
  // the grouping only shares key/value reads.
  std::vector<uint32_t> order(rows.size());
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    return rows[a].seq != rows[b].seq ? rows[a].seq < rows[b].seq : rows[a].pos < rows[b].pos;
  });
  ws.key_t.resize(size_t{d} * tpb);
  std::vector<const float*> q_ptr, k_ptr, v_ptr;
  std::vector<float*> out_ptr;
  std::vector<uint32_t> pos;
  std::vector<float> denom;

  for (size_t begin = 0; begin < order.size();) {
    size_t end = begin + 1;
    while (end < order.size() && end - begin < kTileRows &&
           rows[order[end]].seq == rows[order[begin]].seq)
      ++end;
    const uint32_t n = static_cast<uint32_t>(end - begin);
    const std::span<const uint32_t> table = block_tables[rows[order[begin]].seq];
    pos.clear();
    for (size_t i = begin; i < end; ++i) pos.push_back(rows[order[i]].pos);
    const uint32_t span_len = *std::max_element(pos.begin(), pos.end()) + 1;
    const uint32_t num_blocks = (span_len + tpb - 1) / tpb;
    ws.scores.resize(size_t{n} * heads_per_kv * span_len);
    denom.resize(size_t{n} * heads_per_kv);
    for (uint32_t g = 0; g < c.num_kv_heads; ++g) {
      q_ptr.clear();
      out_ptr.clear();
      for (size_t i = begin; i < end; ++i) {
        const size_t slot = ws.slot[order[i]];
        q_ptr.push_back(&ws.qkv[slot * nqkv + size_t{g} * heads_per_kv * d]);
        out_ptr.push_back(&ws.attn[slot * nq + size_t{g} * heads_per_kv * d]);
      }
      k_ptr.clear();
      v_ptr.clear();
      for (uint32_t b = 0; b < num_blocks; ++b) {
        k_ptr.push_back(kv.chunk(layer, 0, table[b]) + size_t{g} * d);
        v_ptr.push_back(kv.chunk(layer, 1, table[b]) + size_t{g} * d);
      }
      kernels::Attend(kernels::AttentionTile{.head_dim = d,
                                             .tokens_per_block = tpb,
                                             .heads = heads_per_kv,
                                             .token_stride = nkv,
                                             .num_rows = n,
                                             .span = span_len,
                                             .q = q_ptr.data(),
                                             .pos = pos.data(),
                                             .k = k_ptr.data(),
                                             .v = v_ptr.data(),
                                             .out = out_ptr.data(),
                                             .scores = ws.scores.data(),
                                             .key_t = ws.key_t.data(),
                                             .denom = denom.data()});
    }
    begin = end;
  }
}

}  // namespace strata::engine
