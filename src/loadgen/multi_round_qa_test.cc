// RunMultiRoundQa against the real HTTP server over a FakeGenerator: the requests the
// server sees, the timings the client takes, and the files it writes.
#include "loadgen/multi_round_qa.h"

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "server/fake_generator_test_util.h"
#include "server/server.h"

namespace strata::loadgen {
namespace {

using server::testing::FakeGenerator;

class MultiRoundQaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    generator_.token_delay = std::chrono::milliseconds(2);
    generator_.context_tokens = 1 << 16;
    server::ServerOptions so;
    so.port = 0;
    // Strata-like counters that move between the scrapes before and after the run.
    so.extra_routes.push_back({"/metrics", [this] {
                                 const int n = ++scrapes_;
                                 return fmt::format(
                                     "strata_match_prompt_blocks_total {}\n"
                                     "strata_match_hit_blocks_total{{tier=\"host\"}} {}\n"
                                     "strata_match_hit_blocks_total{{tier=\"disk\"}} {}\n",
                                     100 * n, 50 * n - 40, 10 * n);
                               }});
    auto s = server::Server::Start(so, &generator_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(s).value();
    char tmpl[] = "/tmp/strata-mrqa-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(dir_);
  }
  MultiRoundQaOptions Options() const {
    MultiRoundQaOptions o;
    o.base_url = fmt::format("http://127.0.0.1:{}/v1", server_->port());
    o.num_users = 3;
    o.num_rounds = 3;
    o.qps = 6;  // a request per user every 0.5 s
    o.system_prompt_words = 20;
    o.user_context_words = 10;
    o.answer_tokens = 8;
    o.duration_s = 3;
    o.progress = false;
    o.output = dir_ + "/run";
    o.label = "fake";
    return o;
  }

  FakeGenerator generator_;
  std::unique_ptr<server::Server> server_;
  std::atomic<int> scrapes_{0};
  std::string dir_;
};

std::string Slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST_F(MultiRoundQaTest, RunsClosedLoopConversationsAndReportsThem) {
  auto result = RunMultiRoundQa(Options());
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  const auto& records = result->records;
  ASSERT_GE(records.size(), 6u);
  std::map<uint32_t, std::vector<const RequestRecord*>> by_user;
  for (const RequestRecord& r : records) {
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_GT(r.ttft_s, 0);
    EXPECT_LE(r.launch_s + r.ttft_s, r.finish_s + 1e-9);
    EXPECT_EQ(r.completion_tokens, 8u);
    EXPECT_EQ(r.cached_tokens, FakeGenerator::CachedTokens(r.prompt_tokens));
    EXPECT_EQ(r.chunk_gaps_s.size(), 7u);  // 8 tokens, one chunk each
    by_user[r.user_id].push_back(&r);
  }
  for (auto& [user, rs] : by_user) {
    std::sort(rs.begin(), rs.end(),
              [](auto* a, auto* b) { return a->question_id < b->question_id; });
    for (size_t i = 1; i < rs.size(); ++i) {
      // Closed loop: the next round starts after the previous one finished, and carries
      // the whole history, so its prompt is longer by the answer and a question.
      EXPECT_GE(rs[i]->launch_s, rs[i - 1]->finish_s) << "user " << user;
      EXPECT_EQ(rs[i]->question_id, rs[i - 1]->question_id + 1);
      EXPECT_GT(rs[i]->prompt_tokens, rs[i - 1]->prompt_tokens + 8);
    }
  }
  // The server saw the previous answer in a later round's prompt.
  const auto last = generator_.last_request();
  std::string prompt(last.prompt.begin(), last.prompt.end());
  EXPECT_NE(prompt.find("Here's question #"), std::string::npos);
  EXPECT_EQ(last.sampling.max_tokens, 8u);
  EXPECT_EQ(last.sampling.temperature, 0.0f);

  const RunSummary& s = result->summary;
  EXPECT_EQ(s.failed, 0u);
  EXPECT_EQ(s.ttft.count, records.size());
  ASSERT_TRUE(s.tiers.has_value());
  EXPECT_DOUBLE_EQ(s.tiers->host_rate(), 0.5);  // (60 - 10) / (200 - 100)
  EXPECT_DOUBLE_EQ(s.tiers->disk_rate(), 0.1);

  const std::string csv = Slurp(dir_ + "/run.csv");
  EXPECT_EQ(static_cast<size_t>(std::count(csv.begin(), csv.end(), '\n')), records.size() + 1);
  const auto j = nlohmann::json::parse(Slurp(dir_ + "/run.json"));
  EXPECT_EQ(j["config"]["num_users"], 3);
  EXPECT_EQ(j["summary"]["requests"], records.size());
  EXPECT_TRUE(Slurp(dir_ + "/run.svg").starts_with("<svg"));
}

TEST_F(MultiRoundQaTest, NoServerIsUnavailableUpFront) {
  MultiRoundQaOptions o = Options();
  const uint16_t port = server_->port();
  server_.reset();
  o.base_url = fmt::format("http://127.0.0.1:{}", port);
  auto result = RunMultiRoundQa(o);
  EXPECT_EQ(result.status().code(), StatusCode::kUnavailable) << result.status().ToString();
}

TEST_F(MultiRoundQaTest, FailedRequestsAreRecordedWithTheirReason) {
  MultiRoundQaOptions o = Options();
  o.model = "not-the-served-model";  // the server answers 4xx
  o.duration_s = 1;
  auto result = RunMultiRoundQa(o);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  ASSERT_FALSE(result->records.empty());
  for (const RequestRecord& r : result->records) {
    EXPECT_FALSE(r.ok);
    EXPECT_NE(r.error.find("HTTP 4"), std::string::npos) << r.error;
  }
  EXPECT_EQ(result->summary.failed, result->records.size());
  EXPECT_EQ(generator_.submits(), 0);
}

}  // namespace
}  // namespace strata::loadgen
