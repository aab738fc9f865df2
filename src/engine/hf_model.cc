// LoadModel for Hugging Face model directories: config.json of the Llama family (llama, mistral,
// qwen2) and safetensors weights, F32/F16/BF16 to fp32.
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engine/model_loader_internal.h"
#include "model_io/safetensors.h"

namespace strata::engine::loader {
namespace {

using nlohmann::json;

// A config.json field: `fallback` when absent or null, else it must be a number in range.
Result<double> Number(const json& config, const char* key, std::optional<double> fallback) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) {
    if (fallback) return *fallback;
    return Status::InvalidArgument(fmt::format("config.json has no '{}'", key));
  }
  if (!it->is_number())
    return Status::InvalidArgument(fmt::format("config.json '{}' is not a number", key));
  return it->get<double>();
}

Result<uint32_t> Count(const json& config, const char* key, std::optional<uint32_t> fallback) {
  STRATA_ASSIGN_OR_RETURN(double v, Number(config, key, fallback));
  if (!(v >= 1 && v <= 1e9 && v == std::floor(v)))
    return Status::InvalidArgument(fmt::format("config.json '{}' is {}, not a count", key, v));
  return static_cast<uint32_t>(v);
}

Result<float> Positive(const json& config, const char* key, std::optional<double> fallback) {
  STRATA_ASSIGN_OR_RETURN(double v, Number(config, key, fallback));
  if (!(v > 0 && v < 1e30))
    return Status::InvalidArgument(fmt::format("config.json '{}' is {}, must be > 0", key, v));
  return static_cast<float>(v);
}

// A boolean field: `fallback` when absent or null; InvalidArgument naming it otherwise.
Result<bool> Flag(const json& config, const char* key, bool fallback) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return fallback;
  if (!it->is_boolean())
    return Status::InvalidArgument(fmt::format("config.json '{}' is not a boolean", key));
  return it->get<bool>();
}

// A string field ("" when absent or null); InvalidArgument naming it when of another type.
Result<std::string> Text(const json& config, const char* key) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::string();
  if (!it->is_string())
    return Status::InvalidArgument(fmt::format("config.json '{}' is not a string", key));
  return it->get<std::string>();
}

}  // namespace

Result<LoadedModel> LoadHfDir(const std::string& dir, const ModelLoadOptions& options) {
  STRATA_ASSIGN_OR_RETURN(model_io::SafetensorsModel st, model_io::SafetensorsModel::OpenDir(dir));
  const json& cfg = st.config();
  if (!cfg.is_object()) return Status::InvalidArgument("config.json is not an object");
  STRATA_ASSIGN_OR_RETURN(const std::string type, Text(cfg, "model_type"));
  ModelConfig c;
  if (type == "llama" || type == "mistral") {
    c.architecture = "llama";
  } else if (type == "qwen2") {
    c.architecture = "qwen2";
  } else {
    return Status::NotSupported(fmt::format(
        "config.json model_type '{}' is not supported (the reference engine runs llama, mistral "
        "and qwen2)",
        type));
  }
  c.name = std::filesystem::path(dir).lexically_normal().filename().string();
  if (c.name.empty() || c.name == ".")
    c.name = std::filesystem::absolute(dir).lexically_normal().parent_path().filename().string();
  STRATA_ASSIGN_OR_RETURN(c.hidden, Count(cfg, "hidden_size", {}));
  STRATA_ASSIGN_OR_RETURN(c.num_layers, Count(cfg, "num_hidden_layers", {}));
  STRATA_ASSIGN_OR_RETURN(c.num_heads, Count(cfg, "num_attention_heads", {}));
  STRATA_ASSIGN_OR_RETURN(c.num_kv_heads, Count(cfg, "num_key_value_heads", c.num_heads));
  STRATA_ASSIGN_OR_RETURN(c.ffn, Count(cfg, "intermediate_size", {}));
  STRATA_ASSIGN_OR_RETURN(c.vocab_size, Count(cfg, "vocab_size", {}));
  if (c.hidden % c.num_heads != 0)
    return Status::NotSupported(fmt::format(
        "hidden_size {} is not a multiple of num_attention_heads {}", c.hidden, c.num_heads));
  c.head_dim = c.hidden / c.num_heads;
  STRATA_ASSIGN_OR_RETURN(uint32_t head_dim, Count(cfg, "head_dim", c.head_dim));
  if (head_dim != c.head_dim)
    return Status::NotSupported(
        fmt::format("config.json head_dim {} differs from hidden_size / num_attention_heads = {}",
                    head_dim, c.head_dim));
  STRATA_ASSIGN_OR_RETURN(c.rms_eps, Positive(cfg, "rms_norm_eps", 1e-6));
  STRATA_ASSIGN_OR_RETURN(c.rope_theta, Positive(cfg, "rope_theta", 10000.0));
  STRATA_ASSIGN_OR_RETURN(double trained, Number(cfg, "max_position_embeddings", 0.0));
  uint32_t context = trained >= 1 && trained <= UINT32_MAX ? static_cast<uint32_t>(trained) : 0;
  STRATA_ASSIGN_OR_RETURN(c.tied_embeddings, Flag(cfg, "tie_word_embeddings", false));
  // Qwen2's projections always carry biases; Llama's when attention_bias says so.
  STRATA_ASSIGN_OR_RETURN(const bool attention_bias, Flag(cfg, "attention_bias", false));
  c.attention_bias = c.architecture == "qwen2" || attention_bias;
  STRATA_ASSIGN_OR_RETURN(const bool mlp_bias, Flag(cfg, "mlp_bias", false));
  if (mlp_bias) return Status::NotSupported("mlp_bias is not supported");
  const auto act = cfg.find("hidden_act");
  if (act != cfg.end() && !(act->is_string() && *act == "silu"))
    return Status::NotSupported(
        fmt::format("hidden_act {} is not supported (silu is)", act->dump()));

  ModelWeights w;
  // Sliding-window attention equals full attention while the context fits in the window.
  const auto window = cfg.find("sliding_window");
  STRATA_ASSIGN_OR_RETURN(const bool use_sliding, Flag(cfg, "use_sliding_window", false));
  const bool sliding = c.architecture == "llama" || use_sliding;
  uint32_t window_cap = 0;
  if (sliding && window != cfg.end() && window->is_number_unsigned())
    window_cap = window->get<uint32_t>();

  const auto scaling = cfg.find("rope_scaling");
  if (scaling != cfg.end() && !scaling->is_null()) {
    if (!scaling->is_object())
      return Status::InvalidArgument("config.json rope_scaling is not an object");
    STRATA_ASSIGN_OR_RETURN(std::string kind, Text(*scaling, "rope_type"));
    if (kind.empty()) {
      STRATA_ASSIGN_OR_RETURN(kind, Text(*scaling, "type"));
    }
    STRATA_ASSIGN_OR_RETURN(float factor, Positive(*scaling, "factor", {}));
    if (kind == "llama3") {
      STRATA_ASSIGN_OR_RETURN(float low, Positive(*scaling, "low_freq_factor", {}));
      STRATA_ASSIGN_OR_RETURN(float high, Positive(*scaling, "high_freq_factor", {}));
      STRATA_ASSIGN_OR_RETURN(uint32_t original,
                              Count(*scaling, "original_max_position_embeddings", {}));
      if (!(high > low))
        return Status::InvalidArgument("rope_scaling high_freq_factor must exceed low_freq_factor");
      w.rope_freq_factors =
          Llama3RopeFactors(c.head_dim, c.rope_theta, factor, low, high, original);
    } else if (kind == "linear") {
      w.rope_freq_factors.assign(c.head_dim / 2, factor);
    } else if (kind != "default") {
      return Status::NotSupported(fmt::format(
          "rope_scaling type '{}' is not supported (default, linear and llama3 are)", kind));
    }
  }

  LoadedModel out;
  out.format = "safetensors";
  TypeTally tally;
  const auto read = [&](const std::string& tname, std::vector<uint64_t> shape,
                        bool optional) -> Result<std::vector<float>> {
    const model_io::SafetensorsTensorInfo* t = st.tensor(tname);
    if (t == nullptr) {
      if (optional) return std::vector<float>();
      return Status::InvalidArgument(fmt::format("tensor {} is missing", tname));
    }
    if (t->shape != shape)
      return Status::InvalidArgument(fmt::format("tensor {} has shape [{}], expected [{}]", tname,
                                                 fmt::join(t->shape, ", "),
                                                 fmt::join(shape, ", ")));
    if (shape.size() == 2) tally.Add(model_io::SafetensorsDtypeName(t->dtype));
    out.tensor_bytes += t->end - t->begin;
    return st.TensorToFloat(tname);
  };
  const uint64_t h = c.hidden, q = uint64_t{c.num_heads} * c.head_dim,
                 kv = uint64_t{c.num_kv_heads} * c.head_dim;
  STRATA_ASSIGN_OR_RETURN(w.embed, read("model.embed_tokens.weight", {c.vocab_size, h}, false));
  for (uint32_t l = 0; l < c.num_layers; ++l) {
    const auto n = [l](const char* t) { return fmt::format("model.layers.{}.{}", l, t); };
    LayerWeights lw;
    STRATA_ASSIGN_OR_RETURN(lw.attn_norm, read(n("input_layernorm.weight"), {h}, false));
    STRATA_ASSIGN_OR_RETURN(lw.wq, read(n("self_attn.q_proj.weight"), {q, h}, false));
    STRATA_ASSIGN_OR_RETURN(lw.wk, read(n("self_attn.k_proj.weight"), {kv, h}, false));
    STRATA_ASSIGN_OR_RETURN(lw.wv, read(n("self_attn.v_proj.weight"), {kv, h}, false));
    if (c.attention_bias) {
      STRATA_ASSIGN_OR_RETURN(lw.bq, read(n("self_attn.q_proj.bias"), {q}, false));
      STRATA_ASSIGN_OR_RETURN(lw.bk, read(n("self_attn.k_proj.bias"), {kv}, false));
      STRATA_ASSIGN_OR_RETURN(lw.bv, read(n("self_attn.v_proj.bias"), {kv}, false));
    }
    STRATA_ASSIGN_OR_RETURN(lw.wo, read(n("self_attn.o_proj.weight"), {h, q}, false));
    STRATA_ASSIGN_OR_RETURN(lw.mlp_norm, read(n("post_attention_layernorm.weight"), {h}, false));
    STRATA_ASSIGN_OR_RETURN(lw.w_gate, read(n("mlp.gate_proj.weight"), {c.ffn, h}, false));
    STRATA_ASSIGN_OR_RETURN(lw.w_up, read(n("mlp.up_proj.weight"), {c.ffn, h}, false));
    STRATA_ASSIGN_OR_RETURN(lw.w_down, read(n("mlp.down_proj.weight"), {h, c.ffn}, false));
    w.layers.push_back(std::move(lw));
  }
  STRATA_ASSIGN_OR_RETURN(w.final_norm, read("model.norm.weight", {h}, false));
  if (!c.tied_embeddings) {
    STRATA_ASSIGN_OR_RETURN(w.lm_head, read("lm_head.weight", {c.vocab_size, h}, false));
  }
  out.tensor_type = tally.type;

  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<tokenizer::Tokenizer> tok,
                          tokenizer::LoadTokenizerFromHfDir(dir));
  out.tokenizer = std::move(tok);
  if (window_cap != 0) {
    if (options.max_context_tokens > window_cap)
      return Status::NotSupported(fmt::format(
          "a context of {} tokens exceeds the model's sliding window of {}: sliding-window "
          "attention is not supported",
          options.max_context_tokens, window_cap));
    context = context == 0 ? window_cap : std::min(context, window_cap);
  }
  STRATA_RETURN_IF_ERROR(Finish(options, context, std::move(c), std::move(w), &out));
  return out;
}

}  // namespace strata::engine::loader
