// Llama-architecture forward pass over the paged KV cache.
#include "engine/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>

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

// Runs fn(begin, end) over row ranges covering [0, n), split between the kernel threads
// when the rows hold enough work (`row_cost` ~ element operations per row) to pay for a
// wake-up. Rows are independent, so the split changes no result.
void ForRows(uint32_t n, uint64_t row_cost, const std::function<void(uint32_t, uint32_t)>& fn) {
  const uint32_t parts = static_cast<uint32_t>(
      std::min<uint64_t>({kernels::NumThreads(), n, std::max<uint64_t>(1, n * row_cost >> 17)}));
  if (parts <= 1) {
    fn(0, n);
    return;
  }
  kernels::ParallelFor(parts, [&](uint32_t part, uint32_t) {
    fn(static_cast<uint32_t>(uint64_t{n} * part / parts),
       static_cast<uint32_t>(uint64_t{n} * (part + 1) / parts));
  });
}

}  // namespace

Result<ModelWeights> SyntheticWeights(const ModelConfig& config) {
  STRATA_RETURN_IF_ERROR(config.Validate());
  const ModelConfig& c = config;
  const size_t h = c.hidden, q = size_t{c.num_heads} * c.head_dim,
               kv = size_t{c.num_kv_heads} * c.head_dim;
  const auto inv_sqrt = [](size_t fan_in) { return 1.0f / std::sqrt(static_cast<float>(fan_in)); };
  // The tensors are drawn in this order and shape (QKV and gate/up as one tensor each) since
  // the first presets: changing either would change every synthetic model's weights.
  const auto rows = [h](const std::vector<float>& w, size_t first, size_t count) {
    return std::vector<float>(w.begin() + static_cast<ptrdiff_t>(first * h),
                              w.begin() + static_cast<ptrdiff_t>((first + count) * h));
  };
  ModelWeights w;
  uint64_t id = 0;
  w.embed = Synthetic(c.seed, id++, size_t{c.vocab_size} * h, 1.0f);
  for (uint32_t l = 0; l < c.num_layers; ++l) {
    LayerWeights layer;
    layer.attn_norm = Synthetic(c.seed, id++, h, 0.1f, 1.0f);
    const std::vector<float> wqkv = Synthetic(c.seed, id++, (q + 2 * kv) * h, inv_sqrt(h));
    layer.wq = rows(wqkv, 0, q);
    layer.wk = rows(wqkv, q, kv);
    layer.wv = rows(wqkv, q + kv, kv);
    layer.wo = Synthetic(c.seed, id++, h * q, inv_sqrt(q));
    layer.mlp_norm = Synthetic(c.seed, id++, h, 0.1f, 1.0f);
    const std::vector<float> gate_up = Synthetic(c.seed, id++, size_t{2} * c.ffn * h, inv_sqrt(h));
    layer.w_gate = rows(gate_up, 0, c.ffn);
    layer.w_up = rows(gate_up, c.ffn, c.ffn);
    layer.w_down = Synthetic(c.seed, id++, h * c.ffn, inv_sqrt(c.ffn));
    if (c.attention_bias) {
      layer.bq = Synthetic(c.seed, id++, q, 0.1f);
      layer.bk = Synthetic(c.seed, id++, kv, 0.1f);
      layer.bv = Synthetic(c.seed, id++, kv, 0.1f);
    }
    w.layers.push_back(std::move(layer));
  }
  w.final_norm = Synthetic(c.seed, id++, h, 0.1f, 1.0f);
  if (!c.tied_embeddings)
    w.lm_head = Synthetic(c.seed, id++, size_t{c.vocab_size} * h, inv_sqrt(h));
  return w;
}

Result<std::unique_ptr<Model>> Model::Create(const ModelConfig& config) {
  STRATA_ASSIGN_OR_RETURN(ModelWeights weights, SyntheticWeights(config));
  return FromWeights(config, std::move(weights));
}

Result<std::unique_ptr<Model>> Model::FromWeights(const ModelConfig& config, ModelWeights w) {
  STRATA_RETURN_IF_ERROR(config.Validate());
  const ModelConfig& c = config;
  const size_t h = c.hidden, q = size_t{c.num_heads} * c.head_dim,
               kv = size_t{c.num_kv_heads} * c.head_dim, vocab = c.vocab_size;
  const auto check = [](const std::vector<float>& t, size_t expected, std::string_view name,
                        int layer) -> Status {
    if (t.size() == expected) return Status::Ok();
    return Status::InvalidArgument(
        fmt::format("weights: {}{} has {} values, the model config needs {}",
                    layer < 0 ? "" : fmt::format("layer {} ", layer), name, t.size(), expected));
  };
  STRATA_RETURN_IF_ERROR(check(w.embed, vocab * h, "token embedding", -1));
  STRATA_RETURN_IF_ERROR(check(w.final_norm, h, "final norm", -1));
  STRATA_RETURN_IF_ERROR(check(w.lm_head, c.tied_embeddings ? 0 : vocab * h,
                               c.tied_embeddings ? "lm_head (tied to the embedding)" : "lm_head",
                               -1));
  if (!w.rope_freq_factors.empty())
    STRATA_RETURN_IF_ERROR(
        check(w.rope_freq_factors, c.head_dim / 2, "rope frequency factors", -1));
  if (w.layers.size() != c.num_layers)
    return Status::InvalidArgument(fmt::format("weights: {} layers, the model config needs {}",
                                               w.layers.size(), c.num_layers));
  std::unique_ptr<Model> m(new Model(config));
  for (size_t i = 0; i < w.layers.size(); ++i) {
    LayerWeights& in = w.layers[i];
    const int l = static_cast<int>(i);
    const size_t bias = c.attention_bias ? 1 : 0;
    STRATA_RETURN_IF_ERROR(check(in.attn_norm, h, "attention norm", l));
    STRATA_RETURN_IF_ERROR(check(in.wq, q * h, "q projection", l));
    STRATA_RETURN_IF_ERROR(check(in.wk, kv * h, "k projection", l));
    STRATA_RETURN_IF_ERROR(check(in.wv, kv * h, "v projection", l));
    STRATA_RETURN_IF_ERROR(check(in.bq, bias * q, "q bias", l));
    STRATA_RETURN_IF_ERROR(check(in.bk, bias * kv, "k bias", l));
    STRATA_RETURN_IF_ERROR(check(in.bv, bias * kv, "v bias", l));
    STRATA_RETURN_IF_ERROR(check(in.wo, h * q, "output projection", l));
    STRATA_RETURN_IF_ERROR(check(in.mlp_norm, h, "MLP norm", l));
    STRATA_RETURN_IF_ERROR(check(in.w_gate, size_t{c.ffn} * h, "gate projection", l));
    STRATA_RETURN_IF_ERROR(check(in.w_up, size_t{c.ffn} * h, "up projection", l));
    STRATA_RETURN_IF_ERROR(check(in.w_down, h * c.ffn, "down projection", l));
    const auto concat = [](std::vector<float>& a, std::vector<float>& b, std::vector<float>& c3) {
      std::vector<float> out;
      out.reserve(a.size() + b.size() + c3.size());
      for (std::vector<float>* v : {&a, &b, &c3}) {
        out.insert(out.end(), v->begin(), v->end());
        std::vector<float>().swap(*v);  // one copy of the weights at a time
      }
      return out;
    };
    std::vector<float> none;
    Layer layer;
    layer.attn_norm = std::move(in.attn_norm);
    layer.wqkv = concat(in.wq, in.wk, in.wv);
    if (c.attention_bias) layer.bqkv = concat(in.bq, in.bk, in.bv);
    layer.wo = std::move(in.wo);
    layer.mlp_norm = std::move(in.mlp_norm);
    layer.w_gate_up = concat(in.w_gate, in.w_up, none);
    layer.w_down = std::move(in.w_down);
    m->layers_.push_back(std::move(layer));
  }
  m->embed_ = std::move(w.embed);
  m->final_norm_ = std::move(w.final_norm);
  m->lm_head_ = std::move(w.lm_head);
  for (uint32_t i = 0; i < c.head_dim / 2; ++i) {
    double f =
        std::pow(static_cast<double>(c.rope_theta), -2.0 * static_cast<double>(i) / c.head_dim);
    if (!w.rope_freq_factors.empty()) f /= static_cast<double>(w.rope_freq_factors[i]);
    m->inv_freq_.push_back(f);
  }
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
    ForRows(slots, c.hidden, [&](uint32_t s0, uint32_t s1) {
      for (uint32_t s = s0; s < s1; ++s)
        kernels::RmsNorm(&ws.x[size_t{s} * c.hidden], layer.attn_norm.data(), c.hidden, c.rms_eps,
                         &ws.xn[size_t{s} * c.hidden]);
    });
    kernels::MatMulT(ws.xn.data(), slots, c.hidden, layer.wqkv.data(), nqkv, ws.qkv.data());
    for (size_t i = 0; i < rows.size(); ++i) {
      float* qkv = &ws.qkv[size_t{ws.slot[i]} * nqkv];
      if (!layer.bqkv.empty()) kernels::Add(qkv, layer.bqkv.data(), nqkv);
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
    ForRows(slots, c.hidden, [&](uint32_t s0, uint32_t s1) {
      kernels::Add(&ws.x[size_t{s0} * c.hidden], &ws.proj[size_t{s0} * c.hidden],
                   (s1 - s0) * c.hidden);
    });

    // SwiGLU block.
    ForRows(slots, c.hidden, [&](uint32_t s0, uint32_t s1) {
      for (uint32_t s = s0; s < s1; ++s)
        kernels::RmsNorm(&ws.x[size_t{s} * c.hidden], layer.mlp_norm.data(), c.hidden, c.rms_eps,
                         &ws.xn[size_t{s} * c.hidden]);
    });
    kernels::MatMulT(ws.xn.data(), slots, c.hidden, layer.w_gate_up.data(), 2 * c.ffn,
                     ws.gate_up.data());
    ForRows(slots, uint64_t{16} * c.ffn, [&](uint32_t s0, uint32_t s1) {
      for (uint32_t s = s0; s < s1; ++s)
        kernels::SiluMul(&ws.gate_up[size_t{s} * 2 * c.ffn],
                         &ws.gate_up[size_t{s} * 2 * c.ffn + c.ffn], c.ffn,
                         &ws.act[size_t{s} * c.ffn]);
    });
    kernels::MatMulT(ws.act.data(), slots, c.ffn, layer.w_down.data(), c.hidden, ws.proj.data());
    ForRows(slots, c.hidden, [&](uint32_t s0, uint32_t s1) {
      kernels::Add(&ws.x[size_t{s0} * c.hidden], &ws.proj[size_t{s0} * c.hidden],
                   (s1 - s0) * c.hidden);
    });
  }

  if (logits == nullptr) return Status::Ok();
  bool any = false;
  for (const ForwardRow& r : rows) any = any || r.want_logits;
  if (!any) return Status::Ok();
  for (uint32_t s = 0; s < slots; ++s)
    kernels::RmsNorm(&ws.x[size_t{s} * c.hidden], final_norm_.data(), c.hidden, c.rms_eps,
                     &ws.xn[size_t{s} * c.hidden]);
  ws.logits_all.resize(size_t{slots} * c.vocab_size);
  const std::vector<float>& lm_head = lm_head_.empty() ? embed_ : lm_head_;
  kernels::MatMulT(ws.xn.data(), slots, c.hidden, lm_head.data(), c.vocab_size,
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
  const uint32_t tpb = c.tokens_per_block, d = c.head_dim, kv_heads = c.num_kv_heads;
  const uint32_t nq = c.num_heads * d, nkv = kv_heads * d, nqkv = nq + 2 * nkv;
  const uint32_t heads_per_kv = c.num_heads / kv_heads;
  // Query rows per tile: they share every load of a key group and of a value chunk.
  constexpr uint32_t kTileRows = 16;

  // Rows grouped by sequence and cut into tiles; each (row, head) is computed alone and
  // in position order, so the grouping only shares key/value reads.
  std::vector<uint32_t> order(rows.size());
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    return rows[a].seq != rows[b].seq ? rows[a].seq < rows[b].seq : rows[a].pos < rows[b].pos;
  });
  struct Seq {
    uint32_t seq = 0, span = 0;
    size_t key_t = 0;  // offset of its first KV head's transposed keys in ws.key_t
  };
  struct Tile {
    uint32_t begin = 0, end = 0, seq = 0;  // rows order[begin, end) of seqs[seq]
  };
  std::vector<Seq> seqs;
  std::vector<Tile> tiles;
  size_t key_t_floats = 0, scratch_floats = 0;
  uint64_t work = 0;  // query rows x keys, summed over tiles
  for (uint32_t begin = 0; begin < order.size();) {
    uint32_t end = begin + 1;
    while (end < order.size() && rows[order[end]].seq == rows[order[begin]].seq) ++end;
    Seq s{rows[order[begin]].seq, rows[order[end - 1]].pos + 1, key_t_floats};
    key_t_floats += size_t{kv_heads} * kernels::KeyGroupsFloats(s.span, d);
    for (uint32_t t = begin; t < end; t += kTileRows) {
      const uint32_t t_end = std::min(end, t + kTileRows);
      tiles.push_back({t, t_end, static_cast<uint32_t>(seqs.size())});
      work += uint64_t{t_end - t} * (rows[order[t_end - 1]].pos + 1);
      scratch_floats = std::max(
          scratch_floats,
          kernels::AttendScratchFloats(t_end - t, heads_per_kv, rows[order[t_end - 1]].pos + 1));
    }
    seqs.push_back(s);
    begin = end;
  }
  ws.key_t.resize(key_t_floats);
  // One thread when the whole attention is a few million multiply-adds (decode steps of
  // short sequences): a wake-up would cost more.
  const uint32_t threads = work * c.num_heads * d < (uint64_t{4} << 20) ? 1 : kernels::NumThreads();
  ws.scratch.resize(threads);
  for (auto& s : ws.scratch) s.resize(std::max(s.size(), scratch_floats));

  // Keys of every (sequence, KV head) transposed once for all its tiles.
  kernels::ParallelFor(
      static_cast<uint32_t>(seqs.size()) * kv_heads,
      [&](uint32_t task, uint32_t) {
        const Seq& s = seqs[task / kv_heads];
        const uint32_t g = task % kv_heads;
        const std::span<const uint32_t> table = block_tables[s.seq];
        std::vector<const float*> k((s.span + tpb - 1) / tpb);
        for (uint32_t b = 0; b < k.size(); ++b) k[b] = kv.chunk(layer, 0, table[b]) + size_t{g} * d;
        kernels::TransposeKeys(k.data(), tpb, nkv, d, s.span,
                               &ws.key_t[s.key_t + g * kernels::KeyGroupsFloats(s.span, d)]);
      },
      threads);

  // (tile, KV head) tasks, longest tiles (latest positions) first for balance.
  const uint32_t num_tiles = static_cast<uint32_t>(tiles.size());
  kernels::ParallelFor(
      num_tiles * kv_heads,
      [&](uint32_t task, uint32_t worker) {
        const Tile& tile = tiles[num_tiles - 1 - task / kv_heads];
        const uint32_t g = task % kv_heads;
        const Seq& s = seqs[tile.seq];
        const std::span<const uint32_t> table = block_tables[s.seq];
        const uint32_t n = tile.end - tile.begin;
        std::vector<const float*> q_ptr(n), v_ptr;
        std::vector<float*> out_ptr(n);
        std::vector<uint32_t> pos(n);
        for (uint32_t i = 0; i < n; ++i) {
          const uint32_t row = order[tile.begin + i];
          const size_t slot = ws.slot[row];
          q_ptr[i] = &ws.qkv[slot * nqkv + size_t{g} * heads_per_kv * d];
          out_ptr[i] = &ws.attn[slot * nq + size_t{g} * heads_per_kv * d];
          pos[i] = rows[row].pos;
        }
        const uint32_t span = pos[n - 1] + 1;
        for (uint32_t b = 0; b < (span + tpb - 1) / tpb; ++b)
          v_ptr.push_back(kv.chunk(layer, 1, table[b]) + size_t{g} * d);
        kernels::Attend(kernels::AttentionTile{
            .head_dim = d,
            .tokens_per_block = tpb,
            .heads = heads_per_kv,
            .token_stride = nkv,
            .num_rows = n,
            .q = q_ptr.data(),
            .pos = pos.data(),
            .key_t = &ws.key_t[s.key_t + g * kernels::KeyGroupsFloats(s.span, d)],
            .v = v_ptr.data(),
            .out = out_ptr.data(),
            .scratch = ws.scratch[worker].data()});
      },
      threads);
}

}  // namespace strata::engine
