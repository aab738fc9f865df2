// `strata bench compare`: one multi-round QA workload against `strata serve` three ways —
// Strata off (every prompt recomputed), G2 host tier only, and G2 + G3 disk tier — each a
// fresh server process on a free port, one after the other, then a table and plots.
#pragma once

#include <string>
#include <vector>

#include "loadgen/multi_round_qa.h"
#include "strata/status.h"

namespace strata::loadgen {

struct CompareOptions {
  // The workload run against each server (base_url, model, metrics_url and output are
  // set per run). Defaults sized for the reference engine on a few CPU cores.
  MultiRoundQaOptions workload = DefaultCpuWorkload();
  // The `strata` binary to start servers with. Default: this program.
  std::string strata_binary = "/proc/self/exe";
  // Engine preset and its device (G1) KV cache, smaller than the working set so blocks
  // must leave it (it must still hold one full context). Defaults: small, 0.125 GiB.
  std::string preset = "small";
  double device_cache_gb = 0.125;
  // G2 for the "g2" and "g2+g3" runs, and G3 for "g2+g3". Defaults 0.0625 GiB (about one
  // user's conversation: the working set spills out of G2 too) and 2 GiB.
  double host_gb = 0.0625;
  double disk_gb = 2;
  // Which runs, in order: any of "off", "g2", "g2+g3". Default all three.
  std::vector<std::string> configs = {"off", "g2", "g2+g3"};
  // Directory for results (<dir>/<config>.{csv,json,svg}, compare.{md,json,svg}, server
  // logs) and the G3 tier of the g2+g3 run (created fresh, removed after). Required.
  std::string output_dir;
  // Short requests sent to each server before the measured run (start-up costs). Default 2.
  uint32_t warmup_requests = 2;
  // Extra flags for every `strata serve`.
  std::vector<std::string> serve_args;

  static MultiRoundQaOptions DefaultCpuWorkload();
  Status Validate() const;
};

struct CompareResult {
  std::vector<MultiRoundQaResult> runs;  // in configs order
  std::string table;                     // markdown
};

Result<CompareResult> RunCompare(const CompareOptions& options);

// The markdown table of a comparison (exposed for tests).
std::string CompareTable(const std::vector<RunSummary>& runs);

}  // namespace strata::loadgen
