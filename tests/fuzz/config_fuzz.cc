// libFuzzer harness: configuration loading (LoadConfigFromString) — the TOML parser and
// every setting reader, then the environment variables, cross-checks and validation.
//
// Input: a TOML document, optionally followed by a line "#%env" and then NAME=VALUE lines,
// the environment the loader sees (through FixedEnv, the same code path as the process
// environment).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>

#include "strata/config.h"

namespace {
constexpr std::string_view kEnvMarker = "#%env\n";
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view toml(reinterpret_cast<const char*>(data), size);
  std::map<std::string, std::string, std::less<>> env;
  if (const size_t at = toml.find(kEnvMarker); at != std::string_view::npos) {
    std::string_view lines = toml.substr(at + kEnvMarker.size());
    toml = toml.substr(0, at);
    while (!lines.empty()) {
      const size_t end = std::min(lines.find('\n'), lines.size());
      const std::string_view line = lines.substr(0, end);
      lines.remove_prefix(std::min(end + 1, lines.size()));
      const size_t eq = line.find('=');
      if (eq != std::string_view::npos)
        env[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
    }
  }
  strata::Result<strata::StrataConfig> config =
      strata::LoadConfigFromString(toml, strata::FixedEnv(std::move(env)));
  if (config.ok()) {
    // A loaded configuration is a valid one, and describing it must work.
    if (!config->manager.Validate().ok() || !config->serve.Validate().ok()) std::abort();
    (void)strata::DescribeConfig(*config);
  } else if (config.status().message().empty()) {
    std::abort();  // every refusal says why
  }
  return 0;
}
