// SentencePiece-style BPE (Llama-2, TinyLlama, Mistral): text with spaces as "▁" is cut into
// characters and merged by piece score (GGUF, as llama.cpp's llm_tokenizer_spm) or by merge
// rank (HF tokenizer.json); characters no piece covers fall back to <0xNN> byte pieces.
#include <cstdio>
#include <queue>

#include "tokenizer/bpe.h"
#include "tokenizer/unicode.h"

namespace strata::tokenizer {
namespace {

constexpr std::string_view kSpaceMark = "\xE2\x96\x81";  // "▁"

class SpmTokenizer final : public VocabTokenizer {
 public:
  Status Init(VocabSpec& spec) {
    kind_ = TokenizerKind::kSentencePiece;
    name_ = "llama";
    scores_ = std::move(spec.scores);
    add_space_prefix_ = spec.add_space_prefix;
    byte_fallback_ = spec.byte_fallback;
    if (!scores_.empty() && scores_.size() != spec.pieces.size())
      return Status::Internal("scores and pieces differ in number");
    std::vector<std::pair<std::string, std::string>> merges = std::move(spec.merges);
    const std::string merges_field = spec.merges_field;
    STRATA_RETURN_IF_ERROR(InitCommon(spec));
    if (scores_.empty()) STRATA_RETURN_IF_ERROR(merges_.Build(merges, piece_index_, merges_field));

    byte_ids_.fill(-1);
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", b);
      if (auto id = FindPiece(name)) byte_ids_[b] = *id;
    }
    for (size_t i = 0; i < pieces_.size(); ++i) bytes_[i] = PieceBytes(static_cast<TokenId>(i));
    FinishBytes();
    return Status::Ok();
  }

  std::vector<TokenId> Encode(std::string_view text, bool parse_special) const override {
    std::vector<TokenId> out;
    std::vector<Fragment> fragments;
    Fragments(text, parse_special, &fragments);
    // As llama.cpp (and HF's legacy Llama tokenizer): every text fragment that starts the
    // prompt or follows a special token gets the space prefix.
    bool after_special = true;
    std::string escaped;
    for (const Fragment& f : fragments) {
      if (f.token >= 0) {
        out.push_back(f.token);
        after_special = true;
        continue;
      }
      escaped.clear();
      if (add_space_prefix_ && after_special) escaped += kSpaceMark;
      for (char c : f.text) {
        if (c == ' ')
          escaped += kSpaceMark;
        else
          escaped += c;
      }
      after_special = false;
      if (scores_.empty())
        EncodeByRank(escaped, &out);
      else
        EncodeByScore(escaped, &out);
    }
    return out;
  }

 private:
  std::string PieceBytes(TokenId id) const {
    const std::string& p = pieces_[static_cast<size_t>(id)];
    switch (types_[static_cast<size_t>(id)]) {
      case TokenType::kControl:
        return {};
      case TokenType::kUnknown:
        return "\xE2\x81\x87";  // "⁇", as SentencePiece shows <unk>
      case TokenType::kByte:
        if (p.size() == 6 && p.starts_with("<0x") && p.back() == '>') {
          unsigned v = 0;
          if (std::sscanf(p.c_str() + 3, "%2x", &v) == 1)
            return std::string(1, static_cast<char>(v));
        }
        break;
      default:
        break;
    }
    std::string out;
    for (size_t i = 0; i < p.size();) {
      if (p.compare(i, kSpaceMark.size(), kSpaceMark) == 0) {
        out += ' ';
        i += kSpaceMark.size();
      } else {
        out += p[i++];
      }
    }
    return out;
  }

  // Whether merging may produce `id`: never a control, byte or unknown piece.
  bool Mergeable(TokenId id) const {
    const TokenType t = types_[static_cast<size_t>(id)];
    return t != TokenType::kControl && t != TokenType::kByte && t != TokenType::kUnknown;
  }

  std::optional<TokenId> Lookup(std::string_view s) const {
    auto it = piece_index_.find(s);
    if (it == piece_index_.end() || !Mergeable(it->second)) return std::nullopt;
    return it->second;
  }

  static size_t CharLength(std::string_view s) {
    const unicode::Utf8Step st = unicode::DecodeUtf8(s);
    return st.kind == unicode::Utf8Step::kValid ? st.length : 1;
  }

  // A character no piece covers: its bytes as byte pieces, or <unk>.
  void FallBack(std::string_view chr, std::vector<TokenId>* out) const {
    if (byte_fallback_) {
      bool all = true;
      for (char c : chr) all &= byte_ids_[static_cast<uint8_t>(c)] >= 0;
      if (all) {
        for (char c : chr) out->push_back(byte_ids_[static_cast<uint8_t>(c)]);
        return;
      }
    }
    if (unk_) out->push_back(*unk_);
  }

  void EncodeByScore(std::string_view text, std::vector<TokenId>* out) const {
    struct Sym {
      uint32_t start, len;  // len 0 once merged into the left neighbour
      int prev, next;
    };
    struct Bigram {
      float score;
      int left, right;
      uint32_t size;
    };
    // Highest score first; the leftmost of equal scores.
    auto worse = [](const Bigram& x, const Bigram& y) {
      return x.score < y.score || (x.score == y.score && x.left > y.left);
    };
    std::vector<Sym> syms;
    for (size_t i = 0; i < text.size();) {
      const size_t len = CharLength(text.substr(i));
      const int idx = static_cast<int>(syms.size());
      syms.push_back({static_cast<uint32_t>(i), static_cast<uint32_t>(len), idx - 1, idx + 1});
      i += len;
    }
    if (syms.empty()) return;
    syms.back().next = -1;
    std::priority_queue<Bigram, std::vector<Bigram>, decltype(worse)> heap(worse);
    auto consider = [&](int left, int right) {
      if (left < 0 || right < 0) return;
      const uint32_t size = syms[left].len + syms[right].len;
      if (auto id = Lookup(text.substr(syms[left].start, size)))
        heap.push({scores_[static_cast<size_t>(*id)], left, right, size});
    };
    for (size_t i = 1; i < syms.size(); ++i) consider(static_cast<int>(i) - 1, static_cast<int>(i));
    while (!heap.empty()) {
      const Bigram b = heap.top();
      heap.pop();
      Sym& l = syms[b.left];
      Sym& r = syms[b.right];
      if (l.len == 0 || r.len == 0 || l.next != b.right || l.len + r.len != b.size) continue;
      l.len += r.len;
      r.len = 0;
      l.next = r.next;
      if (r.next >= 0) syms[r.next].prev = b.left;
      consider(l.prev, b.left);
      consider(b.left, l.next);
    }
    for (int i = 0; i >= 0; i = syms[i].next) {
      const std::string_view s = text.substr(syms[i].start, syms[i].len);
      if (auto id = Lookup(s))
        out->push_back(*id);
      else
        FallBack(s, out);  // only single characters can miss: merges make only pieces
    }
  }

  void EncodeByRank(std::string_view text, std::vector<TokenId>* out) const {
    std::vector<TokenId> syms;
    syms.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
      const size_t len = CharLength(text.substr(i));
      const std::string_view chr = text.substr(i, len);
      if (auto id = Lookup(chr))
        syms.push_back(*id);
      else
        FallBack(chr, &syms);
      i += len;
    }
    merges_.Apply(&syms);
    out->insert(out->end(), syms.begin(), syms.end());
  }

  std::vector<float> scores_;
  MergeTable merges_;
  bool add_space_prefix_ = true;
  bool byte_fallback_ = true;
  std::array<TokenId, 256> byte_ids_{};
};

}  // namespace

Result<std::unique_ptr<Tokenizer>> MakeSpmTokenizer(VocabSpec spec) {
  auto t = std::make_unique<SpmTokenizer>();
  STRATA_RETURN_IF_ERROR(t->Init(spec));
  return std::unique_ptr<Tokenizer>(std::move(t));
}

}  // namespace strata::tokenizer
