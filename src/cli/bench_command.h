// `strata bench multi-round-qa` and `strata bench compare`: the command-line side of
// src/loadgen (flags named as LMBenchmark's multi-round-qa.py names them).
#pragma once

#include <CLI/CLI.hpp>

#include "loadgen/compare.h"
#include "loadgen/multi_round_qa.h"

namespace strata::cli {

class BenchCommand {
 public:
  // Adds `bench` and its subcommands to `app`.
  explicit BenchCommand(CLI::App& app);
  bool parsed() const { return bench_->parsed(); }
  // Runs the parsed subcommand; the process exit code.
  int Run();

 private:
  void AddWorkloadFlags(CLI::App* cmd, loadgen::MultiRoundQaOptions* w);

  CLI::App* bench_ = nullptr;
  CLI::App* qa_ = nullptr;
  CLI::App* compare_ = nullptr;
  loadgen::MultiRoundQaOptions qa_options_;
  loadgen::CompareOptions compare_options_;
  std::string configs_ = "off,g2,g2+g3";
  bool no_progress_ = false;
};

}  // namespace strata::cli
