#include "loadgen/report.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <fstream>
#include <numeric>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace strata::loadgen {

Percentiles ComputePercentiles(std::vector<double> v) {
  Percentiles p;
  p.count = v.size();
  if (v.empty()) return p;
  std::sort(v.begin(), v.end());
  auto rank = [&](double q) {
    const auto i = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
    return v[std::clamp<size_t>(i, 1, v.size()) - 1];
  };
  p.mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  p.p50 = rank(0.50);
  p.p90 = rank(0.90);
  p.p99 = rank(0.99);
  p.max = v.back();
  return p;
}

RunSummary Summarize(std::span<const RequestRecord> records, std::string label) {
  RunSummary s;
  s.label = std::move(label);
  s.requests = records.size();
  std::vector<double> ttft, itl;
  double first = INFINITY, last = 0, prompt = 0, cached = 0, out = 0;
  for (const RequestRecord& r : records) {
    first = std::min(first, r.launch_s);
    last = std::max(last, r.finish_s);
    if (!r.ok) {
      ++s.failed;
      if (s.first_error.empty()) s.first_error = r.error;
      continue;
    }
    ttft.push_back(r.ttft_s);
    itl.insert(itl.end(), r.chunk_gaps_s.begin(), r.chunk_gaps_s.end());
    prompt += r.prompt_tokens;
    cached += r.cached_tokens;
    out += r.completion_tokens;
  }
  s.ttft = ComputePercentiles(std::move(ttft));
  s.itl = ComputePercentiles(std::move(itl));
  s.wall_s = records.empty() ? 0 : last - first;
  if (s.wall_s > 0) {
    s.input_tokens_per_s = prompt / s.wall_s;
    s.output_tokens_per_s = out / s.wall_s;
    s.qps = static_cast<double>(s.requests - s.failed) / s.wall_s;
  }
  s.cached_token_fraction = prompt > 0 ? cached / prompt : 0;
  return s;
}

std::string FormatSummary(const RunSummary& s) {
  auto ms = [](double sec) { return fmt::format("{:.1f} ms", sec * 1e3); };
  std::string o = fmt::format("==================== {} ====================\n",
                              s.label.empty() ? "multi-round QA" : s.label);
  o += fmt::format("  Requests finished: {} ({} failed) in {:.1f} s, {:.3f} req/s\n",
                   s.requests - s.failed, s.failed, s.wall_s, s.qps);
  o += fmt::format("  Input tokens/s: {:.1f}   Output tokens/s: {:.1f}\n", s.input_tokens_per_s,
                   s.output_tokens_per_s);
  o += fmt::format("  TTFT: mean {}  p50 {}  p90 {}  p99 {}  max {}\n", ms(s.ttft.mean),
                   ms(s.ttft.p50), ms(s.ttft.p90), ms(s.ttft.p99), ms(s.ttft.max));
  o += fmt::format("  Inter-token latency: mean {}  p50 {}  p90 {}  p99 {}\n", ms(s.itl.mean),
                   ms(s.itl.p50), ms(s.itl.p90), ms(s.itl.p99));
  o += fmt::format("  Prompt tokens served from cache (usage): {:.1f}%\n",
                   100 * s.cached_token_fraction);
  if (s.tiers) {
    o += fmt::format(
        "  Match hit rate by tier (/metrics): G2 host {:.1f}%  G3 disk {:.1f}%  G4 shared "
        "{:.1f}%  of {:.0f} prompt blocks\n",
        100 * s.tiers->host_rate(), 100 * s.tiers->disk_rate(), 100 * s.tiers->shared_rate(),
        s.tiers->prompt_blocks);
  } else {
    o += "  Match hit rate by tier: n/a (no Strata counters at /metrics)\n";
  }
  if (!s.first_error.empty()) o += fmt::format("  First error: {}\n", s.first_error);
  return o;
}

Status WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) return Status::IoError("opening " + path + " for writing", errno);
  f << contents;
  f.close();
  if (!f) return Status::IoError("writing " + path, errno);
  return Status::Ok();
}

namespace {
std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}
double MeanGap(const RequestRecord& r) {
  if (r.chunk_gaps_s.empty()) return 0;
  return std::accumulate(r.chunk_gaps_s.begin(), r.chunk_gaps_s.end(), 0.0) /
         static_cast<double>(r.chunk_gaps_s.size());
}
}  // namespace

Status WriteCsv(const std::string& path, std::span<const RequestRecord> records) {
  std::string o =
      "user_id,question_id,launch_s,finish_s,ok,ttft_s,generation_s,mean_itl_s,prompt_tokens,"
      "completion_tokens,cached_tokens,error\n";
  for (const RequestRecord& r : records)
    o += fmt::format("{},{},{:.6f},{:.6f},{},{:.6f},{:.6f},{:.6f},{},{},{},{}\n", r.user_id,
                     r.question_id, r.launch_s, r.finish_s, r.ok ? 1 : 0, r.ttft_s, r.generation_s,
                     MeanGap(r), r.prompt_tokens, r.completion_tokens, r.cached_tokens,
                     CsvField(r.error));
  return WriteFile(path, o);
}

namespace {
nlohmann::ordered_json PercentilesJson(const Percentiles& p) {
  return {{"count", p.count}, {"mean", p.mean}, {"p50", p.p50},
          {"p90", p.p90},     {"p99", p.p99},   {"max", p.max}};
}
}  // namespace

Status WriteJson(const std::string& path, const RunSummary& s,
                 std::span<const RequestRecord> records, const std::string& config_json) {
  using ojson = nlohmann::ordered_json;
  ojson summary = {{"label", s.label},
                   {"wall_s", s.wall_s},
                   {"requests", s.requests},
                   {"failed", s.failed},
                   {"qps", s.qps},
                   {"input_tokens_per_s", s.input_tokens_per_s},
                   {"output_tokens_per_s", s.output_tokens_per_s},
                   {"ttft_s", PercentilesJson(s.ttft)},
                   {"inter_token_latency_s", PercentilesJson(s.itl)},
                   {"cached_token_fraction", s.cached_token_fraction}};
  if (s.tiers)
    summary["tier_hit_rate"] = {{"prompt_blocks", s.tiers->prompt_blocks},
                                {"host", s.tiers->host_rate()},
                                {"disk", s.tiers->disk_rate()},
                                {"shared", s.tiers->shared_rate()}};
  if (!s.first_error.empty()) summary["first_error"] = s.first_error;
  ojson rows = ojson::array();
  for (const RequestRecord& r : records)
    rows.push_back({{"user_id", r.user_id},
                    {"question_id", r.question_id},
                    {"launch_s", r.launch_s},
                    {"finish_s", r.finish_s},
                    {"ok", r.ok},
                    {"ttft_s", r.ttft_s},
                    {"generation_s", r.generation_s},
                    {"mean_itl_s", MeanGap(r)},
                    {"prompt_tokens", r.prompt_tokens},
                    {"completion_tokens", r.completion_tokens},
                    {"cached_tokens", r.cached_tokens},
                    {"error", r.error}});
  ojson doc = {{"config", ojson::parse(config_json.empty() ? "{}" : config_json)},
               {"summary", std::move(summary)},
               {"requests", std::move(rows)}};
  return WriteFile(path, doc.dump(2) + "\n");
}

// --- SVG -------------------------------------------------------------------------------

namespace {

constexpr const char* kColors[] = {"#d62728", "#1f77b4", "#2ca02c",
                                   "#ff7f0e", "#9467bd", "#8c564b"};
const char* Color(size_t i) {
  return kColors[i % std::size(kColors)];
}

std::string Escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&':
        o += "&amp;";
        break;
      case '<':
        o += "&lt;";
        break;
      case '>':
        o += "&gt;";
        break;
      case '"':
        o += "&quot;";
        break;
      default:
        o += c;
    }
  }
  return o;
}

// A "nice" tick step (1, 2 or 5 times a power of ten) giving about `n` ticks over [0, max].
double TickStep(double max, int n) {
  if (!(max > 0)) return 1;
  const double raw = max / n;
  const double mag = std::pow(10, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (raw <= m * mag) return m * mag;
  return 10 * mag;
}

std::string FormatTick(double v) {
  if (v == 0) return "0";
  if (std::fabs(v) >= 100) return fmt::format("{:.0f}", v);
  if (std::fabs(v) >= 1) return fmt::format("{:.3g}", v);
  return fmt::format("{:.2g}", v);
}

// A panel: a frame at (x, y) of w x h with axes 0..xmax, 0..ymax, ticks and labels.
struct Panel {
  double x, y, w, h, xmax, ymax;
  bool x_ticks = true;  // false: the caller labels the x axis itself (bar groups)
  double X(double v) const { return x + w * std::clamp(v / xmax, 0.0, 1.0); }
  double Y(double v) const { return y + h - h * std::clamp(v / ymax, 0.0, 1.0); }

  std::string Axes(const std::string& title, const std::string& xlabel,
                   const std::string& ylabel) const {
    std::string o = fmt::format(
        "<rect x='{:.1f}' y='{:.1f}' width='{:.1f}' height='{:.1f}' fill='none' "
        "stroke='#444'/>\n",
        x, y, w, h);
    o += fmt::format("<text x='{:.1f}' y='{:.1f}' text-anchor='middle' font-size='14'>{}</text>\n",
                     x + w / 2, y - 10, Escape(title));
    o += fmt::format("<text x='{:.1f}' y='{:.1f}' text-anchor='middle'>{}</text>\n", x + w / 2,
                     y + h + 36, Escape(xlabel));
    o += fmt::format(
        "<text transform='translate({:.1f},{:.1f}) rotate(-90)' text-anchor='middle'>{}</text>\n",
        x - 46, y + h / 2, Escape(ylabel));
    const double xs = TickStep(xmax, 6), ys = TickStep(ymax, 5);
    for (double v = 0; x_ticks && v <= xmax * 1.0001; v += xs)
      o += fmt::format(
          "<line x1='{0:.1f}' y1='{1:.1f}' x2='{0:.1f}' y2='{2:.1f}' stroke='#ddd'/>"
          "<text x='{0:.1f}' y='{3:.1f}' text-anchor='middle'>{4}</text>\n",
          X(v), y, y + h, y + h + 16, FormatTick(v));
    for (double v = 0; v <= ymax * 1.0001; v += ys)
      o += fmt::format(
          "<line x1='{1:.1f}' y1='{0:.1f}' x2='{2:.1f}' y2='{0:.1f}' stroke='#ddd'/>"
          "<text x='{3:.1f}' y='{4:.1f}' text-anchor='end'>{5}</text>\n",
          Y(v), x, x + w, x - 6, Y(v) + 4, FormatTick(v));
    return o;
  }
};

std::string SvgOpen(double w, double h, const std::string& title) {
  return fmt::format(
      "<svg xmlns='http://www.w3.org/2000/svg' width='{0:.0f}' height='{1:.0f}' "
      "viewBox='0 0 {0:.0f} {1:.0f}' font-family='sans-serif' font-size='11'>\n"
      "<rect width='100%' height='100%' fill='white'/>\n"
      "<text x='{2:.0f}' y='22' text-anchor='middle' font-size='16'>{3}</text>\n",
      w, h, w / 2, Escape(title));
}

// One colour swatch and label per series, stacked from (x, y) down, or side by side
// (`across`) with `step` between them.
std::string Legend(const std::vector<std::string>& labels, double x, double y, bool across = false,
                   double step = 160) {
  std::string o;
  for (size_t i = 0; i < labels.size(); ++i) {
    const double k = static_cast<double>(i);
    const double lx = across ? x + step * k : x, ly = across ? y : y + 18 * k;
    o += fmt::format(
        "<rect x='{:.1f}' y='{:.1f}' width='12' height='12' fill='{}'/>"
        "<text x='{:.1f}' y='{:.1f}'>{}</text>\n",
        lx, ly, Color(i), lx + 18, ly + 10, Escape(labels[i]));
  }
  return o;
}

}  // namespace

std::string RenderTtftSvg(std::span<const PlotSeries> series, const std::string& title) {
  double tmax = 0, ymax = 0;
  for (const PlotSeries& s : series)
    for (const RequestRecord& r : s.records)
      if (r.ok) {
        tmax = std::max(tmax, r.launch_s);
        ymax = std::max(ymax, r.ttft_s);
      }
  tmax = tmax > 0 ? tmax * 1.05 : 1;
  ymax = ymax > 0 ? ymax * 1.05 : 1;
  const Panel over_time{70, 50, 400, 300, tmax, ymax};
  const Panel cdf{560, 50, 400, 300, ymax, 1.0};
  std::string o = SvgOpen(1000, 460, title);
  o += over_time.Axes("TTFT of each request", "launch time (s)", "TTFT (s)");
  o += cdf.Axes("TTFT distribution", "TTFT (s)", "fraction of requests");
  std::vector<std::string> labels;
  for (size_t i = 0; i < series.size(); ++i) {
    labels.push_back(series[i].label);
    std::vector<double> ttft;
    for (const RequestRecord& r : series[i].records) {
      if (!r.ok) continue;
      ttft.push_back(r.ttft_s);
      o += fmt::format("<circle cx='{:.1f}' cy='{:.1f}' r='2.5' fill='{}' fill-opacity='0.7'/>\n",
                       over_time.X(r.launch_s), over_time.Y(r.ttft_s), Color(i));
    }
    std::sort(ttft.begin(), ttft.end());
    if (ttft.empty()) continue;
    std::string path = fmt::format("M{:.1f},{:.1f}", cdf.X(0), cdf.Y(0));
    for (size_t k = 0; k < ttft.size(); ++k) {
      const double before = static_cast<double>(k) / static_cast<double>(ttft.size());
      const double after = static_cast<double>(k + 1) / static_cast<double>(ttft.size());
      path += fmt::format(" L{0:.1f},{1:.1f} L{0:.1f},{2:.1f}", cdf.X(ttft[k]), cdf.Y(before),
                          cdf.Y(after));
    }
    o += fmt::format("<path d='{}' fill='none' stroke='{}' stroke-width='2'/>\n", path, Color(i));
  }
  o += Legend(labels, 70, 425, /*across=*/true);
  return o + "</svg>\n";
}

std::string RenderTtftBarsSvg(std::span<const RunSummary> runs, const std::string& title) {
  const char* stats[] = {"mean", "p50", "p90", "p99"};
  double ymax = 0;
  for (const RunSummary& r : runs) ymax = std::max({ymax, r.ttft.mean, r.ttft.p99});
  ymax = ymax > 0 ? ymax * 1.1 : 1;
  Panel p{70, 50, 600, 300, 1, ymax};
  p.x_ticks = false;
  std::string o = SvgOpen(860, 420, title);
  o += p.Axes("", "", "TTFT (s)");
  const double group_w = p.w / std::size(stats);
  const double bar_w = group_w * 0.8 / std::max<size_t>(runs.size(), 1);
  std::vector<std::string> labels;
  for (size_t g = 0; g < std::size(stats); ++g) {
    o += fmt::format("<text x='{:.1f}' y='{:.1f}' text-anchor='middle'>{}</text>\n",
                     p.x + group_w * (static_cast<double>(g) + 0.5), p.y + p.h + 16, stats[g]);
    for (size_t i = 0; i < runs.size(); ++i) {
      const Percentiles& t = runs[i].ttft;
      const double v = g == 0 ? t.mean : g == 1 ? t.p50 : g == 2 ? t.p90 : t.p99;
      const double bx =
          p.x + group_w * static_cast<double>(g) + group_w * 0.1 + bar_w * static_cast<double>(i);
      o += fmt::format(
          "<rect x='{:.1f}' y='{:.1f}' width='{:.1f}' height='{:.1f}' fill='{}'/>"
          "<text x='{:.1f}' y='{:.1f}' text-anchor='middle' font-size='9'>{}</text>\n",
          bx, p.Y(v), bar_w * 0.9, p.y + p.h - p.Y(v), Color(i), bx + bar_w * 0.45, p.Y(v) - 3,
          FormatTick(v));
    }
  }
  for (const RunSummary& r : runs) labels.push_back(r.label);
  o += Legend(labels, 690, 60);
  return o + "</svg>\n";
}

// --- Prometheus text ---------------------------------------------------------------------

std::optional<double> PrometheusValue(const std::string& exposition, const std::string& name,
                                      const std::map<std::string, std::string>& labels) {
  std::optional<double> sum;
  size_t pos = 0;
  while (pos < exposition.size()) {
    size_t nl = exposition.find('\n', pos);
    if (nl == std::string::npos) nl = exposition.size();
    const std::string_view line(exposition.data() + pos, nl - pos);
    pos = nl + 1;
    if (line.empty() || line[0] == '#' || !line.starts_with(name)) continue;
    std::string_view rest = line.substr(name.size());
    std::map<std::string, std::string, std::less<>> got;
    if (!rest.empty() && rest[0] == '{') {
      const size_t close = rest.find('}');
      if (close == std::string_view::npos) continue;
      std::string_view body = rest.substr(1, close - 1);
      rest = rest.substr(close + 1);
      while (!body.empty()) {
        const size_t eq = body.find('=');
        if (eq == std::string_view::npos || eq + 1 >= body.size() || body[eq + 1] != '"') break;
        std::string key(body.substr(0, eq));
        std::string value;
        size_t i = eq + 2;
        for (; i < body.size() && body[i] != '"'; ++i) {
          if (body[i] == '\\' && i + 1 < body.size()) ++i;
          value += body[i];
        }
        got[key] = value;
        body = i + 1 < body.size() ? body.substr(i + 1) : std::string_view();
        if (!body.empty() && body[0] == ',') body.remove_prefix(1);
      }
    }
    if (rest.empty() || rest[0] != ' ') continue;  // a longer metric name
    bool match = true;
    for (const auto& [k, v] : labels) {
      auto it = got.find(k);
      if (it == got.end() || it->second != v) match = false;
    }
    if (!match) continue;
    char* end = nullptr;
    const std::string value(rest.substr(1));
    const double d = std::strtod(value.c_str(), &end);
    if (end == value.c_str()) continue;
    sum = sum.value_or(0) + d;
  }
  return sum;
}

std::optional<TierHits> ReadTierCounters(const std::string& exposition) {
  const auto blocks = PrometheusValue(exposition, "strata_match_prompt_blocks_total");
  if (!blocks) return std::nullopt;
  const std::string hits = "strata_match_hit_blocks_total";
  TierHits t;
  t.prompt_blocks = *blocks;
  t.host_blocks = PrometheusValue(exposition, hits, {{"tier", "host"}}).value_or(0);
  t.disk_blocks = PrometheusValue(exposition, hits, {{"tier", "disk"}}).value_or(0);
  t.shared_blocks = PrometheusValue(exposition, hits, {{"tier", "shared"}}).value_or(0);
  return t;
}

TierHits Delta(const TierHits& a, const TierHits& b) {
  return {a.prompt_blocks - b.prompt_blocks, a.host_blocks - b.host_blocks,
          a.disk_blocks - b.disk_blocks, a.shared_blocks - b.shared_blocks};
}

}  // namespace strata::loadgen
