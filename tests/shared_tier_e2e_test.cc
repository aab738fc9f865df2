// Two `strata serve` processes ("nodes" A and B) share one G4 tier — a shared directory or
// a Redis server started by the test: a prompt A computed is loaded by B (B's time to
// first token drops, the output is identical), and requests with different cache_salt
// values never hit each other's blocks.
#include <cstdio>

#include "remote/redis_test_util.h"
#include "serve_test_util.h"

namespace {

using namespace strata::serve_test;
using strata::redis_test::RedisServer;

// The value of an unlabelled series in a server's /metrics (-1 when absent).
double Metric(uint16_t port, const std::string& name) {
  const HttpResponse m = Request(port, "GET", "/metrics");
  const size_t at = m.body.find("\n" + name + " ");
  if (at == std::string::npos) return -1;
  return std::stod(m.body.substr(at + name.size() + 2));
}

// Waits until node `port` has no publication queued and has published (or found present)
// at least `blocks` blocks.
void WaitPublished(uint16_t port, double blocks) {
  const auto deadline = Clock::now() + kRequestDeadline;
  for (;;) {
    const double done = Metric(port, "strata_shared_published_blocks_total") +
                        Metric(port, "strata_shared_publish_present_blocks_total");
    const HttpResponse m = Request(port, "GET", "/metrics");
    const bool idle =
        m.body.find("strata_queue_depth{queue=\"shared_publish\"} 0\n") != std::string::npos;
    if (done >= blocks && idle) return;
    ASSERT_LT(Clock::now(), deadline) << "published " << done << " of " << blocks << " blocks";
    std::this_thread::sleep_for(50ms);
  }
}

class SharedTierE2eTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    if (GetParam() == "fs") {
      shared_args_ = {"--shared-fs", dir_.path() + "/shared"};
    } else {
      const strata::Status s = redis_.Start({"--maxmemory", "512mb"});
      if (s.code() == strata::StatusCode::kNotSupported) GTEST_SKIP() << s.ToString();
      ASSERT_TRUE(s.ok()) << s.ToString();
      shared_args_ = {"--shared-redis", redis_.endpoint()};
    }
  }

  // A node: small preset, G2 only locally, the shared tier.
  std::vector<std::string> NodeArgs() const {
    std::vector<std::string> a = {
        "--host", "127.0.0.1", "--port", "0",         "--preset", "small", "--device-cache-gb",
        "0.25",   "--host-gb", "0.25",   "--disk-gb", "0"};
    a.insert(a.end(), shared_args_.begin(), shared_args_.end());
    return a;
  }

  TempDir dir_;
  RedisServer redis_;
  std::vector<std::string> shared_args_;
};

TEST_P(SharedTierE2eTest, APromptComputedByOneInstanceIsLoadedByAnother) {
  ServeProcess a, b;
  ASSERT_TRUE(a.Start(NodeArgs()));
  ASSERT_TRUE(b.Start(NodeArgs()));
  ASSERT_NE(a.ready_line().find("G4 shared"), std::string::npos) << a.ready_line();
  ASSERT_TRUE(WaitHealthy(a.port()));
  ASSERT_TRUE(WaitHealthy(b.port()));
  const std::string prompt = LongPrompt();
  constexpr int kMaxTokens = 12;
  constexpr double kPromptBlocks = 1536 / 16;  // small preset: 16 tokens per block

  const Completion on_a = StreamCompletion(a.port(), prompt, kMaxTokens);
  EXPECT_EQ(CachedTokens(on_a.usage), 0u);
  WaitPublished(a.port(), kPromptBlocks);

  const Completion on_b = StreamCompletion(b.port(), prompt, kMaxTokens);
  std::printf("[%s] TTFT on A (computed) %.3f s, on B (%u tokens from G4) %.3f s\n",
              GetParam().c_str(), on_a.ttft_seconds, CachedTokens(on_b.usage), on_b.ttft_seconds);
  EXPECT_EQ(on_b.text, on_a.text);
  EXPECT_GE(CachedTokens(on_b.usage), static_cast<uint32_t>(kPromptBlocks * 16 - 16));
  EXPECT_LT(on_b.ttft_seconds, on_a.ttft_seconds);
  EXPECT_GT(Metric(b.port(), "strata_shared_available"), 0);
  const HttpResponse m = Request(b.port(), "GET", "/metrics");
  EXPECT_EQ(m.body.find("strata_match_hit_blocks_total{tier=\"shared\"} 0\n"), std::string::npos)
      << "B matched nothing in G4";
  ExpectCleanExit(a);
  ExpectCleanExit(b);
}

TEST_P(SharedTierE2eTest, DifferentCacheSaltsNeverShareBlocks) {
  ServeProcess a, b;
  ASSERT_TRUE(a.Start(NodeArgs()));
  ASSERT_TRUE(b.Start(NodeArgs()));
  ASSERT_TRUE(WaitHealthy(a.port()));
  ASSERT_TRUE(WaitHealthy(b.port()));
  const std::string prompt = "Tenant data: " + LongPrompt().substr(0, 600);
  const Completion on_a = Complete(a.port(), prompt, 4, "tenant-a");
  WaitPublished(a.port(), 600 / 16);
  const Completion other = Complete(b.port(), prompt, 4, "tenant-b");
  EXPECT_EQ(CachedTokens(other.usage), 0u) << "tenant-b hit tenant-a's blocks";
  const Completion same = Complete(b.port(), prompt, 4, "tenant-a");
  EXPECT_GT(CachedTokens(same.usage), 0u);
  EXPECT_EQ(same.text, on_a.text);
  EXPECT_EQ(other.text, on_a.text);  // the salt changes the cache key, never the output
  ExpectCleanExit(a);
  ExpectCleanExit(b);
}

INSTANTIATE_TEST_SUITE_P(FsAndRedis, SharedTierE2eTest, ::testing::Values("fs", "redis"),
                         [](const auto& info) { return info.param; });

}  // namespace
