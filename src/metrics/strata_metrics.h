// StrataMetrics: every metric Strata exports to Prometheus (docs/metrics.md lists them).
//
// Three sources feed it:
//   - BlockManager::stats(), read at each scrape (Dynamo KVBM's kvbm_* names and strata_*
//     counters and gauges: bytes per tier pair, occupancy, queues, errors, drops);
//   - the BlockManager's BlockManagerObserver hooks (load and store latency histograms);
//   - the HTTP server's ServerObserver hook (TTFT, inter-token latency, request duration,
//     requests by endpoint and status, tokens).
//
// Wiring in `strata serve` (the observer must be in the options before the BlockManager
// exists, the manager pointer can only be attached after):
//
//   auto metrics = metrics::StrataMetrics::Create();             // shared_ptr
//   bm_options.observer = *metrics;                               // latency histograms
//   auto manager = BlockManager::Create(bm_options);              // skip when Strata is off
//   (*metrics)->AttachBlockManager(manager->get());               // scraped stats
//   server_options.observer = metrics->get();                     // TTFT, ITL, requests
//   // either on the API port ...
//   server_options.extra_routes.push_back((*metrics)->Route());
//   // ... or on its own port (127.0.0.1:6880 by default, ServeConfig::metrics_port):
//   auto ms = metrics::MetricsServer::Start({.port = config.metrics_port},
//                                           [m = *metrics] { return m->Render(); });
//   ...
//   ms->Stop(); server->Stop();
//   (*metrics)->AttachBlockManager(nullptr);  // waits out a scrape in flight
//   manager.reset();
//
// Thread-safety: every method may be called from any thread at any time.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "metrics/registry.h"
#include "server/server.h"
#include "strata/block_manager.h"
#include "strata/options.h"

namespace strata::metrics {

class StrataMetrics : public server::ServerObserver, public BlockManagerObserver {
 public:
  // Registers every metric. Fails only on a bug (a malformed or duplicate metric name).
  static Result<std::shared_ptr<StrataMetrics>> Create();

  // The BlockManager whose stats() scrapes report, or nullptr when Strata is off (its
  // metrics then read 0 and strata_enabled 0). Not owned. Blocks until a scrape in
  // progress has finished, so after AttachBlockManager(nullptr) returns the old manager
  // may be destroyed.
  void AttachBlockManager(const BlockManager* manager);
  // The same from any source of BlockManagerStats (a `strata daemon`'s tiers), for blocks of
  // `block_bytes`; a null source detaches.
  void AttachStats(std::function<BlockManagerStats()> stats, uint64_t block_bytes);

  // server::ServerObserver: one finished completion request.
  void OnRequestDone(const server::RequestStats& stats) override;
  // BlockManagerObserver: one finished Load / Store.
  void OnLoadDone(double seconds, size_t blocks, size_t from_disk, size_t failed) override;
  void OnStoreDone(double seconds, size_t blocks) override;

  // The exposition text (format 0.0.4) of every metric, with a fresh stats() snapshot.
  std::string Render() const { return registry_.Render(); }
  static constexpr const char* kContentType = Registry::kContentType;

  // A GET route for ServerOptions::extra_routes serving Render(). It refers to this
  // object, which must outlive the Server.
  server::ExtraRoute Route(std::string path = "/metrics");

  Registry& registry() { return registry_; }

 private:
  StrataMetrics() = default;
  Status Init();
  void Collect();  // BlockManagerStats -> metrics; runs under the render lock

  Registry registry_;
  std::function<BlockManagerStats()> stats_;  // guarded by the registry's render lock
  uint64_t block_bytes_ = 0;                  // likewise

  // Children resolved once so that hot paths and scrapes touch only atomics.
  struct Bm;  // the BlockManager-derived series
  std::unique_ptr<Bm> bm_;
  Gauge* enabled_ = nullptr;
  Histogram* load_host_seconds_ = nullptr;
  Histogram* load_disk_seconds_ = nullptr;
  Histogram* store_seconds_ = nullptr;
  Histogram* ttft_ = nullptr;
  Histogram* itl_ = nullptr;
  Histogram* duration_ = nullptr;
  CounterFamily* requests_ = nullptr;
  CounterFamily* finish_reasons_ = nullptr;
  Counter* prompt_tokens_ = nullptr;
  Counter* cached_tokens_ = nullptr;
  Counter* completion_tokens_ = nullptr;
};

}  // namespace strata::metrics
