// LoadModel for GGUF files (llama.cpp's format): the Llama family's metadata keys and tensor
// names, Q/K rows back from llama.cpp's interleaved RoPE order, F32/F16/BF16/Q8_0 to fp32.
#include <filesystem>

#include <fmt/format.h>

#include "engine/model_loader_internal.h"
#include "model_io/gguf.h"

namespace strata::engine::loader {
namespace {

// An integer metadata value of the architecture, e.g. "llama.block_count".
Result<uint32_t> ArchU32(const model_io::GgufFile& f, const std::string& arch, const char* key) {
  const std::string name = fmt::format("{}.{}", arch, key);
  Result<uint32_t> v = f.metadata(name).GetU32();
  if (!v.ok()) return v.status().WithContext(fmt::format("GGUF metadata {}", name));
  if (*v == 0) return Status::InvalidArgument(fmt::format("GGUF metadata {} is 0", name));
  return v;
}

Result<float> ArchF32(const model_io::GgufFile& f, const std::string& arch, const char* key,
                      std::optional<float> fallback) {
  const std::string name = fmt::format("{}.{}", arch, key);
  const model_io::GgufValue v = f.metadata(name);
  if (v.is_missing() && fallback) return *fallback;
  Result<float> x = v.GetF32();
  if (!x.ok()) return x.status().WithContext(fmt::format("GGUF metadata {}", name));
  return x;
}

}  // namespace

Result<LoadedModel> LoadGguf(const std::string& path, const ModelLoadOptions& options) {
  STRATA_ASSIGN_OR_RETURN(model_io::GgufFile file, model_io::GgufFile::Open(path));
  Result<std::string> arch_or = file.metadata("general.architecture").GetString();
  if (!arch_or.ok()) return arch_or.status().WithContext("GGUF metadata general.architecture");
  const std::string arch = *arch_or;
  if (arch != "llama" && arch != "qwen2")
    return Status::NotSupported(fmt::format(
        "architecture '{}' is not supported (the reference engine runs llama and qwen2)", arch));

  ModelConfig c;
  c.architecture = arch;
  c.attention_bias = arch == "qwen2";
  Result<std::string> name = file.metadata("general.name").GetString();
  c.name = name.ok() && !name->empty() ? *name : std::filesystem::path(path).stem().string();
  STRATA_ASSIGN_OR_RETURN(c.hidden, ArchU32(file, arch, "embedding_length"));
  STRATA_ASSIGN_OR_RETURN(c.num_layers, ArchU32(file, arch, "block_count"));
  STRATA_ASSIGN_OR_RETURN(c.ffn, ArchU32(file, arch, "feed_forward_length"));
  STRATA_ASSIGN_OR_RETURN(c.num_heads, ArchU32(file, arch, "attention.head_count"));
  c.num_kv_heads = c.num_heads;
  if (!file.metadata(arch + ".attention.head_count_kv").is_missing()) {
    STRATA_ASSIGN_OR_RETURN(c.num_kv_heads, ArchU32(file, arch, "attention.head_count_kv"));
  }
  if (c.hidden % c.num_heads != 0)
    return Status::NotSupported(fmt::format(
        "embedding_length {} is not a multiple of head_count {}", c.hidden, c.num_heads));
  c.head_dim = c.hidden / c.num_heads;
  for (const char* key : {"attention.key_length", "attention.value_length", "rope.dimension_count"})
    if (!file.metadata(fmt::format("{}.{}", arch, key)).is_missing()) {
      STRATA_ASSIGN_OR_RETURN(uint32_t v, ArchU32(file, arch, key));
      if (v != c.head_dim)
        return Status::NotSupported(fmt::format(
            "{}.{} is {}, not the head size {}: heads of another width and partial RoPE are not "
            "supported",
            arch, key, v, c.head_dim));
    }
  STRATA_ASSIGN_OR_RETURN(c.rms_eps, ArchF32(file, arch, "attention.layer_norm_rms_epsilon", {}));
  STRATA_ASSIGN_OR_RETURN(c.rope_theta, ArchF32(file, arch, "rope.freq_base", 10000.0f));
  uint32_t context = 0;
  if (!file.metadata(arch + ".context_length").is_missing()) {
    STRATA_ASSIGN_OR_RETURN(context, ArchU32(file, arch, "context_length"));
  }
  const model_io::GgufTensorInfo* embd = file.tensor("token_embd.weight");
  if (embd == nullptr || embd->dims.size() != 2)
    return Status::InvalidArgument("GGUF tensor token_embd.weight is missing or not 2-D");
  if (embd->dims[1] > UINT32_MAX) return Status::InvalidArgument("vocabulary too large");
  c.vocab_size = static_cast<uint32_t>(embd->dims[1]);
  c.tied_embeddings = file.tensor("output.weight") == nullptr;

  LoadedModel out;
  out.format = "gguf";
  TypeTally tally;
  // ggml lists dims innermost first; `shape` is outermost first.
  const auto read = [&](const std::string& tname, std::vector<uint64_t> shape,
                        bool optional) -> Result<std::vector<float>> {
    const model_io::GgufTensorInfo* t = file.tensor(tname);
    if (t == nullptr) {
      if (optional) return std::vector<float>();
      return Status::InvalidArgument(fmt::format("GGUF tensor {} is missing", tname));
    }
    const std::vector<uint64_t> dims(shape.rbegin(), shape.rend());
    if (t->dims != dims)
      return Status::InvalidArgument(fmt::format("GGUF tensor {} has dims [{}], expected [{}]",
                                                 tname, fmt::join(t->dims, ", "),
                                                 fmt::join(dims, ", ")));
    if (shape.size() == 2) tally.Add(model_io::GgmlTypeName(t->type));
    out.tensor_bytes += t->byte_size.value_or(0);
    return file.TensorToFloat(tname);
  };

  const uint64_t h = c.hidden, q = uint64_t{c.num_heads} * c.head_dim,
                 kv = uint64_t{c.num_kv_heads} * c.head_dim;
  ModelWeights w;
  STRATA_ASSIGN_OR_RETURN(w.embed, read("token_embd.weight", {c.vocab_size, h}, false));
  // llama.cpp permutes Q and K of "llama" models (its RoPE pairs adjacent dimensions); "qwen2"
  // is stored as Hugging Face has it (NeoX-style RoPE).
  const bool interleaved = arch == "llama";
  const auto unpermute = [&](std::vector<float> v, uint32_t heads, size_t cols) {
    return interleaved ? RopeRowsInterleavedToHalves(v, heads, c.head_dim, cols) : v;
  };
  for (uint32_t l = 0; l < c.num_layers; ++l) {
    const auto n = [l](const char* t) { return fmt::format("blk.{}.{}", l, t); };
    LayerWeights lw;
    STRATA_ASSIGN_OR_RETURN(lw.attn_norm, read(n("attn_norm.weight"), {h}, false));
    STRATA_ASSIGN_OR_RETURN(std::vector<float> wq, read(n("attn_q.weight"), {q, h}, false));
    STRATA_ASSIGN_OR_RETURN(std::vector<float> wk, read(n("attn_k.weight"), {kv, h}, false));
    lw.wq = unpermute(std::move(wq), c.num_heads, h);
    lw.wk = unpermute(std::move(wk), c.num_kv_heads, h);
    STRATA_ASSIGN_OR_RETURN(lw.wv, read(n("attn_v.weight"), {kv, h}, false));
    if (c.attention_bias) {
      STRATA_ASSIGN_OR_RETURN(std::vector<float> bq, read(n("attn_q.bias"), {q}, false));
      STRATA_ASSIGN_OR_RETURN(std::vector<float> bk, read(n("attn_k.bias"), {kv}, false));
      lw.bq = unpermute(std::move(bq), c.num_heads, 1);
      lw.bk = unpermute(std::move(bk), c.num_kv_heads, 1);
      STRATA_ASSIGN_OR_RETURN(lw.bv, read(n("attn_v.bias"), {kv}, false));
    }
    STRATA_ASSIGN_OR_RETURN(lw.wo, read(n("attn_output.weight"), {h, q}, false));
    STRATA_ASSIGN_OR_RETURN(lw.mlp_norm, read(n("ffn_norm.weight"), {h}, false));
    STRATA_ASSIGN_OR_RETURN(lw.w_gate, read(n("ffn_gate.weight"), {c.ffn, h}, false));
    STRATA_ASSIGN_OR_RETURN(lw.w_up, read(n("ffn_up.weight"), {c.ffn, h}, false));
    STRATA_ASSIGN_OR_RETURN(lw.w_down, read(n("ffn_down.weight"), {h, c.ffn}, false));
    w.layers.push_back(std::move(lw));
  }
  STRATA_ASSIGN_OR_RETURN(w.final_norm, read("output_norm.weight", {h}, false));
  if (!c.tied_embeddings) {
    STRATA_ASSIGN_OR_RETURN(w.lm_head, read("output.weight", {c.vocab_size, h}, false));
  }
  // Llama-3.1's scaling is stored as the per-frequency divisors; linear scaling as a factor.
  STRATA_ASSIGN_OR_RETURN(w.rope_freq_factors, read("rope_freqs.weight", {c.head_dim / 2}, true));
  Result<std::string> scaling = file.metadata(arch + ".rope.scaling.type").GetString();
  if (scaling.ok() && *scaling != "none") {
    if (*scaling != "linear")
      return Status::NotSupported(
          fmt::format("{}.rope.scaling.type '{}' is not supported "
                      "(none, linear, and Llama-3's rope_freqs are)",
                      arch, *scaling));
    STRATA_ASSIGN_OR_RETURN(float factor, ArchF32(file, arch, "rope.scaling.factor", {}));
    if (!(factor > 0)) return Status::InvalidArgument("rope.scaling.factor must be > 0");
    if (!w.rope_freq_factors.empty())
      return Status::NotSupported("both rope_freqs and linear rope scaling");
    w.rope_freq_factors.assign(c.head_dim / 2, factor);
  }
  out.tensor_type = tally.type;

  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<tokenizer::Tokenizer> tok,
                          tokenizer::LoadTokenizerFromGguf(file));
  out.tokenizer = std::move(tok);
  STRATA_RETURN_IF_ERROR(Finish(options, context, std::move(c), std::move(w), &out));
  return out;
}

}  // namespace strata::engine::loader
