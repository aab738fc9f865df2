// Prometheus metrics and their text exposition (registry.h).
#include "metrics/registry.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

namespace strata::metrics {

std::string_view MetricTypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

void Counter::Inc(double v) {
  if (!(v > 0.0)) return;  // also drops NaN
  value_.fetch_add(v, std::memory_order_relaxed);
}

void Counter::SetTotal(double v) {
  double cur = value_.load(std::memory_order_relaxed);
  while (v > cur && !value_.compare_exchange_weak(cur, v, std::memory_order_relaxed)) {
  }
}

Histogram::Histogram(std::span<const double> bounds)
    : bounds_(bounds.begin(), bounds.end()),
      buckets_(new std::atomic<uint64_t>[bounds.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double v) {
  // First bound >= v; NaN compares false everywhere, so send it to +Inf explicitly.
  const size_t i = std::isnan(v)
                       ? bounds_.size()
                       : static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) -
                                             bounds_.begin());
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.bounds = bounds_;
  s.cumulative.resize(bounds_.size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative[i] = running;
  }
  s.count = running;
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

std::vector<double> ExponentialBuckets(double start, double factor, size_t count) {
  std::vector<double> b;
  double v = start;
  for (size_t i = 0; i < count; ++i, v *= factor) b.push_back(v);
  return b;
}

template <typename M>
Family<M>::Family(std::string name, std::string help, std::vector<std::string> label_names,
                  std::function<std::unique_ptr<M>()> make)
    : name_(std::move(name)),
      help_(std::move(help)),
      label_names_(std::move(label_names)),
      make_(std::move(make)) {
  if (label_names_.empty()) {
    auto child = make_();
    unlabeled_ = child.get();
    children_.emplace(std::vector<std::string>{}, std::move(child));
  }
}

template <typename M>
Result<M*> Family<M>::WithLabels(const std::vector<std::string>& values) {
  if (values.size() != label_names_.size())
    return Status::InvalidArgument(fmt::format("metric {} has {} labels, got {} values", name_,
                                               label_names_.size(), values.size()));
  std::lock_guard lock(mu_);
  auto it = children_.find(values);
  if (it == children_.end()) it = children_.emplace(values, make_()).first;
  return it->second.get();
}

template <typename M>
void Family<M>::RemoveIf(const std::function<bool(const std::vector<std::string>&)>& drop) {
  if (label_names_.empty()) return;
  std::lock_guard lock(mu_);
  std::erase_if(children_, [&](const auto& entry) { return drop(entry.first); });
}

template <typename M>
void Family<M>::ForEach(
    const std::function<void(const std::vector<std::string>&, const M&)>& fn) const {
  std::lock_guard lock(mu_);
  for (const auto& [values, child] : children_) fn(values, *child);
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

bool IsValidMetricName(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

bool IsValidLabelName(std::string_view name) {
  if (name.empty() || name.starts_with("__")) return false;  // "__" is reserved
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", v);
}

std::string EscapeLabelValue(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string EscapeHelp(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

Status Registry::Reserve(const std::string& name, const std::vector<std::string>& label_names,
                         MetricType type) {
  if (!IsValidMetricName(name))
    return Status::InvalidArgument(fmt::format("'{}' is not a valid metric name", name));
  std::set<std::string> seen;
  for (const std::string& l : label_names) {
    if (!IsValidLabelName(l))
      return Status::InvalidArgument(
          fmt::format("metric {}: '{}' is not a valid label name", name, l));
    if (type == MetricType::kHistogram && l == "le")
      return Status::InvalidArgument(
          fmt::format("histogram {}: the label 'le' is reserved for buckets", name));
    if (!seen.insert(l).second)
      return Status::InvalidArgument(fmt::format("metric {}: label '{}' repeated", name, l));
  }
  // Every series name the family will emit: a histogram's suffixed names must not collide
  // with another family's either.
  std::vector<std::string> series{name};
  if (type == MetricType::kHistogram) series = {name + "_bucket", name + "_sum", name + "_count"};
  for (const std::string& s : series)
    if (series_names_.count(s) || series_names_.count(name))
      return Status::AlreadyExists(fmt::format("metric {} is already registered", s));
  // A histogram registered earlier reserved its suffixed names, and the plain name too.
  for (const std::string& s : series) series_names_.insert(s);
  series_names_.insert(name);
  return Status::Ok();
}

Result<CounterFamily*> Registry::AddCounter(std::string name, std::string help,
                                            std::vector<std::string> label_names) {
  std::lock_guard lock(mu_);
  STRATA_RETURN_IF_ERROR(Reserve(name, label_names, MetricType::kCounter));
  Entry e{MetricType::kCounter};
  e.counter.reset(new CounterFamily(std::move(name), std::move(help), std::move(label_names),
                                    [] { return std::make_unique<Counter>(); }));
  CounterFamily* f = e.counter.get();
  entries_.push_back(std::move(e));
  return f;
}

Result<GaugeFamily*> Registry::AddGauge(std::string name, std::string help,
                                        std::vector<std::string> label_names) {
  std::lock_guard lock(mu_);
  STRATA_RETURN_IF_ERROR(Reserve(name, label_names, MetricType::kGauge));
  Entry e{MetricType::kGauge};
  e.gauge.reset(new GaugeFamily(std::move(name), std::move(help), std::move(label_names),
                                [] { return std::make_unique<Gauge>(); }));
  GaugeFamily* f = e.gauge.get();
  entries_.push_back(std::move(e));
  return f;
}

Result<HistogramFamily*> Registry::AddHistogram(std::string name, std::string help,
                                                std::vector<std::string> label_names,
                                                std::vector<double> bounds) {
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i]))
      return Status::InvalidArgument(
          fmt::format("histogram {}: bucket bounds must be finite (+Inf is implicit)", name));
    if (i > 0 && !(bounds[i] > bounds[i - 1]))
      return Status::InvalidArgument(
          fmt::format("histogram {}: bucket bounds must be strictly increasing", name));
  }
  std::lock_guard lock(mu_);
  STRATA_RETURN_IF_ERROR(Reserve(name, label_names, MetricType::kHistogram));
  Entry e{MetricType::kHistogram};
  e.histogram.reset(new HistogramFamily(
      std::move(name), std::move(help), std::move(label_names),
      [bounds = std::move(bounds)] { return std::make_unique<Histogram>(bounds); }));
  HistogramFamily* f = e.histogram.get();
  entries_.push_back(std::move(e));
  return f;
}

void Registry::AddCollector(std::function<void()> collector) {
  std::lock_guard lock(mu_);
  collectors_.push_back(std::move(collector));
}

void Registry::WithRenderLock(const std::function<void()>& fn) const {
  std::lock_guard lock(render_mu_);
  fn();
}

namespace {

// `{a="x",b="y"` without the closing brace (a histogram appends le), or "" without labels.
std::string OpenLabels(const std::vector<std::string>& names,
                       const std::vector<std::string>& values) {
  if (names.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < names.size(); ++i) {
    if (i) out += ',';
    out += names[i];
    out += "=\"";
    out += EscapeLabelValue(values[i]);
    out += '"';
  }
  return out;
}

std::string Labels(const std::vector<std::string>& names, const std::vector<std::string>& values) {
  return names.empty() ? std::string() : OpenLabels(names, values) + "}";
}

template <typename F>
void Header(std::string& out, const F& family, MetricType type) {
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", family.name(),
                 EscapeHelp(family.help()), family.name(), MetricTypeName(type));
}

}  // namespace

std::string Registry::Render() const {
  std::lock_guard render_lock(render_mu_);
  std::vector<std::function<void()>> collectors;
  // Families by pointer (they never move), not Entry addresses: a family registered during
  // this Render may reallocate entries_.
  struct View {
    MetricType type;
    const CounterFamily* counter;
    const GaugeFamily* gauge;
    const HistogramFamily* histogram;
  };
  std::vector<View> entries;
  {
    std::lock_guard lock(mu_);
    collectors = collectors_;
    for (const Entry& e : entries_)
      entries.push_back({e.type, e.counter.get(), e.gauge.get(), e.histogram.get()});
  }
  for (const auto& c : collectors) c();

  std::string out;
  auto line = [&out](std::string_view name, std::string_view labels, double v) {
    out += name;
    out += labels;
    out += ' ';
    out += FormatValue(v);
    out += '\n';
  };
  for (const View& v : entries) {
    const View* e = &v;
    switch (e->type) {
      case MetricType::kCounter: {
        const CounterFamily& f = *e->counter;
        Header(out, f, e->type);
        f.ForEach([&](const std::vector<std::string>& values, const Counter& c) {
          line(f.name(), Labels(f.label_names(), values), c.value());
        });
        break;
      }
      case MetricType::kGauge: {
        const GaugeFamily& f = *e->gauge;
        Header(out, f, e->type);
        f.ForEach([&](const std::vector<std::string>& values, const Gauge& g) {
          line(f.name(), Labels(f.label_names(), values), g.value());
        });
        break;
      }
      case MetricType::kHistogram: {
        const HistogramFamily& f = *e->histogram;
        Header(out, f, e->type);
        const std::string bucket = f.name() + "_bucket";
        f.ForEach([&](const std::vector<std::string>& values, const Histogram& h) {
          const Histogram::Snapshot s = h.snapshot();
          std::string open = OpenLabels(f.label_names(), values);
          open += open.empty() ? "{le=\"" : ",le=\"";
          for (size_t i = 0; i <= s.bounds.size(); ++i) {
            const double le =
                i < s.bounds.size() ? s.bounds[i] : std::numeric_limits<double>::infinity();
            line(bucket, open + FormatValue(le) + "\"}", static_cast<double>(s.cumulative[i]));
          }
          const std::string labels = Labels(f.label_names(), values);
          line(f.name() + "_sum", labels, s.sum);
          line(f.name() + "_count", labels, static_cast<double>(s.count));
        });
        break;
      }
    }
  }
  return out;
}

}  // namespace strata::metrics
