// Tokenizer's shared methods, the byte tokenizer of the synthetic presets and StreamDecoder.
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <cstdio>

#include "tokenizer/unicode.h"

namespace strata::tokenizer {

bool Tokenizer::IsEndOfGeneration(TokenId id) const {
  return std::find(eog_.begin(), eog_.end(), id) != eog_.end();
}

TokenType Tokenizer::type(TokenId id) const {
  if (id < 0 || static_cast<size_t>(id) >= types_.size()) return TokenType::kUnused;
  return types_[static_cast<size_t>(id)];
}

std::vector<TokenId> Tokenizer::EncodePrompt(std::string_view text, bool parse_special) const {
  std::vector<TokenId> ids;
  if (add_bos_ && bos_) ids.push_back(*bos_);
  std::vector<TokenId> rest = Encode(text, parse_special);
  ids.insert(ids.end(), rest.begin(), rest.end());
  return ids;
}

std::string Tokenizer::Decode(std::span<const TokenId> ids) const {
  std::string out;
  for (TokenId id : ids) out += TokenBytes(id);
  return out;
}

const std::string& Tokenizer::piece(TokenId id) const {
  static const std::string kEmpty;
  if (id < 0 || static_cast<size_t>(id) >= pieces_.size()) return kEmpty;
  return pieces_[static_cast<size_t>(id)];
}

std::optional<TokenId> Tokenizer::FindPiece(std::string_view piece) const {
  auto it = piece_index_.find(piece);
  if (it == piece_index_.end()) return std::nullopt;
  return it->second;
}

namespace {

// Byte i is token i; 256 and 257 are BOS and EOS, which text never produces.
class ByteTokenizer final : public Tokenizer {
 public:
  ByteTokenizer() {
    kind_ = TokenizerKind::kByte;
    name_ = "byte";
    for (int b = 0; b < 256; ++b) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "<0x%02X>", b);
      pieces_.emplace_back(buf);
      types_.push_back(TokenType::kByte);
    }
    pieces_.emplace_back("<s>");
    pieces_.emplace_back("</s>");
    types_.push_back(TokenType::kControl);
    types_.push_back(TokenType::kControl);
    for (size_t i = 0; i < pieces_.size(); ++i)
      piece_index_.emplace(pieces_[i], static_cast<TokenId>(i));
    bos_ = 256;
    eos_ = 257;
    add_bos_ = false;
    eog_ = {257};
    max_token_bytes_ = 1;
  }

  std::vector<TokenId> Encode(std::string_view text, bool /*parse_special*/) const override {
    std::vector<TokenId> ids(text.size());
    for (size_t i = 0; i < text.size(); ++i) ids[i] = static_cast<uint8_t>(text[i]);
    return ids;
  }

  std::string TokenBytes(TokenId id) const override {
    if (id < 0 || id >= 256) return {};
    return std::string(1, static_cast<char>(id));
  }
};

}  // namespace

std::unique_ptr<Tokenizer> MakeByteTokenizer() {
  return std::make_unique<ByteTokenizer>();
}

std::string StreamDecoder::Push(TokenId id) {
  pending_ += tokenizer_->TokenBytes(id);
  std::string out;
  size_t i = 0;
  while (i < pending_.size()) {
    const unicode::Utf8Step s = unicode::DecodeUtf8(std::string_view(pending_).substr(i));
    if (s.kind == unicode::Utf8Step::kIncomplete) break;  // wait for the next token
    if (s.kind == unicode::Utf8Step::kValid)
      out.append(pending_, i, s.length);
    else
      out += unicode::kReplacementUtf8;
    i += s.length;
  }
  pending_.erase(0, i);
  return out;
}

std::string StreamDecoder::Finish() {
  std::string out;
  size_t i = 0;
  while (i < pending_.size()) {
    const unicode::Utf8Step s = unicode::DecodeUtf8(std::string_view(pending_).substr(i));
    if (s.kind == unicode::Utf8Step::kValid)
      out.append(pending_, i, s.length);
    else
      out += unicode::kReplacementUtf8;
    // An unfinished character is one maximal subpart: a single U+FFFD for all of it.
    i += s.length;
  }
  pending_.clear();
  return out;
}

}  // namespace strata::tokenizer
