// The `strata` command: serve the reference engine with Strata behind an OpenAI-compatible
// HTTP API, show the resolved configuration, and compute block keys.
//
// Exit codes: 0 success (for `serve`: stopped by SIGINT/SIGTERM); 1 a runtime failure
// (stdout closed, the port in use, an unusable cache directory); 2 a usage or configuration
// error. `strata keys` prints only keys on stdout, one per line, so other processes and test
// scripts can compare them byte for byte; diagnostics go to stderr. `strata serve` prints
// one start-up line on stdout ("strata serve: ready at http://HOST:PORT ...", with the
// bound port even when --port 0 picked it) so scripts and tests can find the server.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "cli/bench_command.h"
#include "cli/cli_util.h"
#include "cli/daemon_command.h"
#include "cli/split.h"
#include "engine/engine.h"
#include "engine/model_config.h"
#include "engine/model_loader.h"
#include "metrics/metrics_server.h"
#include "metrics/strata_metrics.h"
#include "server/server.h"
#include "strata/block_key.h"
#include "strata/block_manager.h"
#include "strata/config.h"
#include "strata/status.h"
#include "strata/version.h"

namespace strata {
namespace {

using cli::BlockStopSignals;
using cli::FormatGiB;
using cli::GiBSize;
using cli::GiBToBytes;
using cli::kExitRuntime;
using cli::kExitUsage;
using cli::LoadOrReport;

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

// Flags of `strata serve`; each one, when given, overrides the configuration.
struct ServeArgs {
  std::optional<std::string> host;
  std::optional<uint16_t> port;
  std::optional<std::string> preset;
  std::optional<uint64_t> seed;
  std::optional<std::string> model;  // a GGUF file or Hugging Face directory
  bool no_strata = false;
  std::optional<double> device_cache_gb;
  cli::TierFlags tiers;
  std::optional<std::string> daemon;  // attach to this `strata daemon` socket
};

// The BlockManager options for the reference engine: the configured tiers and policies,
// but the model identity and KV layout of the engine's own model. The configuration's
// [model] and [layout] describe an external engine's model; cached KV must be keyed by
// the model that computes it.
BlockManagerOptions EngineManagerOptions(const StrataConfig& config,
                                         const engine::ModelConfig& model) {
  BlockManagerOptions o = config.manager;
  o.model_fingerprint = model.Fingerprint();
  o.layout = model.kv_layout();
  return o;
}

// Applies the flags on top of the loaded configuration and re-validates the result (a
// flag can break a cross-field rule, e.g. --host-gb 0 with a disk tier).
Status ApplyServeArgs(const ServeArgs& args, StrataConfig* config) {
  ServeConfig& s = config->serve;
  BlockManagerOptions& m = config->manager;
  if (args.host) s.host = *args.host;
  if (args.port) s.port = *args.port;
  if (args.preset) s.model_preset = *args.preset;
  if (args.seed) s.seed = *args.seed;
  if (args.model) s.model_path = *args.model;
  if (args.no_strata) s.strata_enabled = false;
  if (args.device_cache_gb) s.device_cache_gb = *args.device_cache_gb;
  STRATA_RETURN_IF_ERROR(cli::ApplyTierFlags(args.tiers, &m));
  if (args.daemon) m.daemon.socket = *args.daemon;
  STRATA_RETURN_IF_ERROR(s.Validate());
  if (s.strata_enabled && s.model_path.empty()) {
    // Against the engine's own layout, which the BlockManager will use: a --host-gb that
    // holds the tiny preset's blocks is fine even if it is smaller than a [layout] block.
    // A checkpoint's layout is known once it is loaded: BlockManager::Create checks it then.
    STRATA_ASSIGN_OR_RETURN(engine::ModelConfig model,
                            engine::ModelConfig::Preset(s.model_preset, s.seed));
    STRATA_RETURN_IF_ERROR(EngineManagerOptions(*config, model).Validate());
  }
  return Status::Ok();
}

// EngineManagerOptions, and a log line saying which [model]/[layout] keys it ignored.
BlockManagerOptions ManagerOptionsFor(const StrataConfig& config,
                                      const engine::ModelConfig& model) {
  std::vector<std::string> overridden;
  for (const auto& [key, source] : config.sources)
    if ((key.starts_with("model.") && key != "model.path") || key.starts_with("layout."))
      overridden.push_back(key);
  if (!overridden.empty()) {
    spdlog::warn(
        "strata serve: ignoring {} from the configuration: the reference engine keys the "
        "cache by its own model ('{}') and KV layout",
        fmt::join(overridden, ", "), model.name);
  } else {
    spdlog::info(
        "strata serve: using the reference engine's model fingerprint and KV layout, not "
        "the configuration's [model]/[layout] (those describe an external engine)");
  }
  return EngineManagerOptions(config, model);
}

// The resources of a running server. Destroyed in reverse order of construction:
// metrics endpoint and server (no new requests), engine (cancels what is in flight, waits
// for its transfers), then the BlockManager (finishes queued disk writes, closes G3).
struct ServeStack {
  std::shared_ptr<metrics::StrataMetrics> metrics;
  std::unique_ptr<BlockManager> manager;
  std::unique_ptr<engine::Engine> engine;
  std::unique_ptr<server::Server> server;
  std::unique_ptr<metrics::MetricsServer> metrics_server;

  void Shutdown() {
    if (metrics_server) metrics_server->Stop();
    if (server) server->Stop();
    metrics_server.reset();
    server.reset();
    engine.reset();
    if (metrics) metrics->AttachBlockManager(nullptr);  // waits out a scrape in flight
    manager.reset();
  }
};

// Fails fast when `host:port` cannot be bound (another server holds the port), before
// seconds are spent allocating G2 and opening G3. Only a hint: Server::Start binds for
// real and reports its own error. Skipped for port 0 and for hosts that are not IPv4
// literals (Server::Start resolves those).
Status CheckPortFree(const std::string& host, uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (port == 0 || inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) return Status::Ok();
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::Ok();
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  const int rc = bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  const int err = errno;
  close(fd);
  if (rc == 0) return Status::Ok();
  return Status::Unavailable(
      fmt::format("cannot listen on {}:{}: {}{}", host, port, std::strerror(err),
                  err == EADDRINUSE ? " (another server holds the port)" : ""));
}

// The model `strata serve` runs: a checkpoint from [model] path, or the synthetic preset.
struct ServeModel {
  engine::ModelConfig config;
  std::shared_ptr<const engine::Model> weights;           // null: the preset's synthetic weights
  std::shared_ptr<const tokenizer::Tokenizer> tokenizer;  // null: the byte tokenizer
  std::string description;                                // for the ready line
};

Result<ServeModel> LoadServeModel(const ServeConfig& s) {
  ServeModel m;
  if (s.model_path.empty()) {
    STRATA_ASSIGN_OR_RETURN(m.config, engine::ModelConfig::Preset(s.model_preset, s.seed));
    m.description = fmt::format("preset {}, seed {}", m.config.name, m.config.seed);
    return m;
  }
  const auto start = std::chrono::steady_clock::now();
  STRATA_ASSIGN_OR_RETURN(engine::LoadedModel loaded, engine::LoadModel(s.model_path));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  m.config = loaded.config;
  m.weights = loaded.model;
  m.tokenizer = loaded.tokenizer;
  m.description = fmt::format(
      "{} {} from {}, {} weights of {}, tokenizer {}, chat template {}, loaded in {:.1f} s",
      loaded.config.architecture, loaded.format, s.model_path, loaded.tensor_type,
      FormatGiB(loaded.tensor_bytes), loaded.tokenizer->name(),
      tokenizer::ChatFamilyName(tokenizer::ChatTemplate::Detect(loaded.tokenizer->chat_template())),
      seconds);
  return m;
}

// Builds the BlockManager (if Strata is on), the engine and the HTTP server, in that order.
Status StartServeStack(const StrataConfig& config, ServeStack* stack, std::string* summary) {
  const ServeConfig& s = config.serve;
  STRATA_RETURN_IF_ERROR(CheckPortFree(s.host, s.port));
  STRATA_ASSIGN_OR_RETURN(ServeModel served, LoadServeModel(s));
  const engine::ModelConfig& model = served.config;
  const KvLayout layout = model.kv_layout();
  const uint64_t block_bytes = layout.block_bytes();

  STRATA_ASSIGN_OR_RETURN(stack->metrics, metrics::StrataMetrics::Create());
  std::string tiers = "Strata off (baseline: every prompt is computed)";
  if (s.strata_enabled) {
    BlockManagerOptions options = ManagerOptionsFor(config, model);
    options.observer = stack->metrics;  // load and store latency histograms
    Result<std::unique_ptr<BlockManager>> manager = BlockManager::Create(options);
    if (!manager.ok()) return manager.status().WithContext("creating the BlockManager");
    stack->manager = std::move(manager).value();
    stack->metrics->AttachBlockManager(stack->manager.get());
    const BlockManagerStats st = stack->manager->stats();
    if (!options.daemon.socket.empty()) {
      tiers = fmt::format(
          "the tiers of the strata daemon at {} (G2 host {} blocks, G3 disk {} blocks{})",
          options.daemon.socket, st.host_capacity_blocks, st.disk_capacity_blocks,
          st.shared_enabled ? ", G4 shared" : "");
    } else {
      tiers = fmt::format("G2 host {} ({} blocks)", FormatGiB(options.host.capacity_bytes),
                          st.host_capacity_blocks);
    }
    if (!options.daemon.socket.empty()) {
      // Described above: the daemon's tiers.
    } else if (options.disk.capacity_bytes > 0) {
      std::error_code ec;
      std::filesystem::path dir =
          std::filesystem::absolute(options.disk.directory, ec).lexically_normal();
      if (ec) dir = options.disk.directory;
      tiers +=
          fmt::format(", G3 disk {} ({} blocks) in {} ({} blocks recovered from a previous run{})",
                      FormatGiB(options.disk.capacity_bytes), st.disk_capacity_blocks, dir.string(),
                      st.disk_recovered_blocks, st.disk_direct_io ? "" : "; buffered I/O");
    } else {
      tiers += ", no G3 disk tier";
    }
    if (st.shared_enabled && options.daemon.socket.empty()) {
      const SharedTierOptions& sh = options.shared;
      tiers += fmt::format(", G4 shared {}{}",
                           sh.kind == SharedTierKind::kRedis
                               ? fmt::format("redis://{}", fmt::join(sh.endpoints, ","))
                               : fmt::format("fs://{}", sh.directory),
                           st.shared_available ? "" : " (unavailable now, retrying)");
    }
  }

  engine::EngineOptions eo;
  eo.model = model;
  eo.weights = served.weights;
  eo.tokenizer = served.tokenizer;
  eo.block_manager = stack->manager.get();
  const uint64_t device_blocks = GiBToBytes(s.device_cache_gb) / block_bytes;
  if (device_blocks > UINT32_MAX)
    return Status::InvalidArgument(
        fmt::format("engine.device_cache_gb {} is {} KV blocks, more than the engine supports",
                    s.device_cache_gb, device_blocks));
  eo.num_device_blocks = static_cast<uint32_t>(device_blocks);
  if (eo.num_device_blocks == 0)
    return Status::InvalidArgument(fmt::format(
        "engine.device_cache_gb {} holds no {}-byte KV block", s.device_cache_gb, block_bytes));
  eo.max_running_requests = s.max_batch;
  eo.prefill_chunk_tokens = s.prefill_chunk;
  eo.max_step_tokens = std::max(s.prefill_chunk, s.max_batch);
  Result<std::unique_ptr<engine::Engine>> engine = engine::Engine::Create(std::move(eo));
  if (!engine.ok()) return engine.status().WithContext("creating the engine");
  stack->engine = std::move(engine).value();

  server::ServerOptions so;
  so.host = s.host;
  so.port = s.port;
  so.observer = stack->metrics.get();                  // TTFT, inter-token latency, requests
  so.extra_routes.push_back(stack->metrics->Route());  // /metrics on the API port too
  Result<std::unique_ptr<server::Server>> server = server::Server::Start(so, stack->engine.get());
  if (!server.ok()) return server.status().WithContext("starting the HTTP server");
  stack->server = std::move(server).value();

  // The Prometheus endpoint on its own port (127.0.0.1:6880 unless configured). A busy
  // port does not stop the server: /metrics stays on the API port, and the log says so.
  std::string metrics_where = fmt::format("http://{}:{}/metrics", s.host, stack->server->port());
  if (s.metrics_enabled) {
    auto ms = metrics::MetricsServer::Start({.host = s.host, .port = s.metrics_port},
                                            [m = stack->metrics] { return m->Render(); });
    if (ms.ok()) {
      stack->metrics_server = std::move(ms).value();
      metrics_where = fmt::format("http://{}:{}/metrics and {}", s.host,
                                  stack->metrics_server->port(), metrics_where);
    } else {
      spdlog::error(
          "strata serve: metrics endpoint on port {} not started: {}; /metrics is "
          "still served at {}",
          s.metrics_port, ms.status().ToString(), metrics_where);
    }
  }

  *summary = fmt::format(
      "strata serve: ready at http://{}:{} | model {} ({}, {:.1f}M parameters, "
      "{} tokens/block, {} KiB/block, context {}) | device cache {} ({} blocks), batch {}, "
      "prefill chunk {} | {} | metrics at {}",
      s.host, stack->server->port(), stack->server->model_name(), served.description,
      static_cast<double>(model.num_parameters()) / 1e6, layout.tokens_per_block,
      block_bytes / 1024, model.max_context_tokens,
      FormatGiB(uint64_t{stack->engine->kv_cache().num_blocks()} * block_bytes),
      stack->engine->kv_cache().num_blocks(), s.max_batch, s.prefill_chunk, tiers, metrics_where);
  return Status::Ok();
}

int RunServe(const std::string& config_path, const ServeArgs& args) {
  Result<StrataConfig> config = LoadOrReport(config_path);
  if (!config.ok()) return kExitUsage;
  if (Status s = ApplyServeArgs(args, &*config); !s.ok()) {
    fmt::print(stderr, "strata serve: {}\n", s.ToString());
    return kExitUsage;
  }
  for (const std::string& note : config->notes) spdlog::info("strata serve: {}", note);

  // Before any thread exists: the BlockManager, engine and server threads inherit the mask.
  const sigset_t stop_signals = BlockStopSignals();
  ServeStack stack;
  std::string summary;
  if (Status s = StartServeStack(*config, &stack, &summary); !s.ok()) {
    fmt::print(stderr, "strata serve: {}\n", s.ToString());
    stack.Shutdown();
    return s.code() == StatusCode::kInvalidArgument ? kExitUsage : kExitRuntime;
  }
  fmt::print("{}\n", summary);
  if (int rc = FinishStdout(); rc != 0) {
    stack.Shutdown();
    return rc;
  }

  int sig = 0;
  sigwait(&stop_signals, &sig);
  spdlog::info("strata serve: {} received, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
  stack.Shutdown();
  spdlog::info("strata serve: stopped");
  return 0;
}

int Main(int argc, char** argv) {
  CLI::App app{"Strata: tiered KV-cache offload and reuse for LLM inference.", "strata"};
  app.set_version_flag("--version", "strata " STRATA_VERSION_STRING);
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

  ServeArgs serve_args;
  CLI::App* serve_cmd = app.add_subcommand(
      "serve",
      "Serve the reference engine with Strata behind an OpenAI-compatible HTTP API "
      "(/v1/completions, /v1/chat/completions, /v1/models, /health) until SIGINT/SIGTERM");
  serve_cmd->add_option("--config", config_path, config_help)->option_text("FILE");
  serve_cmd->add_option("--host", serve_args.host, "Address to bind (default: server.host)");
  serve_cmd->add_option("--port", serve_args.port,
                        "TCP port; 0 picks a free one (default: server.port)");
  serve_cmd->add_option("--preset", serve_args.preset,
                        "Model preset: tiny, small, demo (default: engine.preset)");
  serve_cmd->add_option("--seed", serve_args.seed, "Synthetic weight seed (default: engine.seed)");
  serve_cmd
      ->add_option("--model", serve_args.model,
                   "Serve a real checkpoint: a GGUF file or a Hugging Face model directory "
                   "(config.json + safetensors); Llama-family models (default: model.path; "
                   "--preset and --seed then do nothing)")
      ->option_text("PATH");
  serve_cmd->add_flag("--no-strata", serve_args.no_strata,
                      "Run the engine without Strata (the baseline: no offload, no reuse)");
  serve_cmd
      ->add_option("--device-cache-gb", serve_args.device_cache_gb,
                   "GiB of the engine's paged KV cache (default: engine.device_cache_gb)")
      ->check(GiBSize(/*positive=*/true));
  cli::AddTierFlags(serve_cmd, &serve_args.tiers);
  serve_cmd
      ->add_option("--daemon", serve_args.daemon,
                   "Use the tiers of the strata daemon listening on this Unix socket instead "
                   "of tiers of its own (default: daemon.socket; the tier flags then do "
                   "nothing)")
      ->option_text("SOCKET");

  cli::DaemonCommand daemon(app);
  cli::BenchCommand bench(app);

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
  if (serve_cmd->parsed()) return RunServe(config_path, serve_args);
  if (bench.parsed()) return bench.Run();
  if (daemon.parsed()) return daemon.Run(config_path);
  // No subcommand shows the configuration (`strata serve` starts a server, so it is asked for).
  return RunConfig(config_path);
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  return strata::Main(argc, argv);
}
