// http::Server: the listening socket, the I/O threads and Stop (http_server.h); the
// connections are in connection.cc.
#include "http/http_server.h"

#include <csignal>
#include <optional>
#include <set>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "http/connection.h"

namespace strata::http {

using boost::system::error_code;

class Server::Impl {
 public:
  ~Impl() { Stop(std::chrono::milliseconds(0)); }

  Status Start(ServerOptions options, std::vector<Route> routes);
  void Stop(std::chrono::milliseconds grace);
  uint16_t port() const { return port_; }
  ServerStats stats() const {
    ServerStats s;
    s.connections_accepted = core_.accepted.load();
    s.connections_rejected = core_.rejected.load();
    s.connections_open = core_.open.load();
    s.requests = core_.requests.load();
    s.read_timeouts = core_.read_timeouts.load();
    s.write_timeouts = core_.write_timeouts.load();
    s.clients_gone = core_.gone.load();
    s.probes_started = core_.probes.load();
    s.bodies_refused = core_.bodies_refused.load();
    return s;
  }

 private:
  void Accept();

  // Declared first, destroyed last: connections point at it.
  Core core_;
  asio::io_context ioc_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  tcp::acceptor acceptor_{asio::make_strand(ioc_)};
  asio::steady_timer accept_retry_{acceptor_.get_executor()};
  std::vector<std::thread> threads_;
  uint16_t port_ = 0;
  std::mutex stop_mu_;
  bool stopped_ = false;
};

Status Server::Impl::Start(ServerOptions options, std::vector<Route> routes) {
  if (options.io_threads == 0) return Status::InvalidArgument("http: io_threads must be >= 1");
  if (options.max_connections == 0)
    return Status::InvalidArgument("http: max_connections must be >= 1");
  if (options.max_body_bytes == 0)
    return Status::InvalidArgument("http: max_body_bytes must be > 0");
  if (options.max_header_bytes < 1024)
    return Status::InvalidArgument("http: max_header_bytes must be >= 1024");
  for (auto t : {options.idle_timeout, options.header_timeout, options.body_timeout,
                 options.write_timeout, options.probe_interval})
    if (t.count() <= 0) return Status::InvalidArgument("http: every timeout must be > 0");
  for (Route& r : routes) {
    if (r.path.empty() || r.path[0] != '/' || r.method.empty() || !r.handler)
      return Status::InvalidArgument(
          fmt::format("http: route '{} {}' needs a method, a path starting with '/' and a handler",
                      r.method, r.path));
    for (const Route& other : core_.routes[r.path])
      if (other.method == r.method)
        return Status::InvalidArgument(
            fmt::format("http: route '{} {}' is given twice", r.method, r.path));
    std::string path = r.path;
    core_.routes[path].push_back(std::move(r));
  }
  core_.options = std::move(options);
  const ServerOptions& o = core_.options;

  // A write to a client that vanished must fail with EPIPE, not kill the process.
  std::signal(SIGPIPE, SIG_IGN);

  error_code ec;
  tcp::resolver resolver(ioc_);
  const auto endpoints = resolver.resolve(
      o.host, std::to_string(o.port), tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  const auto cannot = [&](std::string_view why) {
    return Status::Unavailable(fmt::format("cannot listen on {}:{} ({})", o.host, o.port, why));
  };
  if (ec || endpoints.empty()) return cannot("not an address of this machine?");
  const tcp::endpoint endpoint = endpoints.begin()->endpoint();
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return cannot(ec.message() + "; address in use, or not an address of this machine?");
  port_ = acceptor_.local_endpoint().port();

  work_.emplace(ioc_.get_executor());
  Accept();
  for (uint32_t i = 0; i < o.io_threads; ++i) threads_.emplace_back([this] { ioc_.run(); });
  return Status::Ok();
}

void Server::Impl::Accept() {
  acceptor_.async_accept(asio::make_strand(ioc_), [this](error_code ec, tcp::socket socket) {
    if (!acceptor_.is_open()) return;
    {
      std::lock_guard lock(core_.mu);
      if (core_.stopping) return;
    }
    if (ec) {
      // Out of file descriptors, typically: try again shortly rather than spin.
      spdlog::warn("{}: accept failed: {}", core_.options.name, ec.message());
      accept_retry_.expires_after(std::chrono::milliseconds(50));
      accept_retry_.async_wait([this](error_code e) {
        if (!e) Accept();
      });
      return;
    }
    const bool reject = core_.open.load() >= core_.options.max_connections;
    std::make_shared<Connection>(&core_, std::move(socket), reject)->Start();
    Accept();
  });
}

void Server::Impl::Stop(std::chrono::milliseconds grace) {
  std::lock_guard stop_lock(stop_mu_);
  if (stopped_ || threads_.empty()) {
    stopped_ = true;
    return;
  }
  std::vector<std::shared_ptr<Connection>> connections;
  {
    std::lock_guard lock(core_.mu);
    core_.stopping = true;
    for (auto& [raw, weak] : core_.live)
      if (auto c = weak.lock()) connections.push_back(std::move(c));
  }
  asio::post(acceptor_.get_executor(), [this] {
    error_code ignored;
    acceptor_.close(ignored);
    accept_retry_.cancel();
  });
  for (auto& c : connections) asio::post(c->executor(), [c, grace] { c->Shutdown(grace); });
  connections.clear();
  // Every connection goes once its last handler has run.
  const auto deadline = std::chrono::steady_clock::now() + grace + std::chrono::seconds(5);
  for (;;) {
    {
      std::lock_guard lock(core_.mu);
      if (core_.live.empty()) break;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      spdlog::warn("{}: connections still open at shutdown", core_.options.name);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  work_.reset();
  ioc_.stop();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
  stopped_ = true;
}

Result<std::unique_ptr<Server>> Server::Start(ServerOptions options, std::vector<Route> routes) {
  auto impl = std::make_unique<Impl>();
  STRATA_RETURN_IF_ERROR(impl->Start(std::move(options), std::move(routes)));
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() {
  Stop();
}
uint16_t Server::port() const {
  return impl_->port();
}
ServerStats Server::stats() const {
  return impl_->stats();
}
void Server::Stop(std::chrono::milliseconds grace) {
  impl_->Stop(grace);
}

}  // namespace strata::http
