// BlockManager: keys, per-request state, and the async load and store pipelines between the
// engine's device cache and a TierService — the tiers of this process (TierHierarchy) or those
// of a `strata daemon` (daemon::RemoteTiers). One implementation, two ways to reach the tiers:
//
//   store   Reserve G2 slots (at once) --(worker: transfer engine)--> slots --> FinishStore
//   load    rounds of PrepareLoad (G2 slots as they are; G3/G4 blocks read into G2 or staging
//           slots) --(worker: transfer engine)--> device --> FinishLoad
#include "strata/block_manager.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "daemon/remote_tiers.h"
#include "manager/request_table.h"
#include "manager/tier_hierarchy.h"
#include "manager/transfer_state.h"
#include "manager/worker_pool.h"

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

// The counters the BlockManager keeps itself (the tiers keep theirs: TierService::FillStats).
// clang-format off
#define STRATA_MANAGER_COUNTERS(X) \
  X(match_calls) \
  X(match_prompt_blocks) \
  X(match_hit_blocks) \
  X(match_hit_blocks_host) \
  X(match_hit_blocks_disk) \
  X(match_hit_blocks_shared) \
  X(matched_tokens) \
  X(load_calls) \
  X(loaded_blocks) \
  X(loaded_blocks_from_disk) \
  X(loaded_blocks_from_shared) \
  X(load_failed_blocks) \
  X(load_cancelled_blocks) \
  X(loaded_bytes) \
  X(store_calls) \
  X(stored_blocks) \
  X(store_skipped_blocks) \
  X(store_dropped_blocks) \
  X(store_failed_blocks) \
  X(store_cancelled_blocks) \
  X(stored_bytes)
// clang-format on

// Relaxed atomics: each is exact, the set is not a consistent snapshot.
struct Counters {
#define STRATA_DECLARE(name) std::atomic<uint64_t> name{0};
  STRATA_MANAGER_COUNTERS(STRATA_DECLARE)
#undef STRATA_DECLARE
  void CopyTo(BlockManagerStats* s) const {
#define STRATA_COPY(name) s->name = name.load(std::memory_order_relaxed);
    STRATA_MANAGER_COUNTERS(STRATA_COPY)
#undef STRATA_COPY
  }
};

void Add(std::atomic<uint64_t>& c, uint64_t v) {
  c.fetch_add(v, std::memory_order_relaxed);
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

class BlockManager::Impl {
 public:
  Impl(const BlockManagerOptions& options, std::unique_ptr<TierService> tiers)
      : options_(options),
        block_bytes_(options.layout.block_bytes()),
        tiers_(std::move(tiers)),
        pool_(std::make_unique<WorkerPool>(options.worker_threads, options.max_queued_ops,
                                           "strata-io")) {}

  ~Impl() {
    shutting_down_.store(true, std::memory_order_release);
    requests_.CancelAll();
    pool_.reset();  // runs the remaining jobs (they see the cancel) and joins
    tiers_->Release(requests_.TakeAll());
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
    STRATA_RETURN_IF_ERROR(tiers_->RegisterDevice(cache).WithContext("RegisterDeviceCache"));
    device_blocks_ = cache.view.num_blocks;
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
    TierMatch m;
    tiers_->Match(result.keys, &m);
    const size_t matched = m.held.size();
    result.tiers.reserve(matched);
    for (const Held& h : m.held) result.tiers.push_back(h.tier);
    result.num_matched_tokens = matched * options_.layout.tokens_per_block;
    // A repeated Match replaces the previous leases.
    tiers_->Release(requests_.Replace(ctx.request_id, std::move(m.held),
                                      matched ? result.keys[matched - 1] : BlockKey{}));
    Add(counters_.match_calls, 1);
    Add(counters_.match_prompt_blocks, result.keys.size());
    Add(counters_.match_hit_blocks, matched);
    Add(counters_.match_hit_blocks_host, m.from_host);
    Add(counters_.match_hit_blocks_disk, m.from_disk);
    Add(counters_.match_hit_blocks_shared, m.from_shared);
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
    auto job = std::make_shared<LoadJob>();
    job->state = std::make_shared<TransferState>(n, options_.layout.tokens_per_block);
    Add(counters_.load_calls, 1);
    if (n == 0 && first_block == 0)
      return LoadHandle(job->state);  // nothing to load, nothing to release
    std::vector<Held> before;
    STRATA_RETURN_IF_ERROR(
        requests_.TakeForLoad(match, first_block, n, job->state, &before, &job->held));
    tiers_->Release(before);
    if (n == 0) return LoadHandle(job->state);
    for (const Held& h : job->held) job->tiers.push_back(h.tier);
    job->keys.assign(match.keys.begin() + first_block, match.keys.begin() + first_block + n);
    job->device.assign(device_blocks.begin(), device_blocks.end());
    auto state = job->state;
    if (!pool_->TrySubmit([this, job] { RunLoad(*job); })) {
      tiers_->Release(job->held);
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
    auto job = std::make_shared<StoreJob>();
    tiers_->Reserve(keys, &job->reserved);
    bool any = false;
    for (size_t i = 0; i < n; ++i) {
      StoreReservation& r = job->reserved[i];
      if (r.state == BlockState::kSkipped) {
        Add(counters_.store_skipped_blocks, 1);
        state->Finish(i, BlockState::kSkipped);
      } else if (r.state == BlockState::kDropped) {
        Drop(*state, i, std::move(r.why));
      } else {
        any = true;
      }
    }
    if (!any) return StoreHandle(state);
    job->state = state;
    job->keys.assign(keys.begin(), keys.end());
    job->device.assign(device_blocks.begin(), device_blocks.end());
    if (!pool_->TrySubmit([this, job] {
          RunStore(*job);
          if (options_.observer)
            options_.observer->OnStoreDone(SecondsSince(job->start), job->keys.size());
        })) {
      tiers_->BeginStore(job->reserved);
      const std::vector<uint8_t> ok(n, 0);
      (void)tiers_->FinishStore(job->keys, job->reserved, ok);  // gives every slot up
      for (size_t i = 0; i < n; ++i) {
        if (job->reserved[i].state != BlockState::kPending) continue;
        Drop(*state, i,
             Status::ResourceExhausted(fmt::format("offload queue full ({} operations queued)",
                                                   options_.max_queued_ops)));
      }
    }
    return StoreHandle(state);
  }

  void Release(std::string_view request_id, bool cancel) {
    tiers_->Release(requests_.Remove(request_id, cancel));
  }

  Status Pin(std::span<const BlockKey> keys, bool pin) { return tiers_->Pin(keys, pin); }
  Status FlushDisk() { return tiers_->Flush(); }

  BlockManagerStats stats() const {
    BlockManagerStats s;
    tiers_->FillStats(&s);
    counters_.CopyTo(&s);
    s.active_requests = requests_.size();
    s.queued_ops = pool_->queued();
    return s;
  }

 private:
  struct LoadJob {
    std::shared_ptr<TransferState> state;
    std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
    std::vector<Held> held;      // per block: what it holds until its round covers it
    std::vector<Tier> tiers;     // per block: the tier it was matched in
    std::vector<BlockKey> keys;  // per block
    std::vector<uint32_t> device;
  };

  struct StoreJob {
    std::shared_ptr<TransferState> state;
    std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
    std::vector<StoreReservation> reserved;  // per block
    std::vector<BlockKey> keys;
    std::vector<uint32_t> device;
  };

  bool Stopping(const TransferState& state) const {
    return state.cancelled() || shutting_down_.load(std::memory_order_acquire);
  }

  void RunStore(StoreJob& job) {
    // First, before any slot is overwritten: save the blocks evicted for this store.
    tiers_->BeginStore(job.reserved);
    const size_t n = job.keys.size();
    std::vector<uint8_t> ok(n, 0);
    std::vector<size_t> todo;
    std::vector<uint32_t> devs, slots;
    uint16_t epoch = 0;
    for (size_t i = 0; i < n; ++i) {
      const StoreReservation& r = job.reserved[i];
      if (r.state != BlockState::kPending) continue;
      if (Stopping(*job.state)) {
        Add(counters_.store_cancelled_blocks, 1);
        job.state->Finish(i, BlockState::kCancelled,
                          Status::Cancelled("store cancelled before it ran"));
        continue;
      }
      todo.push_back(i);
      devs.push_back(job.device[i]);
      slots.push_back(r.slot);
      epoch = r.epoch;
    }
    std::vector<Status> per_block;
    if (!todo.empty()) tiers_->Move(TransferOp::kWrite, epoch, devs, slots, &per_block);
    for (size_t k = 0; k < todo.size(); ++k) ok[todo[k]] = per_block[k].ok();
    if (Status committed = tiers_->FinishStore(job.keys, job.reserved, ok); !committed.ok()) {
      for (size_t k = 0; k < todo.size(); ++k) {
        if (per_block[k].ok()) per_block[k] = committed;
        ok[todo[k]] = 0;
      }
    }
    // Counted before the states are final: a caller that saw the handle finish sees them.
    const size_t stored = static_cast<size_t>(std::count(ok.begin(), ok.end(), 1));
    Add(counters_.stored_blocks, stored);
    Add(counters_.stored_bytes, stored * block_bytes_);
    Add(counters_.store_failed_blocks, todo.size() - stored);
    for (size_t k = 0; k < todo.size(); ++k) {
      const size_t i = todo[k];
      if (per_block[k].ok()) {
        job.state->Finish(i, BlockState::kDone);
      } else {
        job.state->Finish(i, BlockState::kFailed,
                          per_block[k].WithContext(fmt::format("storing block {}", i)));
      }
    }
  }

  void RunLoad(LoadJob& job) {
    const size_t n = job.held.size();
    std::vector<Status> result(n, Status::Ok());
    std::vector<size_t> pending(n);
    for (size_t i = 0; i < n; ++i) pending[i] = i;
    while (!pending.empty()) {
      if (Stopping(*job.state)) {
        tiers_->Release(job.held);
        for (size_t i : pending) result[i] = Status::Cancelled("load cancelled before it ran");
        break;
      }
      LoadRound round;
      tiers_->PrepareLoad(job.keys, job.held, pending, &round);
      std::vector<size_t> which;
      std::vector<uint32_t> devs, slots;
      for (size_t k = 0; k < round.blocks.size(); ++k) {
        const size_t i = round.blocks[k];
        if (round.src[k] == kNoHostSlot) {
          result[i] = std::move(round.status[k]);
          continue;
        }
        which.push_back(i);
        devs.push_back(job.device[i]);
        slots.push_back(round.src[k]);
      }
      if (!which.empty()) {
        std::vector<Status> moved;
        tiers_->Move(TransferOp::kRead, round.epoch, devs, slots, &moved);
        for (size_t k = 0; k < which.size(); ++k)
          if (!moved[k].ok()) result[which[k]] = std::move(moved[k]);
      }
      if (Status held = tiers_->FinishLoad(round); !held.ok()) {
        for (size_t i : which) result[i] = held;
      }
      std::erase_if(pending, [&](size_t i) { return job.held[i].tier == Tier::kDevice; });
    }
    Report(job, result);
  }

  void Report(const LoadJob& job, std::vector<Status>& result) {
    auto from = [&](size_t i, Tier t) { return job.tiers[i] == t && result[i].ok(); };
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

  void Drop(TransferState& state, size_t i, Status why) {
    Add(counters_.store_dropped_blocks, 1);
    state.Finish(i, BlockState::kDropped, std::move(why));
  }

  Status CheckDeviceBlocks(std::span<const uint32_t> device_blocks, const char* op) const {
    if (!device_registered_.load(std::memory_order_acquire))
      return Status::InvalidArgument(fmt::format("{}: no device cache registered", op));
    for (size_t i = 0; i < device_blocks.size(); ++i) {
      if (device_blocks[i] >= device_blocks_)
        return Status::InvalidArgument(
            fmt::format("{}: device block {} (index {}) is out of range; the device "
                        "cache has {} blocks",
                        op, device_blocks[i], i, device_blocks_));
    }
    return Status::Ok();
  }

  const BlockManagerOptions options_;
  const size_t block_bytes_;
  const std::unique_ptr<TierService> tiers_;

  std::mutex device_mu_;
  std::atomic<bool> device_registered_{false};
  uint32_t device_blocks_ = 0;  // written once before device_registered_ turns true

  RequestTable requests_;
  Counters counters_;
  std::atomic<bool> shutting_down_{false};
  std::unique_ptr<WorkerPool> pool_;  // last: its threads stop before the members they use
};

// ---- BlockManager: forwards to Impl ----

Result<std::unique_ptr<BlockManager>> BlockManager::Create(const BlockManagerOptions& options) {
  STRATA_RETURN_IF_ERROR(options.Validate());
  std::unique_ptr<TierService> tiers;
  if (!options.daemon.socket.empty()) {
    auto remote = daemon::RemoteTiers::Connect(options);
    if (!remote.ok()) return remote.status();
    tiers = std::move(remote).value();
  } else {
    auto local = TierHierarchy::Create(options);
    if (!local.ok()) return local.status();
    tiers = std::move(local).value();
  }
  return std::unique_ptr<BlockManager>(
      new BlockManager(std::make_unique<Impl>(options, std::move(tiers))));
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
