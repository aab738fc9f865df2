// LoadTokenizerFromGguf: reads and checks a GGUF file's tokenizer.ggml.* metadata into a
// VocabSpec (keys and defaults as llama.cpp's llama-vocab.cpp reads them).
#include <string>

#include "model_io/gguf.h"
#include "tokenizer/bpe.h"

namespace strata::tokenizer {
namespace {

using model_io::GgufFile;
using model_io::GgufValue;

// A getter's NotFound becomes InvalidArgument: for the loader a required key is malformed
// metadata, not a missing object.
Status Missing(std::string_view key) {
  return Status::InvalidArgument(std::string(key) + " is missing");
}

// An optional token id: absent, or in [0, n).
Status ReadId(const GgufFile& file, std::string_view key, size_t n, std::optional<TokenId>* out) {
  const GgufValue v = file.metadata(key);
  if (v.is_missing()) return Status::Ok();
  Result<int64_t> id = v.GetI64();
  if (!id.ok()) return Status::InvalidArgument(id.status().message());
  if (*id < 0 || static_cast<uint64_t>(*id) >= n)
    return Status::InvalidArgument(std::string(key) + " = " + std::to_string(*id) +
                                   " is outside the vocabulary of " + std::to_string(n) +
                                   " tokens");
  *out = static_cast<TokenId>(*id);
  return Status::Ok();
}

Status ReadBool(const GgufFile& file, std::string_view key, bool* out) {
  const GgufValue v = file.metadata(key);
  if (v.is_missing()) return Status::Ok();
  Result<bool> b = v.GetBool();
  if (!b.ok()) return Status::InvalidArgument(b.status().message());
  *out = *b;
  return Status::Ok();
}

Result<TokenType> TypeFromGguf(int32_t t, size_t index) {
  switch (t) {
    case 0:  // LLAMA_TOKEN_TYPE_UNDEFINED
    case 1:
      return TokenType::kNormal;
    case 2:
      return TokenType::kUnknown;
    case 3:
      return TokenType::kControl;
    case 4:
      return TokenType::kUserDefined;
    case 5:
      return TokenType::kUnused;
    case 6:
      return TokenType::kByte;
    default:
      return Status::InvalidArgument("tokenizer.ggml.token_type[" + std::to_string(index) +
                                     "] = " + std::to_string(t) + " is not a token type (0-6)");
  }
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> LoadTokenizerFromGguf(const GgufFile& file) {
  static constexpr std::string_view kModel = "tokenizer.ggml.model";
  static constexpr std::string_view kTokens = "tokenizer.ggml.tokens";
  static constexpr std::string_view kScores = "tokenizer.ggml.scores";
  static constexpr std::string_view kTypes = "tokenizer.ggml.token_type";
  static constexpr std::string_view kMerges = "tokenizer.ggml.merges";
  static constexpr std::string_view kPre = "tokenizer.ggml.pre";

  const GgufValue model_v = file.metadata(kModel);
  if (model_v.is_missing()) return Missing(kModel);
  Result<std::string> model = model_v.GetString();
  if (!model.ok()) return Status::InvalidArgument(model.status().message());
  const bool spm = *model == "llama";
  if (!spm && *model != "gpt2")
    return Status::NotSupported(std::string(kModel) + " '" + *model +
                                "' is not supported (only 'llama' and 'gpt2')");

  VocabSpec spec;
  const GgufValue tokens_v = file.metadata(kTokens);
  if (tokens_v.is_missing()) return Missing(kTokens);
  Result<std::vector<std::string>> tokens = tokens_v.GetStringArray();
  if (!tokens.ok()) return Status::InvalidArgument(tokens.status().message());
  const size_t n = tokens->size();
  if (n == 0) return Status::InvalidArgument(std::string(kTokens) + " is empty");
  if (n > static_cast<size_t>(INT32_MAX))
    return Status::InvalidArgument(std::string(kTokens) + " has more tokens than ids can number");
  spec.pieces = std::move(*tokens);

  if (const GgufValue v = file.metadata(kScores); !v.is_missing()) {
    Result<std::vector<float>> scores = v.GetF32Array();
    if (!scores.ok()) return Status::InvalidArgument(scores.status().message());
    if (scores->size() != n)
      return Status::InvalidArgument(std::string(kScores) + " has " +
                                     std::to_string(scores->size()) + " entries for " +
                                     std::to_string(n) + " tokens");
    if (spm) spec.scores = std::move(*scores);
  } else if (spm) {
    spec.scores.assign(n, 0.0f);  // llama.cpp's default: every merge ties, leftmost first
  }

  spec.types.assign(n, TokenType::kNormal);
  if (const GgufValue v = file.metadata(kTypes); !v.is_missing()) {
    Result<std::vector<int32_t>> types = v.GetI32Array();
    if (!types.ok()) return Status::InvalidArgument(types.status().message());
    if (types->size() != n)
      return Status::InvalidArgument(std::string(kTypes) + " has " + std::to_string(types->size()) +
                                     " entries for " + std::to_string(n) + " tokens");
    for (size_t i = 0; i < n; ++i) {
      Result<TokenType> t = TypeFromGguf((*types)[i], i);
      if (!t.ok()) return t.status();
      spec.types[i] = *t;
    }
  } else if (spm) {
    // No types: recognise the byte pieces by their spelling.
    for (size_t i = 0; i < n; ++i) {
      const std::string& p = spec.pieces[i];
      if (p.size() == 6 && p.starts_with("<0x") && p.back() == '>')
        spec.types[i] = TokenType::kByte;
    }
  }

  if (const GgufValue v = file.metadata(kMerges); !v.is_missing() || !spm) {
    if (v.is_missing()) return Missing(kMerges);
    Result<std::vector<std::string>> merges = v.GetStringArray();
    if (!merges.ok()) return Status::InvalidArgument(merges.status().message());
    if (!spm) {
      spec.merges.reserve(merges->size());
      for (size_t i = 0; i < merges->size(); ++i) {
        const std::string& m = (*merges)[i];
        const size_t sp = m.find(' ', 1);
        if (m.empty() || sp == std::string::npos || sp + 1 >= m.size())
          return Status::InvalidArgument(std::string(kMerges) + "[" + std::to_string(i) + "] = \"" +
                                         m + "\" is not of the form \"a b\"");
        spec.merges.emplace_back(m.substr(0, sp), m.substr(sp + 1));
      }
    }
  }
  spec.merges_field = std::string(kMerges);

  STRATA_RETURN_IF_ERROR(ReadId(file, "tokenizer.ggml.bos_token_id", n, &spec.bos));
  STRATA_RETURN_IF_ERROR(ReadId(file, "tokenizer.ggml.eos_token_id", n, &spec.eos));
  STRATA_RETURN_IF_ERROR(ReadId(file, "tokenizer.ggml.unknown_token_id", n, &spec.unk));
  std::optional<TokenId> eot, eom;
  STRATA_RETURN_IF_ERROR(ReadId(file, "tokenizer.ggml.eot_token_id", n, &eot));
  STRATA_RETURN_IF_ERROR(ReadId(file, "tokenizer.ggml.eom_token_id", n, &eom));
  if (eot) spec.eog.push_back(*eot);
  if (eom) spec.eog.push_back(*eom);

  spec.add_bos = spm;  // llama.cpp: SentencePiece vocabularies add BOS unless told otherwise
  STRATA_RETURN_IF_ERROR(ReadBool(file, "tokenizer.ggml.add_bos_token", &spec.add_bos));

  if (spm) {
    // llama.cpp's defaults (unk 0, BOS 1, EOS 2) for vocabularies without the keys, taken
    // only where those ids are spelled as expected.
    if (!spec.unk && spec.pieces[0] == "<unk>") spec.unk = 0;
    if (!spec.bos && n > 1 && spec.pieces[1] == "<s>") spec.bos = 1;
    if (!spec.eos && n > 2 && spec.pieces[2] == "</s>") spec.eos = 2;
    spec.add_space_prefix = true;
    STRATA_RETURN_IF_ERROR(
        ReadBool(file, "tokenizer.ggml.add_space_prefix", &spec.add_space_prefix));
  } else {
    std::string pre = "default";
    if (const GgufValue v = file.metadata(kPre); !v.is_missing()) {
      Result<std::string> s = v.GetString();
      if (!s.ok()) return Status::InvalidArgument(s.status().message());
      pre = *s;
    }
    std::optional<PreTokenizer> p = PreTokenizerFromGgufName(pre);
    if (!p)
      return Status::NotSupported(std::string(kPre) + " '" + pre +
                                  "' is not supported (llama-bpe, llama3, qwen2, smollm, gpt-2, "
                                  "default)");
    spec.pre = *p;
    spec.ignore_merges = *p == PreTokenizer::kLlama3;  // as llama.cpp and HF's Llama-3 config
    spec.nfc = *p == PreTokenizer::kQwen2;             // Qwen2's tokenizer.json normalizer
  }
  // The declared unknown, BOS and EOS pieces keep their role when the types say nothing.
  if (spec.unk && spec.types[*spec.unk] == TokenType::kNormal)
    spec.types[*spec.unk] = TokenType::kUnknown;
  for (std::optional<TokenId> id : {spec.bos, spec.eos})
    if (id && spec.types[*id] == TokenType::kNormal) spec.types[*id] = TokenType::kControl;

  if (const GgufValue v = file.metadata("tokenizer.chat_template"); !v.is_missing()) {
    Result<std::string> s = v.GetString();
    if (!s.ok()) return Status::InvalidArgument(s.status().message());
    spec.chat_template = std::move(*s);
  }
  return spm ? MakeSpmTokenizer(std::move(spec)) : MakeGpt2Tokenizer(std::move(spec));
}

}  // namespace strata::tokenizer
