// Tests of the tokenizers on in-memory vocabularies: SentencePiece merge order and byte
// fallback, GPT-2 merge ranks, special tokens, decoding, StreamDecoder and the byte tokenizer.
#include "tokenizer/tokenizer.h"

#include <map>
#include <random>
#include <set>

#include <gtest/gtest.h>

#include "tokenizer/test_vocabs.h"

namespace strata::tokenizer {
namespace {

using testing::Gpt2Spec;
using testing::SpmSpec;

std::unique_ptr<Tokenizer> Make(Result<std::unique_ptr<Tokenizer>> r) {
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(*r) : nullptr;
}

std::vector<std::string> Pieces(const Tokenizer& t, const std::vector<TokenId>& ids) {
  std::vector<std::string> out;
  for (TokenId id : ids) out.push_back(t.piece(id));
  return out;
}

using Strs = std::vector<std::string>;
const std::string kMark = "\xE2\x96\x81";

TEST(SpmTokenizer, MergesByScore) {
  auto t = Make(MakeSpmTokenizer(SpmSpec()));
  EXPECT_EQ(t->kind(), TokenizerKind::kSentencePiece);
  EXPECT_EQ(t->name(), "llama");
  EXPECT_EQ(Pieces(*t, t->Encode("hello world", false)), (Strs{kMark + "hello", kMark + "world"}));
  // Without the space prefix: "hello" merges alone; then "▁world".
  VocabSpec spec = SpmSpec();
  spec.add_space_prefix = false;
  auto np = Make(MakeSpmTokenizer(std::move(spec)));
  EXPECT_EQ(Pieces(*np, np->Encode("hello world", false)), (Strs{"hello", kMark + "world"}));
}

TEST(SpmTokenizer, TiesGoLeftmostAndHigherScoreWins) {
  VocabSpec spec = SpmSpec();
  spec.add_space_prefix = false;
  auto t = Make(MakeSpmTokenizer(std::move(spec)));
  // "ab" and "bc" tie at -20: the leftmost merges first.
  EXPECT_EQ(Pieces(*t, t->Encode("abc", false)), (Strs{"ab", "c"}));
  // "ca" (-19) beats "ab" (-20) although it is to the right.
  EXPECT_EQ(Pieces(*t, t->Encode("abca", false)), (Strs{"ab", "ca"}));
  EXPECT_EQ(Pieces(*t, t->Encode("bca", false)), (Strs{"b", "ca"}));
}

TEST(SpmTokenizer, ByteFallbackAndUnknown) {
  auto t = Make(MakeSpmTokenizer(SpmSpec()));
  // "€" is E2 82 AC and no piece; "é" is a piece.
  EXPECT_EQ(Pieces(*t, t->Encode("h\xE2\x82\xAC\xC3\xA9", false)),
            (Strs{kMark, "h", "<0xE2>", "<0x82>", "<0xAC>", "\xC3\xA9"}));
  EXPECT_EQ(Pieces(*t, t->Encode("\xF0\x9F\x98\x80", false)),
            (Strs{kMark, "<0xF0>", "<0x9F>", "<0x98>", "<0x80>"}));
  // An invalid byte is a character of its own and falls back too.
  EXPECT_EQ(Pieces(*t, t->Encode("\xFF", false)), (Strs{kMark, "<0xFF>"}));
  // Without byte pieces: <unk>.
  VocabSpec spec = SpmSpec();
  spec.byte_fallback = false;
  auto nb = Make(MakeSpmTokenizer(std::move(spec)));
  EXPECT_EQ(Pieces(*nb, nb->Encode("h\xE2\x82\xAC", false)), (Strs{kMark, "h", "<unk>"}));
}

TEST(SpmTokenizer, SpecialTokensParsedOrNot) {
  auto t = Make(MakeSpmTokenizer(SpmSpec()));
  // Parsed: the text after a special token gets the space prefix again (llama.cpp).
  EXPECT_EQ(Pieces(*t, t->Encode("<s>hello<|im_end|>", true)),
            (Strs{"<s>", kMark + "hello", "<|im_end|>"}));
  EXPECT_EQ(Pieces(*t, t->Encode("<tool>", true)), (Strs{"<tool>"}));
  const std::vector<TokenId> plain = t->Encode("<s>hello", false);
  for (TokenId id : plain) EXPECT_NE(id, 1);
  EXPECT_EQ(t->Decode(plain), " <s>hello");
}

TEST(SpmTokenizer, DecodeAndPrompt) {
  auto t = Make(MakeSpmTokenizer(SpmSpec()));
  EXPECT_TRUE(t->add_bos());
  const std::vector<TokenId> ids = t->EncodePrompt("hello world", false);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids[0], 1);
  EXPECT_EQ(t->Decode(ids), " hello world");  // BOS renders as nothing
  EXPECT_EQ(t->TokenBytes(*t->FindPiece("<0x0A>")), "\n");
  EXPECT_EQ(t->TokenBytes(-1), "");
  EXPECT_EQ(t->TokenBytes(100000), "");
  EXPECT_EQ(t->piece(100000), "");
  EXPECT_EQ(t->type(1), TokenType::kControl);
  EXPECT_EQ(t->type(5), TokenType::kByte);
  EXPECT_TRUE(t->IsEndOfGeneration(2));
  EXPECT_TRUE(t->IsEndOfGeneration(*t->FindPiece("<|im_end|>")));
  EXPECT_FALSE(t->IsEndOfGeneration(1));
  EXPECT_EQ(t->Encode("", true), std::vector<TokenId>{});
  EXPECT_EQ(t->max_token_bytes(), 6u);  // "<tool>"
}

TEST(SpmTokenizer, LongInputStaysFast) {
  auto t = Make(MakeSpmTokenizer(SpmSpec()));
  std::string text;
  for (int i = 0; i < 20000; ++i) text += "hello world ";
  const std::vector<TokenId> ids = t->Encode(text, false);
  EXPECT_EQ(ids.size(), 40001u);  // two pieces per repeat, then the trailing "▁"
  EXPECT_EQ(t->Decode(ids), " " + text);
}

TEST(Gpt2Tokenizer, MergesByRank) {
  auto t = Make(MakeGpt2Tokenizer(Gpt2Spec()));
  EXPECT_EQ(t->kind(), TokenizerKind::kGpt2);
  EXPECT_EQ(t->name(), "gpt2/llama-bpe");
  const std::string G = testing::ByteChar(' ');
  EXPECT_EQ(Pieces(*t, t->Encode("hello world", false)), (Strs{"hello", G + "world"}));
  // "yz" (rank 9) goes before "xy" (rank 10).
  EXPECT_EQ(Pieces(*t, t->Encode("xyz", false)), (Strs{"x", "yz"}));
  EXPECT_EQ(Pieces(*t, t->Encode("xyxy", false)), (Strs{"xy", "xy"}));
  // Llama-3 splits digits in threes before merging.
  EXPECT_EQ(Pieces(*t, t->Encode("123123", false)), (Strs{"123", "123"}));
  EXPECT_EQ(t->Decode(t->Encode("hello world", false)), "hello world");
}

TEST(Gpt2Tokenizer, BytesRoundTrip) {
  auto t = Make(MakeGpt2Tokenizer(Gpt2Spec()));
  const std::string text = "h\xC3\xA9llo \xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x98\x80\n\t\xFF end";
  EXPECT_EQ(t->Decode(t->Encode(text, false)), text);
  EXPECT_EQ(t->TokenBytes(' '), " ");
  EXPECT_EQ(t->TokenBytes(0x0A), "\n");
}

TEST(Gpt2Tokenizer, SpecialTokensLongestFirst) {
  auto t = Make(MakeGpt2Tokenizer(Gpt2Spec()));
  EXPECT_EQ(Pieces(*t, t->Encode("<|begin_of_text|>hello<|end|>X<|end|>", true)),
            (Strs{"<|begin_of_text|>", "hello", "<|end|>X", "<|end|>"}));
  const std::vector<TokenId> plain = t->Encode("<|end|>", false);
  EXPECT_GT(plain.size(), 1u);
  EXPECT_EQ(t->Decode(plain), "<|end|>");
  // Control tokens decode to nothing; user-defined ones to their text.
  EXPECT_EQ(t->TokenBytes(*t->FindPiece("<|eot_id|>")), "");
  EXPECT_EQ(t->TokenBytes(*t->FindPiece("<tool>")), "<tool>");
  EXPECT_TRUE(t->IsEndOfGeneration(*t->FindPiece("<|eot_id|>")));
  EXPECT_TRUE(t->IsEndOfGeneration(*t->FindPiece("<|end|>")));
  EXPECT_FALSE(t->IsEndOfGeneration(*t->FindPiece("<|end|>X")));
  const std::vector<TokenId> prompt = t->EncodePrompt("hello", false);
  EXPECT_EQ(Pieces(*t, prompt), (Strs{"<|begin_of_text|>", "hello"}));
}

TEST(Gpt2Tokenizer, IgnoreMergesTakesWholeWords) {
  VocabSpec spec = Gpt2Spec();
  // A piece "xyz" that the merges cannot reach (they make "x" + "yz").
  spec.pieces.push_back("xyz");
  spec.types.push_back(TokenType::kNormal);
  spec.ignore_merges = true;
  auto t = Make(MakeGpt2Tokenizer(std::move(spec)));
  EXPECT_EQ(Pieces(*t, t->Encode("xyz", false)), (Strs{"xyz"}));
}

TEST(Gpt2Tokenizer, LongInputStaysFast) {
  auto t = Make(MakeGpt2Tokenizer(Gpt2Spec()));
  // One long word, so the merge loop itself sees 200K symbols.
  std::string text(200000, 'l');
  const std::vector<TokenId> ids = t->Encode(text, false);
  EXPECT_EQ(ids.size(), 100000u);
  EXPECT_EQ(t->Decode(ids), text);
}

// The textbook algorithms, quadratic and obviously right, to check the heap-based loops.
std::vector<std::string> NaiveRankBpe(
    const std::string& word, const std::vector<std::pair<std::string, std::string>>& merges) {
  std::vector<std::string> syms;
  for (char c : word) syms.emplace_back(1, c);
  for (;;) {
    size_t best = SIZE_MAX, at = 0;
    for (size_t i = 0; i + 1 < syms.size(); ++i) {
      for (size_t r = 0; r < merges.size() && r < best; ++r) {
        if (merges[r].first == syms[i] && merges[r].second == syms[i + 1]) {
          best = r;
          at = i;
        }
      }
    }
    if (best == SIZE_MAX) return syms;
    syms[at] += syms[at + 1];
    syms.erase(syms.begin() + static_cast<long>(at) + 1);
  }
}

std::vector<std::string> NaiveScoreBpe(const std::string& text,
                                       const std::map<std::string, float>& scores) {
  std::vector<std::string> syms;
  for (char c : text) syms.emplace_back(1, c);
  for (;;) {
    bool found = false;
    float best = 0;
    size_t at = 0;
    for (size_t i = 0; i + 1 < syms.size(); ++i) {
      auto it = scores.find(syms[i] + syms[i + 1]);
      if (it != scores.end() && (!found || it->second > best)) {
        found = true;
        best = it->second;
        at = i;
      }
    }
    if (!found) return syms;
    syms[at] += syms[at + 1];
    syms.erase(syms.begin() + static_cast<long>(at) + 1);
  }
}

TEST(Gpt2Tokenizer, AgreesWithTextbookBpeOnRandomMerges) {
  std::mt19937 rng(7);
  for (int round = 0; round < 20; ++round) {
    VocabSpec spec;
    for (int b = 0; b < 256; ++b) {
      spec.pieces.push_back(testing::ByteChar(static_cast<uint8_t>(b)));
      spec.types.push_back(TokenType::kNormal);
    }
    std::set<std::string> have = {"a", "b", "c", "d"};
    std::vector<std::string> pool(have.begin(), have.end());
    for (int k = 0; k < 60; ++k) {
      const std::string a = pool[rng() % pool.size()], b = pool[rng() % pool.size()];
      if (a.size() + b.size() > 6 || have.count(a + b)) continue;
      spec.merges.emplace_back(a, b);
      spec.pieces.push_back(a + b);
      spec.types.push_back(TokenType::kNormal);
      have.insert(a + b);
      pool.push_back(a + b);
    }
    const auto merges = spec.merges;
    spec.pre = PreTokenizer::kGpt2;
    auto t = Make(MakeGpt2Tokenizer(std::move(spec)));
    for (int i = 0; i < 200; ++i) {
      std::string word;
      for (size_t n = rng() % 24 + 1; n > 0; --n) word += static_cast<char>('a' + rng() % 4);
      ASSERT_EQ(Pieces(*t, t->Encode(word, false)), NaiveRankBpe(word, merges)) << word;
    }
  }
}

TEST(SpmTokenizer, AgreesWithTextbookScoreMergingOnRandomVocabularies) {
  std::mt19937 rng(11);
  for (int round = 0; round < 20; ++round) {
    VocabSpec spec;
    std::map<std::string, float> scores;
    for (const char* c : {"a", "b", "c", "d"}) scores[c] = -100;
    for (int k = 0; k < 40; ++k) {
      std::string p;
      for (size_t n = rng() % 5 + 2; n > 0; --n) p += static_cast<char>('a' + rng() % 4);
      scores[p] = -static_cast<float>(rng() % 8);  // few distinct values: many ties
    }
    for (const auto& [p, score] : scores) {
      spec.pieces.push_back(p);
      spec.types.push_back(TokenType::kNormal);
      spec.scores.push_back(score);
    }
    std::map<std::string, float> mergeable = scores;
    for (const char* c : {"a", "b", "c", "d"}) mergeable.erase(c);
    auto t = Make(MakeSpmTokenizer(std::move(spec)));
    for (int i = 0; i < 200; ++i) {
      std::string text;
      for (size_t n = rng() % 24 + 1; n > 0; --n) text += static_cast<char>('a' + rng() % 4);
      // Single characters score -100: below every merged piece, so they never win a merge.
      ASSERT_EQ(Pieces(*t, t->Encode(text, false)), NaiveScoreBpe(text, mergeable)) << text;
    }
  }
}

bool IsValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const unicode::Utf8Step st = unicode::DecodeUtf8(s.substr(i));
    if (st.kind != unicode::Utf8Step::kValid) return false;
    i += st.length;
  }
  return true;
}

// Any bytes at all, specials included: every tokenizer gives them back exactly, and streaming
// always yields valid UTF-8 that equals the text whenever the text is valid.
TEST(Tokenizers, RandomBytesRoundTrip) {
  std::mt19937 rng(3);
  auto spm = Make(MakeSpmTokenizer(SpmSpec()));
  auto gpt2 = Make(MakeGpt2Tokenizer(Gpt2Spec()));
  auto qwen = Make(MakeGpt2Tokenizer(Gpt2Spec(PreTokenizer::kQwen2)));
  auto smol = Make(MakeGpt2Tokenizer(Gpt2Spec(PreTokenizer::kSmolLm)));
  auto byte = MakeByteTokenizer();
  const std::vector<std::string> atoms = {"a",
                                          "l",
                                          " ",
                                          "\n",
                                          "1",
                                          "'s",
                                          "\xC3\xA9",
                                          "\xE4\xB8\x96",
                                          "\xF0\x9F\x98\x80",
                                          "\xFF",
                                          "\x80",
                                          "\xE2\x82",
                                          "<s>",
                                          "<|end|>",
                                          "<tool>",
                                          "\t",
                                          "!"};
  for (int i = 0; i < 2000; ++i) {
    std::string text;
    for (size_t n = rng() % 12; n > 0; --n) text += atoms[rng() % atoms.size()];
    for (const Tokenizer* t : {spm.get(), gpt2.get(), qwen.get(), smol.get(), byte.get()}) {
      const std::string expected = t == spm.get() && !text.empty() ? " " + text : text;
      const std::vector<TokenId> ids = t->Encode(text, false);
      ASSERT_EQ(t->Decode(ids), expected) << t->name();
      for (TokenId id : ids) ASSERT_LT(static_cast<uint32_t>(id), t->vocab_size());
      StreamDecoder d(*t);
      std::string streamed;
      for (TokenId id : ids) streamed += d.Push(id);
      streamed += d.Finish();
      ASSERT_TRUE(IsValidUtf8(streamed)) << t->name();
      if (IsValidUtf8(expected)) {
        ASSERT_EQ(streamed, expected) << t->name();
      }
      // Parsing specials changes the tokens, never the crash-freedom or the id range.
      for (TokenId id : t->Encode(text, true))
        ASSERT_LT(static_cast<uint32_t>(id), t->vocab_size());
    }
  }
}

// The contract of the engine's former ByteTokenizer: byte i is token i, 256 BOS, 257 EOS.
TEST(ByteTokenizer, KeepsThePresetsContract) {
  using namespace std::string_literals;
  auto t = MakeByteTokenizer();
  EXPECT_EQ(t->kind(), TokenizerKind::kByte);
  EXPECT_EQ(t->name(), "byte");
  EXPECT_EQ(t->vocab_size(), 258u);
  EXPECT_FALSE(t->add_bos());
  EXPECT_EQ(t->bos(), 256);
  EXPECT_EQ(t->eos(), 257);
  EXPECT_TRUE(t->IsEndOfGeneration(257));
  EXPECT_FALSE(t->IsEndOfGeneration(256));
  const std::string text = "<s>h\xC3\xA9\0\xFF</s>"s;
  std::vector<TokenId> bytes;
  for (char c : text) bytes.push_back(static_cast<uint8_t>(c));
  EXPECT_EQ(t->Encode(text, true), bytes);
  EXPECT_EQ(t->Encode(text, false), bytes);
  std::vector<TokenId> ids = bytes;
  ids.insert(ids.begin(), 256);
  ids.push_back(257);
  ids.push_back(999);
  ids.push_back(-3);
  EXPECT_EQ(t->Decode(ids), text);
  EXPECT_EQ(t->EncodePrompt("ab", true), (std::vector<TokenId>{'a', 'b'}));
  EXPECT_EQ(t->piece(256), "<s>");
  EXPECT_EQ(t->piece(257), "</s>");
  EXPECT_EQ(t->type(256), TokenType::kControl);
  EXPECT_EQ(t->type('a'), TokenType::kByte);
  EXPECT_EQ(t->FindPiece("</s>"), 257);
  EXPECT_EQ(t->max_token_bytes(), 1u);
}

std::string Replacement() {
  return "\xEF\xBF\xBD";
}

TEST(StreamDecoder, HoldsSplitCharacters) {
  auto t = MakeByteTokenizer();
  StreamDecoder d(*t);
  // "é" (C3 A9), then "€" (E2 82 AC), then the 4-byte emoji, byte by byte.
  EXPECT_EQ(d.Push('a'), "a");
  EXPECT_EQ(d.Push(0xC3), "");
  EXPECT_EQ(d.Push(0xA9), "\xC3\xA9");
  EXPECT_EQ(d.Push(0xE2), "");
  EXPECT_EQ(d.Push(0x82), "");
  EXPECT_EQ(d.Push(0xAC), "\xE2\x82\xAC");
  for (int b : {0xF0, 0x9F, 0x98}) EXPECT_EQ(d.Push(b), "");
  EXPECT_EQ(d.Push(0x80), "\xF0\x9F\x98\x80");
  EXPECT_EQ(d.Push(256), "");  // BOS adds nothing
  EXPECT_EQ(d.Finish(), "");
}

TEST(StreamDecoder, InvalidBytesBecomeReplacementAtOnce) {
  auto t = MakeByteTokenizer();
  StreamDecoder d(*t);
  EXPECT_EQ(d.Push(0x80), Replacement());  // a stray continuation byte
  EXPECT_EQ(d.Push(0xFF), Replacement());
  EXPECT_EQ(d.Push(0xC0), Replacement());  // never valid (overlong lead)
  // ED A0 would be a surrogate: ED alone is one maximal subpart, then A0 another.
  EXPECT_EQ(d.Push(0xED), "");
  EXPECT_EQ(d.Push(0xA0), Replacement() + Replacement());
  // An unfinished character followed by ASCII: U+FFFD, then the ASCII.
  EXPECT_EQ(d.Push(0xE2), "");
  EXPECT_EQ(d.Push(0x82), "");
  EXPECT_EQ(d.Push('x'), Replacement() + "x");
  // Held back at the end: one U+FFFD for the unfinished character.
  EXPECT_EQ(d.Push(0xF0), "");
  EXPECT_EQ(d.Push(0x9F), "");
  EXPECT_EQ(d.Finish(), Replacement());
  EXPECT_EQ(d.Finish(), "");
}

TEST(StreamDecoder, CharactersAcrossMultiByteTokens) {
  auto t = Make(MakeSpmTokenizer(SpmSpec()));
  const std::vector<TokenId> ids = t->Encode("\xF0\x9F\x98\x80h\xE2\x82\xAC", false);
  StreamDecoder d(*t);
  std::string out;
  std::vector<std::string> steps;
  for (TokenId id : ids) {
    steps.push_back(d.Push(id));
    out += steps.back();
  }
  out += d.Finish();
  EXPECT_EQ(out, " \xF0\x9F\x98\x80h\xE2\x82\xAC");
  // The emoji's four byte tokens give nothing until the last.
  ASSERT_EQ(steps.size(), 9u);
  EXPECT_EQ(steps[1], "");
  EXPECT_EQ(steps[3], "");
  EXPECT_EQ(steps[4], "\xF0\x9F\x98\x80");
}

}  // namespace
}  // namespace strata::tokenizer
