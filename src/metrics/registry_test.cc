// The metrics library: exact exposition text, bucket math, escaping, name checks, and
// concurrent updates during scrapes.
#include "metrics/registry.h"

#include <cmath>
#include <limits>
#include <thread>

#include <gtest/gtest.h>

namespace strata::metrics {
namespace {

TEST(RegistryTest, RendersKnownRegistryExactly) {
  Registry r;
  auto requests = r.AddCounter("app_requests_total", "Requests served.", {"code", "method"});
  ASSERT_TRUE(requests.ok()) << requests.status().ToString();
  (*requests)->WithLabels({"200", "get"}).value()->Inc(3);
  (*requests)->WithLabels({"500", "post"}).value()->Inc();
  (*requests)->WithLabels({"200", "get"}).value()->Inc();  // same child again
  auto temp = r.AddGauge("app_temperature_celsius", "Temperature.");
  ASSERT_TRUE(temp.ok());
  (*temp)->Get().Set(-2.5);
  auto lat = r.AddHistogram("app_latency_seconds", "Latency\nin seconds.", {}, {0.125, 1, 10});
  ASSERT_TRUE(lat.ok());
  for (double v : {0.0625, 0.125, 0.5, 3.0, 20.0}) (*lat)->Get().Observe(v);
  ASSERT_TRUE(r.AddCounter("app_empty_total", "No series yet.", {"x"}).ok());

  EXPECT_EQ(r.Render(),
            "# HELP app_requests_total Requests served.\n"
            "# TYPE app_requests_total counter\n"
            "app_requests_total{code=\"200\",method=\"get\"} 4\n"
            "app_requests_total{code=\"500\",method=\"post\"} 1\n"
            "# HELP app_temperature_celsius Temperature.\n"
            "# TYPE app_temperature_celsius gauge\n"
            "app_temperature_celsius -2.5\n"
            "# HELP app_latency_seconds Latency\\nin seconds.\n"
            "# TYPE app_latency_seconds histogram\n"
            "app_latency_seconds_bucket{le=\"0.125\"} 2\n"
            "app_latency_seconds_bucket{le=\"1\"} 3\n"
            "app_latency_seconds_bucket{le=\"10\"} 4\n"
            "app_latency_seconds_bucket{le=\"+Inf\"} 5\n"
            "app_latency_seconds_sum 23.6875\n"
            "app_latency_seconds_count 5\n"
            "# HELP app_empty_total No series yet.\n"
            "# TYPE app_empty_total counter\n");
}

// Series that come and go (one per daemon client): dropped children leave the exposition.
TEST(RegistryTest, RemoveIfDropsTheChildrenItRejects) {
  Registry r;
  auto g = r.AddGauge("app_client_blocks", "Blocks per client.", {"client"});
  ASSERT_TRUE(g.ok());
  (*g)->WithLabels({"a"}).value()->Set(1);
  (*g)->WithLabels({"b"}).value()->Set(2);
  (*g)->RemoveIf([](const std::vector<std::string>& v) { return v[0] == "a"; });
  EXPECT_EQ(r.Render(),
            "# HELP app_client_blocks Blocks per client.\n"
            "# TYPE app_client_blocks gauge\n"
            "app_client_blocks{client=\"b\"} 2\n");
}

TEST(RegistryTest, LabelledHistogramPutsLeLast) {
  Registry r;
  auto h = r.AddHistogram("op_seconds", "Ops.", {"op"}, {1});
  ASSERT_TRUE(h.ok());
  (*h)->WithLabels({"read"}).value()->Observe(2);
  EXPECT_EQ(r.Render(),
            "# HELP op_seconds Ops.\n"
            "# TYPE op_seconds histogram\n"
            "op_seconds_bucket{op=\"read\",le=\"1\"} 0\n"
            "op_seconds_bucket{op=\"read\",le=\"+Inf\"} 1\n"
            "op_seconds_sum{op=\"read\"} 2\n"
            "op_seconds_count{op=\"read\"} 1\n");
}

TEST(HistogramTest, BucketBoundariesAreInclusiveAndCumulative) {
  const std::vector<double> bounds = {1, 2, 4};
  Histogram h(bounds);
  // le is "<=": a value equal to a bound belongs to that bound's bucket.
  for (double v : {-3.0, 0.0, 1.0, 1.0000001, 2.0, 3.9, 4.0, 4.1, 1e9}) h.Observe(v);
  const Histogram::Snapshot s = h.snapshot();
  ASSERT_EQ(s.cumulative.size(), 4u);
  EXPECT_EQ(s.cumulative[0], 3u);  // -3, 0, 1
  EXPECT_EQ(s.cumulative[1], 5u);  // + 1.0000001, 2
  EXPECT_EQ(s.cumulative[2], 7u);  // + 3.9, 4
  EXPECT_EQ(s.cumulative[3], 9u);  // + 4.1, 1e9
  EXPECT_EQ(s.count, 9u);
  EXPECT_DOUBLE_EQ(s.sum, -3 + 0 + 1 + 1.0000001 + 2 + 3.9 + 4 + 4.1 + 1e9);
}

TEST(HistogramTest, NanGoesToInfOnly) {
  const std::vector<double> bounds = {1};
  Histogram h(bounds);
  h.Observe(std::numeric_limits<double>::quiet_NaN());
  const auto s = h.snapshot();
  EXPECT_EQ(s.cumulative[0], 0u);
  EXPECT_EQ(s.cumulative[1], 1u);
  EXPECT_TRUE(std::isnan(s.sum));
}

TEST(HistogramTest, ExponentialBuckets) {
  EXPECT_EQ(ExponentialBuckets(0.001, 10, 4), (std::vector<double>{0.001, 0.01, 0.1, 1}));
}

TEST(CounterTest, NeverDecreases) {
  Counter c;
  c.Inc(2);
  c.Inc(-1);  // ignored
  c.Inc(std::numeric_limits<double>::quiet_NaN());
  EXPECT_EQ(c.value(), 2);
  c.SetTotal(10);
  c.SetTotal(7);  // an older snapshot: ignored
  EXPECT_EQ(c.value(), 10);
}

TEST(FormatTest, Values) {
  EXPECT_EQ(FormatValue(0), "0");
  EXPECT_EQ(FormatValue(42), "42");
  EXPECT_EQ(FormatValue(0.005), "0.005");
  EXPECT_EQ(FormatValue(123456789012.0), "123456789012");
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::quiet_NaN()), "NaN");
}

TEST(FormatTest, LabelValuesAndHelpAreEscaped) {
  EXPECT_EQ(EscapeLabelValue("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  EXPECT_EQ(EscapeHelp("a\\b\"c\nd"), "a\\\\b\"c\\nd");  // quotes stay in HELP
  Registry r;
  auto c = r.AddCounter("x_total", "X.", {"path"});
  ASSERT_TRUE(c.ok());
  (*c)->WithLabels({"C:\\dir \"q\"\nz"}).value()->Inc();
  EXPECT_NE(r.Render().find("x_total{path=\"C:\\\\dir \\\"q\\\"\\nz\"} 1\n"), std::string::npos)
      << r.Render();
}

TEST(RegistryTest, RejectsBadNamesAndDuplicates) {
  Registry r;
  EXPECT_EQ(r.AddCounter("1abc", "h").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.AddCounter("a-b", "h").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.AddCounter("ok_total", "h", {"bad-label"}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(r.AddCounter("ok_total", "h", {"__reserved"}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(r.AddCounter("ok_total", "h", {"a", "a"}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(r.AddHistogram("h_seconds", "h", {"le"}, {1}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(r.AddHistogram("h_seconds", "h", {}, {2, 1}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(r.AddHistogram("h_seconds", "h", {}, {1, std::numeric_limits<double>::infinity()})
                .status()
                .code(),
            StatusCode::kInvalidArgument);

  ASSERT_TRUE(r.AddCounter("ns:ok_total", "h").ok());
  EXPECT_EQ(r.AddGauge("ns:ok_total", "h").status().code(), StatusCode::kAlreadyExists);
  ASSERT_TRUE(r.AddHistogram("lat", "h", {}, {1}).ok());
  // Every series name a histogram emits is taken, in both registration orders.
  EXPECT_EQ(r.AddCounter("lat_count", "h").status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(r.AddGauge("lat_bucket", "h").status().code(), StatusCode::kAlreadyExists);
  ASSERT_TRUE(r.AddGauge("g_sum", "h").ok());
  EXPECT_EQ(r.AddHistogram("g", "h", {}, {1}).status().code(), StatusCode::kAlreadyExists);

  auto f = r.AddCounter("two_total", "h", {"a", "b"});
  ASSERT_TRUE(f.ok());
  EXPECT_EQ((*f)->WithLabels({"x"}).status().code(), StatusCode::kInvalidArgument);
}

TEST(RegistryTest, CollectorsRunBeforeEachRender) {
  Registry r;
  auto g = r.AddGauge("scrapes", "Scrapes so far.");
  ASSERT_TRUE(g.ok());
  Gauge* gauge = &(*g)->Get();
  r.AddCollector([gauge] { gauge->Inc(); });
  EXPECT_NE(r.Render().find("scrapes 1\n"), std::string::npos);
  EXPECT_NE(r.Render().find("scrapes 2\n"), std::string::npos);
}

TEST(RegistryTest, ConcurrentUpdatesAndScrapesLoseNothing) {
  Registry r;
  auto c = r.AddCounter("hits_total", "h", {"worker"});
  auto h = r.AddHistogram("work_seconds", "h", {}, {0.5, 1.5});
  ASSERT_TRUE(c.ok() && h.ok());
  constexpr int kThreads = 4, kIters = 20000;
  std::atomic<bool> stop{false};
  std::thread scraper([&] {
    while (!stop.load()) {
      const std::string text = r.Render();
      // The histogram's count always equals its +Inf bucket.
      const auto inf = text.find("work_seconds_bucket{le=\"+Inf\"} ");
      const auto count = text.find("work_seconds_count ");
      ASSERT_NE(inf, std::string::npos);
      ASSERT_NE(count, std::string::npos);
      const auto a = text.substr(inf + 31, text.find('\n', inf) - inf - 31);
      const auto b = text.substr(count + 19, text.find('\n', count) - count - 19);
      EXPECT_EQ(a, b);
    }
  });
  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; ++t) {
    workers.emplace_back([&, t] {
      for (int i = 0; i < kIters; ++i) {
        (*c)->WithLabels({std::to_string(t % 2)}).value()->Inc();
        (*h)->Get().Observe(i % 2);  // 0 and 1: an exactly representable sum
      }
    });
  }
  for (auto& w : workers) w.join();
  stop.store(true);
  scraper.join();
  EXPECT_EQ((*c)->WithLabels({"0"}).value()->value(), 2.0 * kIters);
  EXPECT_EQ((*c)->WithLabels({"1"}).value()->value(), 2.0 * kIters);
  const auto s = (*h)->Get().snapshot();
  EXPECT_EQ(s.count, uint64_t{kThreads} * kIters);
  EXPECT_EQ(s.cumulative[0], uint64_t{kThreads} * kIters / 2);
  EXPECT_EQ(s.sum, kThreads * kIters / 2.0);
}

}  // namespace
}  // namespace strata::metrics
