// MetricsServer over http::Server (metrics_server.h).
#include "metrics/metrics_server.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "http/http_server.h"
#include "metrics/registry.h"

namespace strata::metrics {

class MetricsServer::Impl {
 public:
  Status Start(const MetricsServerOptions& options, std::function<std::string()> body) {
    if (options.path.empty() || options.path[0] != '/')
      return Status::InvalidArgument(
          fmt::format("metrics path '{}' must start with '/'", options.path));
    if (options.path == "/")
      return Status::InvalidArgument("metrics path must not be '/' (it points at the path)");
    if (options.threads == 0)
      return Status::InvalidArgument("metrics server threads must be at least 1");
    if (!body) return Status::InvalidArgument("metrics server needs a body function");

    std::vector<http::Route> routes;
    routes.push_back(
        {"GET", "/", [path = options.path](http::Request&, std::shared_ptr<http::Exchange> x) {
           x->Respond(
               {200, "text/plain; charset=utf-8", fmt::format("Strata metrics: {}\n", path), {}});
         }});
    routes.push_back({"GET", options.path,
                      [body = std::move(body)](http::Request&, std::shared_ptr<http::Exchange> x) {
                        x->Respond({200, std::string(Registry::kContentType), body(), {}});
                      }});
    http::ServerOptions ho;
    ho.name = "strata metrics";
    ho.host = options.host;
    ho.port = options.port;
    ho.io_threads = options.threads;
    ho.max_connections = 64;  // scrapers, not clients
    ho.max_body_bytes = 4096;
    auto server = http::Server::Start(std::move(ho), std::move(routes));
    if (!server.ok()) return Status::Unavailable("metrics: " + server.status().message());
    http_ = std::move(server).value();
    spdlog::info("strata metrics: http://{}:{}{}", options.host, http_->port(), options.path);
    return Status::Ok();
  }

  void Stop() { http_->Stop(); }
  uint16_t port() const { return http_->port(); }

 private:
  std::unique_ptr<http::Server> http_;
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
