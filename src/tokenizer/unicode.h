// UTF-8 and Unicode helpers of the tokenizers: code point decoding, the general-category
// classes the pre-tokenizer patterns use (from ICU), GPT-2's byte-to-unicode mapping, and
// the UTF-8 validation StreamDecoder relies on.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace strata::tokenizer::unicode {

inline constexpr char32_t kReplacement = 0xFFFD;
inline constexpr std::string_view kReplacementUtf8 = "\xEF\xBF\xBD";

// Appends the UTF-8 encoding of `cp` (which must be a scalar value, not a surrogate).
void AppendUtf8(char32_t cp, std::string* out);

// Classifies one UTF-8 sequence at the start of `bytes` by the Unicode standard's "maximal
// subpart" rule. kValid: a well-formed character of `length` bytes, decoded in `cp`. kInvalid:
// `length` bytes (>= 1) that can never start a character and stand for one U+FFFD.
// kIncomplete: all of `bytes` is a valid prefix of a character that needs more bytes.
struct Utf8Step {
  enum Kind : uint8_t { kValid, kInvalid, kIncomplete } kind;
  uint8_t length;
  char32_t cp;
};
Utf8Step DecodeUtf8(std::string_view bytes);

// Class bits of a code point, as the pre-tokenizer regexes mean them: \p{L} (Lu Ll Lt Lm Lo),
// \p{N} (Nd Nl No), \s (the White_Space property). A code point has at most one of them.
enum CharClass : uint8_t { kOther = 0, kLetter = 1, kNumber = 2, kSpace = 3 };
CharClass ClassOf(char32_t cp);

// GPT-2's reversible byte -> code point mapping: printable Latin-1 bytes map to themselves,
// the rest to U+0100 onwards, so that every byte string becomes printable text.
char32_t ByteToUnicode(uint8_t byte);
// The byte a mapped code point stands for, or -1 when `cp` is not in the mapping's image.
int UnicodeToByte(char32_t cp);

// NFC of `text` (invalid UTF-8 replaced by U+FFFD first); ASCII comes back untouched.
std::string NormalizeNfc(std::string_view text);

}  // namespace strata::tokenizer::unicode
