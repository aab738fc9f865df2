// A small Prometheus metrics library: counters, gauges and histograms with labels, and a
// Registry that renders them in the Prometheus text exposition format 0.0.4.
//
//   Registry registry;
//   auto requests = registry.AddCounter("app_requests_total", "Requests served.", {"code"});
//   (*requests)->WithLabels({"200"}).value()->Inc();
//   auto latency = registry.AddHistogram("app_seconds", "Latency.", {}, {0.1, 1, 10});
//   (*latency)->Get().Observe(0.25);
//   std::string text = registry.Render();
//
// Updates are lock-free (atomics). Looking up a labelled child takes a short mutex, so hot
// paths resolve their children once and keep the pointer: children live as long as the
// Registry. Rendering is serialised by the Registry and runs its collectors first (hooks
// that copy values kept elsewhere, e.g. BlockManagerStats, into metrics).
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "strata/status.h"

namespace strata::metrics {

enum class MetricType : uint8_t { kCounter, kGauge, kHistogram };
std::string_view MetricTypeName(MetricType type);  // "counter", "gauge", "histogram"

// A monotonically increasing value.
class Counter {
 public:
  // Adds `v`; a negative or NaN `v` is ignored (a counter never goes down).
  void Inc(double v = 1.0);
  // Mirrors a monotonic count kept elsewhere (e.g. a BlockManagerStats field), from a
  // Registry collector. Values below the current one are ignored, so the exported counter
  // never decreases even if two snapshots race.
  void SetTotal(double v);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// A value that goes up and down.
class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Inc(double v = 1.0) { value_.fetch_add(v, std::memory_order_relaxed); }
  void Dec(double v = 1.0) { value_.fetch_sub(v, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Observations counted in fixed buckets. `bounds` are the finite upper bounds ("le"), in
// increasing order; a +Inf bucket is always added. A value v falls in the first bucket
// with v <= bound (Prometheus' convention); NaN falls in +Inf only.
class Histogram {
 public:
  explicit Histogram(std::span<const double> bounds);

  void Observe(double v);

  struct Snapshot {
    std::vector<double> bounds;        // finite upper bounds
    std::vector<uint64_t> cumulative;  // bounds.size() + 1 entries; the last is +Inf == count
    double sum = 0.0;
    uint64_t count = 0;
  };
  // Cumulative bucket counts; count is the +Inf bucket, so the two always agree.
  Snapshot snapshot() const;
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // per bucket, not cumulative
  std::atomic<double> sum_{0.0};
};

// Standard bucket layouts.
std::vector<double> ExponentialBuckets(double start, double factor, size_t count);

// All the series of one metric name: one child per combination of label values.
template <typename M>
class Family {
 public:
  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<std::string>& label_names() const { return label_names_; }

  // The child with these label values (one per label name, in order), created on first
  // use. InvalidArgument when the number of values is wrong.
  Result<M*> WithLabels(const std::vector<std::string>& values);
  // Drops every child whose label values `keep` rejects (a family with labels only). For
  // series that come and go with what they describe (one per client of a daemon): a child
  // dropped is gone from the exposition, and a pointer WithLabels returned for it dangles,
  // so only the code that sets those series may call this.
  void RemoveIf(const std::function<bool(const std::vector<std::string>&)>& drop);
  // The only child of a family without labels. Precondition: no label names.
  M& Get() { return *unlabeled_; }

  // Calls fn(label values, child) for each child in label-value order.
  void ForEach(const std::function<void(const std::vector<std::string>&, const M&)>& fn) const;

 private:
  friend class Registry;
  Family(std::string name, std::string help, std::vector<std::string> label_names,
         std::function<std::unique_ptr<M>()> make);

  std::string name_, help_;
  std::vector<std::string> label_names_;
  std::function<std::unique_ptr<M>()> make_;
  mutable std::mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<M>> children_;
  M* unlabeled_ = nullptr;  // children_[{}] when there are no labels
};

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Register a metric family. InvalidArgument for a malformed metric or label name (a
  // histogram may not use the label "le"), unsorted or non-finite buckets; AlreadyExists
  // when the name (or, for a histogram, name_bucket/_sum/_count) clashes with a series
  // already registered. The family lives as long as the Registry.
  Result<CounterFamily*> AddCounter(std::string name, std::string help,
                                    std::vector<std::string> label_names = {});
  Result<GaugeFamily*> AddGauge(std::string name, std::string help,
                                std::vector<std::string> label_names = {});
  Result<HistogramFamily*> AddHistogram(std::string name, std::string help,
                                        std::vector<std::string> label_names,
                                        std::vector<double> bounds);

  // Runs before every Render, under the render lock: copy external values into metrics.
  void AddCollector(std::function<void()> collector);

  // Text exposition format 0.0.4: for each family in registration order, "# HELP" and
  // "# TYPE" lines, then its series in label-value order. A family with no child yet is
  // rendered as HELP and TYPE only.
  std::string Render() const;

  // Serialises with Render: fn runs while no Render is in progress.
  void WithRenderLock(const std::function<void()>& fn) const;

  // The Content-Type of Render's output.
  static constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

 private:
  Status Reserve(const std::string& name, const std::vector<std::string>& label_names,
                 MetricType type);

  struct Entry {
    MetricType type;
    std::unique_ptr<CounterFamily> counter;
    std::unique_ptr<GaugeFamily> gauge;
    std::unique_ptr<HistogramFamily> histogram;
  };
  mutable std::mutex mu_;         // guards entries_, series_names_, collectors_
  mutable std::mutex render_mu_;  // one Render (collectors + text) at a time
  std::vector<Entry> entries_;
  std::set<std::string> series_names_;
  std::vector<std::function<void()>> collectors_;
};

// Exposition helpers, exposed for tests.
// A sample value: "+Inf", "-Inf", "NaN", or the shortest decimal that round-trips.
std::string FormatValue(double v);
// A label value with \ " and newline escaped.
std::string EscapeLabelValue(std::string_view v);
// HELP text with \ and newline escaped.
std::string EscapeHelp(std::string_view v);
bool IsValidMetricName(std::string_view name);
bool IsValidLabelName(std::string_view name);

}  // namespace strata::metrics
