// BlockManager: keys, matching, leases, per-request state and the async load/store
// pipelines over the tiers (G2 host today).
#include "strata/block_manager.h"

#include <atomic>
#include <mutex>
#include <unordered_map>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "manager/block_mover.h"
#include "manager/transfer_state.h"
#include "manager/worker_pool.h"
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
      matched_tokens{0};
  std::atomic<uint64_t> load_calls{0}, loaded_blocks{0}, load_failed_blocks{0},
      load_cancelled_blocks{0}, loaded_bytes{0};
  std::atomic<uint64_t> store_calls{0}, stored_blocks{0}, store_skipped_blocks{0},
      store_dropped_blocks{0}, store_failed_blocks{0}, store_cancelled_blocks{0}, stored_bytes{0};
};

void Add(std::atomic<uint64_t>& c, uint64_t v) {
  c.fetch_add(v, std::memory_order_relaxed);
}

}  // namespace

class BlockManager::Impl {
 public:
  Impl(const BlockManagerOptions& options, std::unique_ptr<HostTier> host,
       std::unique_ptr<BlockMover> mover)
      : options_(options),
        host_(std::move(host)),
        mover_(std::move(mover)),
        pool_(std::make_unique<WorkerPool>(options.worker_threads, options.max_queued_ops,
                                           "strata-io")) {}

  ~Impl() {
    shutting_down_.store(true, std::memory_order_release);
    {
      std::lock_guard lock(req_mu_);
      for (auto& [id, req] : requests_) CancelOpsLocked(req);
    }
    pool_.reset();  // runs the remaining jobs (they see the cancel) and joins
    std::lock_guard lock(req_mu_);
    for (auto& [id, req] : requests_) ReleaseLeases(req.slots);
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

    std::vector<uint32_t> slots;
    size_t matched = 0;
    if (host_) {
      slots.reserve(result.keys.size());
      matched = host_->MatchPrefix(result.keys, &slots);
    }
    result.tiers.assign(matched, Tier::kHost);
    result.num_matched_tokens = matched * options_.layout.tokens_per_block;

    std::vector<uint32_t> stale;
    {
      std::lock_guard lock(req_mu_);
      RequestState& req = requests_[ctx.request_id];
      stale.swap(req.slots);  // a repeated Match replaces the previous leases
      req.slots = std::move(slots);
      req.last_key = matched ? result.keys[matched - 1] : BlockKey{};
      req.PruneOps();
      // Nothing to hold and nothing to cancel: keep no state for a miss.
      if (matched == 0 && req.ops.empty()) requests_.erase(ctx.request_id);
    }
    ReleaseLeases(stale);

    Add(counters_.match_calls, 1);
    Add(counters_.match_prompt_blocks, result.keys.size());
    Add(counters_.match_hit_blocks, matched);
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

    std::vector<uint32_t> slots(n), before;
    auto state = std::make_shared<TransferState>(n, options_.layout.tokens_per_block);
    Add(counters_.load_calls, 1);
    if (n == 0 && first_block == 0)
      return LoadHandle(state);  // nothing to load, nothing to release
    {
      std::lock_guard lock(req_mu_);
      auto it = requests_.find(match.request_id);
      // Keys chain, so equal last keys mean equal prefixes: this is the request's current match.
      if (it == requests_.end() || it->second.slots.size() != match.num_matched_blocks() ||
          (match.num_matched_blocks() > 0 &&
           !(it->second.last_key == match.keys[match.num_matched_blocks() - 1])))
        return Status::InvalidArgument(fmt::format(
            "Load: request '{}' holds no such match (released, cancelled, or matched again since)",
            match.request_id));
      RequestState& req = it->second;
      for (size_t i = 0; i < n; ++i) {
        if (req.slots[first_block + i] == kReleased)
          return Status::InvalidArgument(
              fmt::format("Load: block {} of request '{}' was already loaded", first_block + i,
                          match.request_id));
      }
      for (size_t i = 0; i < first_block; ++i)
        before.push_back(std::exchange(req.slots[i], kReleased));
      for (size_t i = 0; i < n; ++i)
        slots[i] = std::exchange(req.slots[first_block + i], kReleased);
      req.AddOp(state);
    }
    ReleaseLeases(before);
    if (n == 0) return LoadHandle(state);

    std::vector<uint32_t> dst(device_blocks.begin(), device_blocks.end());
    auto job = [this, state, slots, dst] {
      std::vector<Status> per_block;
      if (state->cancelled() || shutting_down_.load(std::memory_order_acquire)) {
        per_block.assign(slots.size(), Status::Cancelled("load cancelled before it ran"));
      } else {
        mover_->Move(TransferOp::kRead, dst, slots, &per_block);
      }
      // Return the leases before reporting, so a caller that saw the handle finish also
      // sees the blocks evictable again.
      host_->Unlease(slots);
      for (size_t i = 0; i < slots.size(); ++i) {
        if (per_block[i].ok()) {
          Add(counters_.loaded_blocks, 1);
          Add(counters_.loaded_bytes, host_->block_bytes());
          state->Finish(i, BlockState::kDone);
        } else if (per_block[i].code() == StatusCode::kCancelled) {
          Add(counters_.load_cancelled_blocks, 1);
          state->Finish(i, BlockState::kCancelled, std::move(per_block[i]));
        } else {
          Add(counters_.load_failed_blocks, 1);
          state->Finish(i, BlockState::kFailed,
                        per_block[i].WithContext(fmt::format("loading block {}", i)));
        }
      }
    };
    if (!pool_->TrySubmit(std::move(job))) {
      ReleaseLeases(slots);
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
    struct Work {
      size_t index;
      uint32_t slot;
      uint32_t device_block;
    };
    std::vector<Work> work;
    for (size_t i = 0; i < n; ++i) {
      if (!host_) {
        Drop(*state, i, Status::ResourceExhausted("no tier is configured to store into"));
        continue;
      }
      uint32_t slot = 0;
      switch (host_->Reserve(keys[i], &slot)) {
        case HostTier::ReserveResult::kReserved:
          work.push_back({i, slot, device_blocks[i]});
          break;
        case HostTier::ReserveResult::kPresent:
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
    auto job = [this, state, work] {
      std::vector<const Work*> todo;
      for (const Work& w : work) {
        if (state->cancelled() || shutting_down_.load(std::memory_order_acquire)) {
          host_->Abort(w.slot);
          Add(counters_.store_cancelled_blocks, 1);
          state->Finish(w.index, BlockState::kCancelled,
                        Status::Cancelled("store cancelled before it ran"));
        } else {
          todo.push_back(&w);
        }
      }
      std::vector<uint32_t> devs, slots;
      for (const Work* w : todo) {
        devs.push_back(w->device_block);
        slots.push_back(w->slot);
      }
      std::vector<Status> per_block;
      mover_->Move(TransferOp::kWrite, devs, slots, &per_block);
      std::vector<uint32_t> written;  // in chain order, committed together tail-first
      for (size_t i = 0; i < todo.size(); ++i) {
        if (per_block[i].ok()) {
          written.push_back(todo[i]->slot);
        } else {
          host_->Abort(todo[i]->slot);
          Add(counters_.store_failed_blocks, 1);
          state->Finish(todo[i]->index, BlockState::kFailed,
                        per_block[i].WithContext(fmt::format("storing block {}", todo[i]->index)));
        }
      }
      host_->Commit(written);
      Add(counters_.stored_blocks, written.size());
      Add(counters_.stored_bytes, written.size() * host_->block_bytes());
      for (size_t i = 0; i < todo.size(); ++i)
        if (per_block[i].ok()) state->Finish(todo[i]->index, BlockState::kDone);
    };
    if (!pool_->TrySubmit(job)) {
      for (const Work& w : work) {
        host_->Abort(w.slot);
        Drop(*state, w.index,
             Status::ResourceExhausted(fmt::format("offload queue full ({} operations queued)",
                                                   options_.max_queued_ops)));
      }
    }
    return StoreHandle(state);
  }

  void Release(std::string_view request_id, bool cancel) {
    std::vector<uint32_t> slots;
    {
      std::lock_guard lock(req_mu_);
      auto it = requests_.find(std::string(request_id));
      if (it == requests_.end()) return;
      if (cancel) CancelOpsLocked(it->second);
      slots = std::move(it->second.slots);
      requests_.erase(it);
    }
    ReleaseLeases(slots);
  }

  Status Pin(std::span<const BlockKey> keys, bool pin) {
    if (!host_) return Status::NotFound("no host tier is configured");
    for (const BlockKey& k : keys) STRATA_RETURN_IF_ERROR(pin ? host_->Pin(k) : host_->Unpin(k));
    return Status::Ok();
  }

  BlockManagerStats stats() const {
    BlockManagerStats s;
    auto get = [](const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); };
    s.match_calls = get(counters_.match_calls);
    s.match_prompt_blocks = get(counters_.match_prompt_blocks);
    s.match_hit_blocks = get(counters_.match_hit_blocks);
    s.matched_tokens = get(counters_.matched_tokens);
    s.load_calls = get(counters_.load_calls);
    s.loaded_blocks = get(counters_.loaded_blocks);
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
    }
    return s;
  }

 private:
  static constexpr uint32_t kReleased = HostTier::kNoSlot;

  struct RequestState {
    std::vector<uint32_t> slots;  // host slot leased for each matched block, or kReleased
    BlockKey last_key;            // key of the last matched block
    std::vector<std::weak_ptr<TransferState>> ops;

    void PruneOps() {
      std::erase_if(ops, [](const auto& w) { return w.expired(); });
    }
    void AddOp(const std::shared_ptr<TransferState>& op) {
      PruneOps();
      ops.push_back(op);
    }
  };

  void CancelOpsLocked(RequestState& req) {
    for (auto& w : req.ops)
      if (auto op = w.lock()) op->cancel_requested.store(true, std::memory_order_release);
  }

  void ReleaseLeases(const std::vector<uint32_t>& slots) {
    std::vector<uint32_t> held;
    held.reserve(slots.size());
    for (uint32_t s : slots)
      if (s != kReleased) held.push_back(s);
    host_->Unlease(held);
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
  const std::unique_ptr<HostTier> host_;
  const std::unique_ptr<BlockMover> mover_;  // G1 <-> G2 through the transfer engine

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
  std::unique_ptr<HostTier> host;
  if (options.host.capacity_bytes > 0) {
    auto tier = HostTier::Create(options.host, options.layout.block_bytes());
    if (!tier.ok()) return tier.status().WithContext("creating the G2 host tier");
    host = std::move(tier).value();
    if (!host->buffer().notes().empty())
      spdlog::info("strata: G2 host tier: {}", host->buffer().notes());
  }
  auto mover = BlockMover::Create(options.transfer, options.layout, host ? host->data(0) : nullptr,
                                  host ? host->capacity_blocks() : 0);
  if (!mover.ok()) return mover.status().WithContext("creating the transfer engine");
  return std::unique_ptr<BlockManager>(
      new BlockManager(std::make_unique<Impl>(options, std::move(host), std::move(mover).value())));
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
