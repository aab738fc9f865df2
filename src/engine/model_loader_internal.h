// What the GGUF and Hugging Face halves of LoadModel share (model_loader.cc).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "engine/model_loader.h"

namespace strata::engine::loader {

// Tallies the stored types of 2-D weights into LoadedModel::tensor_type.
struct TypeTally {
  std::string type;  // the one type seen so far, or "mixed"
  void Add(std::string_view t) {
    if (type.empty())
      type = t;
    else if (type != t)
      type = "mixed";
  }
};

// Fills config.name/tokens_per_block/max_context_tokens/weights_digest, builds the Model and
// puts it in `out`. `model_context` is the model's trained context (0 when unknown).
Status Finish(const ModelLoadOptions& options, uint32_t model_context, ModelConfig config,
              ModelWeights weights, LoadedModel* out);

Result<LoadedModel> LoadGguf(const std::string& path, const ModelLoadOptions& options);
Result<LoadedModel> LoadHfDir(const std::string& dir, const ModelLoadOptions& options);

}  // namespace strata::engine::loader
