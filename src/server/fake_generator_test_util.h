// FakeGenerator: a deterministic engine::Generator for the server tests. Byte-level
// tokens; the continuation of any prompt is kContinuation repeated, cut at max_tokens or
// at the first stop string; each request runs on its own thread with an optional delay
// per token, so streams, cancellation and shutdown behave as with a real engine.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/generator.h"

namespace strata::server::testing {

inline constexpr std::string_view kContinuation = "The quick brown fox jumps over the lazy dog. ";

class FakeGenerator : public engine::Generator {
 public:
  ~FakeGenerator() override {
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(mu_);
      threads.swap(threads_);
    }
    for (std::thread& t : threads) t.join();
  }

  // What the fake does; set before requests are sent.
  std::chrono::milliseconds token_delay{0};
  Status submit_status;          // non-OK: Submit returns it
  bool fail_generation = false;  // the final event says kError
  uint32_t context_tokens = 256;

  // The text a request with `max_tokens` and `stop` produces.
  static std::string ExpectedText(uint32_t max_tokens, const std::vector<std::string>& stop = {}) {
    std::string out;
    while (out.size() < max_tokens) out += kContinuation;
    out.resize(max_tokens);
    size_t cut = out.size();
    for (const std::string& s : stop) cut = std::min(cut, out.find(s));
    return out.substr(0, cut);
  }
  static uint32_t CachedTokens(size_t prompt_tokens) {
    return static_cast<uint32_t>(prompt_tokens / 2);
  }

  std::string model_name() const override { return "fake-model"; }
  uint32_t max_context_tokens() const override { return context_tokens; }
  uint32_t max_token_bytes() const override { return 1; }
  std::vector<TokenId> Encode(std::string_view text, bool /*add_bos*/) const override {
    encodes_.fetch_add(1);
    std::vector<TokenId> tokens;
    for (unsigned char c : text) tokens.push_back(c);
    return tokens;
  }
  // The plain template of the synthetic presets (docs/tokenizers.md).
  std::string ApplyChatTemplate(const std::vector<engine::ChatMessage>& messages) const override {
    std::string text;
    for (const engine::ChatMessage& m : messages) text += "<|" + m.role + "|>\n" + m.content + "\n";
    return text + "<|assistant|>\n";
  }
  std::string Decode(std::span<const TokenId> tokens) const override {
    std::string text;
    for (TokenId t : tokens) text += static_cast<char>(t);
    return text;
  }

  Status Submit(engine::GenerationRequest request,
                std::function<void(const engine::TokenEvent&)> on_event) override {
    std::lock_guard lock(mu_);
    last_request_ = request;
    ++submits_;
    if (!submit_status.ok()) return submit_status;
    if (request.prompt.empty()) return Status::InvalidArgument("empty prompt");
    if (active_.count(request.request_id))
      return Status::AlreadyExists("request " + request.request_id);
    active_[request.request_id] = false;
    cv_.notify_all();
    threads_.emplace_back([this, request = std::move(request), on_event = std::move(on_event)] {
      Run(request, on_event);
    });
    return Status::Ok();
  }

  void Cancel(std::string_view request_id) override {
    std::lock_guard lock(mu_);
    auto it = active_.find(std::string(request_id));
    if (it == active_.end()) return;
    it->second = true;
    cancelled_.push_back(std::string(request_id));
    cv_.notify_all();
  }

  engine::GenerationRequest last_request() const {
    std::lock_guard lock(mu_);
    return last_request_;
  }
  // Encode calls so far.
  int encodes() const { return encodes_.load(); }
  int submits() const {
    std::lock_guard lock(mu_);
    return submits_;
  }
  std::vector<std::string> cancelled() const {
    std::lock_guard lock(mu_);
    return cancelled_;
  }
  // Waits (up to 30 s, a hang guard, not a timing assertion) until `pred` holds.
  bool WaitFor(const std::function<bool()>& pred) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(30), pred);
  }
  bool WaitForCancel() {
    return WaitFor([&] { return !cancelled_.empty(); });
  }
  bool WaitForActive() {
    return WaitFor([&] { return !active_.empty(); });
  }
  bool WaitForIdle() {
    return WaitFor([&] { return active_.empty(); });
  }

 private:
  void Run(const engine::GenerationRequest& request,
           const std::function<void(const engine::TokenEvent&)>& on_event) {
    const std::string text = ExpectedText(request.sampling.max_tokens, request.sampling.stop);
    engine::TokenEvent event;
    event.prompt_tokens = static_cast<uint32_t>(request.prompt.size());
    event.cached_tokens = CachedTokens(request.prompt.size());
    engine::FinishReason reason = text.size() < request.sampling.max_tokens
                                      ? engine::FinishReason::kStop
                                      : engine::FinishReason::kLength;
    for (char c : text) {
      if (token_delay.count() > 0) std::this_thread::sleep_for(token_delay);
      if (IsCancelled(request.request_id)) {
        reason = engine::FinishReason::kCancelled;
        break;
      }
      event.has_token = true;
      event.token = static_cast<unsigned char>(c);
      event.text = std::string(1, c);
      ++event.completion_tokens;
      on_event(event);
    }
    event.has_token = false;
    event.text.clear();
    event.finished = true;
    event.finish_reason = reason;
    if (fail_generation && reason != engine::FinishReason::kCancelled) {
      event.finish_reason = engine::FinishReason::kError;
      event.error = Status::Internal("the fake engine failed on purpose");
    }
    on_event(event);
    std::lock_guard lock(mu_);
    active_.erase(request.request_id);
    cv_.notify_all();
  }

  bool IsCancelled(const std::string& id) {
    std::lock_guard lock(mu_);
    return active_[id];
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, bool> active_;  // id -> cancelled
  std::vector<std::string> cancelled_;
  std::vector<std::thread> threads_;
  engine::GenerationRequest last_request_;
  int submits_ = 0;
  mutable std::atomic<int> encodes_{0};
};

}  // namespace strata::server::testing
