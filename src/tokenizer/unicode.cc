// UTF-8 decoding, ICU-backed character classes and GPT-2's byte-to-unicode table.
#include "tokenizer/unicode.h"

#include <array>
#include <vector>

#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

namespace strata::tokenizer::unicode {

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

Utf8Step DecodeUtf8(std::string_view bytes) {
  const auto b0 = static_cast<uint8_t>(bytes[0]);
  if (b0 < 0x80) return {Utf8Step::kValid, 1, b0};
  int need;
  char32_t cp;
  // The allowed range of the second byte is what rules out overlongs (E0, F0), surrogates
  // (ED) and code points past U+10FFFF (F4); later bytes are plain continuations.
  uint8_t lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
    cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return {Utf8Step::kInvalid, 1, kReplacement};
  }
  for (int k = 1; k <= need; ++k) {
    if (static_cast<size_t>(k) >= bytes.size())
      return {Utf8Step::kIncomplete, static_cast<uint8_t>(k), kReplacement};
    const auto b = static_cast<uint8_t>(bytes[k]);
    if (b < lo || b > hi) return {Utf8Step::kInvalid, static_cast<uint8_t>(k), kReplacement};
    lo = 0x80;
    hi = 0xBF;
    cp = (cp << 6) | (b & 0x3F);
  }
  return {Utf8Step::kValid, static_cast<uint8_t>(need + 1), cp};
}

namespace {

CharClass ClassOfSlow(char32_t cp) {
  const auto c = static_cast<UChar32>(cp);
  if (u_isUWhiteSpace(c)) return kSpace;
  switch (u_charType(c)) {
    case U_UPPERCASE_LETTER:
    case U_LOWERCASE_LETTER:
    case U_TITLECASE_LETTER:
    case U_MODIFIER_LETTER:
    case U_OTHER_LETTER:
      return kLetter;
    case U_DECIMAL_DIGIT_NUMBER:
    case U_LETTER_NUMBER:
    case U_OTHER_NUMBER:
      return kNumber;
    default:
      return kOther;
  }
}

// Latin-1 is most of the text tokenizers see: a table avoids ICU calls for it.
const std::array<CharClass, 256>& Latin1Classes() {
  static const std::array<CharClass, 256> table = [] {
    std::array<CharClass, 256> t{};
    for (char32_t c = 0; c < 256; ++c) t[c] = ClassOfSlow(c);
    return t;
  }();
  return table;
}

struct ByteTables {
  std::array<char32_t, 256> to_unicode{};
  std::array<int16_t, 324> to_byte{};  // the image is U+0021..U+0143
};

const ByteTables& GetByteTables() {
  static const ByteTables tables = [] {
    ByteTables t;
    t.to_byte.fill(-1);
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      const char32_t cp = printable ? static_cast<char32_t>(b) : next++;
      t.to_unicode[b] = cp;
      t.to_byte[cp] = static_cast<int16_t>(b);
    }
    return t;
  }();
  return tables;
}

}  // namespace

CharClass ClassOf(char32_t cp) {
  if (cp < 256) return Latin1Classes()[cp];
  return ClassOfSlow(cp);
}

char32_t ByteToUnicode(uint8_t byte) {
  return GetByteTables().to_unicode[byte];
}

int UnicodeToByte(char32_t cp) {
  const auto& t = GetByteTables().to_byte;
  return cp < t.size() ? t[cp] : -1;
}

std::string NormalizeNfc(std::string_view text) {
  bool ascii = true;
  for (char c : text) ascii &= static_cast<uint8_t>(c) < 0x80;
  if (ascii) return std::string(text);

  // UTF-8 -> UTF-16 by hand so that invalid bytes become U+FFFD exactly as elsewhere.
  std::vector<UChar> utf16;
  utf16.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const Utf8Step s = DecodeUtf8(text.substr(i));
    const char32_t cp = s.kind == Utf8Step::kValid ? s.cp : kReplacement;
    i += s.kind == Utf8Step::kIncomplete ? text.size() - i : s.length;
    if (cp >= 0x10000) {
      utf16.push_back(static_cast<UChar>(0xD800 + ((cp - 0x10000) >> 10)));
      utf16.push_back(static_cast<UChar>(0xDC00 + ((cp - 0x10000) & 0x3FF)));
    } else {
      utf16.push_back(static_cast<UChar>(cp));
    }
  }
  UErrorCode err = U_ZERO_ERROR;
  const UNormalizer2* nfc = unorm2_getNFCInstance(&err);
  if (U_FAILURE(err)) return std::string(text);
  const auto len = static_cast<int32_t>(utf16.size());
  std::vector<UChar> out(utf16.size() * 3 + 16);
  const int32_t n =
      unorm2_normalize(nfc, utf16.data(), len, out.data(), static_cast<int32_t>(out.size()), &err);
  if (U_FAILURE(err)) return std::string(text);
  std::string result;
  result.reserve(text.size());
  for (int32_t i = 0; i < n; ++i) {
    char32_t cp = out[i];
    if (cp >= 0xD800 && cp <= 0xDBFF && i + 1 < n) {
      cp = 0x10000 + ((cp - 0xD800) << 10) + (out[i + 1] - 0xDC00);
      ++i;
    }
    AppendUtf8(cp, &result);
  }
  return result;
}

}  // namespace strata::tokenizer::unicode
