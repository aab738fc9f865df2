// The Manager object behind strata._strata.Manager: a BlockManager with the metrics the C API
// gives its managers. Shared by the manager binding and the benchmark helper.
#pragma once

#include <pybind11/pybind11.h>

#include <memory>
#include <string>

#include "convert.h"
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

 private:
  std::unique_ptr<BlockManager> manager_;
  std::shared_ptr<metrics::StrataMetrics> metrics_;
};

}  // namespace strata::python
