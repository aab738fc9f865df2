// strata-make-test-model DIR [--arch llama|qwen2] [--type F32|F16|BF16|Q8_0] [--format gguf|hf]
//   [--tied] [--preset tiny|small|demo]: writes a test checkpoint (the synthetic weights of the
// preset's geometry with the test tokenizers' 320-token vocabulary; default: the tiny test
// model) and prints its path, for trying the loaders and benchmarking a loaded model.
#include <cstdio>
#include <cstring>
#include <string>

#include <fmt/format.h>

#include "tests/models/llama_writer.h"

int main(int argc, char** argv) {
  using namespace strata;
  if (argc < 2) {
    fmt::print(stderr,
               "usage: {} DIR [--arch llama|qwen2] [--type F32|F16|BF16|Q8_0] "
               "[--format gguf|hf] [--tied]\n",
               argv[0]);
    return 2;
  }
  std::string dir = argv[1], arch = "llama", type = "F16", format = "gguf", preset;
  bool tied = false;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    const auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--arch")
      arch = next();
    else if (a == "--type")
      type = next();
    else if (a == "--format")
      format = next();
    else if (a == "--tied")
      tied = true;
    else if (a == "--preset")
      preset = next();
    else {
      fmt::print(stderr, "unknown argument {}\n", a);
      return 2;
    }
  }
  testing::WeightType wt = testing::WeightType::kF16;
  if (type == "F32")
    wt = testing::WeightType::kF32;
  else if (type == "BF16")
    wt = testing::WeightType::kBF16;
  else if (type == "Q8_0")
    wt = testing::WeightType::kQ8_0;
  else if (type != "F16") {
    fmt::print(stderr, "unknown type {}\n", type);
    return 2;
  }
  engine::ModelConfig config = testing::TestModelConfig(arch, tied);
  if (!preset.empty()) {
    Result<engine::ModelConfig> p = engine::ModelConfig::Preset(preset, 1);
    if (!p.ok()) {
      fmt::print(stderr, "{}\n", p.status().ToString());
      return 2;
    }
    const uint32_t vocab = config.vocab_size;
    const bool bias = config.attention_bias;
    config = *p;
    config.name = "test-" + preset;
    config.vocab_size = vocab;
    config.architecture = arch;
    config.attention_bias = bias;
    config.tied_embeddings = tied;
  }
  Result<engine::ModelWeights> weights = engine::SyntheticWeights(config);
  if (!weights.ok()) {
    fmt::print(stderr, "{}\n", weights.status().ToString());
    return 1;
  }
  const testing::TestTokenizer tok =
      arch == "qwen2" ? testing::TestTokenizer::kGpt2 : testing::TestTokenizer::kSentencePiece;
  const std::string path = format == "gguf"
                               ? fmt::format("{}/{}-{}-{}.gguf", dir, config.name, arch, type)
                               : fmt::format("{}/{}-{}-{}", dir, config.name, arch, type);
  const Status s = format == "gguf" ? testing::WriteGgufModel(path, config, *weights, wt, tok)
                                    : testing::WriteHfModel(path, config, *weights, wt, tok);
  if (!s.ok()) {
    fmt::print(stderr, "{}\n", s.ToString());
    return 1;
  }
  fmt::print("{}\n", path);
  return 0;
}
