// The Manager object behind strata._strata.Manager: a BlockManager with the metrics the C API
// gives its managers. Shared by the manager binding and the benchmark helper.
#pragma once

#include <pybind11/pybind11.h>

#include <memory>
#include <string>

#include "convert.h"
#include "metrics/metrics_server.h"
#include "metrics/strata_metrics.h"
#include "strata/block_manager.h"
#include "strata/config.h"

namespace strata::python {

// A BlockManager with the metrics the C API gives its managers.
class Manager {
 public:
  static std::unique_ptr<Manager> FromToml(const std::string& toml, const std::string& name,
                                           bool use_env) {
    StrataConfig config =
        Unwrap(LoadConfigFromString(toml, use_env ? ProcessEnv() : FixedEnv({}), name));
    auto m = std::make_unique<Manager>();
    m->metrics_ = Unwrap(metrics::StrataMetrics::Create());
    BlockManagerOptions options = config.manager;
    options.observer = m->metrics_;
    {
      py::gil_scoped_release release;  // a daemon connect or a G3 recovery may take a while
      m->manager_ = Unwrap(BlockManager::Create(options));
    }
    m->metrics_->AttachBlockManager(m->manager_.get());
    return m;
  }
  ~Manager() { Close(); }

  void Close() {
    if (!manager_) return;
    py::gil_scoped_release release;  // waits for running loads and stores
    server_.reset();
    metrics_->AttachBlockManager(nullptr);
    manager_.reset();
  }

  BlockManager& get() const {
    if (!manager_) Throw(Status::InvalidArgument("the manager was closed"));
    return *manager_;
  }
  std::string MetricsText() const {
    get();
    return metrics_->Render();
  }
  // Serves MetricsText() at http://host:port/metrics until the manager closes; the port bound
  // (port 0 picks a free one). A second call replaces the first server.
  uint16_t ServeMetrics(const std::string& host, uint16_t port) {
    get();
    server_.reset();
    metrics::MetricsServerOptions options;
    options.host = host;
    options.port = port;
    auto m = metrics_;
    server_ = Unwrap(metrics::MetricsServer::Start(options, [m] { return m->Render(); }));
    return server_->port();
  }

 private:
  std::unique_ptr<BlockManager> manager_;
  std::shared_ptr<metrics::StrataMetrics> metrics_;
  std::unique_ptr<metrics::MetricsServer> server_;
};

}  // namespace strata::python
