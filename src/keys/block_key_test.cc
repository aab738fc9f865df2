// Block keys: golden vectors, chaining, salting, partial blocks, both hash algorithms.
#include "strata/block_key.h"

#include <fstream>
#include <map>
#include <numeric>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

namespace strata {
namespace {

KvLayout Llama8B() {
  return KvLayout{.num_layers = 32,
                  .num_kv_heads = 8,
                  .head_dim = 128,
                  .dtype = DType::kBFloat16,
                  .tokens_per_block = 16};
}

KeyNamespace BaseNs() {
  return KeyNamespace{.model_fingerprint = "llama-3-8b@golden", .layout = Llama8B()};
}

std::vector<TokenId> Iota(size_t n, TokenId start = 0) {
  std::vector<TokenId> t(n);
  std::iota(t.begin(), t.end(), start);
  return t;
}

// tests/data/golden_block_keys.txt: "<case> <root|i> <hex>", written once by the
// independent Python reference (tests/reference/block_keys.py). Keys never change silently.
std::map<std::string, std::vector<std::string>> LoadGolden() {
  std::ifstream in(STRATA_TEST_DATA_DIR "/golden_block_keys.txt");
  std::map<std::string, std::vector<std::string>> golden;
  std::string name, index, hex;
  while (in >> name >> index >> hex) golden[name].push_back(hex);
  return golden;
}

std::vector<std::string> Hexes(const BlockKeyer& keyer, const std::vector<TokenId>& tokens) {
  std::vector<std::string> out{keyer.root().ToHex()};
  for (const BlockKey& k : keyer.ComputeKeys(tokens)) out.push_back(k.ToHex());
  return out;
}

TEST(BlockKeyTest, GoldenVectors) {
  auto golden = LoadGolden();
  ASSERT_EQ(golden.size(), 3u) << "golden file missing or incomplete";
  std::vector<TokenId> tokens = Iota(48);
  tokens.insert(tokens.end(), 5, 7);  // a partial trailing block: no key
  tokens[20] = -1;

  EXPECT_EQ(Hexes(BlockKeyer(BaseNs()), tokens), golden["base"]);

  KeyNamespace salted = BaseNs();
  salted.rank = 1;
  salted.world_size = 2;
  salted.lora_id = "adapter-x";
  salted.cache_salt = "tenant-a";
  EXPECT_EQ(Hexes(BlockKeyer(salted), tokens), golden["salted"]);

  KeyNamespace xxh = BaseNs();
  xxh.algorithm = HashAlgorithm::kXxh3_128;
  EXPECT_EQ(Hexes(BlockKeyer(xxh), tokens), golden["xxh3"]);
}

TEST(BlockKeyTest, PartialTrailingBlockGetsNoKey) {
  BlockKeyer keyer(BaseNs());
  EXPECT_EQ(keyer.ComputeKeys(Iota(15)).size(), 0u);
  EXPECT_EQ(keyer.ComputeKeys(Iota(16)).size(), 1u);
  EXPECT_EQ(keyer.ComputeKeys(Iota(47)).size(), 2u);
  // The partial block's tokens do not influence the full blocks' keys.
  EXPECT_EQ(keyer.ComputeKeys(Iota(47)), keyer.ComputeKeys(Iota(32)));
}

TEST(BlockKeyTest, KeysArePrefixStable) {
  BlockKeyer keyer(BaseNs());
  auto long_keys = keyer.ComputeKeys(Iota(16 * 10));
  auto short_keys = keyer.ComputeKeys(Iota(16 * 4));
  ASSERT_EQ(long_keys.size(), 10u);
  EXPECT_TRUE(std::equal(short_keys.begin(), short_keys.end(), long_keys.begin()));
}

// Changing any namespace field changes the root and therefore every key.
TEST(BlockKeyTest, EveryNamespaceFieldSaltsEveryKey) {
  const auto tokens = Iota(16 * 6);
  const auto base = BlockKeyer(BaseNs()).ComputeKeys(tokens);
  std::vector<KeyNamespace> variants;
  auto v = BaseNs();
  v.cache_salt = "tenant-b";
  variants.push_back(v);
  v = BaseNs();
  v.model_fingerprint = "llama-3-8b@other";
  variants.push_back(v);
  v = BaseNs();
  v.world_size = 2;
  variants.push_back(v);
  v = BaseNs();
  v.world_size = 2;
  v.rank = 1;
  variants.push_back(v);
  v = BaseNs();
  v.lora_id = "sql-adapter";
  variants.push_back(v);
  v = BaseNs();
  v.layout.dtype = DType::kFloat16;
  variants.push_back(v);
  v = BaseNs();
  v.algorithm = HashAlgorithm::kXxh3_128;
  variants.push_back(v);
  // Length-prefixed fields: moving a character between fields is a different namespace.
  KeyNamespace a = BaseNs(), b = BaseNs();
  a.lora_id = "ab";
  a.cache_salt = "c";
  b.lora_id = "a";
  b.cache_salt = "bc";
  EXPECT_NE(BlockKeyer(a).root(), BlockKeyer(b).root());

  std::set<BlockKey> all(base.begin(), base.end());
  for (const auto& ns : variants) {
    const auto keys = BlockKeyer(ns).ComputeKeys(tokens);
    ASSERT_EQ(keys.size(), base.size());
    for (size_t i = 0; i < keys.size(); ++i) EXPECT_NE(keys[i], base[i]) << "block " << i;
    all.insert(keys.begin(), keys.end());
  }
  EXPECT_EQ(all.size(), base.size() * (variants.size() + 1));  // no two keys collide
}

TEST(BlockKeyTest, ChangingATokenChangesThatKeyAndEveryLaterOne) {
  for (HashAlgorithm alg : {HashAlgorithm::kSha256, HashAlgorithm::kXxh3_128}) {
    KeyNamespace ns = BaseNs();
    ns.algorithm = alg;
    BlockKeyer keyer(ns);
    auto tokens = Iota(16 * 8);
    const auto base = keyer.ComputeKeys(tokens);
    tokens[16 * 3 + 5] += 1;  // a token of block 3
    const auto changed = keyer.ComputeKeys(tokens);
    for (size_t i = 0; i < 3; ++i) EXPECT_EQ(changed[i], base[i]) << "block " << i;
    for (size_t i = 3; i < 8; ++i) EXPECT_NE(changed[i], base[i]) << "block " << i;
  }
}

TEST(BlockKeyTest, BlocksOfEqualTokensAtDifferentPositionsDiffer) {
  BlockKeyer keyer(BaseNs());
  const auto keys = keyer.ComputeKeys(std::vector<TokenId>(16 * 4, 42));
  EXPECT_EQ(std::set<BlockKey>(keys.begin(), keys.end()).size(), 4u);
}

TEST(BlockKeyTest, NextChainsFromRoot) {
  BlockKeyer keyer(BaseNs());
  auto tokens = Iota(32);
  auto keys = keyer.ComputeKeys(tokens);
  BlockKey k0 = keyer.Next(keyer.root(), std::span(tokens).first(16));
  EXPECT_EQ(k0, keys[0]);
  EXPECT_EQ(keyer.Next(k0, std::span(tokens).subspan(16, 16)), keys[1]);
}

TEST(BlockKeyTest, HexRoundTripAndErrors) {
  BlockKey k = BlockKeyer(BaseNs()).root();
  auto back = BlockKey::FromHex(k.ToHex());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, k);
  EXPECT_EQ(BlockKey::FromHex("abc").status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(BlockKey::FromHex(std::string(63, '0') + "g").ok());
}

TEST(BlockKeyTest, NamespaceValidation) {
  KeyNamespace ns = BaseNs();
  ns.model_fingerprint.clear();
  EXPECT_FALSE(BlockKeyer::Create(ns).ok());
  ns = BaseNs();
  ns.rank = 2;
  ns.world_size = 2;
  auto r = BlockKeyer::Create(ns);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("rank 2"), std::string::npos);
  ns = BaseNs();
  ns.layout.tokens_per_block = 0;
  EXPECT_NE(BlockKeyer::Create(ns).status().message().find("tokens_per_block"), std::string::npos);
}

TEST(BlockKeyTest, ParseHashAlgorithm) {
  EXPECT_EQ(*ParseHashAlgorithm("sha256"), HashAlgorithm::kSha256);
  EXPECT_EQ(*ParseHashAlgorithm("xxh3_128"), HashAlgorithm::kXxh3_128);
  EXPECT_FALSE(ParseHashAlgorithm("md5").ok());
}

}  // namespace
}  // namespace strata
