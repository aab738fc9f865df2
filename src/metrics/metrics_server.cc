// MetricsServer over cpp-httplib (metrics_server.h).
#include "metrics/metrics_server.h"

#include <sys/socket.h>

#include <atomic>
#include <csignal>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <httplib.h>

#include "metrics/registry.h"

namespace strata::metrics {

class MetricsServer::Impl {
 public:
  Status Start(const MetricsServerOptions& options, std::function<std::string()> body) {
    if (options.path.empty() || options.path[0] != '/')
      return Status::InvalidArgument(
          fmt::format("metrics path '{}' must start with '/'", options.path));
    if (options.threads == 0)
      return Status::InvalidArgument("metrics server threads must be at least 1");
    if (!body) return Status::InvalidArgument("metrics server needs a body function");

    http_.Get("/", [path = options.path](const httplib::Request&, httplib::Response& res) {
      res.set_content(fmt::format("Strata metrics: {}\n", path), "text/plain; charset=utf-8");
    });
    // An exact path; httplib routes are regular expressions, so escape it.
    std::string pattern;
    for (char c : options.path) {
      if (std::string_view(".^$|()[]{}*+?\\").find(c) != std::string_view::npos) pattern += '\\';
      pattern += c;
    }
    http_.Get(pattern, [body = std::move(body)](const httplib::Request&, httplib::Response& res) {
      res.set_content(body(), Registry::kContentType);
    });

    std::signal(SIGPIPE, SIG_IGN);  // a scraper that hangs up must not kill the process
    const uint32_t threads = options.threads;
    http_.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    // No SO_REUSEPORT (httplib's default): a second server must not share our port.
    http_.set_socket_options([](socket_t sock) {
      int yes = 1;
      setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    });
    int port = options.port;
    if (options.port == 0)
      port = http_.bind_to_any_port(options.host);
    else if (!http_.bind_to_port(options.host, options.port))
      port = -1;
    if (port <= 0)
      return Status::Unavailable(fmt::format(
          "metrics: cannot listen on {}:{} (address in use, or not an address of this machine?)",
          options.host, options.port));
    port_ = static_cast<uint16_t>(port);
    listener_ = std::thread([this] {
      http_.listen_after_bind();
      listen_returned_.store(true);
    });
    // Return only once the accept loop runs, so that a Stop right after Start is not lost.
    while (!http_.is_running() && !listen_returned_.load())
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    spdlog::info("strata metrics: http://{}:{}{}", options.host, port_, options.path);
    return Status::Ok();
  }

  void Stop() {
    std::lock_guard lock(stop_mu_);
    http_.stop();
    if (listener_.joinable()) listener_.join();
  }

  uint16_t port() const { return port_; }

 private:
  httplib::Server http_;
  std::thread listener_;
  std::mutex stop_mu_;
  uint16_t port_ = 0;
  std::atomic<bool> listen_returned_{false};  // the accept loop ended (or never started)
};

Result<std::unique_ptr<MetricsServer>> MetricsServer::Start(const MetricsServerOptions& options,
                                                            std::function<std::string()> body) {
  auto impl = std::make_unique<Impl>();
  STRATA_RETURN_IF_ERROR(impl->Start(options, std::move(body)));
  return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(impl)));
}

MetricsServer::MetricsServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
MetricsServer::~MetricsServer() {
  Stop();
}
uint16_t MetricsServer::port() const {
  return impl_->port();
}
void MetricsServer::Stop() {
  impl_->Stop();
}

}  // namespace strata::metrics
