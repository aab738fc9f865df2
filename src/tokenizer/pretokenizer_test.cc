// Tests of the hand-written pre-tokenizer splits against what each family's regex gives on
// tricky text (hand-checked against the regex semantics: first alternative wins, greedy runs,
// \s+(?!\S) backtracking).
#include "tokenizer/pretokenizer.h"

#include <string>

#include <gtest/gtest.h>

namespace strata::tokenizer {
namespace {

using Words = std::vector<std::string>;

Words Split(PreTokenizer pre, std::string_view text) {
  std::vector<std::string_view> words;
  PreTokenize(pre, text, &words);
  Words out(words.begin(), words.end());
  std::string joined;
  for (const std::string& w : out) joined += w;
  EXPECT_EQ(joined, text);
  return out;
}

TEST(PreTokenizer, Llama3) {
  const auto P = PreTokenizer::kLlama3;
  EXPECT_EQ(Split(P, "I'm here"), (Words{"I", "'m", " here"}));
  EXPECT_EQ(Split(P, "YOU'RE IT'LL"), (Words{"YOU", "'RE", " IT", "'LL"}));  // (?i:...)
  EXPECT_EQ(Split(P, "'steam"), (Words{"'s", "team"}));
  EXPECT_EQ(Split(P, "12345"), (Words{"123", "45"}));
  EXPECT_EQ(Split(P, "abc 1234"), (Words{"abc", " ", "123", "4"}));
  EXPECT_EQ(Split(P, "a   b"), (Words{"a", "  ", " b"}));
  EXPECT_EQ(Split(P, "a  "), (Words{"a", "  "}));
  EXPECT_EQ(Split(P, "hello\n\nworld"), (Words{"hello", "\n\n", "world"}));
  EXPECT_EQ(Split(P, "  \n  x"), (Words{"  \n", " ", " x"}));
  EXPECT_EQ(Split(P, "Hello!!\n\nOk"), (Words{"Hello", "!!\n\n", "Ok"}));
  EXPECT_EQ(Split(P, "x = 1+2;"), (Words{"x", " =", " ", "1", "+", "2", ";"}));
  EXPECT_EQ(Split(P, "end.Start"), (Words{"end", ".Start"}));
  EXPECT_EQ(Split(P, "h\xC3\xA9llo \xE4\xB8\x96\xE7\x95\x8C"),
            (Words{"h\xC3\xA9llo", " \xE4\xB8\x96\xE7\x95\x8C"}));
  EXPECT_EQ(Split(P, "hi \xF0\x9F\x98\x80\xF0\x9F\x98\x80!"),
            (Words{"hi", " \xF0\x9F\x98\x80\xF0\x9F\x98\x80!"}));
  EXPECT_EQ(Split(P, "\tfoo"), (Words{"\tfoo"}));
  EXPECT_EQ(Split(P, "\nfoo"), (Words{"\n", "foo"}));  // [^\r\n...]? excludes newlines
  EXPECT_EQ(Split(P,
                  "a\xFF"
                  "b"),
            (Words{"a",
                   "\xFF"
                   "b"}));  // an invalid byte is punctuation
  EXPECT_EQ(Split(P, ""), Words{});
}

TEST(PreTokenizer, Qwen2SplitsEveryDigit) {
  const auto P = PreTokenizer::kQwen2;
  EXPECT_EQ(Split(P, "12345"), (Words{"1", "2", "3", "4", "5"}));
  EXPECT_EQ(Split(P, "abc 123"), (Words{"abc", " ", "1", "2", "3"}));
  EXPECT_EQ(Split(P, "I'm a   b\n\n"), (Words{"I", "'m", " a", "  ", " b", "\n\n"}));
}

TEST(PreTokenizer, Gpt2) {
  const auto P = PreTokenizer::kGpt2;
  EXPECT_EQ(Split(P, "I'm here"), (Words{"I", "'m", " here"}));
  EXPECT_EQ(Split(P, "I'M"), (Words{"I", "'", "M"}));  // case-sensitive contractions
  EXPECT_EQ(Split(P, "12345 67"), (Words{"12345", " 67"}));
  EXPECT_EQ(Split(P, "a   b"), (Words{"a", "  ", " b"}));
  EXPECT_EQ(Split(P, "hello\n\nworld"), (Words{"hello", "\n", "\n", "world"}));
  EXPECT_EQ(Split(P, "x = 1+2;"), (Words{"x", " =", " 1", "+", "2", ";"}));
  EXPECT_EQ(Split(P, "\tfoo"), (Words{"\t", "foo"}));  // only ' ' joins the next word
  EXPECT_EQ(Split(P, "h\xC3\xA9llo \xE4\xB8\x96\xE7\x95\x8C!?"),
            (Words{"h\xC3\xA9llo", " \xE4\xB8\x96\xE7\x95\x8C", "!?"}));
}

TEST(PreTokenizer, SmolLmIsolatesDigitsFirst) {
  const auto P = PreTokenizer::kSmolLm;
  EXPECT_EQ(Split(P, "abc 123"), (Words{"abc", " ", "1", "2", "3"}));
  EXPECT_EQ(Split(P, "x12y"), (Words{"x", "1", "2", "y"}));
  EXPECT_EQ(Split(P, "a  1 b"), (Words{"a", "  ", "1", " b"}));
  EXPECT_EQ(Split(P, "I'm"), (Words{"I", "'m"}));
}

TEST(PreTokenizer, NamesAndPatterns) {
  EXPECT_EQ(PreTokenizerFromGgufName("llama-bpe"), PreTokenizer::kLlama3);
  EXPECT_EQ(PreTokenizerFromGgufName("qwen2"), PreTokenizer::kQwen2);
  EXPECT_EQ(PreTokenizerFromGgufName("smollm"), PreTokenizer::kSmolLm);
  EXPECT_EQ(PreTokenizerFromGgufName("default"), PreTokenizer::kGpt2);
  EXPECT_EQ(PreTokenizerFromGgufName("deepseek-llm"), std::nullopt);
  EXPECT_EQ(PreTokenizerFromRegex(
                "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"),
            PreTokenizer::kLlama3);
  EXPECT_EQ(
      PreTokenizerFromRegex("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                            "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"),
      PreTokenizer::kQwen2);
  EXPECT_EQ(
      PreTokenizerFromRegex(
          "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"),
      PreTokenizer::kGpt2);
  EXPECT_EQ(PreTokenizerFromRegex("\\w+"), std::nullopt);
}

}  // namespace
}  // namespace strata::tokenizer
