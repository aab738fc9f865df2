// StrataMetrics over a real BlockManager (G2, and G2+G3): values derived from
// BlockManagerStats, latency and request histograms, `promtool check metrics` on the real
// exposition, the metric names the Grafana dashboard queries, and MetricsServer.
#include "metrics/strata_metrics.h"

#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "metrics/metrics_server.h"
#include "metrics/metrics_test_util.h"

namespace strata::metrics {
namespace {

using test::Sample;

std::shared_ptr<StrataMetrics> NewMetrics() {
  auto m = StrataMetrics::Create();
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return m.ok() ? *m : nullptr;
}

TEST(StrataMetricsTest, WithoutBlockManagerEverySeriesIsZero) {
  auto metrics = NewMetrics();
  ASSERT_TRUE(metrics);
  const std::string text = metrics->Render();
  EXPECT_EQ(Sample(text, "strata_enabled"), 0.0);
  EXPECT_EQ(Sample(text, "kvbm_matched_tokens"), 0.0);
  EXPECT_EQ(Sample(text, "kvbm_host_cache_hit_rate"), 0.0);
  EXPECT_EQ(Sample(text, "strata_bytes_total{path=\"disk_to_device\"}"), 0.0);
  EXPECT_EQ(Sample(text, "strata_ttft_seconds_count"), 0.0);
  EXPECT_NE(text.find("# TYPE kvbm_offload_blocks_d2h counter\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE strata_load_seconds histogram\n"), std::string::npos);
}

TEST(StrataMetricsTest, HostTierCountersMirrorStats) {
  auto metrics = NewMetrics();
  ASSERT_TRUE(metrics);
  auto m = test::MakeManager(64, "", metrics);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  manager_test::EmulatedDevice device(test::TestLayout(), 32);
  ASSERT_TRUE((*m)->RegisterDeviceCache(device.cache).ok());
  metrics->AttachBlockManager(m->get());
  const size_t matched = test::Exercise(**m, device);
  EXPECT_EQ(matched, 64u);

  const std::string text = metrics->Render();
  const double bb = test::TestLayout().block_bytes();
  EXPECT_EQ(Sample(text, "strata_enabled"), 1.0);
  EXPECT_EQ(Sample(text, "kvbm_matched_tokens"), 64.0);
  EXPECT_EQ(Sample(text, "kvbm_offload_blocks_d2h"), 8.0);
  EXPECT_EQ(Sample(text, "kvbm_offload_blocks_h2d"), 0.0);
  EXPECT_EQ(Sample(text, "kvbm_onboard_blocks_h2d"), 8.0);
  EXPECT_EQ(Sample(text, "kvbm_onboard_blocks_d2d"), 0.0);
  EXPECT_EQ(Sample(text, "kvbm_host_cache_hit_rate"), 1.0);
  EXPECT_EQ(Sample(text, "kvbm_disk_cache_hit_rate"), 0.0);
  EXPECT_EQ(Sample(text, "strata_bytes_total{path=\"device_to_host\"}"), 8 * bb);
  EXPECT_EQ(Sample(text, "strata_bytes_total{path=\"host_to_device\"}"), 8 * bb);
  EXPECT_EQ(Sample(text, "strata_bytes_total{path=\"disk_to_device\"}"), 0.0);
  EXPECT_EQ(Sample(text, "strata_tier_capacity_blocks{tier=\"host\"}"), 64.0);
  EXPECT_EQ(Sample(text, "strata_tier_used_blocks{tier=\"host\"}"), 8.0);
  EXPECT_EQ(Sample(text, "strata_tier_used_bytes{tier=\"host\"}"), 8 * bb);
  EXPECT_EQ(Sample(text, "strata_tier_capacity_blocks{tier=\"disk\"}"), 0.0);
  EXPECT_EQ(Sample(text, "strata_store_blocks_total{result=\"stored\"}"), 8.0);
  EXPECT_EQ(Sample(text, "strata_loads_total"), 1.0);
  EXPECT_EQ(Sample(text, "strata_stores_total"), 2.0);  // two stores of 4 blocks
  EXPECT_EQ(Sample(text, "strata_match_prompt_blocks_total"), 8.0);
  EXPECT_EQ(Sample(text, "strata_match_hit_blocks_total{tier=\"host\"}"), 8.0);
  EXPECT_EQ(Sample(text, "strata_block_size_bytes"), bb);
  EXPECT_EQ(Sample(text, "strata_load_errors_total{reason=\"other\"}"), 0.0);
  // The BlockManager fed the latency histograms through BlockManagerObserver.
  EXPECT_EQ(Sample(text, "strata_load_seconds_count{source=\"host\"}"), 1.0);
  EXPECT_EQ(Sample(text, "strata_load_seconds_count{source=\"disk\"}"), 0.0);
  EXPECT_GE(Sample(text, "strata_store_seconds_count").value_or(0), 1.0);

  // Detached (the manager is about to go away): counters keep their last value.
  metrics->AttachBlockManager(nullptr);
  m->reset();
  const std::string after = metrics->Render();
  EXPECT_EQ(Sample(after, "strata_enabled"), 0.0);
  EXPECT_EQ(Sample(after, "kvbm_matched_tokens"), 64.0);
}

TEST(StrataMetricsTest, DiskTierCountersMirrorStats) {
  test::TempDir dir;
  ASSERT_FALSE(dir.path.empty());
  auto metrics = NewMetrics();
  ASSERT_TRUE(metrics);
  // G2 holds 4 of the 8 blocks: the first 4 are evicted and found on G3.
  auto m = test::MakeManager(4, dir.path, metrics);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  manager_test::EmulatedDevice device(test::TestLayout(), 32);
  ASSERT_TRUE((*m)->RegisterDeviceCache(device.cache).ok());
  metrics->AttachBlockManager(m->get());
  EXPECT_EQ(test::Exercise(**m, device), 64u);

  const BlockManagerStats s = (*m)->stats();
  const std::string text = metrics->Render();
  const double bb = test::TestLayout().block_bytes();
  ASSERT_GT(s.match_hit_blocks_disk, 0u);
  EXPECT_EQ(Sample(text, "kvbm_offload_blocks_h2d"), 8.0);
  EXPECT_EQ(Sample(text, "kvbm_onboard_blocks_d2d"), double(s.loaded_blocks_from_disk));
  EXPECT_EQ(Sample(text, "kvbm_onboard_blocks_h2d"),
            double(s.loaded_blocks - s.loaded_blocks_from_disk));
  EXPECT_EQ(Sample(text, "kvbm_disk_cache_hit_rate"), double(s.match_hit_blocks_disk) / 8);
  EXPECT_EQ(Sample(text, "kvbm_host_cache_hit_rate"), double(s.match_hit_blocks_host) / 8);
  EXPECT_EQ(Sample(text, "strata_bytes_total{path=\"host_to_disk\"}"), 8 * bb);
  EXPECT_EQ(Sample(text, "strata_bytes_total{path=\"disk_to_device\"}"),
            s.loaded_blocks_from_disk * bb);
  EXPECT_EQ(Sample(text, "strata_tier_capacity_blocks{tier=\"disk\"}"),
            double(s.disk_capacity_blocks));
  EXPECT_GT(Sample(text, "strata_tier_capacity_blocks{tier=\"disk\"}").value_or(0), 0.0);
  EXPECT_GT(Sample(text, "strata_evictions_total{tier=\"host\"}").value_or(0), 0.0);
  EXPECT_EQ(Sample(text, "strata_load_seconds_count{source=\"disk\"}"), 1.0);
  metrics->AttachBlockManager(nullptr);
}

TEST(StrataMetricsTest, ServerObserverFeedsRequestMetrics) {
  auto metrics = NewMetrics();
  ASSERT_TRUE(metrics);
  server::RequestStats ok;
  ok.endpoint = "/v1/chat/completions";
  ok.status = 200;
  ok.finish_reason = engine::FinishReason::kLength;
  ok.prompt_tokens = 100;
  ok.cached_tokens = 64;
  ok.completion_tokens = 3;
  ok.ttft_seconds = 0.2;
  ok.inter_token_seconds = {0.01, 0.02};
  ok.duration_seconds = 0.25;
  metrics->OnRequestDone(ok);
  metrics->OnRequestDone(ok);
  server::RequestStats bad;
  bad.endpoint = "/v1/completions";
  bad.status = 400;
  metrics->OnRequestDone(bad);

  const std::string text = metrics->Render();
  EXPECT_EQ(Sample(text, "strata_requests_total{endpoint=\"/v1/chat/completions\",status=\"200\"}"),
            2.0);
  EXPECT_EQ(Sample(text, "strata_requests_total{endpoint=\"/v1/completions\",status=\"400\"}"),
            1.0);
  EXPECT_EQ(Sample(text, "strata_request_finish_reasons_total{reason=\"length\"}"), 2.0);
  EXPECT_EQ(Sample(text, "strata_prompt_tokens_total"), 200.0);
  EXPECT_EQ(Sample(text, "strata_cached_tokens_total"), 128.0);
  EXPECT_EQ(Sample(text, "strata_completion_tokens_total"), 6.0);
  EXPECT_EQ(Sample(text, "strata_ttft_seconds_count"), 2.0);
  EXPECT_EQ(Sample(text, "strata_ttft_seconds_bucket{le=\"0.15\"}"), 0.0);
  EXPECT_EQ(Sample(text, "strata_ttft_seconds_bucket{le=\"0.2\"}"), 2.0);
  EXPECT_EQ(Sample(text, "strata_inter_token_latency_seconds_count"), 4.0);
  EXPECT_EQ(Sample(text, "strata_inter_token_latency_seconds_bucket{le=\"0.01\"}"), 2.0);
  EXPECT_EQ(Sample(text, "strata_request_duration_seconds_count"), 2.0);  // 2xx only
}

TEST(StrataMetricsTest, LatencyObserverSplitsLoadsBySource) {
  auto metrics = NewMetrics();
  ASSERT_TRUE(metrics);
  BlockManagerObserver& obs = *metrics;
  obs.OnLoadDone(0.0003, 4, 0, 0);
  obs.OnLoadDone(0.02, 4, 2, 0);
  obs.OnStoreDone(0.001, 4);
  const std::string text = metrics->Render();
  EXPECT_EQ(Sample(text, "strata_load_seconds_count{source=\"host\"}"), 1.0);
  EXPECT_EQ(Sample(text, "strata_load_seconds_bucket{source=\"host\",le=\"0.0005\"}"), 1.0);
  EXPECT_EQ(Sample(text, "strata_load_seconds_count{source=\"disk\"}"), 1.0);
  EXPECT_EQ(Sample(text, "strata_load_seconds_bucket{source=\"disk\",le=\"0.01\"}"), 0.0);
  EXPECT_EQ(Sample(text, "strata_store_seconds_bucket{le=\"0.001\"}"), 1.0);
}

// A StrataMetrics with every kind of series populated: a real G2+G3 manager, requests.
std::string PopulatedExposition() {
  test::TempDir dir;
  auto metrics = NewMetrics();
  auto m = test::MakeManager(4, dir.path, metrics);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  if (!m.ok()) return "";
  manager_test::EmulatedDevice device(test::TestLayout(), 32);
  EXPECT_TRUE((*m)->RegisterDeviceCache(device.cache).ok());
  metrics->AttachBlockManager(m->get());
  test::Exercise(**m, device);
  server::RequestStats r;
  r.endpoint = "/v1/completions";
  r.status = 200;
  r.finish_reason = engine::FinishReason::kStop;
  r.prompt_tokens = 10;
  r.completion_tokens = 2;
  r.ttft_seconds = 0.1;
  r.inter_token_seconds = {0.01};
  r.duration_seconds = 0.2;
  metrics->OnRequestDone(r);
  std::string text = metrics->Render();
  metrics->AttachBlockManager(nullptr);
  return text;
}

// Runs `command` with `input` on its stdin; returns its exit status and output.
std::pair<int, std::string> RunWithInput(const std::string& command, const std::string& input,
                                         const std::string& dir) {
  const std::string in = dir + "/input.txt", out = dir + "/output.txt";
  std::ofstream(in) << input;
  const int rc = std::system((command + " < '" + in + "' > '" + out + "' 2>&1").c_str());
  std::ifstream f(out);
  std::stringstream ss;
  ss << f.rdbuf();
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, ss.str()};
}

TEST(StrataMetricsTest, PromtoolAcceptsTheExposition) {
  if (std::system("command -v promtool > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "promtool not installed (Debian package prometheus)";
  const std::string text = PopulatedExposition();
  ASSERT_FALSE(text.empty());
  test::TempDir dir;
  auto [rc, out] = RunWithInput("promtool check metrics", text, dir.path);
  // The only lint allowed: Dynamo's kvbm_* counter names lack "_total", and we keep them
  // exactly as Dynamo's users know them. A parse error or any other lint fails.
  std::istringstream lines(out);
  std::string line;
  int problems = 0;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    const bool kvbm_total = line.starts_with("kvbm_") &&
                            line.find("should have \"_total\" suffix") != std::string::npos;
    if (!kvbm_total) {
      ++problems;
      ADD_FAILURE() << "promtool: " << line;
    }
  }
  if (problems == 0 && rc != 0) {
    EXPECT_NE(out.find("kvbm_"), std::string::npos) << "promtool exit " << rc << ":\n" << out;
  }
  // And a parse error is reported (so the check above is not vacuous).
  auto [bad_rc, bad_out] =
      RunWithInput("promtool check metrics", "# TYPE x counter\nx{a=\"1} 1\n", dir.path);
  EXPECT_NE(bad_rc, 0) << bad_out;
}

// Metric names referenced by a PromQL expression: identifiers that are not functions,
// keywords, label names/values, durations or Grafana variables.
std::set<std::string> MetricNamesIn(std::string expr) {
  // Drop string literals, label matchers, range/subquery selectors, and grouping clauses.
  expr = std::regex_replace(expr, std::regex(R"("(\\.|[^"\\])*")"), " ");
  expr = std::regex_replace(expr, std::regex(R"(\{[^}]*\})"), " ");
  expr = std::regex_replace(expr, std::regex(R"(\[[^\]]*\])"), " ");
  expr = std::regex_replace(
      expr, std::regex(R"(\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\))"), " ");
  expr = std::regex_replace(expr, std::regex(R"(\$\{?\w+\}?)"), " ");
  static const std::set<std::string> kKeywords = {
      "by", "without", "on",     "ignoring", "group_left", "group_right", "bool", "and",
      "or", "unless",  "offset", "inf",      "nan",        "Inf",         "NaN"};
  std::set<std::string> names;
  const std::regex ident(R"([A-Za-z_:][A-Za-z0-9_:]*(\s*\()?)");
  for (auto it = std::sregex_iterator(expr.begin(), expr.end(), ident);
       it != std::sregex_iterator(); ++it) {
    const std::string tok = (*it)[0];
    if (tok.back() == '(') continue;  // a function call
    // A token right after a digit is a number's exponent or a duration unit (1e3, 5m).
    const auto pos = it->position(0);
    if (pos > 0 && std::isdigit(static_cast<unsigned char>(expr[pos - 1]))) continue;
    if (kKeywords.count(tok)) continue;
    names.insert(tok);
  }
  return names;
}

TEST(DashboardTest, MetricNameExtraction) {
  EXPECT_EQ(MetricNamesIn("histogram_quantile(0.99, sum by (le) (rate(strata_ttft_seconds_bucket"
                          "{job=\"$job\"}[$__rate_interval])))"),
            (std::set<std::string>{"strata_ttft_seconds_bucket"}));
  EXPECT_EQ(MetricNamesIn("sum(rate(a_total{x=~\"y|z\"}[5m])) / ignoring(x) b_total > 1e3"),
            (std::set<std::string>{"a_total", "b_total"}));
}

// Every "expr" anywhere in the JSON.
void CollectExprs(const nlohmann::json& j, std::vector<std::string>* out) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.key() == "expr" && it->is_string())
        out->push_back(it->get<std::string>());
      else
        CollectExprs(*it, out);
    }
  } else if (j.is_array()) {
    for (const auto& e : j) CollectExprs(e, out);
  }
}

TEST(DashboardTest, EveryQueriedMetricIsExported) {
  const std::string path = std::string(STRATA_SOURCE_DIR) + "/deploy/grafana/strata-dashboard.json";
  std::ifstream f(path);
  ASSERT_TRUE(f) << path;
  nlohmann::json dash = nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(dash.is_discarded()) << path << " is not valid JSON";
  // The datasource is a variable, so the dashboard imports into any Grafana.
  bool has_ds_var = false;
  for (const auto& v : dash["templating"]["list"])
    if (v.value("type", "") == "datasource" && v.value("query", "") == "prometheus")
      has_ds_var = true;
  EXPECT_TRUE(has_ds_var) << "no Prometheus datasource variable";

  std::vector<std::string> exprs;
  CollectExprs(dash, &exprs);
  ASSERT_GE(exprs.size(), 10u);

  // Sample names and families (from # TYPE) of a populated exposition.
  const std::string text = PopulatedExposition();
  std::set<std::string> samples;
  std::map<std::string, std::string> families;  // name -> type
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("# TYPE ")) {
      std::istringstream t(line.substr(7));
      std::string name, type;
      t >> name >> type;
      families[name] = type;
    } else if (!line.empty() && line[0] != '#') {
      samples.insert(line.substr(0, line.find_first_of("{ ")));
    }
  }
  std::set<std::string> used;
  for (const std::string& e : exprs)
    for (const std::string& n : MetricNamesIn(e)) used.insert(n);
  // The extraction found the names it must (so the check below is not vacuous).
  for (const char* must : {"strata_ttft_seconds_bucket", "kvbm_host_cache_hit_rate",
                           "strata_bytes_total", "strata_load_seconds_bucket"})
    EXPECT_TRUE(used.count(must)) << must;
  for (const std::string& name : used) {
    EXPECT_TRUE(samples.count(name)) << "dashboard queries " << name << ", which is not exported";
    // A _bucket/_sum/_count name must belong to a histogram family; any other name must be
    // a family itself (not a histogram, whose bare name has no samples).
    std::string family = name;
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      const std::string s = suffix;
      if (name.ends_with(s) && families.count(name.substr(0, name.size() - s.size())) &&
          families[name.substr(0, name.size() - s.size())] == "histogram")
        family = name.substr(0, name.size() - s.size());
    }
    EXPECT_TRUE(families.count(family)) << name << " has no # TYPE family " << family;
  }
}

TEST(MetricsServerTest, ServesTheExpositionOverHttp) {
  auto metrics = NewMetrics();
  ASSERT_TRUE(metrics);
  auto ms = MetricsServer::Start({.port = 0}, [metrics] { return metrics->Render(); });
  ASSERT_TRUE(ms.ok()) << ms.status().ToString();
  ASSERT_NE((*ms)->port(), 0);
  httplib::Client client("127.0.0.1", (*ms)->port());
  auto res = client.Get("/metrics");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(res->body.find("kvbm_matched_tokens 0\n"), std::string::npos);
  auto root = client.Get("/");
  ASSERT_TRUE(root);
  EXPECT_EQ(root->status, 200);
  auto missing = client.Get("/nope");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);

  // A second server on the same port is refused with a clear error.
  auto clash = MetricsServer::Start({.port = (*ms)->port()}, [] { return std::string(); });
  ASSERT_FALSE(clash.ok());
  EXPECT_EQ(clash.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(clash.status().message().find("cannot listen"), std::string::npos);
  (*ms)->Stop();
  (*ms)->Stop();  // idempotent
}

TEST(MetricsServerTest, RejectsBadOptions) {
  EXPECT_EQ(MetricsServer::Start({.port = 0, .path = "metrics"}, [] { return std::string(); })
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(MetricsServer::Start({.port = 0}, nullptr).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(StrataMetricsTest, RouteForTheApiServer) {
  auto metrics = NewMetrics();
  ASSERT_TRUE(metrics);
  const server::ExtraRoute route = metrics->Route();
  EXPECT_EQ(route.path, "/metrics");
  EXPECT_EQ(route.content_type, StrataMetrics::kContentType);
  EXPECT_NE(route.body().find("# TYPE strata_ttft_seconds histogram"), std::string::npos);
}

}  // namespace
}  // namespace strata::metrics
