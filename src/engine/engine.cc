// The reference engine's scheduler: admission (with Strata Match/Load), continuous
// batching with chunked prefill, sampling, stop strings, Strata Store/Release.
#include "engine/engine.h"

#include <pthread.h>

#include <algorithm>
#include <chrono>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "engine/sampler.h"

namespace strata::engine {

namespace {

uint32_t CeilDiv(uint64_t a, uint32_t b) {
  return static_cast<uint32_t>((a + b - 1) / b);
}

// Longest proper prefix of a stop string that `text` ends with: text that may still turn
// into a stop string is held back.
size_t StopPrefixTail(std::string_view text, const std::vector<std::string>& stops) {
  size_t hold = 0;
  for (const std::string& stop : stops)
    for (size_t k = std::min(stop.size() - 1, text.size()); k > hold; --k)
      if (text.substr(text.size() - k) == std::string_view(stop).substr(0, k)) {
        hold = k;
        break;
      }
  return hold;
}

}  // namespace

struct Engine::Request {
  enum class Phase { kWaiting, kLoading, kPrefill, kDecode, kDone };

  Request(GenerationRequest r, std::function<void(const TokenEvent&)> cb,
          const tokenizer::Tokenizer& tokenizer)
      : req(std::move(r)), on_event(std::move(cb)), sampler(req.sampling), decoder(tokenizer) {}

  GenerationRequest req;
  std::function<void(const TokenEvent&)> on_event;
  Sampler sampler;
  Phase phase = Phase::kWaiting;
  std::vector<uint32_t> blocks;           // block table
  std::vector<TransferHandle> transfers;  // loads into / stores from `blocks`
  bool matched = false;                   // Match was called: Release or Cancel at the end
  std::vector<BlockKey> keys;             // prompt block keys from Match
  LoadHandle load;
  uint32_t computed = 0;  // positions whose KV is in `blocks`
  uint32_t cached = 0;    // of those, loaded from Strata
  std::vector<TokenId> generated;
  tokenizer::StreamDecoder decoder;  // generated tokens to whole UTF-8 characters
  std::string text;                  // decoded generated text, as the client receives it
  size_t emitted = 0;                // bytes of `text` already sent
  uint32_t step_rows = 0;            // rows in the current step

  RequestContext ctx() const { return RequestContext{req.request_id, req.cache_salt, {}}; }
  uint32_t prompt_size() const { return static_cast<uint32_t>(req.prompt.size()); }
};

struct Engine::PendingFree {
  std::vector<uint32_t> blocks;
  std::vector<TransferHandle> transfers;
};

Status EngineOptions::Validate() const {
  STRATA_RETURN_IF_ERROR(model.Validate());
  const uint32_t context_blocks = CeilDiv(model.max_context_tokens, model.tokens_per_block);
  if (num_device_blocks != 0 && num_device_blocks < context_blocks)
    return Status::InvalidArgument(
        fmt::format("EngineOptions.num_device_blocks {} cannot hold one full context ({} blocks)",
                    num_device_blocks, context_blocks));
  if (max_running_requests == 0)
    return Status::InvalidArgument("EngineOptions.max_running_requests must be >= 1");
  if (prefill_chunk_tokens == 0)
    return Status::InvalidArgument("EngineOptions.prefill_chunk_tokens must be >= 1");
  if (max_step_tokens == 0)
    return Status::InvalidArgument("EngineOptions.max_step_tokens must be >= 1");
  if (weights != nullptr && weights->config().Fingerprint() != model.Fingerprint())
    return Status::InvalidArgument(
        "EngineOptions.weights belong to another model than EngineOptions.model");
  if (tokenizer != nullptr && tokenizer->vocab_size() > model.vocab_size)
    return Status::InvalidArgument(
        fmt::format("EngineOptions.tokenizer has {} tokens, more than the model's vocabulary of {}",
                    tokenizer->vocab_size(), model.vocab_size));
  if (block_manager != nullptr) {
    const BlockManagerOptions& bm = block_manager->options();
    if (!(bm.layout == model.kv_layout()))
      return Status::InvalidArgument(
          fmt::format("BlockManager layout [{}] differs from the model's KV layout [{}]",
                      bm.layout.ToString(), model.kv_layout().ToString()));
    if (bm.model_fingerprint != model.Fingerprint())
      return Status::InvalidArgument(
          fmt::format("BlockManager model_fingerprint '{}' differs from the model's '{}'",
                      bm.model_fingerprint, model.Fingerprint()));
  }
  return Status::Ok();
}

Result<std::unique_ptr<Engine>> Engine::Create(EngineOptions options) {
  STRATA_RETURN_IF_ERROR(options.Validate());
  std::shared_ptr<const Model> model = options.weights;
  if (model == nullptr) {
    STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Model> synthetic, Model::Create(options.model));
    model = std::move(synthetic);
  }
  if (options.tokenizer == nullptr) options.tokenizer = tokenizer::MakeByteTokenizer();
  if (options.num_device_blocks == 0)
    options.num_device_blocks =
        2 * CeilDiv(options.model.max_context_tokens, options.model.tokens_per_block);
  STRATA_ASSIGN_OR_RETURN(
      std::unique_ptr<PagedKvCache> kv,
      PagedKvCache::Create(options.model.kv_layout(), options.num_device_blocks));
  if (options.block_manager != nullptr)
    STRATA_RETURN_IF_ERROR(options.block_manager->RegisterDeviceCache(kv->device_cache()));
  return std::unique_ptr<Engine>(new Engine(std::move(options), std::move(model), std::move(kv)));
}

Engine::Engine(EngineOptions options, std::shared_ptr<const Model> model,
               std::unique_ptr<PagedKvCache> kv)
    : options_(std::move(options)),
      model_(std::move(model)),
      tokenizer_(options_.tokenizer),
      chat_(tokenizer::ChatTemplate::FromJinja(tokenizer_->chat_template(), *tokenizer_)),
      kv_(std::move(kv)) {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "strata-engine");
    Run();
  });
}

Engine::~Engine() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

std::string Engine::model_name() const {
  // A loaded checkpoint goes by its own name; a synthetic preset says what it is.
  if (!options_.model.weights_digest.empty()) return options_.model.name;
  return "strata-ref-" + options_.model.name;
}

uint32_t Engine::max_context_tokens() const {
  return options_.model.max_context_tokens;
}

std::vector<TokenId> Engine::Encode(std::string_view text, bool add_bos) const {
  return add_bos ? tokenizer_->EncodePrompt(text, /*parse_special=*/true)
                 : tokenizer_->Encode(text, /*parse_special=*/true);
}

std::string Engine::ApplyChatTemplate(const std::vector<ChatMessage>& messages) const {
  return chat_.Apply(messages);
}

std::string Engine::Decode(std::span<const TokenId> tokens) const {
  return tokenizer_->Decode(tokens);
}

Status Engine::Submit(GenerationRequest request, std::function<void(const TokenEvent&)> on_event) {
  const ModelConfig& c = options_.model;
  const SamplingParams& s = request.sampling;
  if (request.request_id.empty()) return Status::InvalidArgument("request_id is empty");
  if (!on_event) return Status::InvalidArgument("on_event is empty");
  if (request.prompt.empty()) return Status::InvalidArgument("prompt is empty");
  for (TokenId t : request.prompt)
    if (t < 0 || static_cast<uint32_t>(t) >= c.vocab_size)
      return Status::InvalidArgument(
          fmt::format("prompt token {} is outside the vocabulary of {}", t, c.vocab_size));
  if (s.max_tokens < 1) return Status::InvalidArgument("max_tokens must be >= 1");
  if (request.prompt.size() + s.max_tokens > c.max_context_tokens)
    return Status::InvalidArgument(
        fmt::format("prompt ({} tokens) + max_tokens ({}) exceeds the context of {} tokens",
                    request.prompt.size(), s.max_tokens, c.max_context_tokens));
  if (!(s.temperature >= 0.0f) || !std::isfinite(s.temperature))
    return Status::InvalidArgument("temperature must be a finite number >= 0");
  if (!(s.top_p > 0.0f && s.top_p <= 1.0f))
    return Status::InvalidArgument("top_p must be in (0, 1]");
  for (const std::string& stop : s.stop)
    if (stop.empty()) return Status::InvalidArgument("stop strings must not be empty");

  auto r = std::make_unique<Request>(std::move(request), std::move(on_event), *tokenizer_);
  {
    std::lock_guard lock(mu_);
    if (stop_) return Status::Unavailable("engine is shutting down");
    if (in_flight_.contains(r->req.request_id))
      return Status::AlreadyExists(
          fmt::format("request '{}' is already in flight", r->req.request_id));
    if (in_flight_.size() >= size_t{options_.max_queued_requests} + options_.max_running_requests)
      return Status::ResourceExhausted(
          fmt::format("request queue is full ({} waiting)", options_.max_queued_requests));
    in_flight_.insert(r->req.request_id);
    incoming_.push_back(std::move(r));
  }
  cv_.notify_all();
  return Status::Ok();
}

void Engine::Cancel(std::string_view request_id) {
  {
    std::lock_guard lock(mu_);
    const std::string id(request_id);
    if (!in_flight_.contains(id)) return;
    cancel_.insert(id);
  }
  cv_.notify_all();
}

Status Engine::WaitForStores(std::chrono::milliseconds timeout) const {
  std::vector<StoreHandle> stores;
  {
    std::lock_guard lock(mu_);
    stores = stores_;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (const StoreHandle& h : stores) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (!h.done() && !h.Wait(std::max(left, std::chrono::milliseconds(0))).ok())
      return Status::TimedOut("WaitForStores: stores still running");
  }
  return Status::Ok();
}

EngineStats Engine::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void Engine::Run() {
  for (;;) {
    std::unordered_set<std::string> cancels;
    {
      std::unique_lock lock(mu_);
      const bool busy = std::any_of(running_.begin(), running_.end(), [](const auto& r) {
        return r->phase == Request::Phase::kPrefill || r->phase == Request::Phase::kDecode;
      });
      const bool polling =
          !pending_free_.empty() ||
          std::any_of(running_.begin(), running_.end(),
                      [](const auto& r) { return r->phase == Request::Phase::kLoading; }) ||
          (!waiting_.empty() && running_.size() < options_.max_running_requests);
      auto ready = [&] { return stop_ || !incoming_.empty() || !cancel_.empty(); };
      if (!busy && !ready()) {
        if (polling)
          cv_.wait_for(lock, std::chrono::milliseconds(1), ready);
        else
          cv_.wait(lock, ready);
      }
      if (stop_) break;
      while (!incoming_.empty()) {
        waiting_.push_back(std::move(incoming_.front()));
        incoming_.pop_front();
      }
      cancels.swap(cancel_);
    }

    if (!cancels.empty()) {
      for (auto& r : waiting_)
        if (cancels.contains(r->req.request_id)) Finish(*r, FinishReason::kCancelled);
      for (auto& r : running_)
        if (r->phase != Request::Phase::kDone && cancels.contains(r->req.request_id))
          Finish(*r, FinishReason::kCancelled);
    }
    ReclaimBlocks(false);
    for (auto& r : running_)
      if (r->phase == Request::Phase::kLoading) PollLoad(*r);
    std::erase_if(waiting_, [](const auto& r) { return r->phase == Request::Phase::kDone; });
    std::erase_if(running_, [](const auto& r) { return r->phase == Request::Phase::kDone; });

    // Admission in arrival order; the head waits when blocks run out.
    while (!waiting_.empty() && running_.size() < options_.max_running_requests &&
           Admit(*waiting_.front())) {
      running_.push_back(std::move(waiting_.front()));
      waiting_.pop_front();
    }

    std::vector<Request*> batch;
    for (auto& r : running_)
      if (r->phase == Request::Phase::kPrefill || r->phase == Request::Phase::kDecode)
        batch.push_back(r.get());
    if (!batch.empty()) Step(batch);
    std::erase_if(running_, [](const auto& r) { return r->phase == Request::Phase::kDone; });
  }

  // Shutdown: every request ends cancelled; transfers into or out of the cache finish
  // before the cache goes away.
  {
    std::lock_guard lock(mu_);
    while (!incoming_.empty()) {
      waiting_.push_back(std::move(incoming_.front()));
      incoming_.pop_front();
    }
  }
  for (auto& r : waiting_) Finish(*r, FinishReason::kCancelled);
  for (auto& r : running_)
    if (r->phase != Request::Phase::kDone) Finish(*r, FinishReason::kCancelled);
  waiting_.clear();
  running_.clear();
  ReclaimBlocks(true);
}

bool Engine::Admit(Request& r) {
  const ModelConfig& c = options_.model;
  const uint32_t tpb = c.tokens_per_block;
  // KV positions ever written: the prompt and every generated token but the last.
  auto blocks = kv_->Allocate(CeilDiv(r.req.prompt.size() + r.req.sampling.max_tokens - 1, tpb));
  if (!blocks.ok()) return false;
  r.blocks = std::move(blocks).value();
  r.phase = Request::Phase::kPrefill;
  BlockManager* bm = options_.block_manager;
  if (bm == nullptr) return true;

  r.matched = true;
  auto match = bm->Match(r.req.prompt, r.ctx());
  if (!match.ok()) {
    spdlog::warn("engine: Match for '{}' failed, computing the whole prompt: {}", r.req.request_id,
                 match.status().ToString());
    return true;
  }
  r.keys = match->keys;
  // The last prompt token is always computed: its logits give the first token.
  const size_t n = std::min(match->num_matched_blocks(), (r.req.prompt.size() - 1) / tpb);
  if (n == 0) return true;
  auto load = bm->Load(*match, std::span<const uint32_t>(r.blocks).first(n));
  if (!load.ok()) {
    spdlog::warn("engine: Load for '{}' failed, computing the whole prompt: {}", r.req.request_id,
                 load.status().ToString());
    return true;
  }
  r.load = *load;
  r.transfers.push_back(*load);
  r.phase = Request::Phase::kLoading;
  PollLoad(r);
  return true;
}

void Engine::PollLoad(Request& r) {
  if (!r.load.done()) return;
  // Only the leading run of loaded blocks is valid; later ones are recomputed.
  r.cached = static_cast<uint32_t>(r.load.usable_tokens());
  r.computed = r.cached;
  r.phase = Request::Phase::kPrefill;
  std::lock_guard lock(mu_);
  stats_.cached_tokens += r.cached;
}

void Engine::Step(std::vector<Request*>& batch) {
  std::vector<ForwardRow> rows;
  std::vector<std::span<const uint32_t>> tables;
  uint32_t budget = options_.max_step_tokens;
  uint64_t prefill_tokens = 0, decode_tokens = 0;
  double flops = 0;
  std::vector<Request*> in_step;
  auto add = [&](Request& r, uint32_t n) {
    const uint32_t seq = static_cast<uint32_t>(tables.size());
    tables.push_back(r.blocks);
    for (uint32_t i = 0; i < n; ++i) {
      const uint32_t pos = r.computed + i;
      const bool decode = r.phase == Request::Phase::kDecode;
      rows.push_back(ForwardRow{.seq = seq,
                                .pos = pos,
                                .token = decode ? r.generated.back() : r.req.prompt[pos],
                                .want_logits = decode || pos + 1 == r.prompt_size()});
    }
    flops += model_->ForwardFlops(n, r.computed);
    r.step_rows = n;
    in_step.push_back(&r);
    budget -= n;
  };
  // Decodes first (one token each), then prefill chunks in admission order.
  for (Request* r : batch)
    if (r->phase == Request::Phase::kDecode && budget > 0) {
      add(*r, 1);
      decode_tokens += 1;
    }
  for (Request* r : batch)
    if (r->phase == Request::Phase::kPrefill && budget > 0) {
      const uint32_t n =
          std::min({options_.prefill_chunk_tokens, r->prompt_size() - r->computed, budget});
      add(*r, n);
      prefill_tokens += n;
    }

  std::vector<float> logits;
  const auto start = std::chrono::steady_clock::now();
  Status status = model_->Forward(rows, tables, *kv_, ws_, &logits);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  {
    std::lock_guard lock(mu_);
    stats_.steps += 1;
    stats_.prefill_tokens += prefill_tokens;
    stats_.decode_tokens += decode_tokens;
    stats_.forward_seconds += seconds;
    stats_.forward_flops += flops;
  }
  if (!status.ok()) {
    spdlog::error("engine: forward pass failed: {}", status.ToString());
    for (Request* r : in_step) Finish(*r, FinishReason::kError, status.WithContext("forward pass"));
    return;
  }

  const uint32_t vocab = options_.model.vocab_size;
  size_t next_logits = 0;
  for (Request* r : in_step) {
    r->computed += r->step_rows;
    if (r->computed < r->prompt_size()) continue;  // prefill goes on next step
    const std::span<const float> row(&logits[next_logits * vocab], vocab);
    ++next_logits;
    if (r->phase == Request::Phase::kPrefill) {
      StorePromptBlocks(*r);
      r->phase = Request::Phase::kDecode;
    }
    if (r->phase == Request::Phase::kDone) continue;  // cannot happen; defensive
    if (options_.on_logits)
      options_.on_logits(
          LogitsEvent{r->req.request_id, static_cast<uint32_t>(r->generated.size()), row});
    AfterToken(*r, r->sampler.Sample(row));
  }
}

void Engine::AfterToken(Request& r, TokenId token) {
  r.generated.push_back(token);
  if (tokenizer_->IsEndOfGeneration(token)) {
    r.text += r.decoder.Finish();
    Finish(r, FinishReason::kStop, Status::Ok(), true, token, r.text.substr(r.emitted));
    return;
  }
  // Stop strings are matched on the text the client receives: whole characters, U+FFFD for
  // bytes the model produced that are not UTF-8. One token can complete several characters
  // (a held-back byte becomes U+FFFD when the next one cannot continue it), so a stop string
  // may end before the end of the new text: all of it is searched, from where a stop could
  // have begun. The earliest stop wins.
  const size_t before = r.text.size();
  r.text += r.decoder.Push(token);
  const bool at_length = r.generated.size() >= r.req.sampling.max_tokens;
  if (at_length) r.text += r.decoder.Finish();
  size_t stop_at = std::string::npos;
  for (const std::string& stop : r.req.sampling.stop) {
    const size_t from = before >= stop.size() ? before - stop.size() + 1 : 0;
    stop_at = std::min(stop_at, r.text.find(stop, from));
  }
  if (stop_at != std::string::npos) {
    Finish(r, FinishReason::kStop, Status::Ok(), true, token,
           stop_at > r.emitted ? r.text.substr(r.emitted, stop_at - r.emitted) : std::string());
    return;
  }
  if (at_length) {
    Finish(r, FinishReason::kLength, Status::Ok(), true, token, r.text.substr(r.emitted));
    return;
  }
  // A stop string is found only at the end of the text, and its start is a character
  // boundary, so holding back a possible prefix never splits a character.
  const size_t end = r.text.size() - StopPrefixTail(r.text, r.req.sampling.stop);
  TokenEvent event;
  event.has_token = true;
  event.token = token;
  if (end > r.emitted) {
    event.text = r.text.substr(r.emitted, end - r.emitted);
    r.emitted = end;
  }
  event.prompt_tokens = r.prompt_size();
  event.cached_tokens = r.cached;
  event.completion_tokens = static_cast<uint32_t>(r.generated.size());
  r.on_event(event);
}

void Engine::StorePromptBlocks(Request& r) {
  BlockManager* bm = options_.block_manager;
  const uint32_t tpb = options_.model.tokens_per_block;
  const uint32_t first = r.cached / tpb, full = r.prompt_size() / tpb;
  if (bm == nullptr || first >= full) return;
  if (r.keys.size() < full) {
    auto keys = bm->ComputeKeys(r.req.prompt, r.ctx());
    if (!keys.ok()) return;
    r.keys = std::move(keys).value();
  }
  auto store = bm->Store(r.ctx(), std::span<const BlockKey>(r.keys).subspan(first, full - first),
                         std::span<const uint32_t>(r.blocks).subspan(first, full - first));
  if (!store.ok()) {
    spdlog::warn("engine: Store for '{}' failed: {}", r.req.request_id, store.status().ToString());
    return;
  }
  r.transfers.push_back(*store);
  std::lock_guard lock(mu_);
  std::erase_if(stores_, [](const StoreHandle& h) { return h.done(); });
  stores_.push_back(*store);
  stats_.stored_blocks += full - first;
}

void Engine::StoreGeneratedBlocks(Request& r) {
  BlockManager* bm = options_.block_manager;
  const uint32_t tpb = options_.model.tokens_per_block;
  if (bm == nullptr || !options_.store_generated_blocks || r.generated.empty()) return;
  const size_t kv_tokens = r.req.prompt.size() + r.generated.size() - 1;
  const uint32_t first = r.prompt_size() / tpb, full = static_cast<uint32_t>(kv_tokens / tpb);
  if (full <= first || r.computed < kv_tokens) return;
  std::vector<TokenId> tokens = r.req.prompt;
  tokens.insert(tokens.end(), r.generated.begin(), r.generated.end() - 1);
  auto keys = bm->ComputeKeys(tokens, r.ctx());
  if (!keys.ok() || keys->size() < full) return;
  auto store = bm->Store(r.ctx(), std::span<const BlockKey>(*keys).subspan(first, full - first),
                         std::span<const uint32_t>(r.blocks).subspan(first, full - first));
  if (!store.ok()) return;
  r.transfers.push_back(*store);
  std::lock_guard lock(mu_);
  std::erase_if(stores_, [](const StoreHandle& h) { return h.done(); });
  stores_.push_back(*store);
  stats_.stored_blocks += full - first;
}

void Engine::Finish(Request& r, FinishReason reason, Status error, bool has_token, TokenId token,
                    std::string text) {
  const bool admitted = r.phase != Request::Phase::kWaiting;
  if (admitted && (reason == FinishReason::kStop || reason == FinishReason::kLength))
    StoreGeneratedBlocks(r);
  if (BlockManager* bm = options_.block_manager; bm != nullptr && r.matched) {
    if (reason == FinishReason::kCancelled || reason == FinishReason::kError)
      bm->Cancel(r.req.request_id);
    else
      bm->Release(r.req.request_id);
  }
  if (!r.blocks.empty())
    pending_free_.push_back(PendingFree{std::move(r.blocks), std::move(r.transfers)});
  r.blocks.clear();
  r.transfers.clear();
  r.phase = Request::Phase::kDone;
  {
    std::lock_guard lock(mu_);
    in_flight_.erase(r.req.request_id);
    cancel_.erase(r.req.request_id);
    stats_.requests_finished += 1;
  }
  TokenEvent event;
  event.has_token = has_token;
  event.token = token;
  event.text = std::move(text);
  event.finished = true;
  event.finish_reason = reason;
  event.error = std::move(error);
  event.prompt_tokens = r.prompt_size();
  event.cached_tokens = r.cached;
  event.completion_tokens = static_cast<uint32_t>(r.generated.size());
  r.on_event(event);
}

void Engine::ReclaimBlocks(bool wait) {
  std::erase_if(pending_free_, [&](PendingFree& p) {
    for (const TransferHandle& t : p.transfers) {
      if (wait)
        while (!t.Wait(std::chrono::milliseconds(1000)).ok()) {
        }
      if (!t.done()) return false;
    }
    kv_->Free(p.blocks);
    return true;
  });
}

}  // namespace strata::engine
