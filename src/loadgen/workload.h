// The synthetic multi-round QA workload of LMBenchmark (LMCache's benchmark suite),
// reproduced: N users converse for R rounds each. A user's first prompt is a shared system
// prompt, then "For user {id}" and a per-user context, then a question; every later round
// resends the whole history (previous answers included) plus a new question. Each user
// asks at most once every N/QPS seconds and never has two requests in flight (closed loop);
// users join every (N/QPS)(R-1)/N seconds, and at the start a ramp-up creates N users
// already staggered mid-conversation so the run begins in steady state.
//
// This file is the schedule alone — which user asks what, and when — driven by explicit
// timestamps, so tests can run it without a clock or a server.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "strata/status.h"

namespace strata::loadgen {

struct MultiRoundQaOptions {
  // Server root ("http://127.0.0.1:8000"); a trailing "/v1" is accepted and dropped.
  std::string base_url = "http://127.0.0.1:8000";
  // Model to name in requests. Default "": the first model /v1/models lists.
  std::string model;
  // Bearer token sent as Authorization when non-empty.
  std::string api_key;
  // Users in the system at once (LMBenchmark --num-users). Default 10.
  uint32_t num_users = 10;
  // Rounds per user (--num-rounds). Default 5.
  uint32_t num_rounds = 5;
  // Overall requests per second (--qps); each user asks every num_users/qps s. Default 0.5.
  double qps = 0.5;
  // Words ("hi") of the shared system prompt (--shared-system-prompt). Default 1000.
  uint32_t system_prompt_words = 1000;
  // Words of each user's own context (--user-history-prompt). Default 2000.
  uint32_t user_context_words = 2000;
  // max_tokens of every answer (--answer-len). Default 100.
  uint32_t answer_tokens = 100;
  // Seconds during which users join and ask (--time); then in-flight requests finish.
  // Default 60.
  double duration_s = 60;
  // First user id (--init-user-id): runs against one server with different ids do not
  // share user contexts. Default 0.
  uint32_t init_user_id = 0;
  // Send "x-user-id: {id}" with each request (--request-with-user-id). Default false.
  bool user_id_header = false;
  // A request still running after this long is abandoned and counted as failed. Default 600.
  double request_timeout_s = 600;
  // /metrics to read per-tier hit rates from before and after the run. Default "": the
  // base URL's /metrics; "none" skips it.
  std::string metrics_url;
  // Files written: <output>.csv (one row per request), <output>.json (summary and rows),
  // <output>.svg (TTFT over time and its distribution). Default "": none.
  std::string output;
  // A progress bar on stderr. Default true.
  bool progress = true;
  // A label for reports and plots. Default "".
  std::string label;

  Status Validate() const;
  double request_gap_s() const { return num_users / qps; }  // between one user's requests
  // How long one user's conversation lasts (one request gap for a single round).
  double session_s() const { return request_gap_s() * (num_rounds > 1 ? num_rounds - 1 : 1); }
  double user_join_gap_s() const { return session_s() / num_users; }
};

struct ChatMessage {
  std::string role;  // "user" or "assistant"
  std::string content;
};

// A request the schedule wants sent now.
struct PlannedRequest {
  uint32_t user_id = 0;
  uint32_t question_id = 0;  // 1-based round number of the question asked
  std::vector<ChatMessage> messages;
};

// What came back for a request (success or not).
struct RequestOutcome {
  bool ok = false;
  std::string answer;  // appended to the user's history when ok
};

class MultiRoundQaWorkload {
 public:
  explicit MultiRoundQaWorkload(MultiRoundQaOptions options);

  // Advances the schedule to `now` (seconds since the run started; never decreasing) and
  // returns the requests to send. Past duration_s nothing new is planned.
  std::vector<PlannedRequest> Step(double now);
  // Reports the end of `user_id`'s request in flight.
  void Finish(uint32_t user_id, const RequestOutcome& outcome);

  size_t active_users() const { return sessions_.size(); }
  size_t in_flight() const;
  // True once duration_s has passed and no request is in flight.
  bool Done(double now) const { return now >= options_.duration_s && in_flight() == 0; }

  // The text builders, public for tests.
  std::string SystemPrompt(uint32_t user_id) const;
  static std::string Question(uint32_t question_id);

 private:
  struct Session {
    uint32_t user_id = 0;
    uint32_t questions_asked = 0;  // questions asked so far (or skipped by the ramp-up)
    std::optional<double> last_request;
    bool in_flight = false;
    std::vector<ChatMessage> history;
  };

  Session& Join();
  void RampUp(double now);
  void MaybeLaunch(Session& s, double now, std::vector<PlannedRequest>* out);

  MultiRoundQaOptions options_;
  std::vector<std::unique_ptr<Session>> sessions_;
  uint32_t next_user_id_ = 0;
  bool ramped_up_ = false;
  std::optional<double> last_join_;
};

}  // namespace strata::loadgen
