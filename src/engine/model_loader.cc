// LoadModel's common part: dispatch by path, RoPE helpers, the weights digest, and building the
// Model from what a format's reader produced.
#include "engine/model_loader.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <numbers>

#include <fmt/format.h>
#include <openssl/evp.h>
#include <xxhash.h>

#include "engine/model_loader_internal.h"

namespace strata::engine {

std::vector<float> Llama3RopeFactors(uint32_t head_dim, float theta, float factor,
                                     float low_freq_factor, float high_freq_factor,
                                     uint32_t original_context) {
  const double low_wavelen = original_context / static_cast<double>(low_freq_factor);
  const double high_wavelen = original_context / static_cast<double>(high_freq_factor);
  std::vector<float> factors;
  for (uint32_t i = 0; i < head_dim / 2; ++i) {
    const double freq =
        std::pow(static_cast<double>(theta), -2.0 * static_cast<double>(i) / head_dim);
    const double wavelen = 2 * std::numbers::pi / freq;
    if (wavelen < high_wavelen) {
      factors.push_back(1.0f);
    } else if (wavelen > low_wavelen) {
      factors.push_back(factor);
    } else {
      const double smooth = (original_context / wavelen - low_freq_factor) /
                            (static_cast<double>(high_freq_factor) - low_freq_factor);
      factors.push_back(static_cast<float>(1.0 / ((1 - smooth) / factor + smooth)));
    }
  }
  return factors;
}

namespace {

// Row r of head h in halves order is row (r % half) * 2 + r / half of that head interleaved.
std::vector<float> PermuteRopeRows(const std::vector<float>& w, uint32_t heads, uint32_t head_dim,
                                   size_t cols, bool to_halves) {
  std::vector<float> out(w.size());
  const uint32_t half = head_dim / 2;
  for (uint32_t h = 0; h < heads; ++h)
    for (uint32_t r = 0; r < head_dim; ++r) {
      const size_t halves = size_t{h} * head_dim + r;
      const size_t interleaved = size_t{h} * head_dim + (r % half) * 2 + r / half;
      const size_t from = to_halves ? interleaved : halves, to = to_halves ? halves : interleaved;
      std::copy_n(w.begin() + static_cast<ptrdiff_t>(from * cols), cols,
                  out.begin() + static_cast<ptrdiff_t>(to * cols));
    }
  return out;
}

}  // namespace

std::vector<float> RopeRowsInterleavedToHalves(const std::vector<float>& w, uint32_t heads,
                                               uint32_t head_dim, size_t cols) {
  return PermuteRopeRows(w, heads, head_dim, cols, /*to_halves=*/true);
}

std::vector<float> RopeRowsHalvesToInterleaved(const std::vector<float>& w, uint32_t heads,
                                               uint32_t head_dim, size_t cols) {
  return PermuteRopeRows(w, heads, head_dim, cols, /*to_halves=*/false);
}

std::string WeightsDigest(const ModelWeights& weights) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  const auto add = [ctx](const std::string& name, const std::vector<float>& t) {
    const XXH128_hash_t h = XXH3_128bits(t.data(), t.size() * sizeof(float));
    const std::string line =
        fmt::format("{} {} {:016x}{:016x}\n", name, t.size(), h.high64, h.low64);
    EVP_DigestUpdate(ctx, line.data(), line.size());
  };
  add("embed", weights.embed);
  for (size_t l = 0; l < weights.layers.size(); ++l) {
    const LayerWeights& w = weights.layers[l];
    const std::pair<const char*, const std::vector<float>*> tensors[] = {
        {"attn_norm", &w.attn_norm},
        {"wq", &w.wq},
        {"wk", &w.wk},
        {"wv", &w.wv},
        {"bq", &w.bq},
        {"bk", &w.bk},
        {"bv", &w.bv},
        {"wo", &w.wo},
        {"mlp_norm", &w.mlp_norm},
        {"w_gate", &w.w_gate},
        {"w_up", &w.w_up},
        {"w_down", &w.w_down}};
    for (const auto& [name, t] : tensors) add(fmt::format("layers.{}.{}", l, name), *t);
  }
  add("final_norm", weights.final_norm);
  add("lm_head", weights.lm_head);
  add("rope_freq_factors", weights.rope_freq_factors);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, digest, &len);
  EVP_MD_CTX_free(ctx);
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) hex += fmt::format("{:02x}", digest[i]);
  return hex;
}

namespace loader {

Status Finish(const ModelLoadOptions& options, uint32_t model_context, ModelConfig config,
              ModelWeights weights, LoadedModel* out) {
  constexpr uint32_t kDefaultContextCap = 8192;
  config.tokens_per_block = options.tokens_per_block;
  if (options.max_context_tokens != 0) {
    config.max_context_tokens = options.max_context_tokens;
  } else {
    config.max_context_tokens =
        model_context == 0 ? kDefaultContextCap : std::min(model_context, kDefaultContextCap);
  }
  config.weights_digest = WeightsDigest(weights);
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Model> model,
                          Model::FromWeights(config, std::move(weights)));
  out->config = config;
  out->model = std::move(model);
  return Status::Ok();
}

}  // namespace loader

Result<LoadedModel> LoadModel(const std::string& path, const ModelLoadOptions& options) {
  if (options.tokens_per_block == 0)
    return Status::InvalidArgument("ModelLoadOptions.tokens_per_block must be >= 1");
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::NotFound(fmt::format("model path {} does not exist", path));
    return Status::IoError(fmt::format("stat {}", path), errno);
  }
  Result<LoadedModel> loaded =
      S_ISDIR(st.st_mode) ? loader::LoadHfDir(path, options) : loader::LoadGguf(path, options);
  if (!loaded.ok()) return loaded.status().WithContext(fmt::format("loading model {}", path));
  if (loaded->tokenizer->vocab_size() > loaded->config.vocab_size)
    return Status::InvalidArgument(fmt::format(
        "loading model {}: the tokenizer has {} tokens, more than the model's vocabulary of {}",
        path, loaded->tokenizer->vocab_size(), loaded->config.vocab_size));
  return loaded;
}

}  // namespace strata::engine
