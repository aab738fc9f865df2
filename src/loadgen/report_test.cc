#include "loadgen/report.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace strata::loadgen {
namespace {

TEST(LoadgenReportTest, NearestRankPercentiles) {
  std::vector<double> v;
  for (int i = 100; i >= 1; --i) v.push_back(i);
  const Percentiles p = ComputePercentiles(v);
  EXPECT_EQ(p.count, 100u);
  EXPECT_DOUBLE_EQ(p.mean, 50.5);
  EXPECT_DOUBLE_EQ(p.p50, 50);
  EXPECT_DOUBLE_EQ(p.p90, 90);
  EXPECT_DOUBLE_EQ(p.p99, 99);
  EXPECT_DOUBLE_EQ(p.max, 100);
  EXPECT_EQ(ComputePercentiles({}).count, 0u);
  EXPECT_DOUBLE_EQ(ComputePercentiles({7}).p99, 7);
}

std::vector<RequestRecord> Records() {
  std::vector<RequestRecord> r(3);
  r[0] = {.user_id = 1,
          .question_id = 1,
          .launch_s = 0,
          .finish_s = 2,
          .ok = true,
          .ttft_s = 0.5,
          .generation_s = 1.5,
          .prompt_tokens = 100,
          .completion_tokens = 10,
          .cached_tokens = 0,
          .chunk_gaps_s = {0.1, 0.2}};
  r[1] = {.user_id = 1,
          .question_id = 2,
          .launch_s = 3,
          .finish_s = 4,
          .ok = true,
          .ttft_s = 0.1,
          .generation_s = 0.9,
          .prompt_tokens = 300,
          .completion_tokens = 10,
          .cached_tokens = 200,
          .chunk_gaps_s = {0.3}};
  r[2] = {.user_id = 2,
          .question_id = 1,
          .launch_s = 1,
          .finish_s = 1.5,
          .ok = false,
          .error = "HTTP 400: bad, \"quoted\""};
  return r;
}

TEST(LoadgenReportTest, SummaryCountsOnlySuccessfulRequestsInLatencies) {
  const auto records = Records();
  const RunSummary s = Summarize(records, "x");
  EXPECT_EQ(s.requests, 3u);
  EXPECT_EQ(s.failed, 1u);
  EXPECT_DOUBLE_EQ(s.wall_s, 4);
  EXPECT_EQ(s.ttft.count, 2u);
  EXPECT_DOUBLE_EQ(s.ttft.mean, 0.3);
  EXPECT_EQ(s.itl.count, 3u);
  EXPECT_DOUBLE_EQ(s.itl.max, 0.3);
  EXPECT_DOUBLE_EQ(s.input_tokens_per_s, 100);
  EXPECT_DOUBLE_EQ(s.output_tokens_per_s, 5);
  EXPECT_DOUBLE_EQ(s.cached_token_fraction, 0.5);
  EXPECT_EQ(s.first_error, "HTTP 400: bad, \"quoted\"");
  const std::string text = FormatSummary(s);
  EXPECT_NE(text.find("TTFT: mean 300.0 ms"), std::string::npos) << text;
  EXPECT_NE(text.find("n/a"), std::string::npos);
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/strata-loadgen-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string operator/(const std::string& f) const { return path_ + "/" + f; }

 private:
  std::string path_;
};

std::string Slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(LoadgenReportTest, CsvJsonAndSvgFiles) {
  TempDir dir;
  const auto records = Records();
  RunSummary s = Summarize(records, "G2+G3");
  s.tiers = TierHits{.prompt_blocks = 10, .host_blocks = 5, .disk_blocks = 2};
  ASSERT_TRUE(WriteCsv(dir / "r.csv", records).ok());
  const std::string csv = Slurp(dir / "r.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 4);
  EXPECT_NE(csv.find("\"HTTP 400: bad, \"\"quoted\"\"\""), std::string::npos) << csv;
  EXPECT_NE(csv.find("1,2,3.000000,4.000000,1,0.100000"), std::string::npos) << csv;

  ASSERT_TRUE(WriteJson(dir / "r.json", s, records, R"({"num_users": 2})").ok());
  const auto j = nlohmann::json::parse(Slurp(dir / "r.json"));
  EXPECT_EQ(j["config"]["num_users"], 2);
  EXPECT_EQ(j["summary"]["failed"], 1);
  EXPECT_DOUBLE_EQ(j["summary"]["tier_hit_rate"]["host"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(j["summary"]["ttft_s"]["p50"].get<double>(), 0.1);
  EXPECT_EQ(j["requests"].size(), 3u);

  const PlotSeries series[] = {{"off", records}, {"G2+G3", records}};
  const std::string svg = RenderTtftSvg(series, "t <&> t");
  EXPECT_TRUE(svg.starts_with("<svg"));
  EXPECT_TRUE(svg.ends_with("</svg>\n"));
  EXPECT_NE(svg.find("t &lt;&amp;&gt; t"), std::string::npos);
  // One dot per successful request per series, one CDF path per series.
  size_t dots = 0, paths = 0;
  for (size_t p = svg.find("<circle"); p != std::string::npos; p = svg.find("<circle", p + 1))
    ++dots;
  for (size_t p = svg.find("<path"); p != std::string::npos; p = svg.find("<path", p + 1)) ++paths;
  EXPECT_EQ(dots, 4u);
  EXPECT_EQ(paths, 2u);
  const RunSummary runs[] = {s, s};
  const std::string bars = RenderTtftBarsSvg(runs, "compare");
  EXPECT_NE(bars.find("p99"), std::string::npos);
}

TEST(LoadgenReportTest, PrometheusValuesByNameAndLabels) {
  const std::string text =
      "# HELP strata_match_hit_blocks_total Prompt blocks.\n"
      "# TYPE strata_match_hit_blocks_total counter\n"
      "strata_match_hit_blocks_total{tier=\"host\"} 40\n"
      "strata_match_hit_blocks_total{tier=\"disk\"} 2.5e1\n"
      "strata_match_prompt_blocks_total 100\n"
      "strata_match_prompt_blocks_total_extra 7\n"
      "strata_bytes_total{path=\"g2_to_g1\",x=\"a\\\"b\"} 3\n"
      "strata_bytes_total{path=\"g3_to_g2\"} 4\n";
  EXPECT_EQ(PrometheusValue(text, "strata_match_prompt_blocks_total"), 100);
  EXPECT_EQ(PrometheusValue(text, "strata_match_hit_blocks_total"), 65);
  EXPECT_EQ(PrometheusValue(text, "strata_match_hit_blocks_total", {{"tier", "disk"}}), 25);
  EXPECT_EQ(PrometheusValue(text, "strata_bytes_total", {{"x", "a\"b"}}), 3);
  EXPECT_FALSE(PrometheusValue(text, "strata_missing").has_value());
  EXPECT_FALSE(PrometheusValue(text, "strata_match_hit_blocks_total", {{"tier", "shared"}}));

  const auto before = ReadTierCounters(text);
  ASSERT_TRUE(before.has_value());
  TierHits after = *before;
  after.prompt_blocks += 10;
  after.host_blocks += 6;
  after.disk_blocks += 3;
  const TierHits d = Delta(after, *before);
  EXPECT_DOUBLE_EQ(d.host_rate(), 0.6);
  EXPECT_DOUBLE_EQ(d.disk_rate(), 0.3);
  EXPECT_FALSE(ReadTierCounters("other_metric 1\n").has_value());
}

}  // namespace
}  // namespace strata::loadgen
