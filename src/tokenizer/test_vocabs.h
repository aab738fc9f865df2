// Small hand-made vocabularies shared by the tokenizer tests: a SentencePiece one with scores
// and byte pieces, and a GPT-2 byte-level one with merges, each with a few special tokens.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "tokenizer/bpe.h"
#include "tokenizer/unicode.h"

namespace strata::tokenizer::testing {

inline std::string ByteChar(uint8_t b) {
  std::string s;
  unicode::AppendUtf8(unicode::ByteToUnicode(b), &s);
  return s;
}

// "<unk>" 0, "<s>" 1, "</s>" 2, "<0x00>".."<0xFF>" 3..258, then the pieces below.
inline VocabSpec SpmSpec() {
  VocabSpec s;
  auto add = [&](std::string p, TokenType t, float score) {
    s.pieces.push_back(std::move(p));
    s.types.push_back(t);
    s.scores.push_back(score);
  };
  add("<unk>", TokenType::kUnknown, 0);
  add("<s>", TokenType::kControl, 0);
  add("</s>", TokenType::kControl, 0);
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    add(buf, TokenType::kByte, 0);
  }
  // Single characters score lowest; the merged pieces' scores fix the merge order.
  for (const char* c :
       {"\xE2\x96\x81", "h", "e", "l", "o", "w", "r", "d", "a", "b", "c", "\xC3\xA9"})
    add(c, TokenType::kNormal, -100);
  const std::pair<const char*, float> merged[] = {
      {"ll", -1},
      {"he", -2},
      {"llo", -3},
      {"hello", -4},
      {"\xE2\x96\x81hello", -5},
      {"or", -6},
      {"\xE2\x96\x81w", -7},
      {"\xE2\x96\x81wor", -8},
      {"ld", -9},
      {"\xE2\x96\x81world", -9.5},
      {"ab", -20},
      {"bc", -20},
      {"ca", -19},
  };
  for (const auto& [p, score] : merged) add(p, TokenType::kNormal, score);
  add("<|im_start|>", TokenType::kControl, 0);
  add("<|im_end|>", TokenType::kControl, 0);
  add("<tool>", TokenType::kUserDefined, 0);
  s.unk = 0;
  s.bos = 1;
  s.eos = 2;
  s.add_bos = true;
  s.add_space_prefix = true;
  return s;
}

// Ids 0..255 are the byte pieces in byte order; then the merges' results, then specials.
inline VocabSpec Gpt2Spec(PreTokenizer pre = PreTokenizer::kLlama3) {
  VocabSpec s;
  for (int b = 0; b < 256; ++b) {
    s.pieces.push_back(ByteChar(static_cast<uint8_t>(b)));
    s.types.push_back(TokenType::kNormal);
  }
  const std::string G = ByteChar(' ');  // "Ġ"
  const std::vector<std::pair<std::string, std::string>> merges = {
      {"h", "e"}, {"l", "l"},      {"he", "ll"}, {"hell", "o"},     {G, "w"},
      {"o", "r"}, {G + "w", "or"}, {"l", "d"},   {G + "wor", "ld"}, {"y", "z"},
      {"x", "y"}, {"1", "2"},      {"12", "3"},
  };
  for (const auto& [a, b] : merges) {
    s.merges.emplace_back(a, b);
    s.pieces.push_back(a + b);
    s.types.push_back(TokenType::kNormal);
  }
  for (const char* sp : {"<|begin_of_text|>", "<|eot_id|>", "<|end|>", "<|end|>X"}) {
    s.pieces.push_back(sp);
    s.types.push_back(TokenType::kControl);
  }
  s.pieces.push_back("<tool>");
  s.types.push_back(TokenType::kUserDefined);
  s.bos = static_cast<TokenId>(s.pieces.size() - 5);
  s.add_bos = true;
  s.pre = pre;
  return s;
}

}  // namespace strata::tokenizer::testing
