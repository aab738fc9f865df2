// `strata daemon`: the node-level cache (src/daemon) as a command — one process that owns the
// node's G2 (shared memory), G3 and G4 and serves them to every engine process on the node
// over a Unix socket, until SIGINT/SIGTERM.
#pragma once

#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "cli/cli_util.h"

namespace strata::cli {

class DaemonCommand {
 public:
  // Adds `daemon` and its flags to `app`.
  explicit DaemonCommand(CLI::App& app);
  bool parsed() const { return cmd_->parsed(); }
  // Runs it; the process exit code. `config_path` is the top-level --config.
  int Run(const std::string& config_path);

 private:
  CLI::App* cmd_ = nullptr;
  std::string config_path_;
  std::optional<std::string> socket_;
  std::optional<std::string> group_;
  std::optional<std::string> preset_;
  std::optional<uint16_t> metrics_port_;
  TierFlags tiers_;
};

}  // namespace strata::cli
