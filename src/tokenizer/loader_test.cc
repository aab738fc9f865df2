// Tests of the loaders: small GGUF files (model_io's GgufWriter) and HF model directories
// written to a temp dir, including malformed metadata that must give errors, never crashes.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "model_io/gguf.h"
#include "model_io/test_writers.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/test_vocabs.h"

namespace strata::tokenizer {
namespace {

using model_io::GgufFile;
using model_io::testing::AsBytes;
using model_io::testing::GgufWriter;
using json = nlohmann::json;
using Strs = std::vector<std::string>;

const std::string kMark = "\xE2\x96\x81";

std::vector<std::string> Pieces(const Tokenizer& t, const std::vector<TokenId>& ids) {
  std::vector<std::string> out;
  for (TokenId id : ids) out.push_back(t.piece(id));
  return out;
}

int32_t GgufType(TokenType t) {
  switch (t) {
    case TokenType::kNormal:
      return 1;
    case TokenType::kUnknown:
      return 2;
    case TokenType::kControl:
      return 3;
    case TokenType::kUserDefined:
      return 4;
    case TokenType::kUnused:
      return 5;
    case TokenType::kByte:
      return 6;
  }
  return 0;
}

// The metadata of `spec` as llama.cpp's converter writes it. `skip` leaves one key out.
GgufWriter WriterFor(const VocabSpec& spec, bool spm, std::string_view skip = "") {
  GgufWriter w;
  auto want = [&](std::string_view key) { return key != skip; };
  if (want("tokenizer.ggml.model")) w.AddString("tokenizer.ggml.model", spm ? "llama" : "gpt2");
  if (!spm && want("tokenizer.ggml.pre")) w.AddString("tokenizer.ggml.pre", "llama-bpe");
  if (want("tokenizer.ggml.tokens")) w.AddStringArray("tokenizer.ggml.tokens", spec.pieces);
  if (spm && want("tokenizer.ggml.scores"))
    w.AddArray<float>("tokenizer.ggml.scores", 6, spec.scores);
  std::vector<int32_t> types;
  for (TokenType t : spec.types) types.push_back(GgufType(t));
  if (want("tokenizer.ggml.token_type")) w.AddArray<int32_t>("tokenizer.ggml.token_type", 5, types);
  if (!spm && want("tokenizer.ggml.merges")) {
    std::vector<std::string> merges;
    for (const auto& [a, b] : spec.merges) merges.push_back(a + " " + b);
    w.AddStringArray("tokenizer.ggml.merges", merges);
  }
  if (spec.bos && want("tokenizer.ggml.bos_token_id"))
    w.Add<uint32_t>("tokenizer.ggml.bos_token_id", 4, static_cast<uint32_t>(*spec.bos));
  if (spec.eos && want("tokenizer.ggml.eos_token_id"))
    w.Add<uint32_t>("tokenizer.ggml.eos_token_id", 4, static_cast<uint32_t>(*spec.eos));
  if (want("tokenizer.ggml.add_bos_token"))
    w.Add<uint8_t>("tokenizer.ggml.add_bos_token", 7, spec.add_bos ? 1 : 0);
  return w;
}

Result<std::unique_ptr<Tokenizer>> LoadGguf(const GgufWriter& w) {
  const std::string bytes = w.Build();
  Result<GgufFile> file = GgufFile::Parse(AsBytes(bytes));
  if (!file.ok()) return file.status();
  return LoadTokenizerFromGguf(*file);
}

void ExpectError(const Result<std::unique_ptr<Tokenizer>>& r, StatusCode code,
                 std::string_view needle) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), code) << r.status().ToString();
  EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().ToString();
}

TEST(GgufLoader, SentencePiece) {
  const VocabSpec spec = testing::SpmSpec();
  GgufWriter w = WriterFor(spec, true);
  w.AddString("tokenizer.chat_template", "[INST] <<SYS>>");
  auto r = LoadGguf(w);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Tokenizer& t = **r;
  EXPECT_EQ(t.kind(), TokenizerKind::kSentencePiece);
  EXPECT_EQ(t.vocab_size(), spec.pieces.size());
  EXPECT_EQ(Pieces(t, t.EncodePrompt("hello world", false)),
            (Strs{"<s>", kMark + "hello", kMark + "world"}));
  EXPECT_EQ(Pieces(t, t.Encode("h\xE2\x82\xAC", false)),
            (Strs{kMark, "h", "<0xE2>", "<0x82>", "<0xAC>"}));
  EXPECT_TRUE(t.IsEndOfGeneration(2));
  EXPECT_TRUE(t.IsEndOfGeneration(*t.FindPiece("<|im_end|>")));
  EXPECT_EQ(ChatTemplate::Detect(t.chat_template()), ChatFamily::kLlama2);
}

TEST(GgufLoader, SentencePieceWithoutSpacePrefix) {
  GgufWriter w = WriterFor(testing::SpmSpec(), true);
  w.Add<uint8_t>("tokenizer.ggml.add_space_prefix", 7, 0);
  auto r = LoadGguf(w);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(Pieces(**r, (*r)->Encode("hello world", false)), (Strs{"hello", kMark + "world"}));
}

TEST(GgufLoader, Gpt2FromAFile) {
  const VocabSpec spec = testing::Gpt2Spec();
  GgufWriter w = WriterFor(spec, false);
  const TokenId eot = static_cast<TokenId>(spec.pieces.size() - 4);  // "<|eot_id|>"
  w.Add<uint32_t>("tokenizer.ggml.eot_token_id", 4, static_cast<uint32_t>(eot));
  const std::string path = ::testing::TempDir() + "/tok_gpt2.gguf";
  {
    std::ofstream f(path, std::ios::binary);
    f << w.Build();
  }
  Result<GgufFile> file = GgufFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  auto r = LoadTokenizerFromGguf(*file);
  std::filesystem::remove(path);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Tokenizer& t = **r;
  EXPECT_EQ(t.name(), "gpt2/llama-bpe");
  EXPECT_TRUE(t.add_bos());
  EXPECT_EQ(t.piece(*t.bos()), "<|begin_of_text|>");
  EXPECT_TRUE(t.IsEndOfGeneration(eot));
  EXPECT_EQ(
      Pieces(t, t.Encode("hello world 12345", false)),
      (Strs{"hello", testing::ByteChar(' ') + "world", testing::ByteChar(' '), "123", "4", "5"}));
  EXPECT_EQ(t.Decode(t.Encode("hello world 12345", false)), "hello world 12345");
}

TEST(GgufLoader, MalformedMetadata) {
  const VocabSpec spm = testing::SpmSpec();
  const VocabSpec gpt2 = testing::Gpt2Spec();
  const auto kBad = StatusCode::kInvalidArgument;
  ExpectError(LoadGguf(WriterFor(spm, true, "tokenizer.ggml.model")), kBad, "tokenizer.ggml.model");
  ExpectError(LoadGguf(WriterFor(spm, true, "tokenizer.ggml.tokens")), kBad,
              "tokenizer.ggml.tokens");
  ExpectError(LoadGguf(WriterFor(gpt2, false, "tokenizer.ggml.merges")), kBad,
              "tokenizer.ggml.merges");
  {
    GgufWriter w = WriterFor(spm, true, "tokenizer.ggml.model");
    w.AddString("tokenizer.ggml.model", "bert");
    ExpectError(LoadGguf(w), StatusCode::kNotSupported, "bert");
  }
  {
    GgufWriter w = WriterFor(spm, true, "tokenizer.ggml.model");
    w.Add<uint32_t>("tokenizer.ggml.model", 4, 7);
    ExpectError(LoadGguf(w), kBad, "tokenizer.ggml.model");
  }
  {
    GgufWriter w = WriterFor(spm, true, "tokenizer.ggml.tokens");
    w.AddArray<int32_t>("tokenizer.ggml.tokens", 5, {1, 2, 3});
    ExpectError(LoadGguf(w), kBad, "tokenizer.ggml.tokens");
  }
  {
    VocabSpec empty = spm;
    empty.pieces.clear();
    ExpectError(LoadGguf(WriterFor(empty, true)), kBad, "tokenizer.ggml.tokens");
  }
  {
    GgufWriter w = WriterFor(spm, true, "tokenizer.ggml.scores");
    w.AddArray<float>("tokenizer.ggml.scores", 6, {1.0f, 2.0f});
    ExpectError(LoadGguf(w), kBad, "tokenizer.ggml.scores");
  }
  {
    GgufWriter w = WriterFor(spm, true, "tokenizer.ggml.token_type");
    std::vector<int32_t> types(spm.pieces.size(), 1);
    types[7] = 9;
    w.AddArray<int32_t>("tokenizer.ggml.token_type", 5, types);
    ExpectError(LoadGguf(w), kBad, "tokenizer.ggml.token_type[7]");
  }
  {
    GgufWriter w = WriterFor(spm, true, "tokenizer.ggml.bos_token_id");
    w.Add<uint32_t>("tokenizer.ggml.bos_token_id", 4, 4000000000u);
    ExpectError(LoadGguf(w), kBad, "tokenizer.ggml.bos_token_id");
  }
  {
    GgufWriter w = WriterFor(spm, true, "tokenizer.ggml.eos_token_id");
    w.Add<int32_t>("tokenizer.ggml.eos_token_id", 5, -1);
    ExpectError(LoadGguf(w), kBad, "tokenizer.ggml.eos_token_id");
  }
  {
    GgufWriter w = WriterFor(spm, true, "tokenizer.ggml.add_bos_token");
    w.AddString("tokenizer.ggml.add_bos_token", "yes");
    ExpectError(LoadGguf(w), kBad, "tokenizer.ggml.add_bos_token");
  }
  for (const std::string& merge : {std::string("ab"), std::string("a "), std::string("")}) {
    GgufWriter w = WriterFor(gpt2, false, "tokenizer.ggml.merges");
    w.AddStringArray("tokenizer.ggml.merges", {"h e", merge});
    ExpectError(LoadGguf(w), kBad, "tokenizer.ggml.merges[1]");
  }
  {
    // "q" and "z" are pieces, "qz" is not.
    GgufWriter w = WriterFor(gpt2, false, "tokenizer.ggml.merges");
    w.AddStringArray("tokenizer.ggml.merges", {"h e", "q z"});
    ExpectError(LoadGguf(w), kBad, "tokenizer.ggml.merges[1]");
  }
  {
    GgufWriter w = WriterFor(gpt2, false, "tokenizer.ggml.pre");
    w.AddString("tokenizer.ggml.pre", "deepseek-llm");
    ExpectError(LoadGguf(w), StatusCode::kNotSupported, "deepseek-llm");
  }
}

// Random byte flips in a valid file: the loader gives a tokenizer or an error, never a crash.
TEST(GgufLoader, CorruptedFilesNeverCrash) {
  const std::string good = WriterFor(testing::Gpt2Spec(), false).Build();
  std::mt19937 rng(5);
  int loaded = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string bytes = good;
    for (int k = rng() % 4 + 1; k > 0; --k) bytes[rng() % bytes.size()] = static_cast<char>(rng());
    Result<GgufFile> file = GgufFile::Parse(AsBytes(bytes));
    if (!file.ok()) continue;
    auto r = LoadTokenizerFromGguf(*file);
    if (!r.ok()) continue;
    ++loaded;
    (*r)->Decode((*r)->Encode("hello world <|end|>", true));
  }
  EXPECT_GT(loaded, 0);
}

// A temp directory for one HF model, removed at the end of the test.
class HfDir {
 public:
  HfDir() {
    std::string tmpl = ::testing::TempDir() + "/strata_tok_XXXXXX";
    path_ = mkdtemp(tmpl.data()) ? tmpl : "";
  }
  ~HfDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }
  void Write(const std::string& name, const std::string& text) const {
    std::ofstream f(path_ + "/" + name, std::ios::binary);
    f << text;
  }
  void Write(const std::string& name, const json& j) const { Write(name, j.dump()); }

 private:
  std::string path_;
};

const char* kLlama3Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* kQwen2Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// tokenizer.json of the GPT-2 test vocabulary: specials as added tokens, Llama-3's split.
json Gpt2Json(bool merges_as_pairs = false) {
  const VocabSpec spec = testing::Gpt2Spec();
  json vocab = json::object(), added = json::array(), merges = json::array();
  for (size_t i = 0; i < spec.pieces.size(); ++i) {
    if (spec.types[i] == TokenType::kNormal)
      vocab[spec.pieces[i]] = i;
    else
      added.push_back({{"id", i},
                       {"content", spec.pieces[i]},
                       {"special", spec.types[i] == TokenType::kControl}});
  }
  for (const auto& [a, b] : spec.merges)
    merges.push_back(merges_as_pairs ? json::array({a, b}) : json(a + " " + b));
  return {
      {"version", "1.0"},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"},
           {"pattern", {{"Regex", kLlama3Regex}}},
           {"behavior", "Isolated"},
           {"invert", false}},
          {{"type", "ByteLevel"},
           {"add_prefix_space", false},
           {"trim_offsets", true},
           {"use_regex", false}}}}}},
      {"post_processor",
       {{"type", "Sequence"},
        {"processors",
         {{{"type", "ByteLevel"}},
          {{"type", "TemplateProcessing"},
           {"single",
            {{{"SpecialToken", {{"id", "<|begin_of_text|>"}, {"type_id", 0}}}},
             {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}}}}}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"byte_fallback", false},
        {"ignore_merges", true},
        {"vocab", vocab},
        {"merges", merges}}},
  };
}

// tokenizer.json of a Llama-2-style vocabulary: Prepend + Replace normalizer, byte fallback.
json SpmJson() {
  const VocabSpec spec = testing::SpmSpec();
  json vocab = json::object(), added = json::array();
  for (size_t i = 0; i < spec.pieces.size(); ++i) {
    vocab[spec.pieces[i]] = i;
    if (spec.types[i] == TokenType::kControl || spec.types[i] == TokenType::kUnknown)
      added.push_back({{"id", i}, {"content", spec.pieces[i]}, {"special", true}});
  }
  const json merges = {"l l", "h e",        "ll o",         "he llo", kMark + " hello",
                       "o r", kMark + " w", kMark + "w or", "l d",    kMark + "wor ld"};
  return {
      {"added_tokens", added},
      {"normalizer",
       {{"type", "Sequence"},
        {"normalizers",
         {{{"type", "Prepend"}, {"prepend", kMark}},
          {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kMark}}}}}},
      {"pre_tokenizer", nullptr},
      {"model",
       {{"type", "BPE"},
        {"unk_token", "<unk>"},
        {"byte_fallback", true},
        {"fuse_unk", true},
        {"vocab", vocab},
        {"merges", merges}}},
  };
}

TEST(HfLoader, Llama3Style) {
  for (bool pairs : {false, true}) {
    HfDir dir;
    dir.Write("tokenizer.json", Gpt2Json(pairs));
    dir.Write("tokenizer_config.json",
              json{{"bos_token", "<|begin_of_text|>"},
                   {"eos_token", {{"content", "<|eot_id|>"}, {"special", true}}},
                   {"chat_template", "{{ '<|start_header_id|>' }}"}});
    dir.Write("generation_config.json", json{{"eos_token_id", {270, 271}}});
    auto r = LoadTokenizerFromHfDir(dir.path());
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    const Tokenizer& t = **r;
    EXPECT_EQ(t.name(), "gpt2/llama-bpe");
    EXPECT_TRUE(t.add_bos());  // from the post-processor's template
    EXPECT_EQ(t.piece(*t.bos()), "<|begin_of_text|>");
    EXPECT_EQ(t.piece(*t.eos()), "<|eot_id|>");
    EXPECT_TRUE(t.IsEndOfGeneration(270));
    EXPECT_TRUE(t.IsEndOfGeneration(271));
    EXPECT_EQ(t.type(*t.FindPiece("<tool>")), TokenType::kUserDefined);
    EXPECT_EQ(ChatTemplate::Detect(t.chat_template()), ChatFamily::kLlama3);
    auto mem = std::move(*MakeGpt2Tokenizer(testing::Gpt2Spec()));
    const std::string text = "<|begin_of_text|>hello world 12345 xyz";
    EXPECT_EQ(t.Encode(text, true), mem->Encode(text, true));
  }
}

TEST(HfLoader, Llama2Style) {
  HfDir dir;
  dir.Write("tokenizer.json", SpmJson());
  dir.Write("tokenizer_config.json",
            json{{"add_bos_token", true},
                 {"bos_token", {{"content", "<s>"}, {"lstrip", false}}},
                 {"eos_token", "</s>"},
                 {"chat_template", json::array({{{"name", "tool_use"}, {"template", "x"}},
                                                {{"name", "default"}, {"template", "[INST]"}}})}});
  auto r = LoadTokenizerFromHfDir(dir.path());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Tokenizer& t = **r;
  EXPECT_EQ(t.kind(), TokenizerKind::kSentencePiece);
  EXPECT_TRUE(t.add_bos());
  EXPECT_EQ(t.chat_template(), "[INST]");
  EXPECT_EQ(Pieces(t, t.EncodePrompt("hello world", false)),
            (Strs{"<s>", kMark + "hello", kMark + "world"}));
  EXPECT_EQ(Pieces(t, t.Encode("h\xE2\x82\xAC", false)),
            (Strs{kMark, "h", "<0xE2>", "<0x82>", "<0xAC>"}));
  EXPECT_EQ(t.type(*t.FindPiece("<0x41>")), TokenType::kByte);
  EXPECT_EQ(t.type(0), TokenType::kUnknown);
  EXPECT_EQ(t.Decode(t.Encode("hello world", false)), " hello world");
}

TEST(HfLoader, MetaspaceSpacePrefix) {
  json j = SpmJson();
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {
      {"type", "Metaspace"}, {"replacement", kMark}, {"prepend_scheme", "never"}, {"split", false}};
  HfDir dir;
  dir.Write("tokenizer.json", j);
  auto r = LoadTokenizerFromHfDir(dir.path());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(Pieces(**r, (*r)->Encode("hello world", false)), (Strs{"hello", kMark + "world"}));
  EXPECT_FALSE((*r)->add_bos());
}

TEST(HfLoader, SmolLmAndQwen2Splits) {
  {
    json j = Gpt2Json();
    j["pre_tokenizer"] = {
        {"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Digits"}, {"individual_digits", true}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}}}};
    j["post_processor"] = nullptr;
    HfDir dir;
    dir.Write("tokenizer.json", j);
    auto r = LoadTokenizerFromHfDir(dir.path());
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ((*r)->name(), "gpt2/smollm");
    EXPECT_FALSE((*r)->add_bos());
    EXPECT_EQ(Pieces(**r, (*r)->Encode("123", false)), (Strs{"1", "2", "3"}));
  }
  {
    json j = Gpt2Json();
    j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = kQwen2Regex;
    j["normalizer"] = {{"type", "NFC"}};
    HfDir dir;
    dir.Write("tokenizer.json", j);
    auto r = LoadTokenizerFromHfDir(dir.path());
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ((*r)->name(), "gpt2/qwen2");
    EXPECT_EQ(Pieces(**r, (*r)->Encode("123", false)), (Strs{"1", "2", "3"}));
    // NFC: "e" + U+0301 becomes "é" before splitting.
    EXPECT_EQ((*r)->Encode("e\xCC\x81", false), (*r)->Encode("\xC3\xA9", false));
  }
}

TEST(HfLoader, MalformedFiles) {
  const auto kBad = StatusCode::kInvalidArgument;
  auto load = [](const json& tok, const json& cfg = nullptr, const json& gen = nullptr) {
    HfDir dir;
    dir.Write("tokenizer.json", tok);
    if (!cfg.is_null()) dir.Write("tokenizer_config.json", cfg);
    if (!gen.is_null()) dir.Write("generation_config.json", gen);
    return LoadTokenizerFromHfDir(dir.path());
  };
  {
    HfDir dir;
    ExpectError(LoadTokenizerFromHfDir(dir.path()), StatusCode::kNotFound, "tokenizer.json");
    dir.Write("tokenizer.json", std::string("{\"model\": "));
    ExpectError(LoadTokenizerFromHfDir(dir.path()), kBad, "not valid JSON");
    dir.Write("tokenizer.json", std::string("[1, 2]"));
    ExpectError(LoadTokenizerFromHfDir(dir.path()), kBad, "not a JSON object");
  }
  ExpectError(load(json{{"model", 3}}), kBad, "model");
  {
    json j = Gpt2Json();
    j["model"]["type"] = "Unigram";
    ExpectError(load(j), StatusCode::kNotSupported, "Unigram");
  }
  {
    json j = Gpt2Json();
    j["model"]["vocab"] = json::array();
    ExpectError(load(j), kBad, "model.vocab");
  }
  for (const json& bad_id : {json("7"), json(-1), json(1000000000000LL), json(2.5), json(true)}) {
    json j = Gpt2Json();
    j["model"]["vocab"]["h"] = bad_id;
    ExpectError(load(j), kBad, "model.vocab[\"h\"]");
  }
  {
    json j = Gpt2Json();
    j["model"]["vocab"]["h"] = 0;  // id 0 is also "!"'s
    ExpectError(load(j), kBad, "second piece");
  }
  {
    json j = Gpt2Json();
    j["model"]["merges"].push_back("q z");
    ExpectError(load(j), kBad, "model.merges[13]");
  }
  {
    json j = Gpt2Json();
    j["model"]["merges"][0] = 5;
    ExpectError(load(j), kBad, "model.merges[0]");
  }
  {
    json j = Gpt2Json();
    j["model"]["merges"] = "h e";
    ExpectError(load(j), kBad, "model.merges");
  }
  {
    json j = Gpt2Json();
    j["added_tokens"] = {{"id", 1}};
    ExpectError(load(j), kBad, "added_tokens");
  }
  {
    json j = Gpt2Json();
    j["added_tokens"][0]["id"] = -5;
    ExpectError(load(j), kBad, "added_tokens[0].id");
  }
  {
    json j = Gpt2Json();
    j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\w+|\\s+";
    ExpectError(load(j), StatusCode::kNotSupported, "\\w+|\\s+");
  }
  {
    json j = Gpt2Json();
    j["pre_tokenizer"] = {{"type", "Whitespace"}};
    ExpectError(load(j), StatusCode::kNotSupported, "tokenizer.json");
  }
  ExpectError(load(Gpt2Json(), json{{"bos_token", 5}}), kBad, "bos_token");
  ExpectError(load(Gpt2Json(), json{{"eos_token", "<nope>"}}), kBad, "eos_token");
  ExpectError(load(Gpt2Json(), json{{"add_bos_token", "yes"}}), kBad, "add_bos_token");
  ExpectError(load(Gpt2Json(), json{{"chat_template", 1}}), kBad, "chat_template");
  ExpectError(load(Gpt2Json(), nullptr, json{{"eos_token_id", {1, 99999}}}), kBad, "eos_token_id");
  ExpectError(load(Gpt2Json(), nullptr, json{{"eos_token_id", "x"}}), kBad, "eos_token_id");
  {
    HfDir dir;
    { std::ofstream f(dir.path() + "/tokenizer.json"); }
    std::filesystem::resize_file(dir.path() + "/tokenizer.json", (64u << 20) + 1);
    ExpectError(LoadTokenizerFromHfDir(dir.path()), kBad, "larger than 64 MiB");
  }
}

}  // namespace
}  // namespace strata::tokenizer
