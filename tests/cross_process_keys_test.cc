// Block keys are identical across processes: `strata keys` run as two separate
// processes prints the same keys as this process computes.
#include <algorithm>
#include <array>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "strata/block_key.h"

namespace strata {
namespace {

std::string RunCommand(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  EXPECT_EQ(pclose(p), 0) << cmd;
  return out;
}

TEST(CrossProcessKeysTest, TwoProcessesAndThisOneAgree) {
  const std::string config = testing::TempDir() + "/cross_process_keys.toml";
  {
    std::ofstream f(config);
    f << "[model]\nfingerprint = \"llama-3-8b@golden\"\n"
         "[layout]\nnum_layers = 32\nnum_kv_heads = 8\nhead_dim = 128\ndtype = \"bf16\"\n"
         "tokens_per_block = 16\n";
  }
  for (const char* hash : {"sha256", "xxh3_128"}) {
    const std::string cmd = std::string(STRATA_CLI) + " keys --config " + config +
                            " --salt tenant-a --hash " + hash + " --range 1000";
    const std::string first = RunCommand(cmd);
    const std::string second = RunCommand(cmd);
    ASSERT_FALSE(first.empty());
    EXPECT_EQ(first, second);

    KeyNamespace ns{.model_fingerprint = "llama-3-8b@golden",
                    .layout = {.num_layers = 32,
                               .num_kv_heads = 8,
                               .head_dim = 128,
                               .dtype = DType::kBFloat16,
                               .tokens_per_block = 16},
                    .cache_salt = "tenant-a",
                    .algorithm = *ParseHashAlgorithm(hash)};
    std::vector<TokenId> tokens(1000);
    for (int i = 0; i < 1000; ++i) tokens[i] = i;
    std::string expected;
    for (const BlockKey& k : BlockKeyer(ns).ComputeKeys(tokens)) expected += k.ToHex() + "\n";
    EXPECT_EQ(first, expected) << hash;
    EXPECT_EQ(std::count(first.begin(), first.end(), '\n'), 62);  // 1000 / 16 full blocks
  }
}

}  // namespace
}  // namespace strata
