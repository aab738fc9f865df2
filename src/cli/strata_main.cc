// The `strata` command: show the resolved configuration and compute block keys.
//
// Exit codes: 0 success; 1 a runtime failure (e.g. stdout closed); 2 a usage or
// configuration error. `strata keys` prints only keys on stdout, one per line, so other
// processes and test scripts can compare them byte for byte; diagnostics go to stderr.
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "strata/block_key.h"
#include "strata/config.h"
#include "strata/status.h"

#ifndef STRATA_VERSION
#define STRATA_VERSION "unknown"
#endif

namespace strata {
namespace {

constexpr int kExitRuntime = 1;
constexpr int kExitUsage = 2;

// Parses "1,2,3", "1, 2, 3" or "1 2 3" into token ids; an empty string is no tokens.
Result<std::vector<TokenId>> ParseTokenList(std::string_view text) {
  std::vector<TokenId> tokens;
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  size_t i = 0;
  auto skip_spaces = [&] {
    while (i < text.size() && is_space(text[i])) ++i;
  };
  skip_spaces();
  while (i < text.size()) {
    TokenId id = 0;
    const auto [ptr, ec] = std::from_chars(text.data() + i, text.data() + text.size(), id);
    if (ec != std::errc()) {
      return Status::InvalidArgument(fmt::format(
          "--tokens: expected a 32-bit integer token id at offset {} of '{}'", i, text));
    }
    tokens.push_back(id);
    i = static_cast<size_t>(ptr - text.data());
    skip_spaces();
    if (i < text.size() && text[i] == ',') {
      ++i;
      skip_spaces();
      if (i == text.size())
        return Status::InvalidArgument(fmt::format("--tokens: trailing comma in '{}'", text));
    }
  }
  return tokens;
}

// A byte-level tokenizer: every byte of the UTF-8 text is one token id in 0..255. Crude,
// but identical in every language, which is what cross-process key checks need.
std::vector<TokenId> ByteTokens(std::string_view text) {
  std::vector<TokenId> tokens;
  tokens.reserve(text.size());
  for (char c : text) tokens.push_back(static_cast<TokenId>(static_cast<unsigned char>(c)));
  return tokens;
}

Result<StrataConfig> LoadOrReport(const std::string& config_path) {
  Result<StrataConfig> config = LoadConfig(config_path, ProcessEnv());
  if (!config.ok()) fmt::print(stderr, "strata: {}\n", config.status().ToString());
  return config;
}

// Flushes stdout and turns a write failure (a closed pipe, a full disk) into an exit code.
int FinishStdout() {
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
    fmt::print(stderr, "strata: writing to stdout failed\n");
    return kExitRuntime;
  }
  return 0;
}

int RunConfig(const std::string& config_path) {
  Result<StrataConfig> config = LoadOrReport(config_path);
  if (!config.ok()) return kExitUsage;
  fmt::print("{}", DescribeConfig(*config));
  return FinishStdout();
}

struct KeysArgs {
  std::string salt;
  std::string lora;
  std::string hash;
  std::string text;
  std::string tokens;
  uint64_t range = 0;
  // Which of the three inputs was given; CLI11 enforces exactly one.
  bool has_text = false;
  bool has_tokens = false;
  bool has_range = false;
};

int RunKeys(const std::string& config_path, const KeysArgs& args) {
  Result<StrataConfig> config = LoadOrReport(config_path);
  if (!config.ok()) return kExitUsage;
  const BlockManagerOptions& o = config->manager;

  KeyNamespace ns;
  ns.model_fingerprint = o.model_fingerprint;
  ns.layout = o.layout;
  ns.rank = o.rank;
  ns.world_size = o.world_size;
  ns.lora_id = args.lora;
  ns.cache_salt = args.salt;
  ns.algorithm = o.hash_algorithm;
  if (!args.hash.empty()) {
    Result<HashAlgorithm> algorithm = ParseHashAlgorithm(args.hash);
    if (!algorithm.ok()) {
      fmt::print(stderr, "strata: --hash: {}\n", algorithm.status().ToString());
      return kExitUsage;
    }
    ns.algorithm = *algorithm;
  }
  Result<BlockKeyer> keyer = BlockKeyer::Create(ns);
  if (!keyer.ok()) {
    fmt::print(stderr, "strata: {}\n", keyer.status().ToString());
    return kExitUsage;
  }

  std::vector<TokenId> tokens;
  if (args.has_text) {
    tokens = ByteTokens(args.text);
  } else if (args.has_tokens) {
    Result<std::vector<TokenId>> parsed = ParseTokenList(args.tokens);
    if (!parsed.ok()) {
      fmt::print(stderr, "strata: {}\n", parsed.status().ToString());
      return kExitUsage;
    }
    tokens = std::move(parsed).value();
  } else {
    // Token ids are int32, so 0..N-1 must stay below 2^31.
    if (args.range > uint64_t{1} << 31) {
      fmt::print(stderr, "strata: --range {} exceeds 2^31 tokens\n", args.range);
      return kExitUsage;
    }
    tokens.resize(args.range);
    for (uint64_t i = 0; i < args.range; ++i) tokens[i] = static_cast<TokenId>(i);
  }

  for (const BlockKey& key : keyer->ComputeKeys(tokens)) fmt::print("{}\n", key.ToHex());
  return FinishStdout();
}

int Main(int argc, char** argv) {
  CLI::App app{"Strata: tiered KV-cache offload and reuse for LLM inference.", "strata"};
  app.set_version_flag("--version", "strata " STRATA_VERSION);
  app.require_subcommand(0, 1);

  // --config is accepted before or after the subcommand; both spellings fill one string.
  std::string config_path;
  const std::string config_help =
      "TOML configuration file (default: $STRATA_CONFIG, else built-in defaults)";
  app.add_option("--config", config_path, config_help)->option_text("FILE");

  CLI::App* config_cmd = app.add_subcommand(
      "config", "Print the resolved configuration, where each value came from, and tier sizes");
  config_cmd->add_option("--config", config_path, config_help)->option_text("FILE");

  KeysArgs keys_args;
  CLI::App* keys_cmd =
      app.add_subcommand("keys", "Print the block keys of a token sequence, one hex key per line");
  keys_cmd->add_option("--config", config_path, config_help)->option_text("FILE");
  keys_cmd->add_option("--salt", keys_args.salt, "Per-request cache salt (default: none)");
  keys_cmd->add_option("--lora", keys_args.lora, "LoRA adapter id (default: base model)");
  keys_cmd->add_option("--hash", keys_args.hash,
                       "Key hash, sha256 or xxh3_128 (default: the configuration's keys.hash)");
  CLI::Option_group* input =
      keys_cmd->add_option_group("input", "The tokens to key; give exactly one");
  CLI::Option* text_opt =
      input->add_option("--text", keys_args.text, "Text, one token per UTF-8 byte (ids 0..255)");
  CLI::Option* tokens_opt =
      input->add_option("--tokens", keys_args.tokens, "Token ids, comma-separated: \"1,2,3\"")
          ->option_text("IDS");
  CLI::Option* range_opt =
      input->add_option("--range", keys_args.range, "The tokens 0, 1, ..., N-1")->option_text("N");
  input->require_option(1);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // prints help, the version, or the error
    return code == 0 ? 0 : kExitUsage;
  }

  if (keys_cmd->parsed()) {
    keys_args.has_text = text_opt->count() > 0;
    keys_args.has_tokens = tokens_opt->count() > 0;
    keys_args.has_range = range_opt->count() > 0;
    return RunKeys(config_path, keys_args);
  }
  // No subcommand means `config` until `strata serve` exists.
  return RunConfig(config_path);
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  return strata::Main(argc, argv);
}
