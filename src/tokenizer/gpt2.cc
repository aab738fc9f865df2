// GPT-2 byte-level BPE (Llama-3, Qwen2, SmolLM2): the family's pre-tokenizer cuts text into
// words, each word's bytes become GPT-2's printable code points, and merge ranks join them.
#include <array>

#include "tokenizer/bpe.h"
#include "tokenizer/unicode.h"

namespace strata::tokenizer {
namespace {

class Gpt2Tokenizer final : public VocabTokenizer {
 public:
  Status Init(VocabSpec& spec) {
    kind_ = TokenizerKind::kGpt2;
    pre_ = spec.pre;
    name_ = "gpt2/" + std::string(PreTokenizerName(pre_));
    ignore_merges_ = spec.ignore_merges;
    nfc_ = spec.nfc;
    std::vector<std::pair<std::string, std::string>> merges = std::move(spec.merges);
    const std::string merges_field = spec.merges_field;
    STRATA_RETURN_IF_ERROR(InitCommon(spec));
    STRATA_RETURN_IF_ERROR(merges_.Build(merges, piece_index_, merges_field));
    for (int b = 0; b < 256; ++b) {
      std::string s;
      unicode::AppendUtf8(unicode::ByteToUnicode(static_cast<uint8_t>(b)), &s);
      auto id = FindPiece(s);
      byte_ids_[b] = id ? *id : -1;
    }
    for (size_t i = 0; i < pieces_.size(); ++i) bytes_[i] = PieceBytes(i);
    FinishBytes();
    return Status::Ok();
  }

  std::vector<TokenId> Encode(std::string_view text, bool parse_special) const override {
    std::vector<TokenId> out;
    std::vector<Fragment> fragments;
    Fragments(text, parse_special, &fragments);
    std::vector<std::string_view> words;
    std::vector<TokenId> syms;
    std::string mapped, normalized;
    for (const Fragment& f : fragments) {
      if (f.token >= 0) {
        out.push_back(f.token);
        continue;
      }
      std::string_view chunk = f.text;
      if (nfc_) {
        normalized = unicode::NormalizeNfc(chunk);
        chunk = normalized;
      }
      words.clear();
      PreTokenize(pre_, chunk, &words);
      for (std::string_view w : words) {
        if (ignore_merges_) {
          mapped.clear();
          for (char c : w)
            unicode::AppendUtf8(unicode::ByteToUnicode(static_cast<uint8_t>(c)), &mapped);
          if (auto id = FindPiece(mapped)) {
            out.push_back(*id);
            continue;
          }
        }
        syms.clear();
        for (char c : w) {
          const TokenId id = byte_ids_[static_cast<uint8_t>(c)];
          if (id >= 0)
            syms.push_back(id);
          else if (unk_)
            syms.push_back(*unk_);  // a vocabulary without all 256 byte pieces
        }
        merges_.Apply(&syms);
        out.insert(out.end(), syms.begin(), syms.end());
      }
    }
    return out;
  }

 private:
  std::string PieceBytes(size_t id) const {
    const std::string& p = pieces_[id];
    switch (types_[id]) {
      case TokenType::kControl:
        return {};
      case TokenType::kUserDefined:
        return p;  // added tokens are stored as plain text, not byte-mapped
      default:
        break;
    }
    std::string out;
    for (size_t i = 0; i < p.size();) {
      const unicode::Utf8Step s = unicode::DecodeUtf8(std::string_view(p).substr(i));
      const size_t len = s.kind == unicode::Utf8Step::kIncomplete ? p.size() - i : s.length;
      const int b = s.kind == unicode::Utf8Step::kValid ? unicode::UnicodeToByte(s.cp) : -1;
      if (b >= 0)
        out += static_cast<char>(b);
      else
        out.append(p, i, len);  // not from the mapping: keep the text as it is
      i += len;
    }
    return out;
  }

  PreTokenizer pre_ = PreTokenizer::kGpt2;
  bool ignore_merges_ = false;
  bool nfc_ = false;
  MergeTable merges_;
  std::array<TokenId, 256> byte_ids_{};
};

}  // namespace

Result<std::unique_ptr<Tokenizer>> MakeGpt2Tokenizer(VocabSpec spec) {
  auto t = std::make_unique<Gpt2Tokenizer>();
  STRATA_RETURN_IF_ERROR(t->Init(spec));
  return std::unique_ptr<Tokenizer>(std::move(t));
}

}  // namespace strata::tokenizer
