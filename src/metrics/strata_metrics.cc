// StrataMetrics: BlockManagerStats, load/store latencies and request stats as Prometheus
// metrics (strata_metrics.h; every name is documented in docs/metrics.md).
#include "metrics/strata_metrics.h"

#include <fmt/format.h>

#include "strata/version.h"

namespace strata::metrics {

namespace {

// Load/store: 100 us (a small G2 hit) to 10 s (a stalled disk).
const std::vector<double> kTransferBuckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                              0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                              1,      2.5,     5,      10};
// TTFT: 1 ms to 2 min, dense where interactive serving lives (50 ms - 3 s).
const std::vector<double> kTtftBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15,
                                          0.2,   0.3,    0.5,   0.75, 1,     1.5,  2,     3,   5,
                                          7.5,   10,     15,    20,   30,    60,   120};
// Inter-token latency: 0.5 ms to 5 s.
const std::vector<double> kItlBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.015, 0.02,
                                         0.03,   0.05,  0.075,  0.1,   0.15, 0.2,   0.3,
                                         0.5,    0.75,  1,      2.5,   5};
// Whole requests: 10 ms to 10 min (the server's default request timeout).
const std::vector<double> kDurationBuckets = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,   2.5,
                                              5,    10,    20,   30,  60,   120, 300, 600};

double Ratio(uint64_t num, uint64_t den) {
  return den == 0 ? 0.0 : static_cast<double>(num) / static_cast<double>(den);
}
double Sub(uint64_t a, uint64_t b) {
  return a > b ? static_cast<double>(a - b) : 0.0;
}
double D(uint64_t v) {
  return static_cast<double>(v);
}

// Registers families and resolves children, remembering the first error.
class Builder {
 public:
  explicit Builder(Registry& r) : r_(r) {}

  CounterFamily* CounterF(std::string name, std::string help, std::vector<std::string> labels) {
    return Keep(r_.AddCounter(std::move(name), std::move(help), std::move(labels)));
  }
  GaugeFamily* GaugeF(std::string name, std::string help, std::vector<std::string> labels) {
    return Keep(r_.AddGauge(std::move(name), std::move(help), std::move(labels)));
  }
  HistogramFamily* HistogramF(std::string name, std::string help, std::vector<std::string> labels,
                              std::vector<double> bounds) {
    return Keep(
        r_.AddHistogram(std::move(name), std::move(help), std::move(labels), std::move(bounds)));
  }
  Counter* C(std::string name, std::string help) {
    CounterFamily* f = CounterF(std::move(name), std::move(help), {});
    return f ? &f->Get() : nullptr;
  }
  Gauge* G(std::string name, std::string help) {
    GaugeFamily* f = GaugeF(std::move(name), std::move(help), {});
    return f ? &f->Get() : nullptr;
  }
  template <typename M>
  M* Child(Family<M>* f, std::vector<std::string> values) {
    if (!f) return nullptr;
    return Keep(f->WithLabels(values));
  }

  const Status& status() const { return status_; }

 private:
  template <typename T>
  T* Keep(Result<T*> r) {
    if (!r.ok()) {
      if (status_.ok()) status_ = r.status();
      return nullptr;
    }
    return *r;
  }
  Registry& r_;
  Status status_;
};

}  // namespace

// Series derived from BlockManagerStats at scrape time.
struct StrataMetrics::Bm {
  // Dynamo KVBM names.
  Counter *matched_tokens, *offload_d2h, *offload_h2d, *onboard_h2d, *onboard_d2d;
  Gauge *host_hit_rate, *disk_hit_rate;
  // strata_ counters.
  Counter *match_calls, *match_prompt_blocks, *hit_host, *hit_disk, *hit_shared;
  Counter *loads, *stores, *promoted;
  Counter *bytes_d2h, *bytes_h2disk, *bytes_h2d, *bytes_disk2d, *bytes_h2shared, *bytes_shared2d;
  Counter *err_io, *err_corruption, *err_cancelled, *err_other, *err_shared_miss, *err_shared;
  Counter *store_stored, *store_skipped, *store_dropped, *store_failed, *store_cancelled;
  Counter *dropped_d2h, *dropped_h2disk, *dropped_h2shared;
  Counter *shared_published, *shared_present, *shared_unavailable_events;
  Counter *rejects_d2h, *rejects_h2disk;
  Counter *disk_write_errors, *disk_present, *disk_deferred, *disk_invalidated, *disk_writeback;
  Counter *evict_host, *evict_disk, *evict_shared;
  // strata_ gauges.
  Gauge *queue_transfer, *queue_disk, *queue_shared, *active_requests, *shared_available;
  Gauge *cap_blocks_host, *cap_blocks_disk, *used_blocks_host, *used_blocks_disk;
  Gauge *leased_host, *leased_disk, *pinned_host;
  Gauge *cap_bytes_host, *cap_bytes_disk, *used_bytes_host, *used_bytes_disk;
  Gauge *index_host, *index_disk, *prefaulted, *recovered, *direct_io, *block_bytes;
};

Result<std::shared_ptr<StrataMetrics>> StrataMetrics::Create() {
  std::shared_ptr<StrataMetrics> m(new StrataMetrics());
  STRATA_RETURN_IF_ERROR(m->Init());
  return m;
}

Status StrataMetrics::Init() {
  Builder b(registry_);
  bm_ = std::make_unique<Bm>();
  Bm& x = *bm_;

  auto* info = b.GaugeF("strata_build_info", "Strata's version; always 1.", {"version"});
  if (Gauge* g = b.Child(info, {STRATA_VERSION_STRING})) g->Set(1);
  enabled_ = b.G("strata_enabled",
                 "1 when a BlockManager (Strata's cache) is attached, 0 when Strata is off.");

  // --- Dynamo KVBM names, same meaning (counters without _total, as Dynamo exports them).
  x.matched_tokens = b.C("kvbm_matched_tokens",
                         "Prompt tokens covered by cached blocks found by Match (any tier).");
  x.offload_d2h = b.C("kvbm_offload_blocks_d2h", "Blocks offloaded device -> host (G1 -> G2).");
  x.offload_h2d = b.C("kvbm_offload_blocks_h2d", "Blocks offloaded host -> disk (G2 -> G3).");
  x.onboard_h2d = b.C("kvbm_onboard_blocks_h2d", "Blocks onboarded host -> device (G2 -> G1).");
  x.onboard_d2d = b.C("kvbm_onboard_blocks_d2d", "Blocks onboarded disk -> device (G3 -> G1).");
  x.host_hit_rate = b.G("kvbm_host_cache_hit_rate",
                        "Prompt blocks found in G2 / full prompt blocks matched, over the "
                        "process lifetime (0..1).");
  x.disk_hit_rate = b.G("kvbm_disk_cache_hit_rate",
                        "Prompt blocks found in G3 (and not G2) / full prompt blocks matched, "
                        "over the process lifetime (0..1).");

  // --- Match.
  x.match_calls = b.C("strata_match_calls_total", "BlockManager::Match calls.");
  x.match_prompt_blocks =
      b.C("strata_match_prompt_blocks_total", "Full prompt blocks looked up by Match.");
  auto* hits = b.CounterF("strata_match_hit_blocks_total",
                          "Prompt blocks Match found, by the tier that held them.", {"tier"});
  x.hit_host = b.Child(hits, {"host"});
  x.hit_disk = b.Child(hits, {"disk"});
  x.hit_shared = b.Child(hits, {"shared"});

  // --- Transfers.
  x.loads = b.C("strata_loads_total", "BlockManager::Load calls.");
  x.stores = b.C("strata_stores_total", "BlockManager::Store calls.");
  x.promoted = b.C("strata_promoted_blocks_total",
                   "Blocks loaded from G3 that were also copied into G2 on the way.");
  auto* bytes = b.CounterF("strata_bytes_total", "Bytes of KV moved, by tier pair.", {"path"});
  x.bytes_d2h = b.Child(bytes, {"device_to_host"});
  x.bytes_h2disk = b.Child(bytes, {"host_to_disk"});
  x.bytes_h2d = b.Child(bytes, {"host_to_device"});
  x.bytes_disk2d = b.Child(bytes, {"disk_to_device"});
  x.bytes_h2shared = b.Child(bytes, {"host_to_shared"});
  x.bytes_shared2d = b.Child(bytes, {"shared_to_device"});

  // --- Errors, drops, rejects.
  auto* errs = b.CounterF("strata_load_errors_total",
                          "Blocks a Load did not deliver (the engine recomputes them), by reason.",
                          {"reason"});
  x.err_io = b.Child(errs, {"io_error"});
  x.err_corruption = b.Child(errs, {"corruption"});
  x.err_cancelled = b.Child(errs, {"cancelled"});
  x.err_other = b.Child(errs, {"other"});
  x.err_shared_miss = b.Child(errs, {"shared_miss"});
  x.err_shared = b.Child(errs, {"shared_error"});
  auto* store_blocks =
      b.CounterF("strata_store_blocks_total", "Blocks passed to Store, by outcome.", {"result"});
  x.store_stored = b.Child(store_blocks, {"stored"});
  x.store_skipped = b.Child(store_blocks, {"skipped"});
  x.store_dropped = b.Child(store_blocks, {"dropped"});
  x.store_failed = b.Child(store_blocks, {"failed"});
  x.store_cancelled = b.Child(store_blocks, {"cancelled"});
  auto* dropped = b.CounterF("strata_offload_dropped_blocks_total",
                             "Offloads not done because a queue, buffer or tier was full, the "
                             "admission refused them, or a write failed; by tier boundary.",
                             {"path"});
  x.dropped_d2h = b.Child(dropped, {"device_to_host"});
  x.dropped_h2disk = b.Child(dropped, {"host_to_disk"});
  x.dropped_h2shared = b.Child(dropped, {"host_to_shared"});
  x.shared_published = b.C("strata_shared_published_blocks_total",
                           "Blocks this node published to the G4 shared tier.");
  x.shared_present = b.C("strata_shared_publish_present_blocks_total",
                         "Publications skipped: the G4 store already held the block (another "
                         "node computed it).");
  x.shared_unavailable_events = b.C("strata_shared_unavailable_events_total",
                                    "Times the G4 shared store was marked unavailable.");
  auto* rejects = b.CounterF("strata_admission_rejects_total",
                             "Blocks an admission policy refused, by tier boundary.", {"path"});
  x.rejects_d2h = b.Child(rejects, {"device_to_host"});
  x.rejects_h2disk = b.Child(rejects, {"host_to_disk"});
  x.disk_write_errors = b.C("strata_disk_write_errors_total",
                            "G3 offload writes that failed (ENOSPC, EIO, ...); also counted "
                            "as dropped.");
  x.disk_present = b.C("strata_disk_offload_present_blocks_total",
                       "G3 offloads skipped because the block was already on disk.");
  x.disk_deferred = b.C("strata_disk_offload_deferred_blocks_total",
                        "G3 offloads that found the queue full and waited in the backlog.");
  x.disk_invalidated = b.C("strata_disk_invalidated_blocks_total",
                           "Corrupt G3 records zeroed on disk so no restart serves them.");
  x.disk_writeback =
      b.C("strata_disk_writeback_blocks_total", "G2 evictions copied out for write-back to G3.");
  auto* evictions = b.CounterF("strata_evictions_total", "Blocks evicted, by tier.", {"tier"});
  x.evict_host = b.Child(evictions, {"host"});
  x.evict_disk = b.Child(evictions, {"disk"});
  x.evict_shared = b.Child(evictions, {"shared"});

  // --- Gauges: queues, occupancy, index.
  auto* queues =
      b.GaugeF("strata_queue_depth", "Operations waiting for a worker, by queue.", {"queue"});
  x.queue_transfer = b.Child(queues, {"transfer"});
  x.queue_disk = b.Child(queues, {"disk_offload"});
  x.queue_shared = b.Child(queues, {"shared_publish"});
  x.shared_available = b.G("strata_shared_available",
                           "1 when the G4 shared store answers, 0 when it is down or not "
                           "configured.");
  x.active_requests =
      b.G("strata_active_requests", "Requests holding BlockManager state (leases).");
  auto* cap_blocks = b.GaugeF("strata_tier_capacity_blocks",
                              "Blocks a tier can hold (0: no such tier).", {"tier"});
  x.cap_blocks_host = b.Child(cap_blocks, {"host"});
  x.cap_blocks_disk = b.Child(cap_blocks, {"disk"});
  auto* used_blocks = b.GaugeF("strata_tier_used_blocks", "Blocks a tier holds now.", {"tier"});
  x.used_blocks_host = b.Child(used_blocks, {"host"});
  x.used_blocks_disk = b.Child(used_blocks, {"disk"});
  auto* leased = b.GaugeF("strata_tier_leased_blocks",
                          "Blocks leased to requests (not evictable) now.", {"tier"});
  x.leased_host = b.Child(leased, {"host"});
  x.leased_disk = b.Child(leased, {"disk"});
  auto* pinned = b.GaugeF("strata_tier_pinned_blocks", "Blocks pinned by Pin() now.", {"tier"});
  x.pinned_host = b.Child(pinned, {"host"});
  auto* cap_bytes =
      b.GaugeF("strata_tier_capacity_bytes", "Capacity of a tier in block bytes.", {"tier"});
  x.cap_bytes_host = b.Child(cap_bytes, {"host"});
  x.cap_bytes_disk = b.Child(cap_bytes, {"disk"});
  auto* used_bytes = b.GaugeF("strata_tier_used_bytes", "Block bytes a tier holds now.", {"tier"});
  x.used_bytes_host = b.Child(used_bytes, {"host"});
  x.used_bytes_disk = b.Child(used_bytes, {"disk"});
  auto* index = b.GaugeF("strata_index_bytes", "Memory used by a tier's key index.", {"tier"});
  x.index_host = b.Child(index, {"host"});
  x.index_disk = b.Child(index, {"disk"});
  x.prefaulted = b.G("strata_host_prefaulted_bytes",
                     "Bytes of G2 slot memory faulted in by the background prefault so far.");
  x.recovered =
      b.G("strata_disk_recovered_blocks", "Blocks found on G3 at start-up (warm restart).");
  x.direct_io = b.G("strata_disk_direct_io", "1 when G3 uses O_DIRECT, else 0.");
  x.block_bytes = b.G("strata_block_size_bytes", "Bytes of one KV block (all layers).");

  // --- Latency (BlockManagerObserver).
  auto* load_s = b.HistogramF("strata_load_seconds",
                              "Load latency, from the Load call to its last block's final "
                              "state; source=disk when any block was read from G3.",
                              {"source"}, kTransferBuckets);
  load_host_seconds_ = b.Child(load_s, {"host"});
  load_disk_seconds_ = b.Child(load_s, {"disk"});
  auto* store_s = b.HistogramF("strata_store_seconds",
                               "Store latency, from the Store call until its blocks are in G2.", {},
                               kTransferBuckets);
  store_seconds_ = store_s ? &store_s->Get() : nullptr;

  // --- Server (ServerObserver).
  auto* ttft =
      b.HistogramF("strata_ttft_seconds",
                   "Time to first token: request receipt to the first token.", {}, kTtftBuckets);
  ttft_ = ttft ? &ttft->Get() : nullptr;
  auto* itl = b.HistogramF("strata_inter_token_latency_seconds",
                           "Time between consecutive tokens of a response.", {}, kItlBuckets);
  itl_ = itl ? &itl->Get() : nullptr;
  auto* duration = b.HistogramF("strata_request_duration_seconds",
                                "Request receipt to the end of the response (2xx responses).", {},
                                kDurationBuckets);
  duration_ = duration ? &duration->Get() : nullptr;
  requests_ = b.CounterF("strata_requests_total",
                         "Completion requests answered, by endpoint and HTTP status.",
                         {"endpoint", "status"});
  finish_reasons_ =
      b.CounterF("strata_request_finish_reasons_total",
                 "Completion requests whose generation ran, by finish reason.", {"reason"});
  prompt_tokens_ = b.C("strata_prompt_tokens_total", "Prompt tokens of completion requests.");
  cached_tokens_ = b.C("strata_cached_tokens_total",
                       "Prompt tokens whose KV came from Strata instead of prefill.");
  completion_tokens_ = b.C("strata_completion_tokens_total", "Tokens generated.");

  STRATA_RETURN_IF_ERROR(b.status());
  registry_.AddCollector([this] { Collect(); });
  return Status::Ok();
}

void StrataMetrics::AttachBlockManager(const BlockManager* manager) {
  if (manager == nullptr) return AttachStats(nullptr, 0);
  AttachStats([manager] { return manager->stats(); }, manager->options().layout.block_bytes());
}

void StrataMetrics::AttachStats(std::function<BlockManagerStats()> stats, uint64_t block_bytes) {
  registry_.WithRenderLock([&] {
    stats_ = std::move(stats);
    block_bytes_ = block_bytes;
  });
}

void StrataMetrics::Collect() {
  enabled_->Set(stats_ ? 1 : 0);
  if (!stats_) return;  // every BlockManager series stays at its last value (0 if never set)
  const BlockManagerStats s = stats_();
  const uint64_t block_bytes = block_bytes_;
  Bm& x = *bm_;

  x.matched_tokens->SetTotal(D(s.matched_tokens));
  x.offload_d2h->SetTotal(D(s.stored_blocks));
  x.offload_h2d->SetTotal(D(s.disk_offload_blocks));
  x.onboard_h2d->SetTotal(
      Sub(s.loaded_blocks, s.loaded_blocks_from_disk + s.loaded_blocks_from_shared));
  x.onboard_d2d->SetTotal(D(s.loaded_blocks_from_disk));
  x.host_hit_rate->Set(Ratio(s.match_hit_blocks_host, s.match_prompt_blocks));
  x.disk_hit_rate->Set(Ratio(s.match_hit_blocks_disk, s.match_prompt_blocks));

  x.match_calls->SetTotal(D(s.match_calls));
  x.match_prompt_blocks->SetTotal(D(s.match_prompt_blocks));
  x.hit_host->SetTotal(D(s.match_hit_blocks_host));
  x.hit_disk->SetTotal(D(s.match_hit_blocks_disk));
  x.hit_shared->SetTotal(D(s.match_hit_blocks_shared));

  x.loads->SetTotal(D(s.load_calls));
  x.stores->SetTotal(D(s.store_calls));
  x.promoted->SetTotal(D(s.promoted_blocks));
  const uint64_t disk_to_device = s.loaded_blocks_from_disk * block_bytes;
  x.bytes_d2h->SetTotal(D(s.stored_bytes));
  x.bytes_h2disk->SetTotal(D(s.disk_offload_bytes));
  const uint64_t shared_to_device = s.loaded_blocks_from_shared * block_bytes;
  x.bytes_h2d->SetTotal(Sub(s.loaded_bytes, disk_to_device + shared_to_device));
  x.bytes_disk2d->SetTotal(D(disk_to_device));
  x.bytes_h2shared->SetTotal(D(s.shared_published_bytes));
  x.bytes_shared2d->SetTotal(D(shared_to_device));

  // load_failed_blocks includes the disk tier's read errors and corruptions; "other" is the
  // rest (load queue full, a host copy that failed, ...).
  x.err_io->SetTotal(D(s.disk_read_errors));
  x.err_corruption->SetTotal(D(s.disk_corruptions));
  x.err_cancelled->SetTotal(D(s.load_cancelled_blocks));
  x.err_shared_miss->SetTotal(D(s.shared_load_misses));
  x.err_shared->SetTotal(D(s.shared_load_errors));
  x.err_other->SetTotal(Sub(s.load_failed_blocks, s.disk_read_errors + s.disk_corruptions +
                                                      s.shared_load_misses + s.shared_load_errors));
  x.store_stored->SetTotal(D(s.stored_blocks));
  x.store_skipped->SetTotal(D(s.store_skipped_blocks));
  x.store_dropped->SetTotal(D(s.store_dropped_blocks));
  x.store_failed->SetTotal(D(s.store_failed_blocks));
  x.store_cancelled->SetTotal(D(s.store_cancelled_blocks));
  x.dropped_d2h->SetTotal(D(s.store_dropped_blocks));
  x.dropped_h2disk->SetTotal(D(s.disk_offload_dropped));
  x.dropped_h2shared->SetTotal(D(s.shared_publish_dropped));
  x.shared_published->SetTotal(D(s.shared_published_blocks));
  x.shared_present->SetTotal(D(s.shared_publish_present));
  x.shared_unavailable_events->SetTotal(D(s.shared_unavailable_events));
  x.rejects_d2h->SetTotal(D(s.host_admission_rejects));
  x.rejects_h2disk->SetTotal(D(s.disk_admission_rejects));
  x.disk_write_errors->SetTotal(D(s.disk_offload_failed));
  x.disk_present->SetTotal(D(s.disk_offload_present));
  x.disk_deferred->SetTotal(D(s.disk_offload_deferred));
  x.disk_invalidated->SetTotal(D(s.disk_invalidated_blocks));
  x.disk_writeback->SetTotal(D(s.disk_writeback_blocks));
  x.evict_host->SetTotal(D(s.host_evictions));
  x.evict_disk->SetTotal(D(s.disk_evictions));
  x.evict_shared->SetTotal(D(s.shared_evictions));

  x.queue_transfer->Set(D(s.queued_ops));
  x.queue_disk->Set(D(s.disk_offload_queued));
  x.queue_shared->Set(D(s.shared_publish_queued));
  x.shared_available->Set(s.shared_available ? 1 : 0);
  x.active_requests->Set(D(s.active_requests));
  x.cap_blocks_host->Set(D(s.host_capacity_blocks));
  x.cap_blocks_disk->Set(D(s.disk_capacity_blocks));
  x.used_blocks_host->Set(D(s.host_used_blocks));
  x.used_blocks_disk->Set(D(s.disk_used_blocks));
  x.leased_host->Set(D(s.host_leased_blocks));
  x.leased_disk->Set(D(s.disk_leased_blocks));
  x.pinned_host->Set(D(s.host_pinned_blocks));
  x.cap_bytes_host->Set(D(s.host_capacity_blocks * block_bytes));
  x.cap_bytes_disk->Set(D(s.disk_capacity_blocks * block_bytes));
  x.used_bytes_host->Set(D(s.host_used_blocks * block_bytes));
  x.used_bytes_disk->Set(D(s.disk_used_blocks * block_bytes));
  x.index_host->Set(D(s.host_index_bytes));
  x.index_disk->Set(D(s.disk_index_bytes));
  x.prefaulted->Set(D(s.host_prefaulted_bytes));
  x.recovered->Set(D(s.disk_recovered_blocks));
  x.direct_io->Set(s.disk_direct_io ? 1 : 0);
  x.block_bytes->Set(D(block_bytes));
}

void StrataMetrics::OnLoadDone(double seconds, size_t /*blocks*/, size_t from_disk,
                               size_t /*failed*/) {
  (from_disk > 0 ? load_disk_seconds_ : load_host_seconds_)->Observe(seconds);
}

void StrataMetrics::OnStoreDone(double seconds, size_t /*blocks*/) {
  store_seconds_->Observe(seconds);
}

void StrataMetrics::OnRequestDone(const server::RequestStats& stats) {
  if (auto c = requests_->WithLabels({std::string(stats.endpoint), std::to_string(stats.status)});
      c.ok())
    (*c)->Inc();
  if (stats.finish_reason != engine::FinishReason::kNone) {
    if (auto c = finish_reasons_->WithLabels({std::string(FinishReasonName(stats.finish_reason))});
        c.ok())
      (*c)->Inc();
  }
  prompt_tokens_->Inc(stats.prompt_tokens);
  cached_tokens_->Inc(stats.cached_tokens);
  completion_tokens_->Inc(stats.completion_tokens);
  if (stats.ttft_seconds >= 0) ttft_->Observe(stats.ttft_seconds);
  for (double s : stats.inter_token_seconds) itl_->Observe(s);
  if (stats.status >= 200 && stats.status < 300) duration_->Observe(stats.duration_seconds);
}

server::ExtraRoute StrataMetrics::Route(std::string path) {
  server::ExtraRoute route;
  route.path = std::move(path);
  route.body = [this] { return Render(); };
  route.content_type = kContentType;
  return route;
}

}  // namespace strata::metrics
