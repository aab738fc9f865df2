// BlockManager: keys, matching across tiers, leases, per-request state, and the async
// pipelines between the tiers:
//
//   store   device --(transfer engine)--> G2 slot --(BlockOffloader, per write mode)--> G3
//   load    G2 slot ----------------------------------(transfer engine)--> device
//           G3 record --(DiskTier::ReadBatch, verified)--> G2 slot (promoted, or a
//           staging slot) --(transfer engine)--> device
//
// Write-back: a store or promotion that evicts a G2 block not yet on disk copies it into a
// write-back buffer slot first, and the offloader writes it from there.
//
// Control stays here: the tiers never call each other.
#include "strata/block_manager.h"

#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <optional>
#include <unordered_map>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/slot_pool.h"
#include "disk/disk_tier.h"
#include "manager/block_mover.h"
#include "manager/block_offloader.h"
#include "manager/drop_log.h"
#include "manager/transfer_state.h"
#include "manager/worker_pool.h"
#include "remote/open_store.h"
#include "strata/remote_store.h"
#include "tier/host_tier.h"

namespace strata {

std::string_view TierName(Tier tier) {
  switch (tier) {
    case Tier::kDevice:
      return "G1 device";
    case Tier::kHost:
      return "G2 host";
    case Tier::kDisk:
      return "G3 disk";
    case Tier::kShared:
      return "G4 shared";
  }
  return "?";
}

namespace {

using internal::TransferState;

// Counters are relaxed atomics: each is exact, the set is not a consistent snapshot.
struct Counters {
  std::atomic<uint64_t> match_calls{0}, match_prompt_blocks{0}, match_hit_blocks{0},
      match_hit_blocks_host{0}, match_hit_blocks_disk{0}, match_hit_blocks_shared{0},
      matched_tokens{0};
  std::atomic<uint64_t> load_calls{0}, loaded_blocks{0}, loaded_blocks_from_disk{0},
      loaded_blocks_from_shared{0}, promoted_blocks{0}, load_failed_blocks{0},
      load_cancelled_blocks{0}, loaded_bytes{0};
  std::atomic<uint64_t> shared_load_misses{0}, shared_load_errors{0};
  std::atomic<uint64_t> store_calls{0}, stored_blocks{0}, store_skipped_blocks{0},
      store_dropped_blocks{0}, store_failed_blocks{0}, store_cancelled_blocks{0}, stored_bytes{0},
      host_admission_rejects{0};
  std::atomic<uint64_t> disk_admission_rejects{0}, disk_writeback_blocks{0},
      disk_writeback_no_buffer{0};
};

void Add(std::atomic<uint64_t>& c, uint64_t v) {
  c.fetch_add(v, std::memory_order_relaxed);
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// What a request holds for one matched block: a lease on a G2 slot or a G3 record.
struct Held {
  Tier tier = Tier::kDevice;  // kDevice: nothing held (released or handed to a load)
  uint32_t id = 0;            // host slot or disk record
};

// Blocks a single disk writer batch holds at most.
constexpr uint32_t kOffloadBatch = 32;
// At most one warning line about dropped disk offloads per this period.
constexpr std::chrono::seconds kDropLogPeriod{10};

}  // namespace

class BlockManager::Impl {
 public:
  Impl(const BlockManagerOptions& options, std::unique_ptr<HostTier> host,
       std::unique_ptr<BlockMover> mover)
      : options_(options),
        block_bytes_(options.layout.block_bytes()),
        host_(std::move(host)),
        mover_(std::move(mover)),
        pool_(std::make_unique<WorkerPool>(options.worker_threads, options.max_queued_ops,
                                           "strata-io")) {}

  // Opens G3 and wires it to G2: the offloader, the admission policy, the eviction hook
  // for write-back. Called once by Create, before the manager is shared.
  Status OpenDisk() {
    const HierarchyOptions& h = options_.hierarchy;
    auto disk = DiskTier::Open(options_.disk, options_.layout, &mover_->engine());
    if (!disk.ok()) return disk.status().WithContext("opening the G3 disk tier");
    disk_ = std::move(disk).value();
    if (!disk_->notes().empty()) spdlog::info("strata: G3 disk tier: {}", disk_->notes());
    // G2's slots (staging slots included) move to and from disk without a copy.
    STRATA_RETURN_IF_ERROR(disk_->RegisterHostMemory(
        host_->data(0), size_t{host_->total_slots()} * block_bytes_, "G2 host tier slots"));
    if (h.disk_admission) {
      disk_admission_ = h.disk_admission;
    } else {
      std::vector<std::shared_ptr<AdmissionPolicy>> all;
      if (h.host_to_disk == WriteMode::kSelective) all.push_back(sightings_);
      all.push_back(std::make_shared<WriteBudgetAdmission>(h.disk_write_bytes_per_sec));
      disk_admission_ = std::make_shared<AllOfAdmission>(std::move(all));
    }
    // Write-back buffers: extra host slots past G2's capacity and its staging slots.
    if (h.host_to_disk == WriteMode::kWriteBack) {
      writeback_first_ = host_->capacity_blocks() + h.staging_slots;
      writeback_ = std::make_unique<SlotPool>(writeback_first_, h.writeback_slots);
    }
    // Queued blocks hold their G2 slots: by default at most half of G2 waits for the disk,
    // and blocks past that wait in the backlog by key, holding nothing.
    const uint32_t queue =
        h.max_queued_disk_writes != 0
            ? h.max_queued_disk_writes
            : std::max(h.disk_writer_threads * kOffloadBatch, host_->capacity_blocks() / 2);
    BlockOffloader::Reacquire reacquire;
    if (h.defer_disk_writes) {
      reacquire = [this](const BlockKey& key) -> std::optional<uint32_t> {
        const uint32_t slot = host_->Lease(key);
        if (slot != HostTier::kNoSlot) return slot;
        drop_log_->Note("evicted from G2 while waiting");
        return std::nullopt;
      };
    }
    drop_log_ = std::make_unique<DropLog>(
        "the G3 disk tier",
        "the engine was not held back (counted in disk_offload_dropped; a larger G2 or "
        "hierarchy.max_queued_disk_writes, or a faster disk, drops fewer)",
        kDropLogPeriod);
    offloader_ = std::make_unique<BlockOffloader>(
        "strata-g3-write",
        [this](std::span<const OffloadItem> items, std::span<OffloadOutcome> out) {
          WriteToDisk(items, out);
        },
        block_bytes_, h.disk_writer_threads, queue, kOffloadBatch,
        [this](std::span<const uint32_t> slots) { ReleaseOffloaded(slots); }, std::move(reacquire),
        host_->capacity_blocks());
    spdlog::info(
        "strata: G3 disk tier in {}: {} blocks, {}; G2 -> G3 {}, admission {}, offload queue {} "
        "blocks{}",
        options_.disk.directory, disk_->capacity_records(),
        disk_->direct_io() ? "O_DIRECT" : "buffered", WriteModeName(h.host_to_disk),
        disk_admission_->name(), queue, h.defer_disk_writes ? " + backlog" : "");
    return Status::Ok();
  }

  // What both lower tiers need: the namespace fingerprint every record and object carries
  // (model, layout, shard and key algorithm — the root of the key chain of an unsalted
  // namespace), and staging slots (extra host slots past G2's capacity) for loads that
  // do not promote. Called once by Create when G3 or G4 is configured, before them.
  Status PrepareLowerTiers() {
    STRATA_ASSIGN_OR_RETURN(BlockKeyer root, Keyer(RequestContext{}));
    std::memcpy(ns_.bytes.data(), root.root().bytes.data(), ns_.bytes.size());
    staging_ =
        std::make_unique<SlotPool>(host_->capacity_blocks(), options_.hierarchy.staging_slots);
    return Status::Ok();
  }

  // Opens the G4 shared store (or takes the one given) and its publisher. A store that
  // cannot be reached now is not an error: it says so, and the tier comes back by itself.
  Status OpenShared() {
    const SharedTierOptions& o = options_.shared;
    if (o.store) {
      shared_ = o.store;
    } else {
      auto store = OpenRemoteStore(o, block_bytes_);
      if (!store.ok()) return store.status().WithContext("opening the G4 shared tier");
      shared_ = std::move(store).value();
    }
    shared_offloader_ = std::make_unique<BlockOffloader>(
        "strata-g4-write",
        [this](std::span<const OffloadItem> items, std::span<OffloadOutcome> out) {
          PublishShared(items, out);
        },
        block_bytes_, o.writer_threads, o.max_queued_writes, kOffloadBatch,
        [this](std::span<const uint32_t> slots) { host_->Unlease(slots); });
    spdlog::info("strata: G4 shared tier {} ({}){}", shared_->describe(), shared_->kind(),
                 shared_->available() ? "" : ": unavailable now, retried in the background");
    return Status::Ok();
  }

  ~Impl() {
    shutting_down_.store(true, std::memory_order_release);
    {
      std::lock_guard lock(req_mu_);
      for (auto& [id, req] : requests_) CancelOpsLocked(req);
    }
    pool_.reset();  // runs the remaining jobs (they see the cancel) and joins
    // No store or load runs any more, so no new offload: the offloader writes what is
    // queued (write-back blocks included) and hands its slots back.
    offloader_.reset();
    shared_offloader_.reset();
    drop_log_.reset();  // the drops not logged yet
    std::lock_guard lock(req_mu_);
    for (auto& [id, req] : requests_) ReleaseLeases(req.held);
    requests_.clear();
  }

  const BlockManagerOptions& options() const { return options_; }

  Status RegisterDeviceCache(const DeviceCache& cache) {
    STRATA_RETURN_IF_ERROR(cache.view.Validate().WithContext("RegisterDeviceCache"));
    if (!(cache.view.layout == options_.layout))
      return Status::InvalidArgument(fmt::format(
          "RegisterDeviceCache: device layout [{}] differs from the configured layout [{}]",
          cache.view.layout.ToString(), options_.layout.ToString()));
    std::lock_guard lock(device_mu_);
    if (device_registered_.load())
      return Status::AlreadyExists("a device cache is already registered");
    // Real device memory needs the transfer engine's CUDA backend: it says NotSupported
    // with the reason when that backend is unavailable.
    STRATA_RETURN_IF_ERROR(mover_->SetDevice(cache).WithContext("RegisterDeviceCache"));
    device_ = cache;
    device_registered_.store(true, std::memory_order_release);
    return Status::Ok();
  }

  Result<BlockKeyer> Keyer(const RequestContext& ctx) const {
    KeyNamespace ns{.model_fingerprint = options_.model_fingerprint,
                    .layout = options_.layout,
                    .rank = options_.rank,
                    .world_size = options_.world_size,
                    .lora_id = ctx.lora_id,
                    .cache_salt = ctx.cache_salt,
                    .algorithm = options_.hash_algorithm};
    return BlockKeyer::Create(ns);
  }

  Result<MatchResult> Match(std::span<const TokenId> tokens, const RequestContext& ctx) {
    if (ctx.request_id.empty())
      return Status::InvalidArgument("Match: RequestContext.request_id is empty");
    STRATA_ASSIGN_OR_RETURN(BlockKeyer keyer, Keyer(ctx));
    MatchResult result;
    result.request_id = ctx.request_id;
    result.num_prompt_tokens = tokens.size();
    keyer.ComputeKeys(tokens, &result.keys);
    const std::span<const BlockKey> keys = result.keys;
    if (CountsSightings()) {
      sightings_->Observe(keys);
      if (options_.hierarchy.disk_admission) options_.hierarchy.disk_admission->Observe(keys);
    }

    // One contiguous prefix across tiers: a run from G2, then a run from G3 where G2
    // stops, then G2 again, ... each run under one lock of its tier.
    std::vector<Held> held;
    std::vector<uint32_t> ids;
    size_t pos = 0, from_host = 0, from_disk = 0;
    while (host_ && pos < keys.size()) {
      ids.clear();
      const size_t h = host_->MatchPrefix(keys.subspan(pos), &ids);
      for (uint32_t id : ids) held.push_back({Tier::kHost, id});
      pos += h;
      from_host += h;
      if (!disk_ || pos == keys.size()) break;
      ids.clear();
      const size_t d = disk_->MatchPrefix(keys.subspan(pos), &ids);
      for (uint32_t id : ids) held.push_back({Tier::kDisk, id});
      pos += d;
      from_disk += d;
      if (d == 0) break;
    }
    // Where the local tiers stop, the shared store may hold more of the prefix (computed
    // by another node). Existence only: no lease, so a load can still miss.
    size_t from_shared = 0;
    if (shared_ && pos < keys.size() && shared_->available()) {
      from_shared = shared_->MatchPrefix(keys.subspan(pos));
      held.insert(held.end(), from_shared, Held{Tier::kShared, 0});
      pos += from_shared;
    }
    const size_t matched = pos;
    // A disk run may cover blocks G2 also holds (e.g. stored again since): load those
    // from G2, the faster tier.
    if (from_disk > 0) {
      std::vector<BlockKey> disk_keys;
      std::vector<size_t> where;
      for (size_t i = 0; i < matched; ++i) {
        if (held[i].tier != Tier::kDisk) continue;
        disk_keys.push_back(keys[i]);
        where.push_back(i);
      }
      std::vector<uint32_t> slots(disk_keys.size());
      host_->LeaseEach(disk_keys, slots);
      std::vector<uint32_t> unlease;
      for (size_t k = 0; k < where.size(); ++k) {
        if (slots[k] == HostTier::kNoSlot) continue;
        unlease.push_back(held[where[k]].id);
        held[where[k]] = {Tier::kHost, slots[k]};
      }
      if (!unlease.empty()) disk_->Unlease(unlease);
      from_host += unlease.size();
      from_disk -= unlease.size();
    }
    result.tiers.reserve(matched);
    for (const Held& h : held) result.tiers.push_back(h.tier);
    result.num_matched_tokens = matched * options_.layout.tokens_per_block;

    // Selective G2 -> G3: a block that just reached its sightings is copied down from the
    // G2 slot this match found it in.
    if (offloader_ && options_.hierarchy.host_to_disk == WriteMode::kSelective) {
      for (size_t i = 0; i < matched; ++i)
        if (held[i].tier == Tier::kHost) MaybeOffload(keys[i]);
    }

    std::vector<Held> stale;
    {
      std::lock_guard lock(req_mu_);
      RequestState& req = requests_[ctx.request_id];
      stale.swap(req.held);  // a repeated Match replaces the previous leases
      req.held = std::move(held);
      req.last_key = matched ? keys[matched - 1] : BlockKey{};
      req.PruneOps();
      // Nothing to hold and nothing to cancel: keep no state for a miss.
      if (matched == 0 && req.ops.empty()) requests_.erase(ctx.request_id);
    }
    ReleaseLeases(stale);

    Add(counters_.match_calls, 1);
    Add(counters_.match_prompt_blocks, keys.size());
    Add(counters_.match_hit_blocks, matched);
    Add(counters_.match_hit_blocks_host, from_host);
    Add(counters_.match_hit_blocks_disk, from_disk);
    Add(counters_.match_hit_blocks_shared, from_shared);
    Add(counters_.matched_tokens, result.num_matched_tokens);
    return result;
  }

  Result<LoadHandle> Load(const MatchResult& match, std::span<const uint32_t> device_blocks,
                          size_t first_block) {
    STRATA_RETURN_IF_ERROR(CheckDeviceBlocks(device_blocks, "Load"));
    const size_t n = device_blocks.size();
    if (first_block > match.num_matched_blocks() || n > match.num_matched_blocks() - first_block)
      return Status::InvalidArgument(
          fmt::format("Load: blocks [{}, {}) are outside the {} matched blocks of request '{}'",
                      first_block, first_block + n, match.num_matched_blocks(), match.request_id));

    LoadJob job;
    job.state = std::make_shared<TransferState>(n, options_.layout.tokens_per_block);
    std::vector<Held> before;
    Add(counters_.load_calls, 1);
    if (n == 0 && first_block == 0)
      return LoadHandle(job.state);  // nothing to load, nothing to release
    {
      std::lock_guard lock(req_mu_);
      auto it = requests_.find(match.request_id);
      // Keys chain, so equal last keys mean equal prefixes: this is the request's current match.
      if (it == requests_.end() || it->second.held.size() != match.num_matched_blocks() ||
          (match.num_matched_blocks() > 0 &&
           !(it->second.last_key == match.keys[match.num_matched_blocks() - 1])))
        return Status::InvalidArgument(fmt::format(
            "Load: request '{}' holds no such match (released, cancelled, or matched again since)",
            match.request_id));
      RequestState& req = it->second;
      for (size_t i = 0; i < n; ++i) {
        if (req.held[first_block + i].tier == Tier::kDevice)
          return Status::InvalidArgument(
              fmt::format("Load: block {} of request '{}' was already loaded", first_block + i,
                          match.request_id));
      }
      for (size_t i = 0; i < first_block; ++i) before.push_back(std::exchange(req.held[i], Held{}));
      job.held.resize(n);
      for (size_t i = 0; i < n; ++i) job.held[i] = std::exchange(req.held[first_block + i], Held{});
      req.AddOp(job.state);
    }
    ReleaseLeases(before);
    if (n == 0) return LoadHandle(job.state);

    job.keys.assign(match.keys.begin() + first_block, match.keys.begin() + first_block + n);
    job.device.assign(device_blocks.begin(), device_blocks.end());
    auto state = job.state;
    auto shared_job = std::make_shared<LoadJob>(std::move(job));
    if (!pool_->TrySubmit([this, shared_job] { RunLoad(*shared_job); })) {
      ReleaseLeases(shared_job->held);
      for (size_t i = 0; i < n; ++i) {
        state->Finish(i, BlockState::kFailed,
                      Status::ResourceExhausted(fmt::format(
                          "load queue full ({} operations queued); recompute these tokens",
                          options_.max_queued_ops)));
      }
      Add(counters_.load_failed_blocks, n);
    }
    return LoadHandle(state);
  }

  Result<StoreHandle> Store(std::span<const BlockKey> keys,
                            std::span<const uint32_t> device_blocks) {
    if (keys.size() != device_blocks.size())
      return Status::InvalidArgument(
          fmt::format("Store: {} keys but {} device blocks", keys.size(), device_blocks.size()));
    STRATA_RETURN_IF_ERROR(CheckDeviceBlocks(device_blocks, "Store"));
    const size_t n = keys.size();
    auto state = std::make_shared<TransferState>(n, options_.layout.tokens_per_block);
    Add(counters_.store_calls, 1);

    // Reserve now, synchronously: a second store of a key in flight is deduplicated at once.
    std::vector<StoreWork> work;
    const bool selective = options_.hierarchy.device_to_host == WriteMode::kSelective;
    for (size_t i = 0; i < n; ++i) {
      if (!host_) {
        Drop(*state, i, Status::ResourceExhausted("no tier is configured to store into"));
        continue;
      }
      if (selective && !sightings_->Admit(keys[i], block_bytes_)) {
        Add(counters_.host_admission_rejects, 1);
        Drop(*state, i,
             Status::ResourceExhausted(fmt::format(
                 "not admitted to the host tier: seen fewer than {} times (selective write mode)",
                 options_.hierarchy.min_sightings)));
        continue;
      }
      uint32_t slot = 0;
      std::optional<BlockKey> victim;
      switch (host_->Reserve(keys[i], &slot, &victim)) {
        case HostTier::ReserveResult::kReserved:
          work.push_back({i, slot, device_blocks[i], keys[i], victim});
          break;
        case HostTier::ReserveResult::kPresent:
          // Already in G2; it may still owe the disk a copy (a selective block that just
          // reached its sightings, or one whose earlier offload was dropped).
          if (offloader_ && options_.hierarchy.host_to_disk != WriteMode::kWriteBack)
            MaybeOffload(keys[i]);
          [[fallthrough]];
        case HostTier::ReserveResult::kInFlight:
          Add(counters_.store_skipped_blocks, 1);
          state->Finish(i, BlockState::kSkipped);
          break;
        case HostTier::ReserveResult::kFull:
          Drop(*state, i,
               Status::ResourceExhausted(
                   "host tier full: every block is leased, pinned or being written"));
          break;
      }
    }
    if (work.empty()) return StoreHandle(state);
    auto shared_work = std::make_shared<std::vector<StoreWork>>(std::move(work));
    const auto start = std::chrono::steady_clock::now();
    if (!pool_->TrySubmit([this, state, shared_work, start] {
          RunStore(*state, *shared_work);
          if (options_.observer)
            options_.observer->OnStoreDone(SecondsSince(start), shared_work->size());
        })) {
      for (const StoreWork& w : *shared_work) {
        SaveVictim(w.victim, w.slot);
        host_->Abort(w.slot);
        Drop(*state, w.index,
             Status::ResourceExhausted(fmt::format("offload queue full ({} operations queued)",
                                                   options_.max_queued_ops)));
      }
    }
    return StoreHandle(state);
  }

  void Release(std::string_view request_id, bool cancel) {
    std::vector<Held> held;
    {
      std::lock_guard lock(req_mu_);
      auto it = requests_.find(std::string(request_id));
      if (it == requests_.end()) return;
      if (cancel) CancelOpsLocked(it->second);
      held = std::move(it->second.held);
      requests_.erase(it);
    }
    ReleaseLeases(held);
  }

  Status Pin(std::span<const BlockKey> keys, bool pin) {
    if (!host_) return Status::NotFound("no host tier is configured");
    for (const BlockKey& k : keys) STRATA_RETURN_IF_ERROR(pin ? host_->Pin(k) : host_->Unpin(k));
    return Status::Ok();
  }

  Status FlushDisk() { return disk_ ? disk_->Flush() : Status::Ok(); }

  BlockManagerStats stats() const {
    BlockManagerStats s;
    auto get = [](const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); };
    s.match_calls = get(counters_.match_calls);
    s.match_prompt_blocks = get(counters_.match_prompt_blocks);
    s.match_hit_blocks = get(counters_.match_hit_blocks);
    s.match_hit_blocks_host = get(counters_.match_hit_blocks_host);
    s.match_hit_blocks_disk = get(counters_.match_hit_blocks_disk);
    s.match_hit_blocks_shared = get(counters_.match_hit_blocks_shared);
    s.matched_tokens = get(counters_.matched_tokens);
    s.load_calls = get(counters_.load_calls);
    s.loaded_blocks = get(counters_.loaded_blocks);
    s.loaded_blocks_from_disk = get(counters_.loaded_blocks_from_disk);
    s.loaded_blocks_from_shared = get(counters_.loaded_blocks_from_shared);
    s.promoted_blocks = get(counters_.promoted_blocks);
    s.load_failed_blocks = get(counters_.load_failed_blocks);
    s.load_cancelled_blocks = get(counters_.load_cancelled_blocks);
    s.loaded_bytes = get(counters_.loaded_bytes);
    s.store_calls = get(counters_.store_calls);
    s.stored_blocks = get(counters_.stored_blocks);
    s.store_skipped_blocks = get(counters_.store_skipped_blocks);
    s.store_dropped_blocks = get(counters_.store_dropped_blocks);
    s.store_failed_blocks = get(counters_.store_failed_blocks);
    s.store_cancelled_blocks = get(counters_.store_cancelled_blocks);
    s.stored_bytes = get(counters_.stored_bytes);
    s.host_admission_rejects = get(counters_.host_admission_rejects);
    {
      std::lock_guard lock(req_mu_);
      s.active_requests = requests_.size();
    }
    s.queued_ops = pool_->queued();
    if (host_) {
      const HostTierStats h = host_->stats();
      s.host_capacity_blocks = h.capacity_blocks;
      s.host_used_blocks = h.used_blocks;
      s.host_leased_blocks = h.leased_blocks;
      s.host_pinned_blocks = h.pinned_blocks;
      s.host_evictions = h.evictions;
      s.host_index_bytes = h.index_bytes;
      s.host_prefaulted_bytes = host_->buffer().prefaulted_bytes();
    }
    s.disk_admission_rejects = get(counters_.disk_admission_rejects);
    s.disk_writeback_blocks = get(counters_.disk_writeback_blocks);
    if (offloader_) {
      const OffloaderStats o = offloader_->stats();
      s.disk_offload_queued = o.queued + o.backlog;
      s.disk_offload_deferred = o.deferred;
      s.disk_offload_blocks = o.written;
      s.disk_offload_bytes = o.bytes_written;
      s.disk_offload_present = o.present;
      s.disk_offload_failed = o.failed;
      s.disk_offload_dropped = o.queue_full + o.no_space + o.failed + o.evicted +
                               get(counters_.disk_writeback_no_buffer);
    }
    if (disk_) {
      const DiskTierStats d = disk_->stats();
      s.disk_capacity_blocks = d.capacity_records;
      s.disk_used_blocks = d.used_records;
      s.disk_leased_blocks = d.leased_records;
      s.disk_evictions = d.evictions;
      s.disk_read_errors = d.read_errors;
      s.disk_corruptions = d.corruptions;
      s.disk_invalidated_blocks = d.invalidated_records;
      s.disk_recovered_blocks = d.recovered_records;
      s.disk_index_bytes = d.index_bytes;
      s.disk_direct_io = d.direct_io;
    }
    s.shared_load_misses = get(counters_.shared_load_misses);
    s.shared_load_errors = get(counters_.shared_load_errors);
    if (shared_offloader_) {
      const OffloaderStats o = shared_offloader_->stats();
      s.shared_publish_queued = o.queued;
      s.shared_published_blocks = o.written;
      s.shared_published_bytes = o.bytes_written;
      s.shared_publish_present = o.present;
      s.shared_publish_failed = o.failed;
      s.shared_publish_dropped = o.queue_full + o.failed;
    }
    if (shared_) {
      const RemoteStoreStats r = shared_->stats();
      s.shared_enabled = true;
      s.shared_available = shared_->available();
      s.shared_corruptions = r.get_corrupt;
      s.shared_unavailable_events = r.unavailable_events;
      s.shared_evictions = r.evictions;
      s.shared_bytes_read = r.bytes_read;
    }
    return s;
  }

 private:
  struct RequestState {
    std::vector<Held> held;  // what each matched block holds, kDevice once handed to a load
    BlockKey last_key;       // key of the last matched block
    std::vector<std::weak_ptr<TransferState>> ops;

    void PruneOps() {
      std::erase_if(ops, [](const auto& w) { return w.expired(); });
    }
    void AddOp(const std::shared_ptr<TransferState>& op) {
      PruneOps();
      ops.push_back(op);
    }
  };

  struct LoadJob {
    std::shared_ptr<TransferState> state;
    std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
    std::vector<Held> held;      // per block: its G2 slot or G3 record lease
    std::vector<BlockKey> keys;  // per block
    std::vector<uint32_t> device;
  };

  struct StoreWork {
    size_t index;
    uint32_t slot;
    uint32_t device_block;
    BlockKey key;
    std::optional<BlockKey> victim;  // the block Reserve evicted from `slot`, if any
  };

  // Sightings are counted when some boundary writes selectively or a custom policy wants them.
  bool CountsSightings() const {
    const HierarchyOptions& h = options_.hierarchy;
    return h.device_to_host == WriteMode::kSelective ||
           (disk_ && (h.host_to_disk == WriteMode::kSelective || h.disk_admission));
  }

  // Queues a G2 -> G3 copy of `key` if it is in G2, not yet on disk, and admitted.
  void MaybeOffload(const BlockKey& key) {
    if (disk_->Contains(key)) return;
    if (!disk_admission_->Admit(key, block_bytes_)) {
      Add(counters_.disk_admission_rejects, 1);
      return;
    }
    const uint32_t slot = host_->Lease(key);
    if (slot == HostTier::kNoSlot) return;  // evicted meanwhile
    PushToDisk(key, slot);
  }

  // Hands G2 slot `slot` (leased, holding `key`) to the disk offloader; when it is not
  // queued the lease is returned (the key may wait in the backlog, or is dropped).
  void PushToDisk(const BlockKey& key, uint32_t slot) {
    const BlockOffloader::Push pushed = offloader_->TryPush(key, slot, /*deferrable=*/true);
    if (pushed == BlockOffloader::Push::kQueued) return;
    host_->Unlease(slot);
    if (pushed == BlockOffloader::Push::kDropped) drop_log_->Note("offload queue full");
    if (pushed == BlockOffloader::Push::kDeferredDroppingOldest)
      drop_log_->Note("offload queue and backlog full");
  }

  // Write-back: `victim` was just evicted from `slot` to make room, and its bytes are still
  // there. If it is not on disk yet (and is admitted), copy it into a write-back buffer slot
  // and queue that for the disk. Never waits: no free buffer or a full queue drops it.
  void SaveVictim(const std::optional<BlockKey>& victim, uint32_t slot) {
    if (!victim || !offloader_ || options_.hierarchy.host_to_disk != WriteMode::kWriteBack) return;
    if (disk_->Contains(*victim)) return;  // clean: the disk has it already
    if (!disk_admission_->Admit(*victim, block_bytes_)) {
      Add(counters_.disk_admission_rejects, 1);
      return;
    }
    const std::optional<uint32_t> buffer = writeback_->TryAcquire();
    if (!buffer) {
      Add(counters_.disk_writeback_no_buffer, 1);
      drop_log_->Note("every write-back buffer busy");
      return;
    }
    std::memcpy(host_->data(*buffer), host_->data(slot), block_bytes_);
    if (offloader_->TryPush(*victim, *buffer, /*deferrable=*/false) !=
        BlockOffloader::Push::kQueued) {
      writeback_->Release({&*buffer, 1});
      drop_log_->Note("offload queue full");
      return;
    }
    Add(counters_.disk_writeback_blocks, 1);
  }

  // The offloader is done with these slots: G2 blocks it held a lease on, or write-back
  // buffers. Queue order is each store's chain order, so the leases end as one chain.
  void ReleaseOffloaded(std::span<const uint32_t> slots) {
    std::vector<uint32_t> leases, buffers;
    for (uint32_t s : slots) (s < writeback_first_ ? leases : buffers).push_back(s);
    if (!leases.empty()) host_->Unlease(leases);
    if (!buffers.empty()) writeback_->Release(buffers);
  }

  void RunStore(TransferState& state, const std::vector<StoreWork>& work) {
    // First, before any slot is overwritten: copy out the blocks evicted for this store.
    for (const StoreWork& w : work) SaveVictim(w.victim, w.slot);
    std::vector<const StoreWork*> todo;
    for (const StoreWork& w : work) {
      if (state.cancelled() || shutting_down_.load(std::memory_order_acquire)) {
        host_->Abort(w.slot);
        Add(counters_.store_cancelled_blocks, 1);
        state.Finish(w.index, BlockState::kCancelled,
                     Status::Cancelled("store cancelled before it ran"));
      } else {
        todo.push_back(&w);
      }
    }
    std::vector<uint32_t> devs, slots;
    for (const StoreWork* w : todo) {
      devs.push_back(w->device_block);
      slots.push_back(w->slot);
    }
    std::vector<Status> per_block;
    mover_->Move(TransferOp::kWrite, devs, slots, &per_block);
    // In chain order, committed together tail-first; the ones that go on to disk stay
    // leased until the offloader has copied them.
    std::vector<uint32_t> written, to_disk;
    std::vector<const StoreWork*> to_disk_work;
    const bool through = offloader_ && options_.hierarchy.host_to_disk != WriteMode::kWriteBack;
    for (size_t i = 0; i < todo.size(); ++i) {
      if (!per_block[i].ok()) {
        host_->Abort(todo[i]->slot);
        Add(counters_.store_failed_blocks, 1);
        state.Finish(todo[i]->index, BlockState::kFailed,
                     per_block[i].WithContext(fmt::format("storing block {}", todo[i]->index)));
        continue;
      }
      if (through && disk_admission_->Admit(todo[i]->key, block_bytes_)) {
        to_disk.push_back(todo[i]->slot);
        to_disk_work.push_back(todo[i]);
      } else {
        if (through) Add(counters_.disk_admission_rejects, 1);
        written.push_back(todo[i]->slot);
      }
    }
    host_->Commit(written);
    host_->Commit(to_disk, /*keep_leases=*/true);
    for (size_t i = 0; i < to_disk.size(); ++i) PushToDisk(to_disk_work[i]->key, to_disk[i]);
    // Write-through to G4: every block this node computed is published for the others.
    if (shared_offloader_) {
      for (size_t i = 0; i < todo.size(); ++i) {
        if (!per_block[i].ok()) continue;
        const uint32_t slot = host_->Lease(todo[i]->key);
        if (slot == HostTier::kNoSlot) continue;  // evicted already
        if (shared_offloader_->TryPush(todo[i]->key, slot, /*deferrable=*/false) !=
            BlockOffloader::Push::kQueued)
          host_->Unlease(slot);
      }
    }
    const size_t stored = written.size() + to_disk.size();
    Add(counters_.stored_blocks, stored);
    Add(counters_.stored_bytes, stored * block_bytes_);
    for (size_t i = 0; i < todo.size(); ++i)
      if (per_block[i].ok()) state.Finish(todo[i]->index, BlockState::kDone);
  }

  void RunLoad(LoadJob& job) {
    const size_t n = job.held.size();
    std::vector<Status> result(n, Status::Ok());
    if (job.state->cancelled() || shutting_down_.load(std::memory_order_acquire)) {
      result.assign(n, Status::Cancelled("load cancelled before it ran"));
      ReleaseLeases(job.held);
      Report(job, result);
      return;
    }
    // Where each block's bytes come from on their way to the device.
    std::vector<uint32_t> src(n, HostTier::kNoSlot);
    std::vector<uint32_t> host_leases;   // G2 slots to unlease at the end (chain order)
    std::vector<uint32_t> disk_leases;   // G3 records to unlease at the end
    std::vector<size_t> promote, stage;  // G3/G4 blocks read into a new G2 slot / a staging slot
    for (size_t i = 0; i < n; ++i) {
      Held& h = job.held[i];
      if (h.tier == Tier::kHost) {
        src[i] = h.id;
        host_leases.push_back(h.id);
        continue;
      }
      if (h.tier == Tier::kDisk) disk_leases.push_back(h.id);
      const bool promote_hits = h.tier == Tier::kDisk ? options_.hierarchy.promote_disk_hits
                                                      : options_.shared.promote_hits;
      uint32_t slot = HostTier::kNoSlot;
      if (promote_hits) {
        std::optional<BlockKey> victim;
        switch (host_->Reserve(job.keys[i], &slot, &victim)) {
          case HostTier::ReserveResult::kReserved:
            SaveVictim(victim, slot);
            src[i] = slot;
            promote.push_back(i);
            continue;
          case HostTier::ReserveResult::kPresent:
            // Another request brought it into G2 meanwhile: load from there.
            slot = host_->Lease(job.keys[i]);
            if (slot != HostTier::kNoSlot) {
              src[i] = slot;
              host_leases.push_back(slot);
              h.tier = Tier::kHost;
              continue;
            }
            break;
          case HostTier::ReserveResult::kInFlight:
          case HostTier::ReserveResult::kFull:
            break;
        }
      }
      stage.push_back(i);
    }

    // G3/G4 -> new G2 slots, all reads in flight together; verified blocks become G2 blocks.
    if (!promote.empty()) {
      std::vector<uint32_t> slots;
      for (size_t i : promote) slots.push_back(src[i]);
      std::vector<Status> read;
      ReadLower(job, promote, slots, &read);
      std::vector<uint32_t> committed;
      for (size_t k = 0; k < promote.size(); ++k) {
        const size_t i = promote[k];
        if (read[k].ok()) {
          committed.push_back(src[i]);
          host_leases.push_back(src[i]);
        } else {
          host_->Abort(src[i]);
          src[i] = HostTier::kNoSlot;
          result[i] = std::move(read[k]);
        }
      }
      host_->Commit(committed, /*keep_leases=*/true);
      Add(counters_.promoted_blocks, committed.size());
    }

    // Everything with a host copy now: one transfer to the device.
    MoveToDevice(job, src, &result);

    // G3/G4 -> staging slots -> device, in rounds of the staging slots this job gets.
    for (size_t next = 0; next < stage.size();) {
      const std::vector<uint32_t> slots = staging_->AcquireUpTo(stage.size() - next);
      const std::span<const size_t> round(stage.data() + next, slots.size());
      std::vector<Status> read;
      ReadLower(job, round, slots, &read);
      std::vector<uint32_t> round_src(n, HostTier::kNoSlot);
      for (size_t k = 0; k < slots.size(); ++k) {
        if (read[k].ok()) {
          round_src[round[k]] = slots[k];
        } else {
          result[round[k]] = std::move(read[k]);
        }
      }
      MoveToDevice(job, round_src, &result);
      staging_->Release(slots);
      next += slots.size();
    }

    // Return the leases before reporting, so a caller that saw the handle finish also
    // sees the blocks evictable again.
    host_->Unlease(host_leases);
    if (!disk_leases.empty()) disk_->Unlease(disk_leases);
    Report(job, result);
  }

  // Reads blocks job.held[which[k]] (each in G3 or G4) into host slot slots[k]: the G3
  // reads in one batch and the G4 gets in another, each all in flight. (*status)[k] is OK
  // for a verified block, else why not.
  void ReadLower(const LoadJob& job, std::span<const size_t> which, std::span<const uint32_t> slots,
                 std::vector<Status>* status) {
    std::vector<DiskTier::BatchRead> reads;
    std::vector<RemoteStore::Get> gets;
    std::vector<size_t> read_k, get_k;
    for (size_t k = 0; k < which.size(); ++k) {
      const size_t i = which[k];
      if (job.held[i].tier == Tier::kDisk) {
        reads.push_back(
            {.record = job.held[i].id, .key = job.keys[i], .out = host_->data(slots[k])});
        read_k.push_back(k);
      } else {
        gets.push_back({.key = job.keys[i], .out = {host_->data(slots[k]), block_bytes_}});
        get_k.push_back(k);
      }
    }
    status->assign(which.size(), Status::Ok());
    if (!reads.empty()) {
      disk_->ReadBatch(reads, ns_);
      for (size_t r = 0; r < reads.size(); ++r) (*status)[read_k[r]] = std::move(reads[r].status);
    }
    if (!gets.empty()) {
      shared_->GetBatch(gets, ns_);
      for (size_t g = 0; g < gets.size(); ++g) {
        Status& st = gets[g].status;
        if (st.code() == StatusCode::kNotFound) {
          Add(counters_.shared_load_misses, 1);  // another node evicted it since the match
        } else if (!st.ok()) {
          Add(counters_.shared_load_errors, 1);
        }
        (*status)[get_k[g]] = std::move(st).WithContext("G4 shared tier");
      }
    }
  }

  // BlockOffloader writer of G3: one DiskTier::WriteBatch per batch.
  void WriteToDisk(std::span<const OffloadItem> items, std::span<OffloadOutcome> out) {
    std::vector<DiskTier::BatchWrite> writes;
    writes.reserve(items.size());
    for (const OffloadItem& it : items)
      writes.push_back({.key = it.key, .block = host_->data(it.slot)});
    disk_->WriteBatch(writes, ns_);
    for (size_t i = 0; i < items.size(); ++i) {
      const DiskTier::BatchWrite& w = writes[i];
      if (!w.status.ok()) {
        drop_log_->Note("write errors", 1, w.status.ToString());
        out[i] = OffloadOutcome::kFailed;
        continue;
      }
      switch (w.outcome) {
        case DiskWriteOutcome::kWritten:
          out[i] = OffloadOutcome::kWritten;
          break;
        case DiskWriteOutcome::kPresent:
        case DiskWriteOutcome::kInFlight:
          out[i] = OffloadOutcome::kPresent;
          break;
        case DiskWriteOutcome::kNoSpace:
          drop_log_->Note("no reclaimable disk space (regions leased or being written)");
          out[i] = OffloadOutcome::kNoSpace;
          break;
      }
    }
  }

  // BlockOffloader writer of G4: one RemoteStore::PutBatch per batch. While the store is
  // down the puts fail fast; only the first failure of a run of them is logged.
  void PublishShared(std::span<const OffloadItem> items, std::span<OffloadOutcome> out) {
    std::vector<RemoteStore::Put> puts;
    puts.reserve(items.size());
    for (const OffloadItem& it : items)
      puts.push_back({.key = it.key, .block = {host_->data(it.slot), block_bytes_}});
    shared_->PutBatch(puts, ns_);
    for (size_t i = 0; i < items.size(); ++i) {
      if (puts[i].status.ok()) {
        out[i] = puts[i].written ? OffloadOutcome::kWritten : OffloadOutcome::kPresent;
        shared_put_failing_.store(false, std::memory_order_relaxed);
        continue;
      }
      out[i] = OffloadOutcome::kFailed;
      if (!shared_put_failing_.exchange(true, std::memory_order_relaxed))
        spdlog::warn(
            "strata: publishing block {} to the G4 shared tier failed: {} (further "
            "failures are counted, not logged, until one succeeds)",
            items[i].key.ToHex(), puts[i].status.ToString());
    }
  }

  // Moves every block i with src[i] set from that host slot to job.device[i]; failures
  // land in (*result)[i].
  void MoveToDevice(const LoadJob& job, const std::vector<uint32_t>& src,
                    std::vector<Status>* result) {
    std::vector<size_t> which;
    std::vector<uint32_t> devs, slots;
    for (size_t i = 0; i < src.size(); ++i) {
      if (src[i] == HostTier::kNoSlot) continue;
      which.push_back(i);
      devs.push_back(job.device[i]);
      slots.push_back(src[i]);
    }
    if (which.empty()) return;
    std::vector<Status> per_block;
    mover_->Move(TransferOp::kRead, devs, slots, &per_block);
    for (size_t k = 0; k < which.size(); ++k)
      if (!per_block[k].ok()) (*result)[which[k]] = std::move(per_block[k]);
  }

  void Report(const LoadJob& job, std::vector<Status>& result) {
    auto from = [&](size_t i, Tier t) { return job.held[i].tier == t && result[i].ok(); };
    if (options_.observer) {
      size_t disk = 0, failed = 0;
      for (size_t i = 0; i < result.size(); ++i) {
        if (from(i, Tier::kDisk)) ++disk;
        if (!result[i].ok()) ++failed;
      }
      options_.observer->OnLoadDone(SecondsSince(job.start), result.size(), disk, failed);
    }
    for (size_t i = 0; i < result.size(); ++i) {
      if (result[i].ok()) {
        Add(counters_.loaded_blocks, 1);
        Add(counters_.loaded_bytes, block_bytes_);
        if (from(i, Tier::kDisk)) Add(counters_.loaded_blocks_from_disk, 1);
        if (from(i, Tier::kShared)) Add(counters_.loaded_blocks_from_shared, 1);
        job.state->Finish(i, BlockState::kDone);
      } else if (result[i].code() == StatusCode::kCancelled) {
        Add(counters_.load_cancelled_blocks, 1);
        job.state->Finish(i, BlockState::kCancelled, std::move(result[i]));
      } else {
        Add(counters_.load_failed_blocks, 1);
        job.state->Finish(i, BlockState::kFailed,
                          result[i].WithContext(fmt::format("loading block {}", i)));
      }
    }
  }

  void CancelOpsLocked(RequestState& req) {
    for (auto& w : req.ops)
      if (auto op = w.lock()) op->cancel_requested.store(true, std::memory_order_release);
  }

  void ReleaseLeases(const std::vector<Held>& held) {
    std::vector<uint32_t> host, disk;
    for (const Held& h : held) {
      if (h.tier == Tier::kHost) host.push_back(h.id);
      if (h.tier == Tier::kDisk) disk.push_back(h.id);
    }
    if (!host.empty()) host_->Unlease(host);
    if (!disk.empty()) disk_->Unlease(disk);
  }

  void Drop(TransferState& state, size_t i, Status why) {
    Add(counters_.store_dropped_blocks, 1);
    state.Finish(i, BlockState::kDropped, std::move(why));
  }

  Status CheckDeviceBlocks(std::span<const uint32_t> device_blocks, const char* op) const {
    if (!device_registered_.load(std::memory_order_acquire))
      return Status::InvalidArgument(fmt::format("{}: no device cache registered", op));
    for (size_t i = 0; i < device_blocks.size(); ++i) {
      if (device_blocks[i] >= device_.view.num_blocks)
        return Status::InvalidArgument(
            fmt::format("{}: device block {} (index {}) is out of range; the device "
                        "cache has {} blocks",
                        op, device_blocks[i], i, device_.view.num_blocks));
    }
    return Status::Ok();
  }

  const BlockManagerOptions options_;
  const size_t block_bytes_;
  const std::unique_ptr<HostTier> host_;
  const std::unique_ptr<BlockMover> mover_;  // owns the transfer engine every tier shares

  // G3 and its wiring; all null without a disk tier. Set once by OpenDisk.
  std::unique_ptr<DiskTier> disk_;
  NamespaceFingerprint ns_;
  std::shared_ptr<FrequencyAdmission> sightings_ = std::make_shared<FrequencyAdmission>(
      options_.hierarchy.min_sightings, options_.hierarchy.sightings_counters,
      options_.hierarchy.sightings_decay_period);
  std::shared_ptr<AdmissionPolicy> disk_admission_;
  std::unique_ptr<SlotPool> staging_;          // host slots for G3 loads that do not promote
  std::unique_ptr<SlotPool> writeback_;        // host slots holding evicted blocks for disk
  uint32_t writeback_first_ = UINT32_MAX;      // first write-back slot number
  std::unique_ptr<DropLog> drop_log_;          // rate-limited warnings of dropped offloads
  std::unique_ptr<BlockOffloader> offloader_;  // before pool_: outlives the jobs that push

  // G4 and its publisher; null without a shared tier. Set once by OpenShared.
  std::shared_ptr<RemoteStore> shared_;
  std::unique_ptr<BlockOffloader> shared_offloader_;
  std::atomic<bool> shared_put_failing_{false};

  std::mutex device_mu_;
  std::atomic<bool> device_registered_{false};
  DeviceCache device_;  // written once before device_registered_ turns true

  mutable std::mutex req_mu_;
  std::unordered_map<std::string, RequestState> requests_;  // GUARDED_BY(req_mu_)

  Counters counters_;
  std::atomic<bool> shutting_down_{false};
  std::unique_ptr<WorkerPool> pool_;  // last: its threads stop before the members they use
};

// ---- BlockManager: forwards to Impl ----

Result<std::unique_ptr<BlockManager>> BlockManager::Create(const BlockManagerOptions& options) {
  STRATA_RETURN_IF_ERROR(options.Validate());
  const bool with_disk = options.disk.capacity_bytes > 0;
  const bool with_shared = options.shared.enabled();
  const HierarchyOptions& h = options.hierarchy;
  uint32_t extra_slots = with_disk || with_shared ? h.staging_slots : 0;
  if (with_disk && h.host_to_disk == WriteMode::kWriteBack) extra_slots += h.writeback_slots;
  std::unique_ptr<HostTier> host;
  if (options.host.capacity_bytes > 0) {
    auto tier = HostTier::Create(options.host, options.layout.block_bytes(), nullptr, extra_slots);
    if (!tier.ok()) return tier.status().WithContext("creating the G2 host tier");
    host = std::move(tier).value();
    if (!host->buffer().notes().empty())
      spdlog::info("strata: G2 host tier: {}", host->buffer().notes());
  }
  auto mover = BlockMover::Create(options.transfer, options.layout, host ? host->data(0) : nullptr,
                                  host ? host->total_slots() : 0);
  if (!mover.ok()) return mover.status().WithContext("creating the transfer engine");
  auto impl = std::make_unique<Impl>(options, std::move(host), std::move(mover).value());
  if (with_disk || with_shared) STRATA_RETURN_IF_ERROR(impl->PrepareLowerTiers());
  if (with_disk) STRATA_RETURN_IF_ERROR(impl->OpenDisk());
  if (with_shared) STRATA_RETURN_IF_ERROR(impl->OpenShared());
  return std::unique_ptr<BlockManager>(new BlockManager(std::move(impl)));
}

BlockManager::BlockManager(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BlockManager::~BlockManager() = default;

const BlockManagerOptions& BlockManager::options() const {
  return impl_->options();
}
Status BlockManager::RegisterDeviceCache(const DeviceCache& cache) {
  return impl_->RegisterDeviceCache(cache);
}

Result<std::vector<BlockKey>> BlockManager::ComputeKeys(std::span<const TokenId> tokens,
                                                        const RequestContext& ctx) const {
  STRATA_ASSIGN_OR_RETURN(BlockKeyer keyer, impl_->Keyer(ctx));
  return keyer.ComputeKeys(tokens);
}

Result<MatchResult> BlockManager::Match(std::span<const TokenId> tokens,
                                        const RequestContext& ctx) {
  return impl_->Match(tokens, ctx);
}
Result<LoadHandle> BlockManager::Load(const MatchResult& match,
                                      std::span<const uint32_t> device_blocks, size_t first_block) {
  return impl_->Load(match, device_blocks, first_block);
}
Result<StoreHandle> BlockManager::Store(const RequestContext& ctx, std::span<const BlockKey> keys,
                                        std::span<const uint32_t> device_blocks) {
  (void)ctx;  // stores are not tied to a request's lifetime (see Cancel)
  return impl_->Store(keys, device_blocks);
}
void BlockManager::Release(std::string_view request_id) {
  impl_->Release(request_id, /*cancel=*/false);
}
void BlockManager::Cancel(std::string_view request_id) {
  impl_->Release(request_id, /*cancel=*/true);
}
Status BlockManager::FlushDisk() {
  return impl_->FlushDisk();
}
Status BlockManager::Pin(std::span<const BlockKey> keys) {
  return impl_->Pin(keys, true);
}
Status BlockManager::Unpin(std::span<const BlockKey> keys) {
  return impl_->Pin(keys, false);
}
BlockManagerStats BlockManager::stats() const {
  return impl_->stats();
}

}  // namespace strata
