// The merge loop, the special-token matcher and the state both vocabulary tokenizers share.
#include "tokenizer/bpe.h"

#include <algorithm>
#include <queue>

namespace strata::tokenizer {

Status MergeTable::Build(const std::vector<std::pair<std::string, std::string>>& merges,
                         const std::unordered_map<std::string_view, TokenId>& index,
                         std::string_view field) {
  ranks_.clear();
  ranks_.reserve(merges.size());
  std::string joined;
  for (size_t r = 0; r < merges.size(); ++r) {
    const auto& [a, b] = merges[r];
    joined.assign(a).append(b);
    const auto ia = index.find(a), ib = index.find(b), im = index.find(joined);
    if (ia == index.end() || ib == index.end() || im == index.end()) {
      const std::string& missing = ia == index.end() ? a : ib == index.end() ? b : joined;
      return Status::InvalidArgument(std::string(field) + "[" + std::to_string(r) + "] (\"" + a +
                                     " " + b + "\") refers to \"" + missing +
                                     "\", which is not in the vocabulary");
    }
    // A repeated pair keeps its first (best) rank.
    ranks_.try_emplace(Key(ia->second, ib->second), Merge{static_cast<uint32_t>(r), im->second});
  }
  return Status::Ok();
}

void MergeTable::Apply(std::vector<TokenId>* symbols) const {
  std::vector<TokenId>& syms = *symbols;
  const int n = static_cast<int>(syms.size());
  if (n < 2 || ranks_.empty()) return;
  struct Node {
    TokenId id;  // -1 once merged into its left neighbour
    int prev, next;
  };
  struct Candidate {
    uint32_t rank;
    int left;
    TokenId left_id, right_id;
  };
  auto worse = [](const Candidate& x, const Candidate& y) {
    return x.rank > y.rank || (x.rank == y.rank && x.left > y.left);
  };
  std::vector<Node> nodes(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) nodes[i] = {syms[i], i - 1, i + 1 < n ? i + 1 : -1};
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(worse)> heap(worse);
  auto consider = [&](int left) {
    if (left < 0 || nodes[left].next < 0) return;
    const TokenId a = nodes[left].id, b = nodes[nodes[left].next].id;
    if (const Merge* m = Find(a, b)) heap.push({m->rank, left, a, b});
  };
  for (int i = 0; i + 1 < n; ++i) consider(i);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    Node& left = nodes[c.left];
    // Stale entries: either side has merged since (ids only change by merging).
    if (left.id != c.left_id || left.next < 0 || nodes[left.next].id != c.right_id) continue;
    Node& right = nodes[left.next];
    left.id = Find(c.left_id, c.right_id)->merged;
    left.next = right.next;
    if (right.next >= 0) nodes[right.next].prev = c.left;
    right.id = -1;
    consider(left.prev);
    consider(c.left);
  }
  syms.clear();
  for (int i = 0; i >= 0; i = nodes[i].next) syms.push_back(nodes[i].id);
}

void SpecialMatcher::Add(std::string_view text, TokenId id) {
  if (text.empty()) return;
  by_text_[text] = id;
  first_byte_[static_cast<uint8_t>(text[0])] = true;
  if (std::find(lengths_.begin(), lengths_.end(), text.size()) == lengths_.end()) {
    lengths_.push_back(text.size());
    std::sort(lengths_.begin(), lengths_.end(), std::greater<>());
  }
}

void SpecialMatcher::Split(std::string_view text, std::vector<Fragment>* out) const {
  size_t start = 0, i = 0;
  while (i < text.size()) {
    bool matched = false;
    if (first_byte_[static_cast<uint8_t>(text[i])]) {
      for (size_t len : lengths_) {
        if (len > text.size() - i) continue;
        auto it = by_text_.find(text.substr(i, len));
        if (it == by_text_.end()) continue;
        if (i > start) out->push_back({text.substr(start, i - start)});
        out->push_back({{}, it->second});
        i += len;
        start = i;
        matched = true;
        break;
      }
    }
    if (!matched) ++i;
  }
  if (start < text.size()) out->push_back({text.substr(start)});
}

std::string VocabTokenizer::TokenBytes(TokenId id) const {
  if (id < 0 || static_cast<size_t>(id) >= bytes_.size()) return {};
  return bytes_[static_cast<size_t>(id)];
}

Status VocabTokenizer::InitCommon(VocabSpec& spec) {
  const size_t n = spec.pieces.size();
  if (n == 0) return Status::InvalidArgument("the vocabulary is empty");
  if (spec.types.size() != n) return Status::Internal("token types and pieces differ in number");
  auto in_range = [n](std::optional<TokenId> id) {
    return !id || (*id >= 0 && static_cast<size_t>(*id) < n);
  };
  if (!in_range(spec.bos) || !in_range(spec.eos) || !in_range(spec.unk))
    return Status::Internal("a special token id is outside the vocabulary");
  pieces_ = std::move(spec.pieces);
  types_ = std::move(spec.types);
  bos_ = spec.bos;
  eos_ = spec.eos;
  unk_ = spec.unk;
  add_bos_ = spec.add_bos && bos_.has_value();
  chat_template_ = std::move(spec.chat_template);
  piece_index_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (pieces_[i].empty()) continue;  // a hole in the id space
    piece_index_[pieces_[i]] = static_cast<TokenId>(i);
  }

  // End of generation: EOS, what the loader listed, and the pieces llama.cpp also treats so
  // when the vocabulary has them as control tokens.
  auto add_eog = [this](TokenId id) {
    if (id >= 0 && static_cast<size_t>(id) < pieces_.size() && !IsEndOfGeneration(id))
      eog_.push_back(id);
  };
  if (eos_) add_eog(*eos_);
  for (TokenId id : spec.eog) add_eog(id);
  for (std::string_view p :
       {"<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|end|>", "<|endoftext|>", "</s>"}) {
    if (auto id = FindPiece(p); id && types_[*id] == TokenType::kControl) add_eog(*id);
  }

  for (size_t i = 0; i < n; ++i) {
    const TokenType t = types_[i];
    if (t == TokenType::kControl || t == TokenType::kUserDefined || t == TokenType::kUnknown)
      specials_.Add(pieces_[i], static_cast<TokenId>(i));
  }
  bytes_.assign(n, std::string());
  return Status::Ok();
}

void VocabTokenizer::FinishBytes() {
  size_t longest = 1;
  for (const std::string& b : bytes_) longest = std::max(longest, b.size());
  max_token_bytes_ = static_cast<uint32_t>(longest);
}

void VocabTokenizer::Fragments(std::string_view text, bool parse_special,
                               std::vector<Fragment>* out) const {
  out->clear();
  if (text.empty()) return;
  if (parse_special)
    specials_.Split(text, out);
  else
    out->push_back({text});
}

}  // namespace strata::tokenizer
