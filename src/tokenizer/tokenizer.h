// Tokenizer: text <-> token ids for the reference engine, from a model's own vocabulary.
// Three kinds behind one interface: the byte-level tokenizer of the synthetic presets,
// SentencePiece-style BPE with scores and byte fallback (Llama-2, TinyLlama, Mistral; GGUF
// tokenizer.ggml.model = "llama", or an HF tokenizer.json whose model is BPE over "▁"
// pieces), and GPT-2 byte-level BPE with merges and a family's pre-tokenizer split
// (Llama-3, Qwen2, SmolLM2; GGUF "gpt2", HF ByteLevel). The format is in docs/tokenizers.md.
//
// Thread-safe: a Tokenizer is immutable after loading.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "strata/block_key.h"  // TokenId
#include "strata/status.h"

namespace strata::model_io {
class GgufFile;
}

namespace strata::tokenizer {

enum class TokenizerKind : uint8_t { kByte, kSentencePiece, kGpt2 };

// What one token is, as GGUF's tokenizer.ggml.token_type and HF's added_tokens say.
enum class TokenType : uint8_t {
  kNormal,       // an ordinary piece
  kUnknown,      // <unk>
  kControl,      // BOS, EOS, <|eot_id|>, <|im_start|>...: renders as nothing in output
  kUserDefined,  // added tokens matched literally in text (not special)
  kUnused,
  kByte,  // SentencePiece byte-fallback pieces <0x00>..<0xFF>
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  TokenizerKind kind() const { return kind_; }
  // "byte", "llama" (SentencePiece BPE), "gpt2/llama-bpe", "gpt2/qwen2", "gpt2/smollm", ...
  const std::string& name() const { return name_; }
  uint32_t vocab_size() const { return static_cast<uint32_t>(pieces_.size()); }

  // The model's special ids, when it declares them.
  std::optional<TokenId> bos() const { return bos_; }
  std::optional<TokenId> eos() const { return eos_; }
  // Whether a prompt starts with BOS (GGUF tokenizer.ggml.add_bos_token; HF's
  // tokenizer_config add_bos_token or the post-processor's template).
  bool add_bos() const { return add_bos_; }
  // Tokens that end generation: EOS, EOT (<|eot_id|>, <|im_end|>, <|end|>...), EOM, and every
  // id the model lists as end-of-generation (generation_config.json's eos_token_id list).
  bool IsEndOfGeneration(TokenId id) const;
  const std::vector<TokenId>& end_of_generation() const { return eog_; }
  TokenType type(TokenId id) const;

  // Tokens of `text`, without BOS. With parse_special, the text of control, user-defined and
  // unknown tokens ("<|im_start|>", "<s>", "<unk>") becomes those tokens, longest match first;
  // without it they are plain text (the byte tokenizer ignores parse_special). SentencePiece
  // models replace spaces with "▁" and, when the model says so (add_space_prefix), prepend
  // "▁" to the text and to each stretch of text after a special token, as llama.cpp does.
  // Never fails: bytes no piece covers become byte-fallback tokens, or <unk> where the model
  // has no byte pieces (dropped if it has no <unk> either).
  virtual std::vector<TokenId> Encode(std::string_view text, bool parse_special) const = 0;
  // Tokens of a prompt: BOS first when add_bos(), then Encode(text, parse_special).
  std::vector<TokenId> EncodePrompt(std::string_view text, bool parse_special) const;

  // The raw bytes token `id` stands for in generated text: "▁" as a space, <0xAB> as that
  // byte, GPT-2's byte-to-unicode mapping undone; control tokens and out-of-range ids give "".
  // May be part of a UTF-8 character: join the bytes of consecutive tokens before showing them.
  virtual std::string TokenBytes(TokenId id) const = 0;
  // The bytes of a sequence of tokens, concatenated (no leading-space stripping).
  std::string Decode(std::span<const TokenId> ids) const;
  // The piece as the vocabulary spells it ("▁the", "Ġthe", "<0x0A>", "<|eot_id|>").
  const std::string& piece(TokenId id) const;
  // Id of a piece as the vocabulary spells it, if any.
  std::optional<TokenId> FindPiece(std::string_view piece) const;

  // The most bytes of text one token can stand for (for bounding work before encoding).
  uint32_t max_token_bytes() const { return max_token_bytes_; }

  // The model's own chat template (GGUF tokenizer.chat_template, HF tokenizer_config.json
  // chat_template, the "default" one of a named list), "" when it has none: give it to
  // ChatTemplate::FromJinja.
  const std::string& chat_template() const { return chat_template_; }

 protected:
  Tokenizer() = default;

  TokenizerKind kind_ = TokenizerKind::kByte;
  std::string name_;
  std::vector<std::string> pieces_;
  std::vector<TokenType> types_;
  std::optional<TokenId> bos_, eos_;
  bool add_bos_ = false;
  std::vector<TokenId> eog_;
  uint32_t max_token_bytes_ = 1;
  std::string chat_template_;
  // piece -> id; the keys view pieces_, which never changes after loading.
  std::unordered_map<std::string_view, TokenId> piece_index_;
};

// The byte-level tokenizer of the synthetic presets: token i < 256 is byte i, 256 is BOS, 257
// EOS; add_bos() is false (the presets never used one).
std::unique_ptr<Tokenizer> MakeByteTokenizer();

// From a GGUF file's tokenizer.ggml.* metadata (model "llama" or "gpt2"; pre "llama-bpe",
// "llama3", "qwen2", "smollm", "gpt-2", "default"...). InvalidArgument naming the key for a
// missing or malformed entry; NotSupported naming the model or pre-tokenizer when unknown.
Result<std::unique_ptr<Tokenizer>> LoadTokenizerFromGguf(const model_io::GgufFile& file);

// From a Hugging Face model directory: tokenizer.json (model.type "BPE", with byte_fallback
// for SentencePiece-style vocabularies or a ByteLevel pre-tokenizer for GPT-2 style),
// tokenizer_config.json (add_bos_token, bos/eos tokens, chat_template) and
// generation_config.json (eos_token_id, a number or a list) where present. NotFound when
// tokenizer.json is missing; InvalidArgument naming the field for malformed files;
// NotSupported naming an unknown model type or pre-tokenizer pattern.
Result<std::unique_ptr<Tokenizer>> LoadTokenizerFromHfDir(const std::string& dir);

// Streaming detokenisation: feed generated tokens one at a time, get back the text they
// complete, always valid UTF-8. Never returns part of a character: the bytes of an unfinished
// character wait for the next token; bytes that cannot become a valid character (a stray
// continuation byte, 0xFF, an overlong or surrogate form) come out as U+FFFD at once, one per
// maximal invalid subsequence as the Unicode standard recommends. Finish() returns what is
// held back, an unfinished character as U+FFFD.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer) : tokenizer_(&tokenizer) {}
  // Text that token `id` completes (may be empty).
  std::string Push(TokenId id);
  // Whatever is held back, with incomplete or invalid bytes as U+FFFD.
  std::string Finish();

 private:
  const Tokenizer* tokenizer_;
  std::string pending_;
};

}  // namespace strata::tokenizer
