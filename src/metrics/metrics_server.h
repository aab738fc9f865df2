// MetricsServer: a small HTTP server for the Prometheus endpoint on its own port.
//
// `strata serve` exposes metrics at http://127.0.0.1:6880/metrics by default (Dynamo's
// DYN_KVBM_METRICS_PORT), apart from the OpenAI API port, so a scraper never competes with
// inference requests for the API server's worker threads.
//
//   auto ms = MetricsServer::Start({.port = 6880}, [m] { return m->Render(); });
//   if (!ms.ok()) { ... ms.status() ... }      // Unavailable: the port is taken
//   ...
//   (*ms)->Stop();
//
// GET <path> answers the body function's text as the Prometheus exposition format 0.0.4;
// GET / answers a one-line pointer to it; anything else is 404.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "strata/status.h"

namespace strata::metrics {

struct MetricsServerOptions {
  // Address to bind. Default 127.0.0.1 (not reachable from other machines unless asked).
  std::string host = "127.0.0.1";
  // TCP port. Default 6880; 0 picks a free port (MetricsServer::port() tells which).
  uint16_t port = 6880;
  // Path of the exposition. Default "/metrics".
  std::string path = "/metrics";
  // HTTP worker threads. Default 2: scrapes are rare and quick.
  uint32_t threads = 2;
};

class MetricsServer {
 public:
  // Binds and serves on background threads; returns once connections are accepted.
  // `body` is called for every scrape, concurrently from the worker threads.
  // InvalidArgument for bad options, Unavailable when the address cannot be bound.
  static Result<std::unique_ptr<MetricsServer>> Start(const MetricsServerOptions& options,
                                                      std::function<std::string()> body);
  ~MetricsServer();  // Stops.
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  uint16_t port() const;
  // Stops accepting and joins the threads. Idempotent.
  void Stop();

 private:
  class Impl;
  explicit MetricsServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace strata::metrics
