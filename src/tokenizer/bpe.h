// Building blocks the vocabulary tokenizers share: the vocabulary spec the loaders fill in, a
// merge-rank table with its merge loop, and the matcher that cuts special tokens out of text.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "strata/status.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer.h"

namespace strata::tokenizer {

// Everything a loader learned about a vocabulary; MakeSpmTokenizer / MakeGpt2Tokenizer check
// it and build the tokenizer. The *_field strings name where each part came from, for errors.
struct VocabSpec {
  std::vector<std::string> pieces;
  std::vector<TokenType> types;  // same size as pieces
  std::vector<float> scores;     // SentencePiece with scores (GGUF); empty to use merges
  std::vector<std::pair<std::string, std::string>> merges;  // rank = index
  std::string merges_field = "merges";
  std::optional<TokenId> bos, eos, unk;
  std::vector<TokenId> eog;  // EOT, EOM and listed end-of-generation ids besides eos
  bool add_bos = false;
  bool add_space_prefix = false;  // SentencePiece: prepend "▁" to each text fragment
  bool byte_fallback = true;      // SentencePiece: <0xNN> pieces for uncovered bytes
  bool ignore_merges = false;     // GPT-2: a word that is a whole piece is that piece
  bool nfc = false;               // GPT-2: NFC-normalise text first (Qwen2's normalizer)
  PreTokenizer pre = PreTokenizer::kGpt2;
  std::string chat_template;
};

Result<std::unique_ptr<Tokenizer>> MakeSpmTokenizer(VocabSpec spec);
Result<std::unique_ptr<Tokenizer>> MakeGpt2Tokenizer(VocabSpec spec);

// Merge ranks over token ids: (left, right) -> (rank, merged). Apply() runs BPE on a word
// already cut into symbols: repeatedly merge the adjacent pair of lowest rank, the leftmost
// of equal ranks, in O(n log n) with a heap and a linked list.
class MergeTable {
 public:
  // Resolves every merge's parts and result through `index`; InvalidArgument naming `field`
  // and the merge's position when one is not a piece of the vocabulary.
  Status Build(const std::vector<std::pair<std::string, std::string>>& merges,
               const std::unordered_map<std::string_view, TokenId>& index, std::string_view field);
  bool empty() const { return ranks_.empty(); }
  void Apply(std::vector<TokenId>* symbols) const;

 private:
  struct Merge {
    uint32_t rank;
    TokenId merged;
  };
  static uint64_t Key(TokenId a, TokenId b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  const Merge* Find(TokenId a, TokenId b) const {
    auto it = ranks_.find(Key(a, b));
    return it == ranks_.end() ? nullptr : &it->second;
  }
  std::unordered_map<uint64_t, Merge> ranks_;
};

// One stretch of text between special tokens, or one special token.
struct Fragment {
  std::string_view text;
  TokenId token = -1;  // >= 0 for a special token
};

// Finds the text of control, user-defined and unknown pieces in a string, longest first at
// each position.
class SpecialMatcher {
 public:
  void Add(std::string_view text, TokenId id);
  void Split(std::string_view text, std::vector<Fragment>* out) const;

 private:
  std::unordered_map<std::string_view, TokenId> by_text_;
  std::vector<size_t> lengths_;  // distinct lengths, longest first
  bool first_byte_[256] = {};
};

// The shared state of the SentencePiece and GPT-2 tokenizers: pieces, types, the piece index,
// each token's decoded bytes and the special-token matcher.
class VocabTokenizer : public Tokenizer {
 public:
  std::string TokenBytes(TokenId id) const override;

 protected:
  // Copies the common parts of `spec`, checks ids, derives end-of-generation ids, builds the
  // index and the special matcher. `bytes` must then be filled by the subclass, followed by
  // FinishBytes().
  Status InitCommon(VocabSpec& spec);
  void FinishBytes();
  // Cuts special tokens out of `text` when parse_special, else one fragment.
  void Fragments(std::string_view text, bool parse_special, std::vector<Fragment>* out) const;

  std::vector<std::string> bytes_;  // TokenBytes of every id
  SpecialMatcher specials_;
  std::optional<TokenId> unk_;
};

}  // namespace strata::tokenizer
