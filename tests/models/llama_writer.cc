// Writes small Llama-family checkpoints as GGUF files and Hugging Face directories for tests.
#include "tests/models/llama_writer.h"

#include <bit>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engine/model_loader.h"
#include "model_io/tensor_convert.h"
#include "model_io/test_writers.h"

namespace strata::testing {
namespace {

using model_io::testing::GgufWriter;
using model_io::testing::Put;
using nlohmann::json;

constexpr uint32_t kVocab = 320;

// GGUF value and ggml tensor type numbers.
constexpr uint32_t kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7, kString = 8;

uint16_t ToHalf(float f) {
  // Round to nearest even through the exact conversions of the hardware-free path.
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint32_t sign = (x >> 16) & 0x8000;
  const float a = std::fabs(f);
  if (std::isnan(f)) return static_cast<uint16_t>(sign | 0x7e00);
  if (a >= 65520.0f) return static_cast<uint16_t>(sign | 0x7c00);
  if (a < 0x1.0p-14f) {  // subnormal half: multiples of 2^-24
    const float q = std::nearbyint(a * 0x1.0p24f);
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(q));
  }
  uint32_t m = std::bit_cast<uint32_t>(a);
  const uint32_t lsb = (m >> 13) & 1;
  m += 0xfff + lsb;  // round the 13 dropped bits to nearest even
  const uint32_t e = (m >> 23) - 127 + 15;
  return static_cast<uint16_t>(sign | (e << 10) | ((m >> 13) & 0x3ff));
}

uint16_t ToBFloat16(float f) {
  uint32_t x = std::bit_cast<uint32_t>(f);
  if (std::isnan(f)) return static_cast<uint16_t>((x >> 16) | 0x40);
  x += 0x7fff + ((x >> 16) & 1);
  return static_cast<uint16_t>(x >> 16);
}

// ggml's quantize_row_q8_0: per 32 values, d = amax / 127 stored as fp16, q = round(x / d).
std::string ToQ8_0(const std::vector<float>& v) {
  std::string out;
  for (size_t b = 0; b < v.size(); b += 32) {
    float amax = 0;
    for (size_t i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(v[b + i]));
    const float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
    Put<uint16_t>(out, ToHalf(d));
    for (size_t i = 0; i < 32; ++i)
      Put<int8_t>(out, static_cast<int8_t>(std::lround(v[b + i] * id)));
  }
  return out;
}

// The bytes of `v` stored as `type`.
std::string Encode(const std::vector<float>& v, WeightType type) {
  std::string out;
  switch (type) {
    case WeightType::kF32:
      return model_io::testing::Bytes(v);
    case WeightType::kF16:
      for (float f : v) Put<uint16_t>(out, ToHalf(f));
      return out;
    case WeightType::kBF16:
      for (float f : v) Put<uint16_t>(out, ToBFloat16(f));
      return out;
    case WeightType::kQ8_0:
      return ToQ8_0(v);
  }
  return out;
}

model_io::FloatFormat Format(WeightType type) {
  switch (type) {
    case WeightType::kF32:
      return model_io::FloatFormat::kF32;
    case WeightType::kF16:
      return model_io::FloatFormat::kF16;
    case WeightType::kBF16:
      return model_io::FloatFormat::kBF16;
    case WeightType::kQ8_0:
      return model_io::FloatFormat::kQ8_0;
  }
  return model_io::FloatFormat::kF32;
}

std::vector<float> Rounded(const std::vector<float>& v, WeightType type) {
  const std::string bytes = Encode(v, type);
  std::vector<float> out(v.size());
  const Status s = model_io::ConvertToFloat(
      Format(type), {reinterpret_cast<const std::byte*>(bytes.data()), bytes.size()}, out);
  if (!s.ok()) throw std::runtime_error(s.ToString());
  return out;
}

// One named tensor in PyTorch order ([out, in]) and whether it is a 2-D weight.
struct Named {
  std::string gguf, hf;
  const std::vector<float>* values;
  std::vector<uint64_t> shape;
  bool permute_rows = false;  // Q/K rows (and biases) of a "llama" GGUF
  uint32_t heads = 0;
};

std::vector<Named> Tensors(const engine::ModelConfig& c, const engine::ModelWeights& w) {
  const uint64_t h = c.hidden, q = uint64_t{c.num_heads} * c.head_dim,
                 kv = uint64_t{c.num_kv_heads} * c.head_dim, vocab = c.vocab_size;
  std::vector<Named> t;
  t.push_back({"token_embd.weight", "model.embed_tokens.weight", &w.embed, {vocab, h}});
  for (uint32_t l = 0; l < c.num_layers; ++l) {
    const engine::LayerWeights& lw = w.layers[l];
    const auto g = [l](const char* n) { return fmt::format("blk.{}.{}", l, n); };
    const auto f = [l](const char* n) { return fmt::format("model.layers.{}.{}", l, n); };
    t.push_back({g("attn_norm.weight"), f("input_layernorm.weight"), &lw.attn_norm, {h}});
    t.push_back(
        {g("attn_q.weight"), f("self_attn.q_proj.weight"), &lw.wq, {q, h}, true, c.num_heads});
    t.push_back(
        {g("attn_k.weight"), f("self_attn.k_proj.weight"), &lw.wk, {kv, h}, true, c.num_kv_heads});
    t.push_back({g("attn_v.weight"), f("self_attn.v_proj.weight"), &lw.wv, {kv, h}});
    if (c.attention_bias) {
      t.push_back({g("attn_q.bias"), f("self_attn.q_proj.bias"), &lw.bq, {q}, true, c.num_heads});
      t.push_back(
          {g("attn_k.bias"), f("self_attn.k_proj.bias"), &lw.bk, {kv}, true, c.num_kv_heads});
      t.push_back({g("attn_v.bias"), f("self_attn.v_proj.bias"), &lw.bv, {kv}});
    }
    t.push_back({g("attn_output.weight"), f("self_attn.o_proj.weight"), &lw.wo, {h, q}});
    t.push_back({g("ffn_norm.weight"), f("post_attention_layernorm.weight"), &lw.mlp_norm, {h}});
    t.push_back({g("ffn_gate.weight"), f("mlp.gate_proj.weight"), &lw.w_gate, {c.ffn, h}});
    t.push_back({g("ffn_up.weight"), f("mlp.up_proj.weight"), &lw.w_up, {c.ffn, h}});
    t.push_back({g("ffn_down.weight"), f("mlp.down_proj.weight"), &lw.w_down, {h, c.ffn}});
  }
  t.push_back({"output_norm.weight", "model.norm.weight", &w.final_norm, {h}});
  if (!c.tied_embeddings) t.push_back({"output.weight", "lm_head.weight", &w.lm_head, {vocab, h}});
  return t;
}

// ---- tokenizers --------------------------------------------------------------------------

// Merges in priority order; every piece they make joins the vocabulary in this order.
const std::vector<std::pair<std::string, std::string>>& Merges(TestTokenizer kind) {
  static const std::vector<std::pair<std::string, std::string>> spm = {
      {"▁", "t"},  {"h", "e"}, {"▁t", "he"}, {"i", "n"},  {"e", "r"},  {"a", "n"},
      {"▁", "a"},  {"o", "n"}, {"r", "e"},   {"▁", "s"},  {"e", "n"},  {"a", "t"},
      {"o", "u"},  {"i", "t"}, {"i", "s"},   {"o", "r"},  {"▁", "c"},  {"▁", "w"},
      {"e", "s"},  {"e", "d"}, {"in", "g"},  {"▁", "b"},  {"▁", "o"},  {"▁", "f"},
      {"n", "d"},  {"▁", "m"}, {"▁", "p"},   {"l", "l"},  {"a", "r"},  {"▁", "h"},
      {"▁", "in"}, {"K", "V"}, {"▁", "KV"},  {"▁c", "a"}, {"c", "he"}, {"▁ca", "che"}};
  static const std::vector<std::pair<std::string, std::string>> gpt2 = {
      {"Ġ", "t"},  {"h", "e"}, {"Ġt", "he"}, {"i", "n"},  {"e", "r"},  {"a", "n"},
      {"Ġ", "a"},  {"o", "n"}, {"r", "e"},   {"Ġ", "s"},  {"e", "n"},  {"a", "t"},
      {"o", "u"},  {"i", "t"}, {"i", "s"},   {"o", "r"},  {"Ġ", "c"},  {"Ġ", "w"},
      {"e", "s"},  {"e", "d"}, {"in", "g"},  {"Ġ", "b"},  {"Ġ", "o"},  {"Ġ", "f"},
      {"n", "d"},  {"Ġ", "m"}, {"Ġ", "p"},   {"l", "l"},  {"a", "r"},  {"Ġ", "h"},
      {"Ġ", "in"}, {"K", "V"}, {"Ġ", "KV"},  {"Ġc", "a"}, {"c", "he"}, {"Ġca", "che"}};
  return kind == TestTokenizer::kSentencePiece ? spm : gpt2;
}

// GPT-2's printable stand-ins for bytes (bytes_to_unicode): printable Latin-1 bytes stand for
// themselves, the others for U+0100 onwards, in byte order.
std::string ByteChar(uint8_t b) {
  uint32_t cp = b;
  if (!((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE))) {
    uint32_t n = 0;
    for (uint32_t x = 0; x < b; ++x)
      if (!((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE))) ++n;
    cp = 256 + n;
  }
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

struct Vocab {
  std::vector<std::string> pieces;
  std::vector<float> scores;
  std::vector<int32_t> types;  // GGUF token types: 1 normal, 2 unknown, 3 control, 6 byte
  std::vector<std::string> merges;
};

Vocab BuildVocab(TestTokenizer kind) {
  Vocab v;
  const auto add = [&v](std::string piece, float score, int32_t type) {
    v.pieces.push_back(std::move(piece));
    v.scores.push_back(score);
    v.types.push_back(type);
  };
  const auto& merges = Merges(kind);
  if (kind == TestTokenizer::kSentencePiece) {
    add("<unk>", 0, 2);
    add("<s>", 0, 3);
    add("</s>", 0, 3);
    for (int b = 0; b < 256; ++b) add(fmt::format("<0x{:02X}>", b), 0, 6);
    for (const char* c : {"▁", "t", "h", "e", "i", "n", "r", "a", "o", "s", "u",
                          "c", "w", "d", "g", "b", "f", "m", "p", "l", "K", "V"})
      add(c, -1000, 1);
  } else {
    for (int b = 0; b < 256; ++b) add(ByteChar(static_cast<uint8_t>(b)), 0, 1);
  }
  for (size_t i = 0; i < merges.size(); ++i) {
    add(merges[i].first + merges[i].second, -static_cast<float>(i), 1);
    v.merges.push_back(merges[i].first + " " + merges[i].second);
  }
  // Filler pieces up to the vocabulary size; no merge makes them, as in real vocabularies.
  const size_t specials = kind == TestTokenizer::kGpt2 ? 3 : 0;
  for (int i = 0; v.pieces.size() + specials < kVocab; ++i)
    add((kind == TestTokenizer::kGpt2 ? "Ġw" : "▁w") + std::to_string(i), -500.0f - i, 1);
  if (kind == TestTokenizer::kGpt2)
    for (const char* s : {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}) add(s, 0, 3);
  return v;
}

const char* kLlama2Template =
    "{% if messages[0]['role'] == 'system' %}{{ bos_token + '[INST] <<SYS>>\\n' + "
    "messages[0]['content'] + '\\n<</SYS>>\\n\\n' }}{% endif %}{% for message in messages %}"
    "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% endfor %}";
const char* kChatMlTemplate =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}";
const char* kQwen2Pattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

void AddGgufTokenizer(GgufWriter& g, TestTokenizer kind) {
  const Vocab v = BuildVocab(kind);
  const bool spm = kind == TestTokenizer::kSentencePiece;
  g.AddString("tokenizer.ggml.model", spm ? "llama" : "gpt2");
  g.AddString("tokenizer.ggml.pre", spm ? "default" : "qwen2");
  g.AddStringArray("tokenizer.ggml.tokens", v.pieces);
  g.AddArray<float>("tokenizer.ggml.scores", kF32, v.scores);
  g.AddArray<int32_t>("tokenizer.ggml.token_type", kI32, v.types);
  if (!spm) g.AddStringArray("tokenizer.ggml.merges", v.merges);
  if (spm) {
    g.Add<uint32_t>("tokenizer.ggml.bos_token_id", kU32, 1);
    g.Add<uint32_t>("tokenizer.ggml.eos_token_id", kU32, 2);
    g.Add<uint32_t>("tokenizer.ggml.unknown_token_id", kU32, 0);
    g.Add<uint8_t>("tokenizer.ggml.add_bos_token", kBool, 1);
    g.AddString("tokenizer.chat_template", kLlama2Template);
  } else {
    g.Add<uint32_t>("tokenizer.ggml.eos_token_id", kU32, kVocab - 1);  // <|im_end|>
    g.Add<uint8_t>("tokenizer.ggml.add_bos_token", kBool, 0);
    g.AddString("tokenizer.chat_template", kChatMlTemplate);
  }
}

Status WriteFile(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) return Status::IoError(fmt::format("write {}", path.string()), errno);
  return Status::Ok();
}

Status WriteHfTokenizer(const std::filesystem::path& dir, TestTokenizer kind) {
  const Vocab v = BuildVocab(kind);
  const bool spm = kind == TestTokenizer::kSentencePiece;
  json vocab = json::object(), added = json::array();
  for (size_t i = 0; i < v.pieces.size(); ++i) {
    vocab[v.pieces[i]] = i;
    if (v.types[i] == 2 || v.types[i] == 3)
      added.push_back({{"id", i},
                       {"content", v.pieces[i]},
                       {"single_word", false},
                       {"lstrip", false},
                       {"rstrip", false},
                       {"normalized", false},
                       {"special", true}});
  }
  json tok = {
      {"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr}, {"added_tokens", added}};
  json model = {{"type", "BPE"},
                {"dropout", nullptr},
                {"vocab", vocab},
                {"merges", v.merges},
                {"fuse_unk", spm},
                {"byte_fallback", spm},
                {"unk_token", spm ? json("<unk>") : json(nullptr)},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr}};
  json config;
  if (spm) {
    tok["normalizer"] = {
        {"type", "Sequence"},
        {"normalizers",
         {{{"type", "Prepend"}, {"prepend", "▁"}},
          {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "▁"}}}}};
    tok["pre_tokenizer"] = nullptr;
    tok["decoder"] = {{"type", "Sequence"},
                      {"decoders",
                       {{{"type", "Replace"}, {"pattern", {{"String", "▁"}}}, {"content", " "}},
                        {{"type", "ByteFallback"}},
                        {{"type", "Fuse"}},
                        {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
    config = {{"add_bos_token", true}, {"add_eos_token", false},
              {"bos_token", "<s>"},    {"eos_token", "</s>"},
              {"unk_token", "<unk>"},  {"chat_template", kLlama2Template}};
  } else {
    tok["normalizer"] = {{"type", "NFC"}};
    tok["pre_tokenizer"] = {{"type", "Sequence"},
                            {"pretokenizers",
                             {{{"type", "Split"},
                               {"pattern", {{"Regex", kQwen2Pattern}}},
                               {"behavior", "Isolated"},
                               {"invert", false}},
                              {{"type", "ByteLevel"},
                               {"add_prefix_space", false},
                               {"trim_offsets", false},
                               {"use_regex", false}}}}};
    tok["decoder"] = {{"type", "ByteLevel"},
                      {"add_prefix_space", false},
                      {"trim_offsets", false},
                      {"use_regex", false}};
    config = {{"add_bos_token", false},
              {"bos_token", nullptr},
              {"eos_token", "<|im_end|>"},
              {"chat_template", kChatMlTemplate}};
  }
  tok["post_processor"] = nullptr;
  tok["model"] = model;
  STRATA_RETURN_IF_ERROR(WriteFile(dir / "tokenizer.json", tok.dump(1)));
  STRATA_RETURN_IF_ERROR(WriteFile(dir / "tokenizer_config.json", config.dump(1)));
  const json generation = {{"eos_token_id", spm ? json(2) : json({kVocab - 3, kVocab - 1})}};
  return WriteFile(dir / "generation_config.json", generation.dump(1));
}

}  // namespace

const char* WeightTypeName(WeightType type) {
  switch (type) {
    case WeightType::kF32:
      return "F32";
    case WeightType::kF16:
      return "F16";
    case WeightType::kBF16:
      return "BF16";
    case WeightType::kQ8_0:
      return "Q8_0";
  }
  return "?";
}

engine::ModelConfig TestModelConfig(std::string_view architecture, bool tied_embeddings) {
  engine::ModelConfig c = *engine::ModelConfig::Preset("tiny", 7);
  c.name = "test-llama";
  c.vocab_size = kVocab;
  c.architecture = std::string(architecture);
  c.attention_bias = architecture == "qwen2";
  c.tied_embeddings = tied_embeddings;
  c.max_context_tokens = 256;
  return c;
}

engine::ModelWeights RoundTrip(const engine::ModelWeights& weights, WeightType type) {
  engine::ModelWeights w = weights;
  const auto round = [type](std::vector<float>& v) {
    if (!v.empty()) v = Rounded(v, type);
  };
  round(w.embed);
  round(w.lm_head);
  for (engine::LayerWeights& l : w.layers)
    for (std::vector<float>* v : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down})
      round(*v);
  return w;
}

Status WriteGgufModel(const std::string& path, const engine::ModelConfig& c,
                      const engine::ModelWeights& w, WeightType type, TestTokenizer tokenizer,
                      std::optional<Llama3Scaling> scaling) {
  GgufWriter g;
  const std::string& arch = c.architecture;
  g.AddString("general.architecture", arch);
  g.AddString("general.name", c.name);
  g.Add<uint32_t>(arch + ".context_length", kU32, c.max_context_tokens);
  g.Add<uint32_t>(arch + ".embedding_length", kU32, c.hidden);
  g.Add<uint32_t>(arch + ".block_count", kU32, c.num_layers);
  g.Add<uint32_t>(arch + ".feed_forward_length", kU32, c.ffn);
  g.Add<uint32_t>(arch + ".attention.head_count", kU32, c.num_heads);
  g.Add<uint32_t>(arch + ".attention.head_count_kv", kU32, c.num_kv_heads);
  g.Add<uint32_t>(arch + ".rope.dimension_count", kU32, c.head_dim);
  g.Add<float>(arch + ".attention.layer_norm_rms_epsilon", kF32, c.rms_eps);
  g.Add<float>(arch + ".rope.freq_base", kF32, c.rope_theta);
  g.Add<uint32_t>(arch + ".vocab_size", kU32, c.vocab_size);
  AddGgufTokenizer(g, tokenizer);
  for (const Named& t : Tensors(c, w)) {
    const bool matrix = t.shape.size() == 2;
    std::vector<float> values = *t.values;
    if (t.permute_rows && arch == "llama")
      values =
          engine::RopeRowsHalvesToInterleaved(values, t.heads, c.head_dim, matrix ? t.shape[1] : 1);
    const WeightType stored = matrix ? type : WeightType::kF32;
    const uint32_t ggml = stored == WeightType::kF32    ? 0
                          : stored == WeightType::kF16  ? 1
                          : stored == WeightType::kQ8_0 ? 8
                                                        : 30;
    g.AddTensor({t.gguf, std::vector<uint64_t>(t.shape.rbegin(), t.shape.rend()), ggml,
                 Encode(values, stored)});
  }
  if (scaling) {
    if (w.rope_freq_factors.size() != c.head_dim / 2)
      return Status::InvalidArgument("scaling without rope_freq_factors");
    g.AddTensor(
        {"rope_freqs.weight", {c.head_dim / 2}, 0, model_io::testing::Bytes(w.rope_freq_factors)});
  }
  return WriteFile(path, g.Build());
}

Status WriteHfModel(const std::string& dir_name, const engine::ModelConfig& c,
                    const engine::ModelWeights& w, WeightType type, TestTokenizer tokenizer,
                    int shards, std::optional<Llama3Scaling> scaling) {
  if (type == WeightType::kQ8_0) return Status::InvalidArgument("safetensors has no Q8_0");
  const std::filesystem::path dir(dir_name);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::IoError(fmt::format("mkdir {}", dir_name), ec.value());
  json config = {
      {"architectures", {c.architecture == "qwen2" ? "Qwen2ForCausalLM" : "LlamaForCausalLM"}},
      {"model_type", c.architecture},
      {"hidden_size", c.hidden},
      {"intermediate_size", c.ffn},
      {"num_hidden_layers", c.num_layers},
      {"num_attention_heads", c.num_heads},
      {"num_key_value_heads", c.num_kv_heads},
      {"max_position_embeddings", c.max_context_tokens},
      {"rms_norm_eps", c.rms_eps},
      {"rope_theta", c.rope_theta},
      {"vocab_size", c.vocab_size},
      {"tie_word_embeddings", c.tied_embeddings},
      {"hidden_act", "silu"},
      {"torch_dtype", type == WeightType::kBF16  ? "bfloat16"
                      : type == WeightType::kF16 ? "float16"
                                                 : "float32"}};
  if (scaling)
    config["rope_scaling"] = {{"rope_type", "llama3"},
                              {"factor", scaling->factor},
                              {"low_freq_factor", scaling->low_freq_factor},
                              {"high_freq_factor", scaling->high_freq_factor},
                              {"original_max_position_embeddings", scaling->original_context}};
  STRATA_RETURN_IF_ERROR(WriteFile(dir / "config.json", config.dump(1)));
  STRATA_RETURN_IF_ERROR(WriteHfTokenizer(dir, tokenizer));

  const std::vector<Named> tensors = Tensors(c, w);
  std::vector<model_io::testing::SafetensorsWriter> files(static_cast<size_t>(std::max(1, shards)));
  json weight_map = json::object();
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Named& t = tensors[i];
    const WeightType stored = t.shape.size() == 2 ? type : WeightType::kF32;
    const size_t shard = i * files.size() / tensors.size();
    files[shard].AddTensor(t.hf, WeightTypeName(stored), t.shape, Encode(*t.values, stored));
    weight_map[t.hf] = fmt::format("model-{:05}-of-{:05}.safetensors", shard + 1, files.size());
  }
  if (files.size() == 1) {
    files[0].AddMetadata("format", "pt");
    return WriteFile(dir / "model.safetensors", files[0].Build());
  }
  for (size_t s = 0; s < files.size(); ++s)
    STRATA_RETURN_IF_ERROR(
        WriteFile(dir / fmt::format("model-{:05}-of-{:05}.safetensors", s + 1, files.size()),
                  files[s].Build()));
  const json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}};
  return WriteFile(dir / "model.safetensors.index.json", index.dump(1));
}

}  // namespace strata::testing
