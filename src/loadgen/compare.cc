#include "loadgen/compare.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <regex>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "loadgen/stream_client.h"

extern char** environ;

namespace strata::loadgen {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// A `strata serve` child. Its stdout and stderr go to a log file through a pipe read on a
// thread, which also spots the start-up line "ready at http://host:port".
class ServeProcess {
 public:
  ~ServeProcess() { Stop(); }

  Status Start(const std::string& binary, const std::vector<std::string>& args,
               const std::string& log_path) {
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0) return Status::IoError("pipe2", errno);
    std::vector<std::string> argv_s = {binary, "serve"};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    // The flags alone decide the configuration: no inherited STRATA_*/DYN_KVBM_* settings,
    // and the metrics endpoint on a free port (/metrics is also on the API port).
    std::vector<std::string> env_s;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string_view var(*e);
      if (var.starts_with("STRATA_") || var.starts_with("DYN_KVBM_")) continue;
      env_s.emplace_back(var);
    }
    env_s.push_back("STRATA_METRICS_PORT=0");
    std::vector<char*> envp;
    for (auto& e : env_s) envp.push_back(e.data());
    envp.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&fa, out[1], STDERR_FILENO);
    const int rc = posix_spawn(&pid_, binary.c_str(), &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    if (rc != 0) {
      close(out[0]);
      pid_ = -1;
      return Status::IoError("starting " + binary, rc);
    }
    reader_ = std::thread([this, fd = out[0], log_path] { Read(fd, log_path); });
    return Status::Ok();
  }

  // Waits for the start-up line; the server's URL, or why it did not come up.
  Result<std::string> WaitReady(std::chrono::seconds deadline) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, deadline, [&] { return !url_.empty() || eof_; });
    if (!url_.empty()) return url_;
    return Status::Unavailable(fmt::format("strata serve did not start{}; last output: {}",
                                           eof_ ? " (it exited)" : " in time", last_line_));
  }

  // SIGTERM, then SIGKILL after 60 s; the exit status.
  int Stop() {
    int status = 0;
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      for (int i = 0; i < 600; ++i) {
        if (waitpid(pid_, &status, WNOHANG) == pid_) {
          pid_ = -1;
          break;
        }
        std::this_thread::sleep_for(100ms);
      }
      if (pid_ > 0) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        pid_ = -1;
      }
    }
    if (reader_.joinable()) reader_.join();
    return status;
  }

 private:
  void Read(int fd, const std::string& log_path) {
    std::ofstream log(log_path, std::ios::app);
    const std::regex ready(R"(ready at (http://[^ ]+))");
    std::string pending;
    char buf[4096];
    for (;;) {
      const ssize_t n = read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      log.write(buf, n);
      log.flush();
      pending.append(buf, static_cast<size_t>(n));
      for (size_t nl; (nl = pending.find('\n')) != std::string::npos;) {
        const std::string line = pending.substr(0, nl);
        pending.erase(0, nl + 1);
        std::smatch m;
        std::lock_guard lock(mu_);
        last_line_ = line;
        if (url_.empty() && std::regex_search(line, m, ready)) {
          url_ = m[1];
          cv_.notify_all();
        }
      }
    }
    close(fd);
    std::lock_guard lock(mu_);
    eof_ = true;
    cv_.notify_all();
  }

  pid_t pid_ = -1;
  std::thread reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::string url_, last_line_;
  bool eof_ = false;
};

std::string ConfigLabel(const std::string& config) {
  if (config == "off") return "Strata off";
  if (config == "g2") return "G2 only";
  return "G2+G3";
}

std::string FileStem(const std::string& config) {
  return config == "g2+g3" ? "g2-g3" : config;
}

// Flags of `strata serve` for one configuration.
std::vector<std::string> ServeArgs(const CompareOptions& o, const std::string& config,
                                   const std::string& disk_dir) {
  std::vector<std::string> a = {"--host",
                                "127.0.0.1",
                                "--port",
                                "0",
                                "--preset",
                                o.preset,
                                "--device-cache-gb",
                                fmt::format("{}", o.device_cache_gb)};
  if (config == "off") {
    a.push_back("--no-strata");
  } else {
    a.insert(a.end(), {"--host-gb", fmt::format("{}", o.host_gb)});
    if (config == "g2") {
      a.insert(a.end(), {"--disk-gb", "0"});
    } else {
      a.insert(a.end(), {"--disk-gb", fmt::format("{}", o.disk_gb), "--disk-dir", disk_dir});
    }
  }
  a.insert(a.end(), o.serve_args.begin(), o.serve_args.end());
  return a;
}

// A few short requests, so the measured run does not pay for first-touch start-up costs.
void Warmup(const std::string& url, uint32_t n) {
  const StreamClient client(url, "", 120);
  Result<std::string> model = client.FirstModel();
  if (!model.ok()) return;
  for (uint32_t i = 0; i < n; ++i) {
    ChatRequest r;
    r.model = *model;
    r.messages = {{"user", fmt::format("WARMUP: Hi, I'm user {}. Here are some text: 'hi '.", i)}};
    r.max_tokens = 4;
    (void)client.Chat(r);
  }
}

}  // namespace

// Sized for the small preset on two cores: 4 users of 10 rounds at 0.15 QPS keep Strata
// off below saturation most of the time (~80% busy); a long shared system prompt (~4,500
// tokens, more than G2 holds) and a short per-user context make the history, not the cold
// start, most of each prompt, as in a long-running chat; 150 s gives each user several
// rounds after the ramp-up.
MultiRoundQaOptions CompareOptions::DefaultCpuWorkload() {
  MultiRoundQaOptions w;
  w.num_users = 4;
  w.num_rounds = 10;
  w.qps = 0.15;
  w.system_prompt_words = 1500;
  w.user_context_words = 100;
  w.answer_tokens = 64;
  w.duration_s = 150;
  return w;
}

Status CompareOptions::Validate() const {
  STRATA_RETURN_IF_ERROR(workload.Validate());
  if (output_dir.empty()) return Status::InvalidArgument("an output directory is required");
  if (configs.empty()) return Status::InvalidArgument("no configuration to run");
  for (const std::string& c : configs)
    if (c != "off" && c != "g2" && c != "g2+g3")
      return Status::InvalidArgument(
          fmt::format("unknown configuration '{}': use off, g2 or g2+g3", c));
  if (!(device_cache_gb > 0)) return Status::InvalidArgument("device_cache_gb must be > 0");
  if (!(host_gb > 0)) return Status::InvalidArgument("host_gb must be > 0");
  if (!(disk_gb > 0)) return Status::InvalidArgument("disk_gb must be > 0");
  return Status::Ok();
}

std::string CompareTable(const std::vector<RunSummary>& runs) {
  auto ms = [](double s) { return fmt::format("{:.0f}", s * 1e3); };
  auto pct = [](double f) { return fmt::format("{:.0f}%", 100 * f); };
  const RunSummary* off = nullptr;
  for (const RunSummary& r : runs)
    if (r.label == ConfigLabel("off")) off = &r;
  std::string t =
      "| configuration | requests (failed) | mean TTFT ms | p50 | p90 | p99 | mean ITL ms | "
      "input tok/s | output tok/s | cached tokens | G2 hits | G3 hits | mean TTFT vs off |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const RunSummary& r : runs) {
    const std::string speedup =
        off && r.ttft.mean > 0 ? fmt::format("{:.1f}x", off->ttft.mean / r.ttft.mean) : "-";
    t += fmt::format(
        "| {} | {} ({}) | {} | {} | {} | {} | {} | {:.0f} | {:.1f} | {} | {} | {} | {} |\n",
        r.label, r.requests - r.failed, r.failed, ms(r.ttft.mean), ms(r.ttft.p50), ms(r.ttft.p90),
        ms(r.ttft.p99), ms(r.itl.mean), r.input_tokens_per_s, r.output_tokens_per_s,
        pct(r.cached_token_fraction), r.tiers ? pct(r.tiers->host_rate()) : "-",
        r.tiers ? pct(r.tiers->disk_rate()) : "-", speedup);
  }
  return t;
}

Result<CompareResult> RunCompare(const CompareOptions& options) {
  STRATA_RETURN_IF_ERROR(options.Validate());
  std::error_code ec;
  fs::create_directories(options.output_dir, ec);
  if (ec) return Status::IoError("creating " + options.output_dir, ec.value());
  CompareResult result;
  for (const std::string& config : options.configs) {
    const std::string stem = options.output_dir + "/" + FileStem(config);
    const std::string disk_dir = options.output_dir + "/g3-cache";
    fs::remove_all(disk_dir, ec);  // every g2+g3 run starts with an empty G3
    fmt::print(stderr, "== {}: starting strata serve ({})\n", ConfigLabel(config),
               fmt::join(ServeArgs(options, config, disk_dir), " "));
    ServeProcess server;
    fs::remove(stem + ".serve.log", ec);
    STRATA_RETURN_IF_ERROR(server.Start(options.strata_binary, ServeArgs(options, config, disk_dir),
                                        stem + ".serve.log"));
    Result<std::string> url = server.WaitReady(std::chrono::seconds(300));
    if (!url.ok()) return url.status().WithContext(ConfigLabel(config));
    Warmup(*url, options.warmup_requests);
    MultiRoundQaOptions w = options.workload;
    w.base_url = *url;
    w.model.clear();
    w.metrics_url.clear();
    w.output = stem;
    w.label = ConfigLabel(config);
    Result<MultiRoundQaResult> run = RunMultiRoundQa(w);
    const int status = server.Stop();
    fs::remove_all(disk_dir, ec);
    if (!run.ok()) return run.status().WithContext(ConfigLabel(config));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      fmt::print(stderr, "warning: strata serve ({}) exited with status {}; see {}.serve.log\n",
                 config, status, stem);
    fmt::print(stderr, "{}", FormatSummary(run->summary));
    result.runs.push_back(std::move(run).value());
  }

  std::vector<RunSummary> summaries;
  std::vector<PlotSeries> series;
  for (const MultiRoundQaResult& r : result.runs) {
    summaries.push_back(r.summary);
    series.push_back({r.summary.label, r.records});
  }
  result.table = CompareTable(summaries);
  const MultiRoundQaOptions& w = options.workload;
  const std::string title = fmt::format(
      "strata serve, preset {}: {} users x {} rounds, {} QPS, {}+{} words, {} s", options.preset,
      w.num_users, w.num_rounds, w.qps, w.system_prompt_words, w.user_context_words, w.duration_s);
  const std::string dir = options.output_dir + "/";
  STRATA_RETURN_IF_ERROR(WriteFile(dir + "compare.md", "# " + title + "\n\n" + result.table));
  STRATA_RETURN_IF_ERROR(WriteFile(dir + "compare.svg", RenderTtftSvg(series, title)));
  STRATA_RETURN_IF_ERROR(WriteFile(dir + "compare-bars.svg", RenderTtftBarsSvg(summaries, title)));
  nlohmann::ordered_json j = {{"workload", nlohmann::json::parse(OptionsJson(w))},
                              {"preset", options.preset},
                              {"device_cache_gb", options.device_cache_gb},
                              {"host_gb", options.host_gb},
                              {"disk_gb", options.disk_gb},
                              {"runs", nlohmann::json::array()}};
  for (const RunSummary& s : summaries)
    j["runs"].push_back({{"label", s.label},
                         {"requests", s.requests},
                         {"failed", s.failed},
                         {"ttft_mean_s", s.ttft.mean},
                         {"ttft_p50_s", s.ttft.p50},
                         {"ttft_p90_s", s.ttft.p90},
                         {"ttft_p99_s", s.ttft.p99},
                         {"itl_mean_s", s.itl.mean},
                         {"input_tokens_per_s", s.input_tokens_per_s},
                         {"output_tokens_per_s", s.output_tokens_per_s},
                         {"cached_token_fraction", s.cached_token_fraction}});
  STRATA_RETURN_IF_ERROR(WriteFile(dir + "compare.json", j.dump(2) + "\n"));
  return result;
}

}  // namespace strata::loadgen
