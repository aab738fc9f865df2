#include "loadgen/workload.h"

#include <map>

#include <gtest/gtest.h>

namespace strata::loadgen {
namespace {

MultiRoundQaOptions Small() {
  MultiRoundQaOptions o;
  o.num_users = 4;
  o.num_rounds = 3;
  o.qps = 2;  // each user asks every 2 s; a session lasts 4 s; a user joins every 1 s
  o.system_prompt_words = 3;
  o.user_context_words = 2;
  o.duration_s = 20;
  return o;
}

TEST(MultiRoundQaWorkloadTest, OptionsAreValidated) {
  MultiRoundQaOptions o = Small();
  EXPECT_TRUE(o.Validate().ok());
  o.qps = 0;
  EXPECT_EQ(o.Validate().code(), StatusCode::kInvalidArgument);
  o = Small();
  o.num_users = 0;
  EXPECT_EQ(o.Validate().code(), StatusCode::kInvalidArgument);
  o = Small();
  o.num_rounds = 0;
  EXPECT_EQ(o.Validate().code(), StatusCode::kInvalidArgument);
  EXPECT_DOUBLE_EQ(Small().request_gap_s(), 2.0);
  EXPECT_DOUBLE_EQ(Small().session_s(), 4.0);
  EXPECT_DOUBLE_EQ(Small().user_join_gap_s(), 1.0);
}

TEST(MultiRoundQaWorkloadTest, PromptTextFollowsLmBenchmark) {
  MultiRoundQaWorkload w(Small());
  EXPECT_EQ(w.SystemPrompt(7),
            "Hi, here's some system prompt: hi hi hi.For user 7, here are some other context: "
            "hi hi.");
  EXPECT_EQ(MultiRoundQaWorkload::Question(2),
            "Here's question #2: can you tell me a new long story with a happy ending?");
}

// Drives the schedule with a simulated clock and a server that answers every request
// `latency` seconds after it was sent.
struct Sim {
  MultiRoundQaOptions options;
  double latency;
  std::vector<std::pair<double, PlannedRequest>> sent;  // (time, request)

  void Run() {
    MultiRoundQaWorkload w(options);
    std::multimap<double, uint32_t> answers;  // due time -> user
    for (double now = 0;; now += 0.01) {
      while (!answers.empty() && answers.begin()->first <= now) {
        w.Finish(answers.begin()->second, {true, "answer " + std::to_string(sent.size())});
        answers.erase(answers.begin());
      }
      if (w.Done(now)) break;
      for (PlannedRequest& p : w.Step(now)) {
        answers.emplace(now + latency, p.user_id);
        sent.emplace_back(now, std::move(p));
      }
      ASSERT_LT(now, options.duration_s + 100) << "the run never ends";
    }
  }
};

TEST(MultiRoundQaWorkloadTest, ClosedLoopHistoryAndSpacingPerUser) {
  Sim sim{Small(), /*latency=*/0.3};
  sim.Run();
  ASSERT_FALSE(sim.sent.empty());
  std::map<uint32_t, std::vector<std::pair<double, const PlannedRequest*>>> by_user;
  for (const auto& [t, p] : sim.sent) by_user[p.user_id].push_back({t, &p});
  for (const auto& [user, reqs] : by_user) {
    for (size_t i = 0; i < reqs.size(); ++i) {
      const PlannedRequest& p = *reqs[i].second;
      EXPECT_LE(p.question_id, 3u);
      // The history alternates user/assistant and ends with this round's question.
      ASSERT_EQ(p.messages.size() % 2, 1u);
      EXPECT_EQ(p.messages.back().content.find("Here's question #" +
                                               std::to_string(p.question_id)) != std::string::npos,
                true);
      for (size_t m = 0; m < p.messages.size(); ++m)
        EXPECT_EQ(p.messages[m].role, m % 2 == 0 ? "user" : "assistant");
      // The first message carries the system prompt with this user's id.
      EXPECT_NE(p.messages[0].content.find("For user " + std::to_string(user) + ","),
                std::string::npos);
      if (i > 0) {
        // Resent history: the previous request's messages are a prefix of this one's.
        const PlannedRequest& prev = *reqs[i - 1].second;
        ASSERT_EQ(p.messages.size(), prev.messages.size() + 2);
        for (size_t m = 0; m < prev.messages.size(); ++m)
          EXPECT_EQ(p.messages[m].content, prev.messages[m].content);
        EXPECT_EQ(p.question_id, prev.question_id + 1);
        // At most one request per gap, and never while the previous one is in flight.
        EXPECT_GT(reqs[i].first - reqs[i - 1].first, sim.options.request_gap_s());
      }
    }
  }
}

TEST(MultiRoundQaWorkloadTest, RampUpStartsUsersMidConversation) {
  Sim sim{Small(), 0.1};
  sim.Run();
  // The ramp-up creates users 1..4 at t=0 as if they had joined 4, 3, 2 and 1 s ago (a 1 s
  // join gap, a 2 s request gap): user 1 has asked all 3 questions, users 2 and 3 have
  // asked 2 and ask question 3 next, user 4 has asked 1 and asks question 2 next.
  std::map<uint32_t, uint32_t> first_question;
  for (const auto& [t, p] : sim.sent) first_question.emplace(p.user_id, p.question_id);
  EXPECT_EQ(first_question.count(1), 0u);
  EXPECT_EQ(first_question.at(2), 3u);
  EXPECT_EQ(first_question.at(3), 3u);
  EXPECT_EQ(first_question.at(4), 2u);
  // User 5 joins at t=0 as a new user and starts from question 1.
  EXPECT_EQ(first_question.at(5), 1u);
}

TEST(MultiRoundQaWorkloadTest, UsersJoinOnTheGapAndStopAtTheDuration) {
  Sim sim{Small(), 0.1};
  sim.Run();
  double last = 0;
  uint32_t max_user = 0;
  for (const auto& [t, p] : sim.sent) {
    last = std::max(last, t);
    max_user = std::max(max_user, p.user_id);
  }
  EXPECT_LT(last, 20.0);
  // 4 ramp-up users, then one joining about every second for 20 s.
  EXPECT_GE(max_user, 4u + 18u);
  EXPECT_LE(max_user, 4u + 21u);
}

TEST(MultiRoundQaWorkloadTest, SlowServerNeverGetsTwoRequestsFromOneUser) {
  Sim sim{Small(), /*latency=*/5.0};  // slower than the 2 s gap
  sim.Run();
  std::map<uint32_t, double> last_sent;
  for (const auto& [t, p] : sim.sent) {
    if (auto it = last_sent.find(p.user_id); it != last_sent.end()) {
      EXPECT_GE(t - it->second, 5.0 - 1e-9) << "user " << p.user_id;
    }
    last_sent[p.user_id] = t;
  }
}

TEST(MultiRoundQaWorkloadTest, FailedRoundDropsItsQuestionFromHistory) {
  MultiRoundQaOptions o = Small();
  o.num_users = 1;
  o.num_rounds = 3;
  o.qps = 1;  // gap 1 s
  MultiRoundQaWorkload w(o);
  auto first = w.Step(0);
  // Ramp-up user 1 is finished (offset 2 s = whole session); user 2 joins and asks.
  ASSERT_EQ(first.size(), 1u);
  const uint32_t user = first[0].user_id;
  w.Finish(user, {false, ""});
  std::vector<PlannedRequest> next;
  for (double t = 0.01; next.empty() && t < 5; t += 0.01) {
    for (auto& p : w.Step(t))
      if (p.user_id == user) next.push_back(std::move(p));
  }
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].question_id, 2u);
  ASSERT_EQ(next[0].messages.size(), 1u);  // the failed question is gone
  EXPECT_NE(next[0].messages[0].content.find("system prompt"), std::string::npos);
}

}  // namespace
}  // namespace strata::loadgen
