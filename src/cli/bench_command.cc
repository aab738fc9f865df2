#include "cli/bench_command.h"

#include <cstdio>

#include <fmt/format.h>

#include "cli/split.h"

namespace strata::cli {

namespace {
constexpr int kExitRuntime = 1;
constexpr int kExitUsage = 2;
}  // namespace

void BenchCommand::AddWorkloadFlags(CLI::App* cmd, loadgen::MultiRoundQaOptions* w) {
  cmd->add_option("--num-users", w->num_users, "Users in the system at once")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--num-rounds", w->num_rounds, "Rounds (questions) per user")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--qps", w->qps, "Overall requests per second; a user asks every users/qps s")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--shared-system-prompt", w->system_prompt_words,
                  "Words of the system prompt every user shares")
      ->capture_default_str();
  cmd->add_option("--user-history-prompt", w->user_context_words,
                  "Words of each user's own context")
      ->capture_default_str();
  cmd->add_option("--answer-len", w->answer_tokens, "max_tokens of each answer")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--time", w->duration_s,
                  "Seconds during which users join and ask; in-flight requests then finish")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--init-user-id", w->init_user_id, "First user id")->capture_default_str();
  cmd->add_flag("--request-with-user-id", w->user_id_header, "Send an x-user-id header");
  cmd->add_option("--request-timeout", w->request_timeout_s,
                  "Seconds before a request is abandoned (counted as failed)")
      ->capture_default_str();
  cmd->add_flag("--no-progress", no_progress_, "No progress bar on stderr");
}

BenchCommand::BenchCommand(CLI::App& app) {
  bench_ = app.add_subcommand("bench", "Benchmarks against OpenAI-compatible servers");
  bench_->require_subcommand(1);

  qa_ = bench_->add_subcommand(
      "multi-round-qa",
      "LMBenchmark's synthetic multi-round QA against any OpenAI-compatible URL: TTFT and "
      "inter-token latency percentiles, tokens/s, per-tier hit rates; CSV, JSON and SVG out");
  qa_->add_option("--base-url", qa_options_.base_url, "Server URL (with or without /v1)")
      ->capture_default_str();
  qa_->add_option("--model", qa_options_.model, "Model name (default: the first /v1/models lists)");
  qa_->add_option("--api-key", qa_options_.api_key, "Bearer token, when the server needs one");
  qa_->add_option("--metrics-url", qa_options_.metrics_url,
                  "Prometheus endpoint for per-tier hit rates (default: <base-url>/metrics; "
                  "'none' to skip)");
  qa_->add_option("--output", qa_options_.output,
                  "Write <output>.csv, <output>.json and <output>.svg");
  qa_->add_option("--label", qa_options_.label, "Name of this run in reports and plots");
  AddWorkloadFlags(qa_, &qa_options_);

  compare_ = bench_->add_subcommand(
      "compare",
      "The same multi-round QA against `strata serve` with Strata off, G2 only and G2+G3 "
      "(each a fresh server), with CPU-sized defaults; a table and plots");
  compare_options_.workload = loadgen::CompareOptions::DefaultCpuWorkload();
  compare_
      ->add_option("--output-dir", compare_options_.output_dir,
                   "Directory for results, plots, server logs and the G3 tier")
      ->required();
  compare_->add_option("--preset", compare_options_.preset, "Engine preset")->capture_default_str();
  compare_
      ->add_option("--device-cache-gb", compare_options_.device_cache_gb,
                   "GiB of the engine's KV cache (G1)")
      ->capture_default_str();
  compare_->add_option("--host-gb", compare_options_.host_gb, "GiB of G2")->capture_default_str();
  compare_->add_option("--disk-gb", compare_options_.disk_gb, "GiB of G3 (g2+g3 run)")
      ->capture_default_str();
  compare_->add_option("--configs", configs_, "Runs, in order: off, g2, g2+g3 (comma-separated)")
      ->capture_default_str();
  compare_
      ->add_option("--warmup", compare_options_.warmup_requests,
                   "Short requests to each server before its run")
      ->capture_default_str();
  compare_->add_option("--strata-binary", compare_options_.strata_binary,
                       "The strata binary to start servers with (default: this one)");
  compare_
      ->add_option("--serve-arg", compare_options_.serve_args,
                   "An extra flag for every `strata serve` (repeatable)")
      ->allow_extra_args(false);
  AddWorkloadFlags(compare_, &compare_options_.workload);
}

int BenchCommand::Run() {
  if (qa_->parsed()) {
    qa_options_.progress = !no_progress_;
    Result<loadgen::MultiRoundQaResult> r = loadgen::RunMultiRoundQa(qa_options_);
    if (!r.ok()) {
      fmt::print(stderr, "strata bench multi-round-qa: {}\n", r.status().ToString());
      return r.status().code() == StatusCode::kInvalidArgument ? kExitUsage : kExitRuntime;
    }
    fmt::print("{}", loadgen::FormatSummary(r->summary));
    if (!qa_options_.output.empty())
      fmt::print("Wrote {0}.csv, {0}.json and {0}.svg\n", qa_options_.output);
    return r->summary.requests > r->summary.failed ? 0 : kExitRuntime;
  }
  compare_options_.workload.progress = !no_progress_;
  compare_options_.configs = SplitComma(configs_);
  Result<loadgen::CompareResult> r = loadgen::RunCompare(compare_options_);
  if (!r.ok()) {
    fmt::print(stderr, "strata bench compare: {}\n", r.status().ToString());
    return r.status().code() == StatusCode::kInvalidArgument ? kExitUsage : kExitRuntime;
  }
  fmt::print(
      "{}\nWrote {}/compare.{{md,json,svg}}, compare-bars.svg and one .csv/.json/.svg per "
      "run\n",
      r->table, compare_options_.output_dir);
  return 0;
}

}  // namespace strata::cli
