// `strata bench compare` end to end with the tiny preset: three real `strata serve`
// processes (Strata off, G2 only, G2+G3) under a short multi-round QA each. Checks the
// files a comparison leaves and that the Strata runs reuse KV while the baseline cannot.
// Timing is not asserted (see docs/benchmarks.md for the measured comparison).
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#ifndef STRATA_CLI
#error "STRATA_CLI must name the strata binary"
#endif

namespace {

namespace fs = std::filesystem;

std::string Slurp(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(BenchCompareE2eTest, ThreeServersOneWorkloadTableAndPlots) {
  char tmpl[] = "/tmp/strata-bench-compare-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const fs::path dir = tmpl;
  const std::string cmd =
      std::string(STRATA_CLI) + " bench compare --output-dir " + dir.string() +
      " --preset tiny --device-cache-gb 0.001 --host-gb 0.002 --disk-gb 0.0625"
      " --num-users 2 --num-rounds 3 --qps 4 --shared-system-prompt 30"
      " --user-history-prompt 10 --answer-len 4 --time 3 --warmup 1 --no-progress"
      " > " +
      (dir / "out.txt").string() + " 2>&1";
  const int rc = std::system(cmd.c_str());
  const std::string out = Slurp(dir / "out.txt");
  ASSERT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << out;

  for (const char* f : {"compare.md", "compare.json", "compare.svg", "compare-bars.svg", "off.csv",
                        "g2.csv", "g2-g3.csv", "off.svg", "g2-g3.json", "off.serve.log"})
    EXPECT_TRUE(fs::exists(dir / f)) << f << "\n" << out;
  EXPECT_FALSE(fs::exists(dir / "g3-cache")) << "the G3 tier of the run is removed";

  const std::string table = Slurp(dir / "compare.md");
  for (const char* label : {"| Strata off |", "| G2 only |", "| G2+G3 |"})
    EXPECT_NE(table.find(label), std::string::npos) << table;

  const auto j = nlohmann::json::parse(Slurp(dir / "compare.json"));
  ASSERT_EQ(j["runs"].size(), 3u);
  for (const auto& run : j["runs"]) {
    EXPECT_GT(run["requests"].get<int>(), 0) << run;
    EXPECT_EQ(run["failed"].get<int>(), 0) << run << "\n" << out;
  }
  // Later rounds resend the history: with Strata it comes from the cache, without it
  // every token is computed.
  EXPECT_EQ(j["runs"][0]["cached_token_fraction"].get<double>(), 0.0);
  EXPECT_GT(j["runs"][1]["cached_token_fraction"].get<double>(), 0.0);
  EXPECT_GT(j["runs"][2]["cached_token_fraction"].get<double>(), 0.0);
  fs::remove_all(dir);
}

}  // namespace
