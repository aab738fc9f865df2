// Hand-written equivalents of the pre-tokenizer regexes (pretokenizer.h): at each position
// the alternatives are tried in the regex's order and the first that matches wins, with the
// same greedy lengths and the same backtracking of \s+(?!\S).
#include "tokenizer/pretokenizer.h"

#include <cstdint>

#include "tokenizer/unicode.h"

namespace strata::tokenizer {
namespace {

using unicode::CharClass;

struct Char {
  uint32_t offset;  // byte offset in the text
  char32_t cp;      // U+FFFD for an invalid byte (which is kOther)
  CharClass cls;
};

void DecodeChars(std::string_view text, std::vector<Char>* chars) {
  chars->clear();
  chars->reserve(text.size() + 1);
  for (size_t i = 0; i < text.size();) {
    const unicode::Utf8Step s = unicode::DecodeUtf8(text.substr(i));
    if (s.kind == unicode::Utf8Step::kValid) {
      chars->push_back({static_cast<uint32_t>(i), s.cp, unicode::ClassOf(s.cp)});
      i += s.length;
    } else {
      chars->push_back({static_cast<uint32_t>(i), unicode::kReplacement, unicode::kOther});
      i += 1;
    }
  }
  chars->push_back({static_cast<uint32_t>(text.size()), 0, unicode::kOther});  // sentinel
}

bool IsCrLf(char32_t c) {
  return c == '\r' || c == '\n';
}

char32_t AsciiLower(char32_t c) {
  return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

// Length in chars of a contraction ('s 't 're 've 'm 'll 'd) at `i`, or 0.
size_t Contraction(const std::vector<Char>& c, size_t i, size_t n, bool ignore_case) {
  if (c[i].cp != '\'' || i + 1 >= n) return 0;
  auto at = [&](size_t k) { return ignore_case ? AsciiLower(c[k].cp) : c[k].cp; };
  const char32_t a = at(i + 1);
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if (i + 2 >= n) return 0;
  const char32_t b = at(i + 2);
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

size_t RunOf(const std::vector<Char>& c, size_t i, size_t n, CharClass cls) {
  size_t j = i;
  while (j < n && c[j].cls == cls) ++j;
  return j - i;
}

// The \s+(?!\S) | \s+ tail both patterns share, for a whitespace char at `i`.
size_t TrailingSpace(const std::vector<Char>& c, size_t i, size_t n) {
  const size_t run = RunOf(c, i, n, unicode::kSpace);
  if (i + run == n) return run;  // runs to the end: nothing follows
  if (run >= 2) return run - 1;  // leave the last space to prefix the next word
  return 1;                      // \s+ alone
}

// Length in chars of the GPT-2 pattern's match at `i`.
size_t MatchGpt2(const std::vector<Char>& c, size_t i, size_t n) {
  if (size_t k = Contraction(c, i, n, /*ignore_case=*/false)) return k;
  const size_t s = (c[i].cp == ' ' && i + 1 < n) ? 1 : 0;  // the optional leading space
  for (CharClass cls : {unicode::kLetter, unicode::kNumber}) {
    if (c[i].cls == cls) return RunOf(c, i, n, cls);
    if (s && c[i + 1].cls == cls) return 1 + RunOf(c, i + 1, n, cls);
  }
  if (c[i].cls == unicode::kOther) return RunOf(c, i, n, unicode::kOther);
  if (s && c[i + 1].cls == unicode::kOther) return 1 + RunOf(c, i + 1, n, unicode::kOther);
  return TrailingSpace(c, i, n);  // c[i] is whitespace here
}

// Length in chars of the Llama-3 / Qwen2 pattern's match at `i`.
size_t MatchLlama3(const std::vector<Char>& c, size_t i, size_t n, size_t max_digits) {
  if (size_t k = Contraction(c, i, n, /*ignore_case=*/true)) return k;
  const CharClass cls = c[i].cls;
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (cls == unicode::kLetter) return RunOf(c, i, n, unicode::kLetter);
  if (cls != unicode::kNumber && !IsCrLf(c[i].cp) && i + 1 < n && c[i + 1].cls == unicode::kLetter)
    return 1 + RunOf(c, i + 1, n, unicode::kLetter);
  // \p{N}{1,max}
  if (cls == unicode::kNumber) {
    const size_t run = RunOf(c, i, n, unicode::kNumber);
    return run < max_digits ? run : max_digits;
  }
  // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
  size_t j = i;
  if (c[j].cp == ' ' && j + 1 < n && c[j + 1].cls == unicode::kOther) ++j;
  if (c[j].cls == unicode::kOther) {
    j += RunOf(c, j, n, unicode::kOther);
    while (j < n && IsCrLf(c[j].cp)) ++j;
    return j - i;
  }
  // cls is whitespace from here on. \s*[\r\n]+ ends after the run's last CR or LF.
  const size_t run = RunOf(c, i, n, unicode::kSpace);
  for (size_t k = i + run; k > i; --k)
    if (IsCrLf(c[k - 1].cp)) return k - i;
  return TrailingSpace(c, i, n);
}

}  // namespace

std::string_view PreTokenizerName(PreTokenizer pre) {
  switch (pre) {
    case PreTokenizer::kGpt2:
      return "gpt-2";
    case PreTokenizer::kLlama3:
      return "llama-bpe";
    case PreTokenizer::kQwen2:
      return "qwen2";
    case PreTokenizer::kSmolLm:
      return "smollm";
  }
  return "?";
}

std::optional<PreTokenizer> PreTokenizerFromGgufName(std::string_view name) {
  if (name == "gpt-2" || name == "gpt2" || name == "default") return PreTokenizer::kGpt2;
  if (name == "llama-bpe" || name == "llama3" || name == "llama-v3") return PreTokenizer::kLlama3;
  if (name == "qwen2") return PreTokenizer::kQwen2;
  if (name == "smollm") return PreTokenizer::kSmolLm;
  return std::nullopt;
}

std::optional<PreTokenizer> PreTokenizerFromRegex(std::string_view pattern) {
  // HF writes the contractions as (?i:...); llama.cpp's converter as (?:'[sS]|...): both mean
  // the same, so both spellings are recognised.
  static constexpr std::string_view kCiHf = "(?i:'s|'t|'re|'ve|'m|'ll|'d)";
  static constexpr std::string_view kCiCpp =
      "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";
  static constexpr std::string_view kLlamaTail =
      "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  for (std::string_view ci : {kCiHf, kCiCpp}) {
    const std::string head = std::string(ci) + "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}";
    if (pattern == head + "{1,3}" + std::string(kLlamaTail)) return PreTokenizer::kLlama3;
    if (pattern == head + std::string(kLlamaTail)) return PreTokenizer::kQwen2;
  }
  static constexpr std::string_view kGpt2Body =
      "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
  if (pattern == std::string(kGpt2Body) + "|\\s+" || pattern == kGpt2Body)
    return PreTokenizer::kGpt2;
  return std::nullopt;
}

void PreTokenize(PreTokenizer pre, std::string_view text, std::vector<std::string_view>* words) {
  thread_local std::vector<Char> chars;  // scratch only: reused to avoid an allocation per call
  DecodeChars(text, &chars);
  const size_t n = chars.size() - 1;
  auto emit = [&](size_t from, size_t to) {
    words->push_back(text.substr(chars[from].offset, chars[to].offset - chars[from].offset));
  };
  size_t i = 0;
  while (i < n) {
    size_t len = 0;
    switch (pre) {
      case PreTokenizer::kGpt2:
        len = MatchGpt2(chars, i, n);
        break;
      case PreTokenizer::kLlama3:
        len = MatchLlama3(chars, i, n, 3);
        break;
      case PreTokenizer::kQwen2:
        len = MatchLlama3(chars, i, n, 1);
        break;
      case PreTokenizer::kSmolLm: {
        if (chars[i].cls == unicode::kNumber) {
          len = 1;
          break;
        }
        // GPT-2 over the digit-free stretch: find its end, then split it alone so that no
        // match can reach a digit.
        size_t end = i;
        while (end < n && chars[end].cls != unicode::kNumber) ++end;
        while (i < end) {
          const size_t l = MatchGpt2(chars, i, end);
          emit(i, i + l);
          i += l;
        }
        continue;
      }
    }
    emit(i, i + len);
    i += len;
  }
}

}  // namespace strata::tokenizer
