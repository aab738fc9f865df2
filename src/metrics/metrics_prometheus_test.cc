// Integration: a real Prometheus server (Debian's `prometheus`) scrapes MetricsServer,
// which exports StrataMetrics over a real BlockManager (G2 + G3), and the values queried
// back through Prometheus' HTTP API equal the BlockManager's stats. Skipped when the
// binary is missing.
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "metrics/metrics_server.h"
#include "metrics/metrics_test_util.h"
#include "metrics/strata_metrics.h"

namespace strata::metrics {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

std::string FindPrometheus() {
  for (const char* p : {"/usr/bin/prometheus", "/usr/local/bin/prometheus"})
    if (access(p, X_OK) == 0) return p;
  return "";
}

// A port free right now on 127.0.0.1 (the kernel's pick); the caller binds it soon after.
uint16_t FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  uint16_t port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// A prometheus process; killed (by its PID) and reaped at destruction.
class PrometheusProcess {
 public:
  ~PrometheusProcess() { Kill(); }

  // Starts `binary` scraping 127.0.0.1:target_port/metrics every second, storage and log in
  // `dir`, its UI and API on 127.0.0.1:port.
  bool Start(const std::string& binary, const std::string& dir, uint16_t target_port,
             uint16_t port) {
    port_ = port;
    log_ = dir + "/prometheus.log";
    const std::string config = dir + "/prometheus.yml";
    std::ofstream(config) << "global:\n"
                             "  scrape_interval: 1s\n"
                             "  scrape_timeout: 1s\n"
                             "scrape_configs:\n"
                             "  - job_name: strata\n"
                             "    metrics_path: /metrics\n"
                             "    static_configs:\n"
                             "      - targets: ['127.0.0.1:"
                          << target_port << "']\n";
    const std::vector<std::string> args = {
        binary, "--config.file=" + config, "--storage.tsdb.path=" + dir + "/data",
        "--web.listen-address=127.0.0.1:" + std::to_string(port), "--log.level=warn"};
    // Everything the child needs is prepared before fork: this process has threads, so the
    // child may only make async-signal-safe calls (no allocation) before execv.
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_ = fork();
    if (pid_ == 0) {
      const int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
      }
      execv(argv[0], argv.data());
      _exit(127);
    }
    return pid_ > 0;
  }

  // True while the process runs.
  bool Alive() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    return true;
  }

  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    for (int i = 0; i < 100; ++i) {  // 10 s for a clean shutdown, then SIGKILL
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(100ms);
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  // GET an API path; the parsed JSON body, or null.
  Json Api(const std::string& path) {
    httplib::Client client("127.0.0.1", port_);
    client.set_connection_timeout(2);
    client.set_read_timeout(5);
    auto res = client.Get(path);
    if (!res || res->status != 200) return nullptr;
    return Json::parse(res->body, nullptr, false);
  }

  // The value of an instant query with a single result, or nullopt.
  std::optional<double> Query(const std::string& promql) {
    const Json j = Api("/api/v1/query?query=" + httplib::detail::encode_query_param(promql));
    if (j.is_discarded() || j.is_null() || j.value("status", "") != "success") return std::nullopt;
    const Json& result = j["data"]["result"];
    if (!result.is_array() || result.size() != 1) return std::nullopt;
    return std::stod(result[0]["value"][1].get<std::string>());
  }

  std::string log() const { return ReadFile(log_); }

 private:
  pid_t pid_ = -1;
  uint16_t port_ = 0;
  std::string log_;
};

TEST(PrometheusScrapeTest, RealPrometheusScrapesStrataMetrics) {
  const std::string binary = FindPrometheus();
  if (binary.empty()) GTEST_SKIP() << "prometheus not installed (Debian package prometheus)";

  // Strata with G2 + G3, exercised so its counters are non-zero.
  test::TempDir cache_dir, prom_dir;
  ASSERT_FALSE(cache_dir.path.empty());
  ASSERT_FALSE(prom_dir.path.empty());
  auto created = StrataMetrics::Create();
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  std::shared_ptr<StrataMetrics> metrics = *created;
  auto manager = test::MakeManager(4, cache_dir.path, metrics);
  ASSERT_TRUE(manager.ok()) << manager.status().ToString();
  manager_test::EmulatedDevice device(test::TestLayout(), 32);
  ASSERT_TRUE((*manager)->RegisterDeviceCache(device.cache).ok());
  metrics->AttachBlockManager(manager->get());
  ASSERT_EQ(test::Exercise(**manager, device), 64u);
  server::RequestStats request;
  request.endpoint = "/v1/completions";
  request.status = 200;
  request.ttft_seconds = 0.12;
  request.inter_token_seconds = {0.01, 0.012, 0.011};
  request.completion_tokens = 4;
  request.duration_seconds = 0.2;
  for (int i = 0; i < 10; ++i) metrics->OnRequestDone(request);
  const BlockManagerStats stats = (*manager)->stats();

  auto ms = MetricsServer::Start({.port = 0}, [metrics] { return metrics->Render(); });
  ASSERT_TRUE(ms.ok()) << ms.status().ToString();

  // Start prometheus; a port taken between FreePort and its bind makes it exit: retry.
  PrometheusProcess prom;
  bool up = false;
  for (int attempt = 0; attempt < 3 && !up; ++attempt) {
    prom.Kill();
    ASSERT_TRUE(prom.Start(binary, prom_dir.path, (*ms)->port(), FreePort()));
    // Up: the target has been scraped successfully (up == 1).
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (std::chrono::steady_clock::now() < deadline && prom.Alive()) {
      if (prom.Query("up{job=\"strata\"}") == 1.0) {
        up = true;
        break;
      }
      std::this_thread::sleep_for(250ms);
    }
  }
  ASSERT_TRUE(up) << "prometheus never scraped the target; its log:\n" << prom.log();

  // The target is healthy, with no scrape error (a malformed exposition would show here).
  const Json targets = prom.Api("/api/v1/targets");
  ASSERT_TRUE(targets.is_object());
  const Json& active = targets["data"]["activeTargets"];
  ASSERT_EQ(active.size(), 1u) << targets.dump();
  EXPECT_EQ(active[0].value("health", ""), "up") << active[0].dump();
  EXPECT_EQ(active[0].value("lastError", "x"), "") << active[0].dump();

  EXPECT_EQ(prom.Query("kvbm_matched_tokens"), double(stats.matched_tokens));
  EXPECT_EQ(prom.Query("kvbm_offload_blocks_h2d"), double(stats.disk_offload_blocks));
  EXPECT_EQ(prom.Query("kvbm_onboard_blocks_d2d"), double(stats.loaded_blocks_from_disk));
  EXPECT_EQ(prom.Query("kvbm_disk_cache_hit_rate"),
            double(stats.match_hit_blocks_disk) / double(stats.match_prompt_blocks));
  EXPECT_EQ(prom.Query("strata_bytes_total{path=\"device_to_host\"}"), double(stats.stored_bytes));
  EXPECT_EQ(prom.Query("strata_tier_used_blocks{tier=\"disk\"}"), double(stats.disk_used_blocks));
  EXPECT_EQ(prom.Query("strata_ttft_seconds_count"), 10.0);
  // PromQL over the histogram: all TTFTs fall in (0.1, 0.15], so the median interpolates there.
  const auto p50 = prom.Query("histogram_quantile(0.5, sum by (le) (strata_ttft_seconds_bucket))");
  ASSERT_TRUE(p50.has_value());
  EXPECT_GT(*p50, 0.1);
  EXPECT_LE(*p50, 0.15);

  // Every PromQL expression of the Grafana dashboard is valid for this Prometheus, with
  // Grafana's variables as a user would have them.
  std::ifstream dash_file(std::string(STRATA_SOURCE_DIR) + "/deploy/grafana/strata-dashboard.json");
  ASSERT_TRUE(dash_file);
  const Json dash = Json::parse(dash_file, nullptr, false);
  ASSERT_FALSE(dash.is_discarded());
  int checked = 0;
  for (const Json& panel : dash["panels"]) {
    if (!panel.contains("targets")) continue;
    for (const Json& target : panel["targets"]) {
      std::string expr = target.value("expr", "");
      for (auto [var, value] :
           {std::pair<std::string, std::string>{"$__rate_interval", "1m"}, {"$job", ".*"}})
        for (size_t p; (p = expr.find(var)) != std::string::npos;)
          expr.replace(p, var.size(), value);
      const Json r = prom.Api("/api/v1/query?query=" + httplib::detail::encode_query_param(expr));
      EXPECT_TRUE(r.is_object() && r.value("status", "") == "success")
          << panel.value("title", "") << ": " << expr << " -> " << r.dump();
      ++checked;
    }
  }
  EXPECT_GE(checked, 10);

  prom.Kill();
  EXPECT_FALSE(prom.Alive());
  (*ms)->Stop();
  metrics->AttachBlockManager(nullptr);
}

}  // namespace
}  // namespace strata::metrics
