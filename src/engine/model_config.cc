// ModelConfig presets, validation and fingerprint.
#include "engine/model_config.h"

#include <fmt/format.h>

namespace strata::engine {

Result<ModelConfig> ModelConfig::Preset(std::string_view name, uint64_t seed) {
  ModelConfig c;
  if (name == "tiny") {
    // Defaults above are the tiny preset.
  } else if (name == "small") {
    // Between the two: prefill of a 1-2K-token prompt takes about a second on a few cores,
    // so TTFT with and without reuse differ visibly, yet a sanitizer build stays usable.
    c.name = "small";
    c.hidden = 512;
    c.num_layers = 8;
    c.num_heads = 8;
    c.num_kv_heads = 4;
    c.head_dim = 64;
    c.ffn = 1536;
    c.tokens_per_block = 16;
    c.max_context_tokens = 8192;
  } else if (name == "demo") {
    c.name = "demo";
    c.hidden = 768;
    c.num_layers = 12;
    c.num_heads = 12;
    c.num_kv_heads = 4;
    c.head_dim = 64;
    c.ffn = 3072;
    c.tokens_per_block = 16;
    c.max_context_tokens = 32768;
  } else {
    return Status::InvalidArgument(
        fmt::format("unknown model preset '{}' (known: tiny, small, demo)", name));
  }
  c.seed = seed;
  return c;
}

Status ModelConfig::Validate() const {
  auto bad = [](std::string_view field, std::string_view why) {
    return Status::InvalidArgument(fmt::format("ModelConfig.{} {}", field, why));
  };
  if (name.empty()) return bad("name", "is empty");
  if (vocab_size < 258) return bad("vocab_size", "must be >= 258 (bytes + BOS + EOS)");
  if (hidden == 0) return bad("hidden", "must be >= 1");
  if (num_layers == 0) return bad("num_layers", "must be >= 1");
  if (num_heads == 0) return bad("num_heads", "must be >= 1");
  if (num_kv_heads == 0 || num_heads % num_kv_heads != 0)
    return bad("num_kv_heads", "must be >= 1 and divide num_heads");
  if (head_dim == 0 || head_dim % 2 != 0) return bad("head_dim", "must be even and >= 2");
  if (ffn == 0) return bad("ffn", "must be >= 1");
  if (tokens_per_block == 0) return bad("tokens_per_block", "must be >= 1");
  if (max_context_tokens < 2) return bad("max_context_tokens", "must be >= 2");
  if (!(rope_theta > 1.0f)) return bad("rope_theta", "must be > 1");
  if (!(rms_eps > 0.0f)) return bad("rms_eps", "must be > 0");
  if (architecture != "llama" && architecture != "qwen2")
    return bad("architecture", fmt::format("'{}' is not one of llama, qwen2", architecture));
  return kv_layout().Validate();
}

uint64_t ModelConfig::num_parameters() const {
  const uint64_t h = hidden, q = uint64_t{num_heads} * head_dim,
                 kv = uint64_t{num_kv_heads} * head_dim;
  const uint64_t per_layer = 2 * h               // two RMSNorm weights
                             + h * (q + 2 * kv)  // QKV projection
                             + q * h             // output projection
                             + 3 * h * ffn;      // gate, up, down
  const uint64_t biases = attention_bias ? q + 2 * kv : 0;
  return (tied_embeddings ? 1 : 2) * uint64_t{vocab_size} * h + h +
         num_layers * (per_layer + biases);
}

KvLayout ModelConfig::kv_layout() const {
  return KvLayout{.num_layers = num_layers,
                  .format = KvFormat::kKeyValue,
                  .num_kv_heads = num_kv_heads,
                  .head_dim = head_dim,
                  .dtype = DType::kFloat32,
                  .tokens_per_block = tokens_per_block,
                  .chunk_order = ChunkOrder::kTokenHeadDim};
}

std::string ModelConfig::Fingerprint() const {
  // Bump the version when the forward pass or the weight generator changes numerics.
  if (!weights_digest.empty())
    return fmt::format(
        "strata-ref-llama/v2 arch={} vocab={} hidden={} layers={} heads={} kv_heads={} "
        "head_dim={} ffn={} bias={} tied={} rope_theta={} rms_eps={} weights={}",
        architecture, vocab_size, hidden, num_layers, num_heads, num_kv_heads, head_dim, ffn,
        attention_bias, tied_embeddings, rope_theta, rms_eps, weights_digest);
  return fmt::format(
      "strata-ref-llama/v1 {} seed={} vocab={} hidden={} layers={} heads={} kv_heads={} "
      "head_dim={} ffn={} rope_theta={} rms_eps={}{}",
      name, seed, vocab_size, hidden, num_layers, num_heads, num_kv_heads, head_dim, ffn,
      rope_theta, rms_eps,
      // Only what the first presets did not have, so their fingerprints stay as they were.
      architecture == "llama" && !attention_bias && !tied_embeddings
          ? std::string()
          : fmt::format(" arch={} bias={} tied={}", architecture, attention_bias, tied_embeddings));
}

}  // namespace strata::engine
