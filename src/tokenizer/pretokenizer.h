// Pre-tokenizers of the GPT-2-style vocabularies: each family's regex split, written by hand
// over Unicode classes (no regex engine), so a word never crosses a boundary the model's
// own tokenizer would not cross. The patterns are in docs/tokenizers.md.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

namespace strata::tokenizer {

enum class PreTokenizer : uint8_t {
  // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  kGpt2,
  // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
  //   ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
  kLlama3,
  // As kLlama3 with \p{N} (one digit per word) for \p{N}{1,3}.
  kQwen2,
  // Every \p{N} a word of its own, then kGpt2 over the text between digits (HF's
  // Sequence[Digits(individual_digits), ByteLevel]).
  kSmolLm,
};

// "gpt-2", "llama-bpe", "qwen2", "smollm".
std::string_view PreTokenizerName(PreTokenizer pre);
// The splitter for a GGUF tokenizer.ggml.pre value, if known.
std::optional<PreTokenizer> PreTokenizerFromGgufName(std::string_view name);
// The splitter whose regex is exactly `pattern` (an HF Split pre-tokenizer's Regex), if known.
std::optional<PreTokenizer> PreTokenizerFromRegex(std::string_view pattern);

// Appends the words of `text` to `words`, in order; their concatenation is `text`. Invalid
// UTF-8 bytes count as one punctuation-like character each.
void PreTokenize(PreTokenizer pre, std::string_view text, std::vector<std::string_view>* words);

}  // namespace strata::tokenizer
