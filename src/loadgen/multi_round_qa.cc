#include "loadgen/multi_round_qa.h"

#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "loadgen/stream_client.h"

namespace strata::loadgen {
namespace {

using Clock = std::chrono::steady_clock;

// Threads created as requests need them (one request each at a time), reused afterwards:
// a closed loop never has more requests in flight than users in the system.
class RequestThreads {
 public:
  ~RequestThreads() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : threads_) t.join();
  }
  void Run(std::function<void()> task) {
    std::lock_guard lock(mu_);
    tasks_.push_back(std::move(task));
    if (idle_ == 0) {
      threads_.emplace_back([this] { Loop(); });
    } else {
      cv_.notify_one();
    }
  }

 private:
  void Loop() {
    std::unique_lock lock(mu_);
    for (;;) {
      ++idle_;
      cv_.wait(lock, [&] { return stopping_ || !tasks_.empty(); });
      --idle_;
      if (tasks_.empty()) return;  // stopping
      std::function<void()> task = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      task();
      lock.lock();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  std::vector<std::thread> threads_;
  size_t idle_ = 0;
  bool stopping_ = false;
};

std::optional<TierHits> ScrapeTiers(const std::string& url) {
  if (url.empty()) return std::nullopt;
  Result<std::string> body = StreamClient::Get(url, 10);
  if (!body.ok()) return std::nullopt;
  return ReadTierCounters(*body);
}

class Progress {
 public:
  explicit Progress(bool enabled) : enabled_(enabled), tty_(isatty(STDERR_FILENO) == 1) {}
  void Show(double now, double duration, size_t users, size_t in_flight, size_t done, size_t failed,
            double mean_ttft, bool final) {
    if (!enabled_) return;
    if (!final && now - last_ < (tty_ ? 0.25 : 5.0)) return;
    last_ = now;
    const int width = 30;
    const int filled = static_cast<int>(width * std::min(1.0, now / duration));
    const std::string bar = std::string(filled, '#') + std::string(width - filled, '.');
    const std::string line = fmt::format(
        "[{}] {:5.1f}/{:.0f} s | users {:3} | in flight {:3} | done {:4} ({} failed) | mean "
        "TTFT {:.0f} ms",
        bar, now, duration, users, in_flight, done, failed, mean_ttft * 1e3);
    const char* end = final || !tty_ ? "\n" : "";
    if (tty_) {
      fmt::print(stderr, "\r{}\x1b[K{}", line, end);
    } else {
      fmt::print(stderr, "{}{}", line, end);
    }
    std::fflush(stderr);
  }

 private:
  bool enabled_, tty_;
  double last_ = -1e9;
};

}  // namespace

std::string OptionsJson(const MultiRoundQaOptions& o) {
  nlohmann::ordered_json j = {{"base_url", o.base_url},
                              {"model", o.model},
                              {"num_users", o.num_users},
                              {"num_rounds", o.num_rounds},
                              {"qps", o.qps},
                              {"system_prompt_words", o.system_prompt_words},
                              {"user_context_words", o.user_context_words},
                              {"answer_tokens", o.answer_tokens},
                              {"duration_s", o.duration_s},
                              {"init_user_id", o.init_user_id},
                              {"request_gap_s", o.request_gap_s()},
                              {"user_join_gap_s", o.user_join_gap_s()},
                              {"label", o.label}};
  return j.dump();
}

Result<MultiRoundQaResult> RunMultiRoundQa(const MultiRoundQaOptions& options_in) {
  STRATA_RETURN_IF_ERROR(options_in.Validate());
  MultiRoundQaOptions options = options_in;
  options.base_url = NormalizeBaseUrl(options.base_url);
  const StreamClient client(options.base_url, options.api_key, options.request_timeout_s);
  if (options.model.empty()) {
    STRATA_ASSIGN_OR_RETURN(options.model, client.FirstModel());
  }
  std::string metrics_url = options.metrics_url;
  if (metrics_url.empty()) metrics_url = options.base_url + "/metrics";
  if (metrics_url == "none") metrics_url.clear();
  const std::optional<TierHits> tiers_before = ScrapeTiers(metrics_url);

  MultiRoundQaWorkload workload(options);
  MultiRoundQaResult result;
  std::mutex mu;  // workload, result.records and the running sums below
  double ttft_sum = 0;
  size_t ok_count = 0;
  const Clock::time_point t0 = Clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - t0).count(); };
  Progress progress(options.progress);
  {
    RequestThreads threads;
    for (;;) {
      std::vector<PlannedRequest> planned;
      size_t users = 0, in_flight = 0, done = 0, failed = 0;
      double mean_ttft = 0;
      const double now = elapsed();
      {
        std::lock_guard lock(mu);
        if (workload.Done(now)) break;
        planned = workload.Step(now);
        users = workload.active_users();
        in_flight = workload.in_flight();
        done = result.records.size();
        failed = done - ok_count;
        mean_ttft = ok_count > 0 ? ttft_sum / static_cast<double>(ok_count) : 0;
      }
      progress.Show(now, options.duration_s, users, in_flight, done, failed, mean_ttft, false);
      for (PlannedRequest& p : planned) {
        threads.Run([&, p = std::move(p)]() mutable {
          RequestRecord r;
          r.user_id = p.user_id;
          r.question_id = p.question_id;
          ChatRequest req;
          req.model = options.model;
          req.messages = std::move(p.messages);
          req.max_tokens = options.answer_tokens;
          req.temperature = 0;
          if (options.user_id_header)
            req.headers.push_back({"x-user-id", fmt::to_string(p.user_id)});
          r.launch_s = elapsed();
          Result<StreamTiming> t = client.Chat(req);
          r.finish_s = elapsed();
          RequestOutcome outcome;
          if (t.ok()) {
            r.ok = true;
            r.ttft_s = t->ttft_s;
            r.generation_s = t->total_s - t->ttft_s;
            r.prompt_tokens = t->prompt_tokens;
            r.completion_tokens = t->completion_tokens;
            r.cached_tokens = t->cached_tokens;
            r.chunk_gaps_s = std::move(t->chunk_gaps_s);
            outcome = {true, std::move(t->text)};
          } else {
            r.error = t.status().ToString();
          }
          std::lock_guard lock(mu);
          if (r.ok) {
            ttft_sum += r.ttft_s;
            ++ok_count;
          }
          result.records.push_back(std::move(r));
          workload.Finish(p.user_id, outcome);
        });
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  const double end = elapsed();
  progress.Show(end, options.duration_s, 0, 0, result.records.size(),
                result.records.size() - ok_count,
                ok_count > 0 ? ttft_sum / static_cast<double>(ok_count) : 0, true);

  result.summary = Summarize(result.records, options.label);
  if (tiers_before) {
    if (const std::optional<TierHits> after = ScrapeTiers(metrics_url))
      result.summary.tiers = Delta(*after, *tiers_before);
  }
  if (!options.output.empty()) {
    STRATA_RETURN_IF_ERROR(WriteCsv(options.output + ".csv", result.records));
    STRATA_RETURN_IF_ERROR(
        WriteJson(options.output + ".json", result.summary, result.records, OptionsJson(options)));
    const PlotSeries series[] = {{options.label.empty() ? "TTFT" : options.label, result.records}};
    STRATA_RETURN_IF_ERROR(WriteFile(
        options.output + ".svg",
        RenderTtftSvg(series, fmt::format("Multi-round QA: {} users, {} rounds, {} QPS{}",
                                          options.num_users, options.num_rounds, options.qps,
                                          options.label.empty() ? "" : " — " + options.label))));
  }
  return result;
}

}  // namespace strata::loadgen
