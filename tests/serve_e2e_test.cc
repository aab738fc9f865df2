// End to end: the real `strata serve` binary, driven over HTTP like any OpenAI client.
// The same long prompt sent twice must give identical text, with the second request
// reusing the first one's KV (usage.prompt_tokens_details.cached_tokens > 0) and so a
// lower time to first token; after a restart on the same cache directory the prompt is
// served from G3. The server must stop cleanly (exit 0) on SIGTERM.
#include "serve_test_util.h"

namespace {

using namespace strata::serve_test;
TEST(ServeE2eTest, SecondRequestReusesTheCacheAndIsFasterAndIdentical) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::vector<std::string> args = {
      "--host",     "127.0.0.1",           "--port",    "0",         "--preset",
      "small",      "--device-cache-gb",   "0.25",      "--host-gb", "0.25",
      "--disk-dir", dir.path() + "/cache", "--disk-gb", "0.25"};
  const std::string prompt = LongPrompt();
  constexpr int kMaxTokens = 16;

  std::string first_text;
  {
    ServeProcess server;
    ASSERT_TRUE(server.Start(args));
    ASSERT_TRUE(WaitHealthy(server.port()));

    const Completion first = StreamCompletion(server.port(), prompt, kMaxTokens);
    const Completion second = StreamCompletion(server.port(), prompt, kMaxTokens);
    std::printf(
        "prompt %zu tokens: TTFT first %.3f s (computed), second %.3f s (%u tokens "
        "cached), speed-up %.1fx\n",
        prompt.size(), first.ttft_seconds, second.ttft_seconds, CachedTokens(second.usage),
        first.ttft_seconds / second.ttft_seconds);
    EXPECT_FALSE(first.text.empty());
    EXPECT_EQ(second.text, first.text);
    EXPECT_EQ(first.usage.value("prompt_tokens", 0u), prompt.size());
    EXPECT_EQ(first.usage.value("completion_tokens", 0u), static_cast<uint32_t>(kMaxTokens));
    EXPECT_EQ(CachedTokens(first.usage), 0u);
    EXPECT_GT(CachedTokens(second.usage), 0u);
    EXPECT_GT(first.ttft_seconds, 0);
    EXPECT_LT(second.ttft_seconds, first.ttft_seconds);
    first_text = first.text;

    // Prometheus metrics on the API port saw both requests and the reuse.
    const HttpResponse metrics = Request(server.port(), "GET", "/metrics");
    EXPECT_EQ(metrics.status, 200);
    EXPECT_NE(metrics.body.find("strata_ttft_seconds_count 2"), std::string::npos) << metrics.body;
    const size_t at = metrics.body.find("\nkvbm_matched_tokens ");
    ASSERT_NE(at, std::string::npos);
    EXPECT_GT(std::stod(metrics.body.substr(at + 22)), 0.0);
    ExpectCleanExit(server);
  }

  // A restart on the same cache directory finds the blocks on disk (warm restart).
  ServeProcess server;
  ASSERT_TRUE(server.Start(args));
  EXPECT_EQ(server.ready_line().find("(0 blocks recovered"), std::string::npos)
      << server.ready_line();
  ASSERT_TRUE(WaitHealthy(server.port()));
  const Completion third = Complete(server.port(), prompt, kMaxTokens);
  EXPECT_EQ(third.text, first_text);
  EXPECT_GT(CachedTokens(third.usage), 0u);
  ExpectCleanExit(server);
}

}  // namespace
