// LoadModel on checkpoints the tests write themselves (tests/models/): the same weights from
// GGUF, from safetensors and from the synthetic generator give bit-identical logits for every
// stored type, both tokenizer kinds, tied and untied heads, Qwen2's biases and Llama-3's rope
// scaling; the fingerprint follows the weights; malformed and unsupported files are errors.
#include "engine/model_loader.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "engine/engine_test_util.h"
#include "model_io/test_writers.h"
#include "tests/models/llama_writer.h"

namespace strata::engine {
namespace {

using testing::TestTokenizer;
using testing::WeightType;

using testutil::TempDir;

std::vector<TokenId> Prompt(size_t n, uint32_t seed, uint32_t vocab) {
  std::mt19937 rng(seed);
  std::vector<TokenId> t(n);
  for (auto& x : t) x = static_cast<TokenId>(rng() % vocab);
  return t;
}

// The logits of every position of `prompt`, prefilled in one pass.
std::vector<float> Logits(const Model& model, const std::vector<TokenId>& prompt) {
  const ModelConfig& c = model.config();
  auto kv = PagedKvCache::Create(c.kv_layout(), 64);
  EXPECT_TRUE(kv.ok());
  auto blocks = (*kv)->Allocate(
      static_cast<uint32_t>((prompt.size() + c.tokens_per_block - 1) / c.tokens_per_block));
  EXPECT_TRUE(blocks.ok());
  std::vector<std::span<const uint32_t>> tables{*blocks};
  std::vector<ForwardRow> rows;
  for (uint32_t p = 0; p < prompt.size(); ++p) rows.push_back({0, p, prompt[p], true});
  Workspace ws;
  std::vector<float> logits;
  const Status s = model.Forward(rows, tables, **kv, ws, &logits);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return logits;
}

bool BitEqual(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

struct Case {
  std::string format;  // "gguf" | "hf"
  WeightType type;
  std::string arch;
  bool tied;
  TestTokenizer tokenizer;
};

std::string CaseName(const ::testing::TestParamInfo<Case>& info) {
  const Case& c = info.param;
  return fmt::format("{}_{}_{}{}_{}", c.format, testing::WeightTypeName(c.type), c.arch,
                     c.tied ? "_tied" : "", c.tokenizer == TestTokenizer::kGpt2 ? "gpt2" : "spm");
}

class LoadModelTest : public ::testing::TestWithParam<Case> {};

TEST_P(LoadModelTest, GivesTheLogitsOfTheWeightsItStores) {
  const Case& p = GetParam();
  TempDir dir;
  const ModelConfig config = testing::TestModelConfig(p.arch, p.tied);
  auto synthetic = SyntheticWeights(config);
  ASSERT_TRUE(synthetic.ok());
  const std::string path = p.format == "gguf" ? dir / "m.gguf" : dir / "m";
  const Status w = p.format == "gguf"
                       ? testing::WriteGgufModel(path, config, *synthetic, p.type, p.tokenizer)
                       : testing::WriteHfModel(path, config, *synthetic, p.type, p.tokenizer);
  ASSERT_TRUE(w.ok()) << w.ToString();

  auto loaded = LoadModel(path, {.max_context_tokens = 256, .tokens_per_block = 4});
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const ModelConfig& c = loaded->config;
  EXPECT_EQ(c.name, p.format == "gguf" ? "test-llama" : "m");
  EXPECT_EQ(c.architecture, p.arch);
  EXPECT_EQ(c.attention_bias, p.arch == "qwen2");
  EXPECT_EQ(c.tied_embeddings, p.tied);
  EXPECT_EQ(c.vocab_size, config.vocab_size);
  EXPECT_EQ(c.kv_layout(), config.kv_layout());
  EXPECT_EQ(loaded->format, p.format == "gguf" ? "gguf" : "safetensors");
  EXPECT_EQ(loaded->tensor_type, testing::WeightTypeName(p.type));
  EXPECT_EQ(loaded->tokenizer->vocab_size(), config.vocab_size);
  EXPECT_EQ(tokenizer::ChatTemplate::Detect(loaded->tokenizer->chat_template()),
            p.tokenizer == TestTokenizer::kGpt2 ? tokenizer::ChatFamily::kChatMl
                                                : tokenizer::ChatFamily::kLlama2);

  // What the file holds, computed by a model built in memory, gives the same bits.
  ModelConfig expected_config = config;
  expected_config.weights_digest = c.weights_digest;
  auto expected = Model::FromWeights(expected_config, testing::RoundTrip(*synthetic, p.type));
  ASSERT_TRUE(expected.ok()) << expected.status().ToString();
  const auto prompt = Prompt(23, 5, config.vocab_size);
  const std::vector<float> got = Logits(*loaded->model, prompt);
  EXPECT_TRUE(BitEqual(got, Logits(**expected, prompt)));
  if (p.type == WeightType::kF32) {
    // F32 stores the synthetic generator's weights exactly.
    auto generated = Model::Create(config);
    ASSERT_TRUE(generated.ok());
    EXPECT_TRUE(BitEqual(got, Logits(**generated, prompt)));
  }
}

INSTANTIATE_TEST_SUITE_P(
    Formats, LoadModelTest,
    ::testing::Values(Case{"gguf", WeightType::kF32, "llama", false, TestTokenizer::kSentencePiece},
                      Case{"gguf", WeightType::kF16, "llama", false, TestTokenizer::kSentencePiece},
                      Case{"gguf", WeightType::kBF16, "llama", true, TestTokenizer::kGpt2},
                      Case{"gguf", WeightType::kQ8_0, "llama", false,
                           TestTokenizer::kSentencePiece},
                      Case{"gguf", WeightType::kF16, "qwen2", true, TestTokenizer::kGpt2},
                      Case{"gguf", WeightType::kQ8_0, "qwen2", false, TestTokenizer::kGpt2},
                      Case{"hf", WeightType::kF32, "llama", false, TestTokenizer::kSentencePiece},
                      Case{"hf", WeightType::kF16, "llama", true, TestTokenizer::kSentencePiece},
                      Case{"hf", WeightType::kBF16, "llama", false, TestTokenizer::kGpt2},
                      Case{"hf", WeightType::kBF16, "qwen2", true, TestTokenizer::kGpt2},
                      Case{"hf", WeightType::kF32, "qwen2", false, TestTokenizer::kGpt2}),
    CaseName);

// Writes `config`'s synthetic weights as GGUF and as a sharded HF directory of `type`; loads both.
struct Pair {
  LoadedModel gguf, hf;
};
Pair LoadBoth(const TempDir& dir, const ModelConfig& config, const ModelWeights& weights,
              WeightType type, std::optional<testing::Llama3Scaling> scaling = {}) {
  EXPECT_TRUE(testing::WriteGgufModel(dir / "m.gguf", config, weights, type,
                                      TestTokenizer::kSentencePiece, scaling)
                  .ok());
  EXPECT_TRUE(testing::WriteHfModel(dir / "hf", config, weights, type,
                                    TestTokenizer::kSentencePiece, 3, scaling)
                  .ok());
  auto g = LoadModel(dir / "m.gguf");
  auto h = LoadModel(dir / "hf");
  EXPECT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_TRUE(h.ok()) << h.status().ToString();
  if (!g.ok() || !h.ok()) return {};
  return {std::move(g).value(), std::move(h).value()};
}

TEST(LoadModelTest, TheSameWeightsFromGgufAndShardedSafetensorsShareLogitsAndFingerprint) {
  TempDir dir;
  const ModelConfig config = testing::TestModelConfig();
  auto weights = SyntheticWeights(config);
  ASSERT_TRUE(weights.ok());
  const Pair both = LoadBoth(dir, config, *weights, WeightType::kBF16);
  ASSERT_NE(both.gguf.model, nullptr);
  ASSERT_NE(both.hf.model, nullptr);
  EXPECT_EQ(both.hf.config.tokens_per_block, 16u);
  EXPECT_EQ(both.gguf.config.Fingerprint(), both.hf.config.Fingerprint());
  EXPECT_EQ(both.gguf.config.weights_digest.size(), 64u);
  const auto prompt = Prompt(40, 9, config.vocab_size);
  EXPECT_TRUE(BitEqual(Logits(*both.gguf.model, prompt), Logits(*both.hf.model, prompt)));
  // The model's own context (256) is below the default cap.
  EXPECT_EQ(both.gguf.config.max_context_tokens, 256u);
}

TEST(LoadModelTest, OtherWeightsOrTypesGetAnotherFingerprint) {
  TempDir dir;
  ModelConfig config = testing::TestModelConfig();
  auto a = SyntheticWeights(config);
  config.seed = 8;
  auto b = SyntheticWeights(config);
  ASSERT_TRUE(a.ok() && b.ok());
  const TestTokenizer spm = TestTokenizer::kSentencePiece;
  ASSERT_TRUE(testing::WriteGgufModel(dir / "a.gguf", config, *a, WeightType::kF16, spm).ok());
  ASSERT_TRUE(testing::WriteGgufModel(dir / "b.gguf", config, *b, WeightType::kF16, spm).ok());
  ASSERT_TRUE(testing::WriteGgufModel(dir / "a8.gguf", config, *a, WeightType::kQ8_0, spm).ok());
  auto la = LoadModel(dir / "a.gguf"), lb = LoadModel(dir / "b.gguf"),
       la8 = LoadModel(dir / "a8.gguf");
  ASSERT_TRUE(la.ok() && lb.ok() && la8.ok());
  EXPECT_NE(la->config.Fingerprint(), lb->config.Fingerprint());
  EXPECT_NE(la->config.Fingerprint(), la8->config.Fingerprint());
  EXPECT_NE(la->config.Fingerprint(), ModelConfig(config).Fingerprint());
  EXPECT_NE(la->config.Fingerprint().find("strata-ref-llama/v2"), std::string::npos);
}

TEST(LoadModelTest, Llama3RopeScalingFromRopeFreqsAndFromConfigAgree) {
  TempDir dir;
  const ModelConfig config = testing::TestModelConfig();
  auto weights = SyntheticWeights(config);
  ASSERT_TRUE(weights.ok());
  const testing::Llama3Scaling scaling;
  weights->rope_freq_factors =
      Llama3RopeFactors(config.head_dim, config.rope_theta, scaling.factor, scaling.low_freq_factor,
                        scaling.high_freq_factor, scaling.original_context);
  // The scaling leaves high frequencies alone and divides the lowest by the factor.
  EXPECT_EQ(weights->rope_freq_factors.front(), 1.0f);
  EXPECT_EQ(weights->rope_freq_factors.back(), scaling.factor);
  const Pair both = LoadBoth(dir, config, *weights, WeightType::kF32, scaling);
  ASSERT_NE(both.gguf.model, nullptr);
  ASSERT_NE(both.hf.model, nullptr);
  const auto prompt = Prompt(70, 11, config.vocab_size);
  const auto scaled = Logits(*both.gguf.model, prompt);
  EXPECT_TRUE(BitEqual(scaled, Logits(*both.hf.model, prompt)));
  auto unscaled = Model::Create(config);
  ASSERT_TRUE(unscaled.ok());
  EXPECT_FALSE(BitEqual(scaled, Logits(**unscaled, prompt)));
  EXPECT_NE(both.gguf.config.weights_digest, WeightsDigest(*SyntheticWeights(config)));
}

TEST(LoadModelTest, RopeRowPermutationsAreInverses) {
  std::vector<float> w(2 * 8 * 3);
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(i);
  const auto inter = RopeRowsHalvesToInterleaved(w, 2, 8, 3);
  EXPECT_NE(inter, w);
  EXPECT_EQ(RopeRowsInterleavedToHalves(inter, 2, 8, 3), w);
  // Halves row 4 of head 0 (the first of the second half) pairs with row 0: rows 0 and 1
  // interleaved.
  EXPECT_EQ(inter[1 * 3], w[4 * 3]);
}

// --- errors ------------------------------------------------------------------------------

// A valid GGUF test model's bytes with one change made by `edit`.
std::string GgufBytes(WeightType type = WeightType::kF16) {
  TempDir dir;
  const ModelConfig config = testing::TestModelConfig();
  auto weights = SyntheticWeights(config);
  EXPECT_TRUE(
      testing::WriteGgufModel(dir / "m.gguf", config, *weights, type, TestTokenizer::kSentencePiece)
          .ok());
  std::ifstream in(dir / "m.gguf", std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void Write(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

TEST(LoadModelErrorsTest, MissingPathIsNotFound) {
  auto r = LoadModel("/nonexistent/model.gguf");
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("/nonexistent/model.gguf"), std::string::npos);
}

TEST(LoadModelErrorsTest, UnknownArchitectureIsNamed) {
  TempDir dir;
  std::string bytes = GgufBytes();
  // "llama" appears first as general.architecture's value: make it "llamb".
  const size_t at = bytes.find("llama");
  ASSERT_NE(at, std::string::npos);
  bytes[at + 4] = 'b';
  Write(dir / "m.gguf", bytes);
  auto r = LoadModel(dir / "m.gguf");
  EXPECT_EQ(r.status().code(), StatusCode::kNotSupported) << r.status().ToString();
  EXPECT_NE(r.status().message().find("'llamb'"), std::string::npos) << r.status().ToString();
}

TEST(LoadModelErrorsTest, UnsupportedTensorTypeIsNamed) {
  TempDir dir;
  model_io::testing::GgufWriter g;
  g.AddString("general.architecture", "llama");
  for (const auto& [k, v] :
       std::vector<std::pair<std::string, uint32_t>>{{"llama.embedding_length", 64},
                                                     {"llama.block_count", 1},
                                                     {"llama.feed_forward_length", 128},
                                                     {"llama.attention.head_count", 4}})
    g.Add<uint32_t>(k, 4, v);
  g.Add<float>("llama.attention.layer_norm_rms_epsilon", 6, 1e-5f);
  // token_embd as Q4_0 (type 2): 18 bytes per 32 values.
  g.AddTensor({"token_embd.weight", {64, 320}, 2, std::string(64 * 320 / 32 * 18, '\0')});
  g.AddTensor({"blk.0.attn_norm.weight", {64}, 0, std::string(256, '\0')});
  Write(dir / "q4.gguf", g.Build());
  auto r = LoadModel(dir / "q4.gguf");
  EXPECT_EQ(r.status().code(), StatusCode::kNotSupported) << r.status().ToString();
  EXPECT_NE(r.status().message().find("Q4_0"), std::string::npos) << r.status().ToString();
  EXPECT_NE(r.status().message().find("token_embd.weight"), std::string::npos);
}

TEST(LoadModelErrorsTest, WrongShapeNamesTheTensor) {
  TempDir dir;
  ModelConfig config = testing::TestModelConfig();
  auto weights = SyntheticWeights(config);
  ASSERT_TRUE(testing::WriteHfModel(dir / "hf", config, *weights, WeightType::kF32,
                                    TestTokenizer::kSentencePiece)
                  .ok());
  // config.json claims a wider FFN than the tensors have.
  std::ifstream in(dir / "hf/config.json");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  const size_t at = text.find("\"intermediate_size\": 128");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 24, "\"intermediate_size\": 256");
  Write(dir / "hf/config.json", text);
  auto r = LoadModel(dir / "hf");
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().ToString();
  EXPECT_NE(r.status().message().find("model.layers.0.mlp.gate_proj.weight"), std::string::npos)
      << r.status().ToString();
}

TEST(LoadModelErrorsTest, ConfigFieldsOfTheWrongTypeAreNamed) {
  TempDir dir;
  std::filesystem::create_directories(dir / "hf");
  model_io::testing::SafetensorsWriter st;
  st.AddTensor("x", "F32", {1}, std::string(4, '\0'));
  Write(dir / "hf/model.safetensors", st.Build());
  for (const auto& [field, text] : std::vector<std::pair<std::string, std::string>>{
           {"model_type", R"({"model_type": 7})"},
           {"tie_word_embeddings",
            R"({"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 1,
                "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 320,
                "tie_word_embeddings": "yes"})"},
           {"hidden_size", R"({"model_type": "llama", "hidden_size": "64"})"}}) {
    Write(dir / "hf/config.json", text);
    auto r = LoadModel(dir / "hf");
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument)
        << field << ": " << r.status().ToString();
    EXPECT_NE(r.status().message().find(field), std::string::npos) << r.status().ToString();
  }
}

TEST(LoadModelErrorsTest, UnknownHfModelTypeIsNamed) {
  TempDir dir;
  std::filesystem::create_directories(dir / "hf");
  Write(dir / "hf/config.json", R"({"model_type": "gpt_neox", "hidden_size": 64})");
  model_io::testing::SafetensorsWriter st;
  st.AddTensor("x", "F32", {1}, std::string(4, '\0'));
  Write(dir / "hf/model.safetensors", st.Build());
  auto r = LoadModel(dir / "hf");
  EXPECT_EQ(r.status().code(), StatusCode::kNotSupported) << r.status().ToString();
  EXPECT_NE(r.status().message().find("gpt_neox"), std::string::npos);
}

TEST(LoadModelErrorsTest, TruncatedFilesAreErrorsNotCrashes) {
  TempDir dir;
  const std::string bytes = GgufBytes(WeightType::kQ8_0);
  // Cut inside the header, the metadata, the tensor infos and the data.
  for (size_t cut : {size_t{3}, size_t{30}, bytes.size() / 8, bytes.size() / 2, bytes.size() - 1}) {
    Write(dir / "t.gguf", bytes.substr(0, cut));
    auto r = LoadModel(dir / "t.gguf");
    EXPECT_FALSE(r.ok()) << "cut at " << cut;
  }
}

// --- real checkpoints, when a machine has them ------------------------------------------

// Every *.gguf file and HF directory (holding config.json) under $STRATA_TEST_MODELS_DIR, else
// ../shared/models beside the source tree: it loads, its tokenizer round-trips text, and its
// first forward pass gives finite logits. Skipped where there are none (no model can be
// downloaded on the development machines).
TEST(RealModelsTest, EveryProvidedCheckpointLoadsTokenizesAndRuns) {
  const char* env = std::getenv("STRATA_TEST_MODELS_DIR");
  const std::filesystem::path dir = env != nullptr ? env : STRATA_SHARED_MODELS_DIR;
  std::error_code ec;
  std::vector<std::string> paths;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.path().extension() == ".gguf" ||
        std::filesystem::exists(entry.path() / "config.json", ec))
      paths.push_back(entry.path().string());
  }
  if (paths.empty()) GTEST_SKIP() << "no checkpoints under " << dir;
  for (const std::string& path : paths) {
    SCOPED_TRACE(path);
    auto loaded = LoadModel(path, {.max_context_tokens = 256});
    ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
    const std::string text = "The KV cache keeps keys and values — déjà vu, 東京 🚀.";
    const std::vector<TokenId> ids = loaded->tokenizer->Encode(text, false);
    EXPECT_NE(loaded->tokenizer->Decode(ids).find("déjà vu, 東京 🚀."), std::string::npos)
        << loaded->tokenizer->Decode(ids);
    const std::vector<float> logits =
        Logits(*loaded->model, loaded->tokenizer->EncodePrompt(text, false));
    for (float x : logits) ASSERT_TRUE(std::isfinite(x));
  }
}

}  // namespace
}  // namespace strata::engine
