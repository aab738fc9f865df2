#include "loadgen/workload.h"

#include <cmath>
#include <utility>

#include <fmt/format.h>

namespace strata::loadgen {

Status MultiRoundQaOptions::Validate() const {
  auto bad = [](std::string what) { return Status::InvalidArgument(std::move(what)); };
  if (base_url.empty()) return bad("base_url is empty");
  if (num_users == 0) return bad("num_users must be at least 1");
  if (num_rounds == 0) return bad("num_rounds must be at least 1");
  if (!(qps > 0) || !std::isfinite(qps)) return bad(fmt::format("qps {} must be > 0", qps));
  if (answer_tokens == 0) return bad("answer_tokens must be at least 1");
  if (!(duration_s > 0)) return bad(fmt::format("duration {} s must be > 0", duration_s));
  if (!(request_timeout_s > 0)) return bad("request_timeout_s must be > 0");
  return Status::Ok();
}

MultiRoundQaWorkload::MultiRoundQaWorkload(MultiRoundQaOptions options)
    : options_(std::move(options)), next_user_id_(options_.init_user_id) {}

namespace {
std::string Words(uint32_t n) {
  std::string out;
  out.reserve(size_t{n} * 3);
  for (uint32_t i = 0; i < n; ++i) out += i == 0 ? "hi" : " hi";
  return out;
}
}  // namespace

std::string MultiRoundQaWorkload::SystemPrompt(uint32_t user_id) const {
  return fmt::format(
      "Hi, here's some system prompt: {}.For user {}, here are some other context: {}.",
      Words(options_.system_prompt_words), user_id, Words(options_.user_context_words));
}

std::string MultiRoundQaWorkload::Question(uint32_t question_id) {
  return fmt::format("Here's question #{}: can you tell me a new long story with a happy ending?",
                     question_id);
}

size_t MultiRoundQaWorkload::in_flight() const {
  size_t n = 0;
  for (const auto& s : sessions_) n += s->in_flight ? 1 : 0;
  return n;
}

MultiRoundQaWorkload::Session& MultiRoundQaWorkload::Join() {
  auto s = std::make_unique<Session>();
  s->user_id = ++next_user_id_;
  sessions_.push_back(std::move(s));
  return *sessions_.back();
}

// N users already in their conversations: user i joined (N - i) join gaps ago, so it has
// asked as many questions as fit since then, the last one at the time it would have. Their
// history is not invented: their next request carries the system prompt and the next
// question (as LMBenchmark does).
void MultiRoundQaWorkload::RampUp(double now) {
  const double ramp = options_.num_users * options_.user_join_gap_s();
  const double gap = options_.request_gap_s();
  for (uint32_t i = 0; i < options_.num_users; ++i) {
    const double offset = ramp - i * options_.user_join_gap_s();
    if (offset < 0) break;
    Session& s = Join();
    const auto passed = static_cast<uint32_t>(offset / gap) + 1;
    s.questions_asked = passed;
    s.last_request = now - offset + (passed - 1) * gap;
  }
  ramped_up_ = true;
}

void MultiRoundQaWorkload::MaybeLaunch(Session& s, double now, std::vector<PlannedRequest>* out) {
  if (s.in_flight || s.questions_asked >= options_.num_rounds) return;
  if (s.last_request && now - *s.last_request <= options_.request_gap_s()) return;
  std::string prompt = Question(s.questions_asked + 1);
  if (s.history.empty()) prompt = SystemPrompt(s.user_id) + prompt;
  s.history.push_back({"user", std::move(prompt)});
  ++s.questions_asked;
  s.in_flight = true;
  s.last_request = now;
  out->push_back({s.user_id, s.questions_asked, s.history});
}

std::vector<PlannedRequest> MultiRoundQaWorkload::Step(double now) {
  std::vector<PlannedRequest> out;
  if (now < options_.duration_s) {
    if (!ramped_up_) RampUp(now);
    if (!last_join_ || now - *last_join_ > options_.user_join_gap_s()) {
      Join();
      last_join_ = now;
    }
    for (auto& s : sessions_) MaybeLaunch(*s, now, &out);
  }
  std::erase_if(sessions_, [&](const std::unique_ptr<Session>& s) {
    return !s->in_flight && s->questions_asked >= options_.num_rounds;
  });
  return out;
}

void MultiRoundQaWorkload::Finish(uint32_t user_id, const RequestOutcome& outcome) {
  for (auto& s : sessions_) {
    if (s->user_id != user_id || !s->in_flight) continue;
    s->in_flight = false;
    if (outcome.ok) {
      s->history.push_back({"assistant", outcome.answer});
    } else {
      // A failed round leaves no answer; the next question must follow an assistant turn,
      // so the unanswered question is dropped from the history.
      s->history.pop_back();
    }
    return;
  }
}

}  // namespace strata::loadgen
