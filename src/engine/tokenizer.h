// ByteTokenizer: the reference engine's byte-level tokenizer. Token i < 256 is byte i;
// 256 is BOS and 257 is EOS. Any text round-trips exactly, with no vocabulary file.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "strata/block_key.h"  // TokenId

namespace strata::engine {

class ByteTokenizer {
 public:
  static constexpr TokenId kBos = 256;
  static constexpr TokenId kEos = 257;
  static constexpr uint32_t kVocabSize = 258;

  // One token per byte; BOS first when add_bos.
  static std::vector<TokenId> Encode(std::string_view text, bool add_bos = false);
  // Bytes of the byte tokens; BOS, EOS and ids outside the byte range add nothing.
  static std::string Decode(std::span<const TokenId> tokens);
};

}  // namespace strata::engine
