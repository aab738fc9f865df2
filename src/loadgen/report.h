// Results of a multi-round QA run: one record per request, the summary LMBenchmark prints
// (and the percentiles it lacks), and the files a run leaves behind: CSV, JSON and an SVG
// plot of TTFT over time and its distribution.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "strata/status.h"

namespace strata::loadgen {

struct RequestRecord {
  uint32_t user_id = 0;
  uint32_t question_id = 0;
  double launch_s = 0;  // since the run started
  double finish_s = 0;
  bool ok = false;
  std::string error;        // why it failed, when !ok
  double ttft_s = 0;        // valid when ok
  double generation_s = 0;  // first token -> end of the stream
  uint32_t prompt_tokens = 0;
  uint32_t completion_tokens = 0;
  uint32_t cached_tokens = 0;
  std::vector<double> chunk_gaps_s;  // inter-token latencies (not written to the CSV)
};

struct Percentiles {
  double mean = 0, p50 = 0, p90 = 0, p99 = 0, max = 0;
  size_t count = 0;
};
// Nearest-rank percentiles of `v` (any order); all zero when empty.
Percentiles ComputePercentiles(std::vector<double> v);

// Per-tier hit rates over the run, from the server's /metrics before and after.
struct TierHits {
  double prompt_blocks = 0;  // full prompt blocks Match looked up
  double host_blocks = 0;    // of those, found in G2
  double disk_blocks = 0;    // found in G3
  double shared_blocks = 0;  // found in the G4 shared tier
  double host_rate() const { return prompt_blocks > 0 ? host_blocks / prompt_blocks : 0; }
  double disk_rate() const { return prompt_blocks > 0 ? disk_blocks / prompt_blocks : 0; }
  double shared_rate() const { return prompt_blocks > 0 ? shared_blocks / prompt_blocks : 0; }
};

struct RunSummary {
  std::string label;
  double wall_s = 0;  // first launch -> last finish
  size_t requests = 0;
  size_t failed = 0;
  Percentiles ttft;  // seconds, successful requests
  Percentiles itl;   // seconds, every inter-token gap of every request
  double input_tokens_per_s = 0;
  double output_tokens_per_s = 0;
  double qps = 0;                    // requests finished per second
  double cached_token_fraction = 0;  // sum(cached) / sum(prompt) from usage
  std::optional<TierHits> tiers;     // when /metrics was read
  std::string first_error;
};

RunSummary Summarize(std::span<const RequestRecord> records, std::string label);

// The summary as text, LMBenchmark's fields first.
std::string FormatSummary(const RunSummary& s);

Status WriteCsv(const std::string& path, std::span<const RequestRecord> records);
// `config` is written as given (the options that produced the run).
Status WriteJson(const std::string& path, const RunSummary& summary,
                 std::span<const RequestRecord> records, const std::string& config_json);

// One series of a plot: a run's records under its label.
struct PlotSeries {
  std::string label;
  std::span<const RequestRecord> records;
};
// Two panels: TTFT of each request against its launch time, and the cumulative
// distribution of TTFT, one colour per series.
std::string RenderTtftSvg(std::span<const PlotSeries> series, const std::string& title);
// Grouped bars of mean/p50/p90/p99 TTFT per run.
std::string RenderTtftBarsSvg(std::span<const RunSummary> runs, const std::string& title);
Status WriteFile(const std::string& path, const std::string& contents);

// Prometheus text exposition: the sum of every sample of `name` whose labels include all
// of `labels` (e.g. {{"tier","host"}}). nullopt when no sample matches.
std::optional<double> PrometheusValue(const std::string& exposition, const std::string& name,
                                      const std::map<std::string, std::string>& labels = {});
// The counters TierHits needs, read from one exposition; nullopt when it has none of them
// (not a Strata server, or Strata off).
std::optional<TierHits> ReadTierCounters(const std::string& exposition);
// after - before, field by field.
TierHits Delta(const TierHits& after, const TierHits& before);

}  // namespace strata::loadgen
