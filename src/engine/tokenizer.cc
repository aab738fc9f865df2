// Byte-level tokenizer.
#include "engine/tokenizer.h"

namespace strata::engine {

std::vector<TokenId> ByteTokenizer::Encode(std::string_view text, bool add_bos) {
  std::vector<TokenId> tokens;
  tokens.reserve(text.size() + (add_bos ? 1 : 0));
  if (add_bos) tokens.push_back(kBos);
  for (char c : text) tokens.push_back(static_cast<TokenId>(static_cast<unsigned char>(c)));
  return tokens;
}

std::string ByteTokenizer::Decode(std::span<const TokenId> tokens) {
  std::string text;
  text.reserve(tokens.size());
  for (TokenId t : tokens)
    if (t >= 0 && t < 256) text.push_back(static_cast<char>(static_cast<unsigned char>(t)));
  return text;
}

}  // namespace strata::engine
