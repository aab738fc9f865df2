// `strata bench multi-round-qa`: runs the MultiRoundQaWorkload against an OpenAI-compatible
// server — closed loop per user, streaming, temperature 0 — and reports TTFT and
// inter-token latency percentiles, token throughput and per-tier hit rates.
#pragma once

#include <string>
#include <vector>

#include "loadgen/report.h"
#include "loadgen/workload.h"
#include "strata/status.h"

namespace strata::loadgen {

struct MultiRoundQaResult {
  RunSummary summary;
  std::vector<RequestRecord> records;  // in finishing order
};

// Runs the workload. Unavailable when the server does not answer /v1/models (and no model
// was given); InvalidArgument for bad options. Individual request failures are recorded,
// not returned. Writes options.output.{csv,json,svg} when options.output is set.
Result<MultiRoundQaResult> RunMultiRoundQa(const MultiRoundQaOptions& options);

// The options as JSON (written into the result JSON so a run documents itself).
std::string OptionsJson(const MultiRoundQaOptions& options);

}  // namespace strata::loadgen
