// End to end with a real checkpoint: `strata serve --model` on a GGUF file (SentencePiece
// vocabulary, Llama-2 chat template) and on a Hugging Face directory (GPT-2 vocabulary, Qwen2,
// ChatML), both written by the test. The server names the model, tokenizes with the model's
// vocabulary (prompt token counts match the engine's own tokenizer), renders chats in the
// model's template, reuses the KV of a repeated prompt from G2 and, after a restart, from G3
// with identical text; a missing or broken checkpoint is a clear error at start.
#include <fstream>

#include "engine/model_loader.h"
#include "serve_test_util.h"
#include "tests/models/llama_writer.h"

namespace {

using namespace strata::serve_test;
namespace st = strata::testing;

struct ModelCase {
  std::string format;
  std::string arch;
};

class ServeModelE2eTest : public ::testing::TestWithParam<ModelCase> {};

// Writes the test checkpoint of `c` under `dir`; returns its path.
std::string WriteModel(const TempDir& dir, const ModelCase& c) {
  const strata::engine::ModelConfig config = st::TestModelConfig(c.arch, c.arch == "qwen2");
  auto weights = strata::engine::SyntheticWeights(config);
  EXPECT_TRUE(weights.ok());
  const auto tok = c.arch == "qwen2" ? st::TestTokenizer::kGpt2 : st::TestTokenizer::kSentencePiece;
  const std::string path = dir.path() + (c.format == "gguf" ? "/model.gguf" : "/Test-Qwen2");
  const strata::Status s =
      c.format == "gguf"
          ? st::WriteGgufModel(path, config, *weights, st::WeightType::kQ8_0, tok)
          : st::WriteHfModel(path, config, *weights, st::WeightType::kBF16, tok, /*shards=*/2);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return path;
}

TEST_P(ServeModelE2eTest, ServesTheCheckpointWithItsTokenizerTemplateAndReuse) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string model_path = WriteModel(dir, GetParam());
  auto loaded = strata::engine::LoadModel(model_path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const std::vector<std::string> args = {
      "--port",    "0",         "--model", model_path,   "--device-cache-gb",
      "0.05",      "--host-gb", "0.05",    "--disk-dir", dir.path() + "/cache",
      "--disk-gb", "0.05"};
  const std::string expected_name = GetParam().format == "gguf" ? "test-llama" : "Test-Qwen2";
  // Short enough for the test models' 256-token context in either vocabulary.
  const std::string prompt = LongPrompt().substr(0, 300);
  std::string first_text;
  {
    ServeProcess server;
    ASSERT_TRUE(server.Start(args));
    EXPECT_NE(
        server.ready_line().find(GetParam().format == "gguf" ? "gguf from" : "safetensors from"),
        std::string::npos)
        << server.ready_line();
    ASSERT_TRUE(WaitHealthy(server.port()));
    const HttpResponse models = Request(server.port(), "GET", "/v1/models");
    EXPECT_NE(models.body.find("\"" + expected_name + "\""), std::string::npos) << models.body;

    const Completion first = Complete(server.port(), prompt, 8);
    const Completion second = Complete(server.port(), prompt, 8);
    // The model's tokenizer, BOS included where the model adds one.
    EXPECT_EQ(first.usage.value("prompt_tokens", 0u),
              loaded->tokenizer->EncodePrompt(prompt, true).size());
    EXPECT_LT(first.usage.value("prompt_tokens", 0u), prompt.size());  // merges, not bytes
    EXPECT_EQ(CachedTokens(first.usage), 0u);
    EXPECT_GT(CachedTokens(second.usage), 0u);
    EXPECT_EQ(second.text, first.text);
    first_text = first.text;

    // A chat is rendered in the model's template: the prompt counts its special tokens.
    const nlohmann::json chat = {{"messages", {{{"role", "user"}, {"content", "Hello"}}}},
                                 {"max_tokens", 4}};
    const HttpResponse reply = Request(server.port(), "POST", "/v1/chat/completions", chat.dump());
    EXPECT_EQ(reply.status, 200) << reply.body;
    const nlohmann::json body = nlohmann::json::parse(reply.body, nullptr, false);
    ASSERT_TRUE(body.is_object()) << reply.body;
    const auto tmpl = strata::tokenizer::ChatTemplate::FromJinja(loaded->tokenizer->chat_template(),
                                                                 *loaded->tokenizer);
    const std::string rendered = tmpl.Apply({{"user", "Hello"}});
    EXPECT_EQ(body["usage"].value("prompt_tokens", 0u),
              loaded->tokenizer->Encode(rendered, /*parse_special=*/true).size());
    ExpectCleanExit(server);
  }
  // After a restart the prompt comes from G3, with the same text.
  ServeProcess server;
  ASSERT_TRUE(server.Start(args));
  ASSERT_TRUE(WaitHealthy(server.port()));
  const Completion third = Complete(server.port(), prompt, 8);
  EXPECT_GT(CachedTokens(third.usage), 0u);
  EXPECT_EQ(third.text, first_text);
  ExpectCleanExit(server);
}

INSTANTIATE_TEST_SUITE_P(Checkpoints, ServeModelE2eTest,
                         ::testing::Values(ModelCase{"gguf", "llama"}, ModelCase{"hf", "qwen2"}),
                         [](const auto& info) {
                           return info.param.format + "_" + info.param.arch;
                         });

// Runs `strata serve` with `args` to its exit; returns the exit code and what it printed on
// stdout and stderr (through a shell: the spawn helper passes stdout only).
std::pair<int, std::string> RunToExit(const std::vector<std::string>& args) {
  std::string command = std::string("exec ") + STRATA_CLI + " serve";
  for (const std::string& a : args) command += " '" + a + "'";
  pid_t pid = -1;
  int out = -1;
  EXPECT_EQ(SpawnWithCleanEnv({"/bin/sh", "-c", command + " 2>&1"}, {"STRATA_METRICS_PORT=0"}, &pid,
                              &out),
            0);
  std::string output;
  char buf[4096];
  for (ssize_t n; (n = read(out, buf, sizeof buf)) > 0;) output.append(buf, static_cast<size_t>(n));
  close(out);
  int status = 0;
  waitpid(pid, &status, 0);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

TEST(ServeModelErrorsTest, AMissingOrBrokenCheckpointIsAClearErrorAtStart) {
  TempDir dir;
  auto [code, output] = RunToExit({"--port", "0", "--model", dir.path() + "/missing.gguf"});
  EXPECT_NE(code, 0);
  EXPECT_NE(output.find("missing.gguf does not exist"), std::string::npos) << output;

  std::ofstream(dir.path() + "/junk.gguf") << "GGUF but not really";
  std::tie(code, output) = RunToExit({"--port", "0", "--model", dir.path() + "/junk.gguf"});
  EXPECT_NE(code, 0);
  EXPECT_NE(output.find("junk.gguf"), std::string::npos) << output;
  EXPECT_EQ(output.find("ready at"), std::string::npos) << output;
}

}  // namespace
